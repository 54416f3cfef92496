#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "absl/time/time.h"

namespace hookfan::testing {

// NatsServer runs a real `nats-server -js` on a loopback port chosen by the
// OS, with its JetStream store in a directory the test owns. Stop() and
// Start() again keep the port and the store, as a restart in production.
// The server dies with the test process (PR_SET_PDEATHSIG).
class NatsServer {
 public:
  struct Options {
    int port = -1;                // -1: chosen by the OS at the first start
    int64_t max_file_store = -1;  // JetStream's file store limit in bytes; -1: the default
  };
  // `store_dir` is created if missing.
  explicit NatsServer(std::string store_dir) : NatsServer(std::move(store_dir), Options{}) {}
  NatsServer(std::string store_dir, Options options);
  ~NatsServer();  // kills the server if running
  NatsServer(const NatsServer&) = delete;
  NatsServer& operator=(const NatsServer&) = delete;

  // Starts and waits until it accepts clients. False on failure (its output
  // is printed to stderr).
  bool Start();
  // SIGTERM (a clean stop), waiting for the exit.
  void Stop();
  // SIGKILL.
  void Kill();
  // SIGSTOP and SIGCONT: a frozen server keeps its connections open and
  // answers nothing, as a stalled node or a network partition. Pause
  // returns once every thread of the server is stopped.
  void Pause();
  void Resume();
  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }

  int port() const { return port_; }
  // "nats://127.0.0.1:PORT".
  std::string url() const;
  const std::string& store_dir() const { return store_dir_; }

 private:
  void Reap(absl::Duration timeout);

  std::string store_dir_;
  int64_t max_file_store_ = -1;
  int port_ = -1;  // -1 until the first start chose one
  pid_t pid_ = -1;
};

}  // namespace hookfan::testing
