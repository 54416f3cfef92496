#include "tests/e2e/hookfan_process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include <httplib.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

#include "common/sync.h"
#include "tests/fixtures.h"

namespace hookfan::testing {

// A write to a peer that hung up (a refused TLS handshake, a killed
// server) must fail with EPIPE in the test, not kill the test binary.
[[maybe_unused]] const bool kIgnoreSigpipe = [] {
  signal(SIGPIPE, SIG_IGN);
  return true;
}();

HookfanProcess::HookfanProcess(Options options) : options_(std::move(options)) {}

HookfanProcess::~HookfanProcess() {
  // TSan writes a report line by line; a SIGKILL landing meanwhile cuts it
  // short, and .ci/tsan-reports must then judge a race it sees half of
  // (CI failed once on such a report). Under TSan, a test's process ends
  // the way a pod's does, so every report is written whole; a test that
  // means to crash it calls Kill itself.
  if (kUnderThreadSanitizer) Terminate(absl::Seconds(10));
  Kill();
  if (reader_.joinable()) reader_.join();
}

bool HookfanProcess::Start() {
  if (reader_.joinable()) reader_.join();
  {
    MutexLock lock(&mu_);
    lines_.clear();
    listening_ = false;
    log_closed_ = false;
  }
  // HOOKFAN_TEST_BINARY runs the tests against another build (say, an
  // older one, to see a test fail where a fix is missing).
  const char* binary = getenv("HOOKFAN_TEST_BINARY");
  std::vector<std::string> args = {binary != nullptr ? binary : HOOKFAN_BINARY,
                                   "--http-listen=127.0.0.1:0",
                                   "--grpc-listen=127.0.0.1:0",
                                   "--data-dir=" + options_.data_dir};
  if (options_.sources_file.empty()) {
    args.push_back("--applivery-token=" + options_.token);
    if (!options_.applivery_dedup) args.push_back("--applivery-dedup-window=0");
  } else {
    args.push_back("--sources=" + options_.sources_file);
  }
  args.insert(args.end(), options_.extra_args.begin(), options_.extra_args.end());
  std::vector<std::string> env = options_.env;
#if defined(__SANITIZE_ADDRESS__)
  if (options_.measures_memory) {
    // First in the environment: the sanitizer takes the first definition.
    const char* inherited = getenv("ASAN_OPTIONS");
    env.insert(env.begin(),
               absl::StrCat("ASAN_OPTIONS=", inherited != nullptr ? inherited : "",
                            inherited != nullptr && *inherited != '\0' ? ":" : "",
                            "quarantine_size_mb=8:allocator_release_to_os_interval_ms=100"));
  }
#endif
  for (char** e = environ; *e != nullptr; ++e) env.push_back(*e);
  std::vector<char*> argv, envp;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (std::string& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return false;
  pid_ = fork();
  if (pid_ == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive a test that crashed
    dup2(fds[1], STDERR_FILENO);
    if (options_.file_size_limit > 0) {
      signal(SIGXFSZ, SIG_IGN);  // writes past the limit fail with EFBIG instead
      // A soft limit only, so that SetFileSizeLimit can lift it.
      rlimit limit{static_cast<rlim_t>(options_.file_size_limit), RLIM_INFINITY};
      setrlimit(RLIMIT_FSIZE, &limit);
    }
    if (options_.open_file_limit > 0) {
      rlimit limit{static_cast<rlim_t>(options_.open_file_soft_limit > 0
                                           ? options_.open_file_soft_limit
                                           : options_.open_file_limit),
                   static_cast<rlim_t>(options_.open_file_limit)};
      if (setrlimit(RLIMIT_NOFILE, &limit) != 0) _exit(126);
    }
    execve(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  close(fds[1]);
  reader_ = std::thread([this, fd = fds[0]] { ReadLog(fd); });
  MutexLock lock(&mu_);
  auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return listening_ || log_closed_; };
  mu_.AwaitWithTimeout(absl::Condition(&ready), absl::Seconds(30));
  if (!listening_) {
    for (const std::string& l : lines_) std::cerr << "hookfan: " << l << "\n";
  }
  return listening_;
}

void HookfanProcess::ReadLog(int fd) {
  FILE* f = fdopen(fd, "r");
  char* line = nullptr;
  size_t cap = 0;
  ssize_t n;
  while ((n = getline(&line, &cap, f)) > 0) {
    std::string s(line, n > 0 && line[n - 1] == '\n' ? n - 1 : n);
    nlohmann::json j = nlohmann::json::parse(s, nullptr, false);
    MutexLock lock(&mu_);
    if (j.is_object() && j.value("msg", "") == "hookfan listening") {
      auto port = [](const std::string& addr) { return std::stoi(addr.substr(addr.rfind(':') + 1)); };
      http_port_ = port(j["http"]);
      grpc_port_ = port(j["grpc"]);
      listening_ = true;
    }
    lines_.push_back(std::move(s));
  }
  free(line);
  fclose(f);
  MutexLock lock(&mu_);
  log_closed_ = true;
}

int HookfanProcess::Wait(absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    int status;
    pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      pid_ = -1;
      return status;
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  return -1;
}

int HookfanProcess::Terminate(absl::Duration timeout) {
  if (pid_ <= 0) return -1;
  kill(pid_, SIGTERM);
  int status = Wait(timeout);
  if (status == -1) Kill();
  if (reader_.joinable()) reader_.join();
  return status;
}

void HookfanProcess::Kill() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
  if (reader_.joinable()) reader_.join();
}

bool HookfanProcess::SetFileSizeLimit(long bytes) {
  rlimit limit{bytes > 0 ? static_cast<rlim_t>(bytes) : RLIM_INFINITY, RLIM_INFINITY};
  return prlimit(pid_, RLIMIT_FSIZE, &limit, nullptr) == 0;
}

int HookfanProcess::PostWebhook(const std::string& body) const {
  httplib::Client client("127.0.0.1", http_port_);
  client.set_read_timeout(30, 0);
  auto res = client.Post(webhook_path(), body, "application/json");
  return res ? res->status : 0;
}

std::unique_ptr<v1::EventBroker::Stub> HookfanProcess::NewStub() const {
  return v1::EventBroker::NewStub(
      grpc::CreateChannel(grpc_address(), grpc::InsecureChannelCredentials()));
}

std::vector<std::string> HookfanProcess::Lines() {
  MutexLock lock(&mu_);
  return lines_;
}

Senders::Senders(const HookfanProcess& hookfan) {
  for (int t = 0; t < 4; ++t) {
    threads_.emplace_back([this, &hookfan] {
      httplib::Client c("127.0.0.1", hookfan.http_port());
      c.set_read_timeout(30, 0);
      std::string body = ReadFixture("emm_device_enrolled.json");
      while (!stop_) {
        auto res = c.Post(hookfan.webhook_path(), body, "application/json");
        if (!res || res->status != 202) return;
        std::lock_guard<std::mutex> l(mu_);
        acked_.insert(nlohmann::json::parse(res->body)["id"].get<std::string>());
      }
    });
  }
}

std::set<std::string> Senders::Acked() {
  std::lock_guard<std::mutex> l(mu_);
  return acked_;
}

std::set<std::string> Senders::Stop() {
  stop_ = true;
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
  return Acked();
}

StreamCollector::StreamCollector(v1::EventBroker::Stub* stub, v1::SubscribeRequest request,
                                 const std::string& bearer_token) {
  if (!bearer_token.empty()) context_.AddMetadata("authorization", "Bearer " + bearer_token);
  // Returns once the server has registered the subscription: a "latest"
  // stream must not miss events posted right after construction.
  Notification started;
  thread_ = std::thread([this, stub, request = std::move(request), &started] {
    auto reader = stub->Subscribe(&context_, request);
    reader->WaitForInitialMetadata();
    started.Notify();
    v1::SubscribeResponse response;
    while (reader->Read(&response)) {
      MutexLock lock(&mu_);
      ++responses_;
      for (const v1::Event& e : response.events()) events_.push_back(e);
    }
    grpc::Status status = reader->Finish();
    MutexLock lock(&mu_);
    status_ = status;
    ended_ = true;
  });
  started.WaitForNotificationWithTimeout(absl::Seconds(30));
}

StreamCollector::~StreamCollector() {
  context_.TryCancel();
  thread_.join();
}

bool StreamCollector::WaitFor(size_t n, absl::Duration timeout) {
  MutexLock lock(&mu_);
  auto done = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return events_.size() >= n || ended_;
  };
  mu_.AwaitWithTimeout(absl::Condition(&done), timeout);
  return events_.size() >= n;
}

grpc::Status StreamCollector::WaitForEnd(absl::Duration timeout) {
  MutexLock lock(&mu_);
  if (!mu_.AwaitWithTimeout(absl::Condition(&ended_), timeout)) {
    return grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "stream did not end");
  }
  return status_;
}

