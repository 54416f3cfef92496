#include "tests/nats/nats_server.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/time/clock.h"
#include "absl/strings/str_cat.h"
#include "tests/proc_state.h"

namespace hookfan::testing {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream out;
  out << in.rdbuf();
  return out.str();
}

}  // namespace

NatsServer::NatsServer(std::string store_dir, Options options)
    : store_dir_(std::move(store_dir)),
      max_file_store_(options.max_file_store),
      port_(options.port) {
  std::filesystem::create_directories(store_dir_);
}

NatsServer::~NatsServer() { Kill(); }

std::string NatsServer::url() const { return absl::StrCat("nats://127.0.0.1:", port_); }

bool NatsServer::Start() {
  if (running()) return true;
  const std::string log_path = store_dir_ + "/nats-server.log";
  std::filesystem::remove(log_path);
  std::vector<std::string> args = {"nats-server", "-js", "-a", "127.0.0.1",
                                   "-p", std::to_string(port_), "-sd", store_dir_ + "/js",
                                   "-l", log_path};
  if (max_file_store_ >= 0) {
    // The limit is only settable in a configuration file.
    const std::string config = store_dir_ + "/nats.conf";
    std::ofstream(config) << "jetstream { max_file_store: " << max_file_store_ << " }\n";
    args.insert(args.end(), {"-c", config});
  }
  pid_ = fork();
  if (pid_ == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execvp(argv[0], argv.data());
    _exit(127);
  }
  // The log says "Listening for client connections on 127.0.0.1:PORT" and
  // then "Server is ready".
  constexpr std::string_view kListening = "Listening for client connections on ";
  absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (absl::Now() < deadline) {
    std::string log = ReadFile(log_path);
    size_t at = log.find(kListening);
    if (at != std::string::npos && log.find("Server is ready") != std::string::npos) {
      absl::string_view rest = absl::string_view(log).substr(at + kListening.size());
      rest = rest.substr(rest.rfind(':', rest.find('\n')) + 1);
      int port = 0;
      if (absl::SimpleAtoi(rest.substr(0, rest.find('\n')), &port)) {
        port_ = port;
        return true;
      }
    }
    int status;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      break;
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  std::cerr << "nats-server did not start:\n" << ReadFile(log_path);
  Kill();
  return false;
}

void NatsServer::Reap(absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  while (pid_ > 0) {
    int status;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return;
    }
    if (absl::Now() > deadline) {
      kill(pid_, SIGKILL);
      deadline = absl::InfiniteFuture();
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
}

void NatsServer::Stop() {
  if (pid_ <= 0) return;
  kill(pid_, SIGTERM);
  kill(pid_, SIGCONT);  // a paused server acts on SIGTERM only once continued
  Reap(absl::Seconds(20));
}

namespace {

// Whether every thread of `pid` is stopped (state T in /proc/PID/task/*/stat)
// or gone.
bool AllThreadsStopped(pid_t pid) {
  std::error_code ec;
  std::filesystem::directory_iterator task(absl::StrCat("/proc/", pid, "/task"), ec);
  for (; !ec && task != std::filesystem::directory_iterator(); task.increment(ec)) {
    const std::optional<char> state = hookfan::testing::ProcState(task->path() / "stat");
    if (state.has_value() && *state != 'T' && *state != 't') return false;  // ended is stopped
  }
  return !ec;
}

}  // namespace

void NatsServer::Pause() {
  if (pid_ <= 0) return;
  kill(pid_, SIGSTOP);
  // SIGSTOP is delivered asynchronously: on a busy machine the server could
  // still answer a request sent right after kill() returns.
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (!AllThreadsStopped(pid_) && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(1));
}

void NatsServer::Resume() {
  if (pid_ > 0) kill(pid_, SIGCONT);
}

void NatsServer::Kill() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  Reap(absl::Seconds(20));
}

}  // namespace hookfan::testing
