#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/sync.h"
#include "grpcpp/support/server_interceptor.h"

namespace hookfan::server {

// CallRate counts calls of one kind on each gRPC connection, per second,
// and says when a connection goes over its allowance. ResetRateGuard counts
// the calls a client cancels: rapid reset (CVE-2023-44487) opens and resets
// streams as fast as one connection goes; gRPC 1.51 frees each stream's
// HTTP/2 slot at its RST_STREAM, so --grpc-max-concurrent-streams never
// bounds it, and it builds every call (~10 KB, tens of µs of CPU) faster
// than one is served. A client that lets its calls finish is never counted,
// however many it makes.
//
// Thread-safe.
class CallRate {
 public:
  // `max_per_second` calls may start on one connection in any one-second
  // window (a fixed window per connection, begun by its first call); 0: no
  // limit.
  explicit CallRate(int max_per_second, Clock* clock = Clock::Real());

  // Counts a call on connection `peer` (gRPC's peer string); false when it
  // is one more than the connection may start this second.
  bool Admit(const std::string& peer);

 private:
  struct Window {
    absl::Time start;
    int64_t calls = 0;
  };
  // Drops the windows of connections that started nothing for a while, so
  // the map holds about the connections of the last seconds.
  void Prune(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const int max_per_second_;
  Clock* const clock_;
  Mutex mu_;
  absl::flat_hash_map<std::string, Window> windows_ ABSL_GUARDED_BY(mu_);
  absl::Time last_prune_ ABSL_GUARDED_BY(mu_);
};

// A gRPC server interceptor factory that counts, with a CallRate, every
// call the client cancels before the server answered it (RST_STREAM, or a
// deadline that passed), in every service of the server (EventBroker,
// health, reflection), and calls `close_connection` with the peer once a
// connection goes over. Upstream gRPC bounds rapid reset the same way
// ("premature resets").
class ResetRateGuard : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  ResetRateGuard(CallRate* rate, std::function<void(const std::string& peer)> close_connection)
      : rate_(rate), close_connection_(std::move(close_connection)) {}

  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override;

  // Counts a cancelled call on `peer`'s connection.
  void CountCancelled(const std::string& peer);

 private:
  CallRate* const rate_;
  const std::function<void(const std::string&)> close_connection_;
};

}  // namespace hookfan::server