std::vector<v1::Event> StreamCollector::events() {
  MutexLock lock(&mu_);
  return events_;
}

size_t StreamCollector::responses() {
  MutexLock lock(&mu_);
  return responses_;
}

std::string StreamCollector::InitialMetadata(const std::string& key) {
  // The constructor returned after the initial metadata arrived.
  const auto& metadata = context_.GetServerInitialMetadata();
  auto it = metadata.find(key);
  return it == metadata.end() ? "" : std::string(it->second.data(), it->second.size());
}

std::string StreamCollector::Trailer(const std::string& key) {
  const auto& trailers = context_.GetServerTrailingMetadata();
  auto it = trailers.find(key);
  return it == trailers.end() ? "" : std::string(it->second.data(), it->second.size());
}

CommandResult RunCommand(const std::string& command) {
  FILE* p = popen((command + " 2>&1").c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

Certificates::Certificates(std::string dir) : dir_(std::move(dir)) {
  MakeCa("ca", "test-ca");
  Issue("server", "localhost", "subjectAltName=DNS:localhost,IP:127.0.0.1");
  Issue("client", "client", "extendedKeyUsage=clientAuth");
}

void Certificates::MakeCa(const std::string& name, const std::string& cn) {
  Run("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=" + cn + " -keyout " + name +
      ".key -out " + name + ".pem");
}

void Certificates::Issue(const std::string& name, const std::string& cn, const std::string& ext,
                         const std::string& ca) {
  Run("openssl req -newkey rsa:2048 -nodes -subj /CN=" + cn + " -keyout " + name +
      ".key -out " + name + ".csr");
  Run("printf '" + ext + "' > " + name + ".ext && openssl x509 -req -in " + name + ".csr -CA " +
      ca + ".pem -CAkey " + ca + ".key -CAcreateserial -days 2 -extfile " + name + ".ext -out " +
      name + ".pem");
}

void Certificates::Run(const std::string& command) {
  CommandResult r = RunCommand("cd " + dir_ + " && " + command);
  ASSERT_EQ(r.exit_code, 0) << command << "\n" << r.output;
}

std::string ReadFixture(const std::string& name) {
  return ReadFixtureFile(name.find('/') == std::string::npos ? "applivery/" + name : name);
}

std::string DeviceId(int i) { return absl::StrFormat("%024x", 0xd000 + i); }

std::vector<std::string> DeviceWebhooks(int i) {
  return {absl::StrReplaceAll(ReadFixture("emm_device_enrolled.json"),
                              {{"5f634c11034824062256e38c", DeviceId(i)}}),
          absl::StrReplaceAll(ReadFixture("win_device_added_mdm_user.json"),
                              {{"66d05845114a9509d18e7266", DeviceId(i)}})};
}

double MetricValue(const std::string& scrape, const std::string& name) {
  for (absl::string_view line : absl::StrSplit(scrape, '\n')) {
    double value;
    if (absl::ConsumePrefix(&line, name + " ") && absl::SimpleAtod(line, &value)) return value;
  }
  return -1;
}

double Metric(const HookfanProcess& hookfan, const std::string& name) {
  httplib::Client c("127.0.0.1", hookfan.http_port());
  auto res = c.Get("/metrics");
  return res ? MetricValue(res->body, name) : -1;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool Eventually(const std::function<bool()>& condition, absl::Duration timeout,
                const std::function<void()>& between) {
  for (const absl::Time deadline = absl::Now() + timeout; absl::Now() < deadline;) {
    if (condition()) return true;
    between();
  }
  return condition();
}

std::string MakeTempDir() {
  // Removed when the test binary exits.
  static struct Dirs {
    ~Dirs() {
      for (const std::string& d : paths) std::filesystem::remove_all(d);
    }
    std::vector<std::string> paths;
  } dirs;
  std::string tmpl = ::testing::TempDir() + "hookfan-e2e-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) std::abort();
  dirs.paths.push_back(tmpl);
  return tmpl;
}

int ConnectTo(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

long long ProcStatusBytes(pid_t pid, const std::string& field) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(field + ":", 0) != 0) continue;
    std::istringstream fields(line.substr(field.size() + 1));
    long long kb = -1;
    fields >> kb;
    return kb < 0 ? -1 : kb * 1024;
  }
  return -1;
}

double ProcCpuSeconds(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  // Fields 14 and 15 (utime, stime) follow the command name, which ends
  // at the last ')' and may itself hold spaces.
  const size_t end = text.rfind(')');
  if (end == std::string::npos) return -1;
  std::istringstream fields(text.substr(end + 2));
  std::string field;
  for (int i = 3; i < 14; ++i) fields >> field;
  long long utime = -1, stime = -1;
  fields >> utime >> stime;
  if (utime < 0 || stime < 0) return -1;
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

}  // namespace hookfan::testing
