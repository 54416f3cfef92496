#pragma once

#include <sys/types.h>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/sync.h"
#include "grpcpp/grpcpp.h"
#include "hookfan/v1/broker.grpc.pb.h"

namespace hookfan::testing {

// Whether this build runs under a sanitizer (CI builds the suite again with
// ASan and TSan; see .ci/run). Bounds on time and memory in tests against
// the binary may be scaled by the sanitizer's own cost, stated where they
// are; never dropped.
#ifdef HOOKFAN_TSAN
inline constexpr bool kUnderThreadSanitizer = true;
#else
inline constexpr bool kUnderThreadSanitizer = false;
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(HOOKFAN_TSAN)
inline constexpr bool kUnderSanitizer = true;
#else
inline constexpr bool kUnderSanitizer = false;
#endif
// The scales: ASan's quarantine and shadow memory hold freed memory back
// (RSS); TSan runs the server 5-15 times slower (time and CPU).
inline constexpr int kMemoryFactor = kUnderSanitizer ? 4 : 1;
inline constexpr int kTimeFactor = kUnderSanitizer ? 5 : 1;

// HookfanProcess runs the real `hookfan` binary on loopback ports chosen by
// the OS and a data dir the test owns, and captures its log lines.
class HookfanProcess {
 public:
  struct Options {
    std::string data_dir;                 // required
    std::string token = "test-token";   // --applivery-token, unless sources_file
    std::string sources_file = {};       // --sources instead of the token
    // Most tests post one fixture many times as distinct events: without
    // this the shorthand source would answer the copies as duplicates.
    bool applivery_dedup = false;
    std::vector<std::string> extra_args = {};  // appended to the command line
    std::vector<std::string> env = {};         // "NAME=value", added to the environment
    long file_size_limit = 0;             // RLIMIT_FSIZE in bytes; 0: none
    // RLIMIT_NOFILE set before exec: the hard limit, and the soft one (0:
    // the hard one). hookfan raises its soft limit to the hard one. 0:
    // inherited.
    long open_file_limit = 0;
    long open_file_soft_limit = 0;
    // For tests that bound the process's memory (RSS): under ASan, freed
    // memory waits in its quarantine (256 MB by default) and goes back to
    // the OS only every 5 s, so RSS shows ASan's holdings, not hookfan's.
    // This shrinks the quarantine to 8 MB and returns memory every 100 ms.
    // No effect on other builds.
    bool measures_memory = false;
  };

  explicit HookfanProcess(Options options);
  ~HookfanProcess();  // SIGKILLs the process if still running

  // Starts and waits for the "hookfan listening" line. False on failure
  // (the log is printed to stderr).
  bool Start();
  // SIGTERM, then waits up to `timeout`; returns the exit status (as from
  // waitpid), or -1 on timeout (then the process is killed).
  int Terminate(absl::Duration timeout = absl::Seconds(30));
  // SIGKILL and reap.
  void Kill();
  // Changes the running process's RLIMIT_FSIZE (0: none), as a disk filling
  // up or being freed. False on failure.
  bool SetFileSizeLimit(long bytes);

  int http_port() const { return http_port_; }
  int grpc_port() const { return grpc_port_; }
  pid_t pid() const { return pid_; }
  std::string grpc_address() const { return "127.0.0.1:" + std::to_string(grpc_port_); }
  std::string webhook_path() const { return "/webhooks/applivery/" + options_.token; }
  std::unique_ptr<v1::EventBroker::Stub> NewStub() const;
  // POSTs `body` as JSON to the Applivery webhook path; returns the HTTP
  // status, 0 when the request failed.
  int PostWebhook(const std::string& body) const;
  // Every line the process wrote to stderr so far.
  std::vector<std::string> Lines();

 private:
  void ReadLog(int fd);
  int Wait(absl::Duration timeout);

  Options options_;
  pid_t pid_ = -1;
  int http_port_ = 0;
  int grpc_port_ = 0;
  std::thread reader_;
  Mutex mu_;
  std::vector<std::string> lines_ ABSL_GUARDED_BY(mu_);
  bool listening_ ABSL_GUARDED_BY(mu_) = false;
  bool log_closed_ ABSL_GUARDED_BY(mu_) = false;
};

// Collects the events of one Subscribe stream on a background thread.
class StreamCollector {
 public:
  StreamCollector(v1::EventBroker::Stub* stub, v1::SubscribeRequest request,
                  const std::string& bearer_token = "");
  ~StreamCollector();  // cancels the stream

