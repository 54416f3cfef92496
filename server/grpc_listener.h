#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/sync.h"

namespace grpc::experimental {
class ExternalConnectionAcceptor;
}

namespace hookfan::server {

// GrpcListener owns the gRPC port: it accepts connections itself and hands
// each to gRPC through an ExternalConnectionAcceptor, which runs gRPC's TLS
// or plaintext handshake on it as on a port of its own.
//
// gRPC 1.51's own accept loop stops for good at the first accept4 error
// other than EAGAIN (EMFILE at the open-file limit: the port is dead until
// a restart), and it has no connection limit. This loop has both:
//  - at most `max_connections` connections handed to gRPC are open; beyond
//    it new connections wait in the kernel's backlog (they cost no file
//    descriptor there) until gRPC closes one, which it does for a silent
//    connection at its handshake deadline;
//  - an accept that fails for want of descriptors or memory (EMFILE,
//    ENFILE, ENOBUFS, ENOMEM) pauses accepting for 100 ms, then it tries
//    again; connections wait in the backlog meanwhile.
// While connections wait that it cannot take, Health() says why (/readyz).
//
// gRPC closes the connections it is handed; the loop learns that by
// checking the descriptors it handed out (fstat: same socket inode or
// gone) once a second, and before pausing at the limit.
//
// Thread-safe: Health and open_connections may be called from any thread.
class GrpcListener {
 public:
  struct Options {
    std::string host;  // as resolved by getaddrinfo; every address is bound
    int port = 0;      // 0: one the OS picks (the same on every address)
    int max_connections = 10000;
  };

  // Binds and listens. Errors: kUnavailable naming the address (cannot be
  // resolved, in use, or no address of it can be bound).
  static absl::StatusOr<std::unique_ptr<GrpcListener>> Bind(Options options);
  ~GrpcListener();  // Stop()
  GrpcListener(const GrpcListener&) = delete;
  GrpcListener& operator=(const GrpcListener&) = delete;

  int port() const { return port_; }

  // Starts accepting on a thread of its own. Call once, after the gRPC
  // server that made `acceptor` has started.
  void Start(std::unique_ptr<grpc::experimental::ExternalConnectionAcceptor> acceptor);

  // Closes the listening sockets and joins the thread; connections already
  // handed over stay gRPC's. Call before the gRPC server shuts down.
  // Idempotent.
  void Stop();

  // OK unless connections are waiting that the loop cannot accept:
  // kUnavailable naming why (the connection limit, or the open-file
  // limit), until the backlog is drained again.
  absl::Status Health() const;

  // Shuts down the connection gRPC names `peer` ("ipv4:127.0.0.1:5000",
  // "ipv6:[::1]:5000"), if it is still open: gRPC reads its end, cancels
  // its calls and closes it. The client sees the TCP connection end, with
  // no GOAWAY (gRPC 1.51 offers no way to send one for a connection).
  // For `penalty` after, new connections from the peer's address are
  // closed as soon as accepted, before gRPC spends anything on them: a
  // client that reconnects at once would otherwise cost a burst of calls
  // each time. False if no such connection is open.
  bool Disconnect(const std::string& peer, absl::Duration penalty);

  // Connections handed to gRPC and still open, as of the last check.
  int64_t open_connections() const { return open_.load(std::memory_order_relaxed); }
  // How many 100 ms pauses accepting took (connection or open-file limit).
  int64_t pauses() const { return pauses_.load(std::memory_order_relaxed); }

 private:
  explicit GrpcListener(Options options);
  void Run();
  // Accepts what `listen_fd` has waiting, up to a batch: kDrained when its
  // backlog is empty, kMore when the batch ended first, kPause when the
  // loop must pause (at the limit, out of descriptors).
  enum class Accepted { kDrained, kMore, kPause };
  Accepted AcceptFrom(int listen_fd);
  // Drops the handed-out descriptors gRPC has closed since.
  void Sweep();
  void SetStalled(std::string why);
  void ClearStalled();

  const Options options_;
  std::vector<int> listen_fds_;
  int port_ = 0;
  int wake_fd_ = -1;  // eventfd: Stop wakes the loop
  std::thread thread_;
  std::unique_ptr<grpc::experimental::ExternalConnectionAcceptor> acceptor_;

  // Loop thread only: descriptor -> socket inode, of connections handed over.
  std::map<int, ino_t> handed_;
  int64_t paused_until_ms_ = 0;
  int64_t last_log_ms_ = -100000;

  // Connections handed over by gRPC's name for their peer: descriptor and
  // socket inode (a descriptor reused after gRPC closed it differs).
  struct Handed {
    int fd;
    ino_t inode;
  };
  mutable Mutex peers_mu_;
  std::map<std::string, Handed> peers_ ABSL_GUARDED_BY(peers_mu_);
  // Address (gRPC's peer name without the port) -> steady ms until which
  // its new connections are closed at once.
  std::map<std::string, int64_t> penalized_ ABSL_GUARDED_BY(peers_mu_);
  // Whether a connection from `peer` is to be closed at once (penalized_);
  // forgets penalties that ended.
  bool Penalized(const std::string& peer, int64_t now_ms);

  std::atomic<int64_t> open_{0};
  std::atomic<int64_t> pauses_{0};
  mutable Mutex mu_;
  std::string stalled_ ABSL_GUARDED_BY(mu_);  // empty: accepting freely
  int64_t stalled_since_ms_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace hookfan::server