  // Waits until at least n events arrived (or the stream ended). True if n arrived.
  bool WaitFor(size_t n, absl::Duration timeout = absl::Seconds(30));
  // Waits for the stream to end and returns its status.
  grpc::Status WaitForEnd(absl::Duration timeout = absl::Seconds(30));
  std::vector<v1::Event> events();
  std::string Trailer(const std::string& key);
  // A value of the server's initial metadata ("" if absent).
  std::string InitialMetadata(const std::string& key);
  size_t responses();

 private:
  grpc::ClientContext context_;
  Mutex mu_;
  std::vector<v1::Event> events_ ABSL_GUARDED_BY(mu_);
  size_t responses_ ABSL_GUARDED_BY(mu_) = 0;
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status status_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

// Posts the enrollment fixture from four keep-alive connections until
// Stop, or until a post is not answered 202, and keeps the id of every 202.
class Senders {
 public:
  explicit Senders(const HookfanProcess& hookfan);
  ~Senders() { Stop(); }

  // The ids answered 202 so far.
  std::set<std::string> Acked();
  // Stops and joins the senders; returns the ids answered 202.
  std::set<std::string> Stop();

 private:
  std::atomic<bool> stop_ = false;
  std::mutex mu_;
  std::set<std::string> acked_;
  std::vector<std::thread> threads_;
};

// What a shell command printed (stdout and stderr) and its exit code.
struct CommandResult {
  int exit_code;
  std::string output;
};
CommandResult RunCommand(const std::string& command);

// Certificates made with the openssl command in a directory the test owns:
// a CA "ca" and two certificates it signs, "server" (localhost and
// 127.0.0.1) and "client" (clientAuth), each as <name>.pem and <name>.key.
// A command that fails is a test failure.
class Certificates {
 public:
  explicit Certificates(std::string dir);
  // A new self-signed CA for `cn` into <name>.pem / <name>.key.
  void MakeCa(const std::string& name, const std::string& cn);
  // Signs a new certificate for `cn` with the CA <ca>.pem into <name>.pem /
  // <name>.key; `ext` holds its X.509 extensions, one per line.
  void Issue(const std::string& name, const std::string& cn, const std::string& ext,
             const std::string& ca = "ca");
  std::string path(const std::string& file) const { return dir_ + "/" + file; }

 private:
  void Run(const std::string& command);
  std::string dir_;
};

// Reads a fixture from tests/fixtures/applivery, or from tests/fixtures when
// `name` names a folder ("nanomdm/authenticate.json").
std::string ReadFixture(const std::string& name);

// A device id of the form Applivery uses (24 hex digits), one per i.
std::string DeviceId(int i);
// Two webhooks about device DeviceId(i), of two event types keyed by it:
// its enrollment (applivery.device.enrolled) and its user assignment
// (applivery.device.user_assigned), from the fixtures.
std::vector<std::string> DeviceWebhooks(int i);

// The value of the unlabelled sample `name` in a /metrics scrape; -1 if
// absent.
double MetricValue(const std::string& scrape, const std::string& name);

// The value of the unlabelled sample `name` in a /metrics scrape of
// `hookfan`; -1 if absent or the scrape failed.
double Metric(const HookfanProcess& hookfan, const std::string& name);

// The bytes of the file at `path` ("" if it cannot be read).
std::string ReadFile(const std::string& path);

// Calls `condition` (and then `between`) until it holds or `timeout`
// passes; whether it held.
bool Eventually(
    const std::function<bool()>& condition, absl::Duration timeout,
    const std::function<void()>& between = [] { absl::SleepFor(absl::Milliseconds(20)); });

// A fresh empty directory under the test temp dir.
std::string MakeTempDir();

// A plain TCP connection to `port` on loopback; -1 on failure.
int ConnectTo(int port);

// A field of /proc/<pid>/status in bytes ("VmRSS", "VmHWM"); -1 if absent.
long long ProcStatusBytes(pid_t pid, const std::string& field);

// CPU time (user + system) process `pid` has used so far; -1 if unknown.
double ProcCpuSeconds(pid_t pid);

}  // namespace hookfan::testing
