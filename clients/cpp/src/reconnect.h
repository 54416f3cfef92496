#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <random>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "grpcpp/support/status.h"
#include "hookfan/connection.h"

namespace hookfan::client_internal {

// True for stream endings a reconnect can cure (server restart, drain,
// network loss); false for answers about the request itself
// (INVALID_ARGUMENT, PERMISSION_DENIED, OUT_OF_RANGE, ...).
bool IsRetryable(const grpc::Status& status);

// The status code's name, e.g. "UNAVAILABLE".
std::string CodeName(const grpc::Status& status);

// Converts a gRPC status to the absl::Status the client API returns.
absl::Status ToAbsl(const grpc::Status& status);

// Reconnect holds what both clients need to keep one logical stream alive
// over many gRPC calls: the channel, the current call's context (so Cancel
// can reach it from another thread), and the jittered backoff.
//
// Thread-safe: Cancel may be called from any thread; the other methods from
// the one thread that drives the stream.
class Reconnect {
 public:
  explicit Reconnect(ConnectionOptions options);

  const std::shared_ptr<grpc::Channel>& shared_channel() const { return channel_; }

  // A fresh context for the next call, carrying the bearer token; the
  // previous one is released. Returns null once cancelled.
  grpc::ClientContext* NewCall();

  // The server accepted the current call: resets the backoff.
  void Accepted();

  // The current call ended with `status`; `was_accepted` says whether the
  // server had accepted it (so the connection was alive until now). Returns OK when the caller should
  // call again (after waiting out the backoff, logging why), or the error
  // to hand to the caller: kCancelled after Cancel, the status itself when
  // it is not retryable, kUnavailable once give_up_after has passed.
  absl::Status AfterEnd(const grpc::Status& status, bool was_accepted, absl::string_view what);

  // Ends the current call and every later wait. Idempotent.
  void Cancel();
  bool cancelled() const;

 private:
  void Log(absl::string_view line) const;

  const ConnectionOptions options_;
  const std::shared_ptr<grpc::Channel> channel_;
  std::mt19937_64 rng_;
  int failures_ = 0;                   // consecutive ends without an accept
  absl::Time last_alive_;              // last time a stream was known accepted

  mutable std::mutex mu_;
  std::condition_variable cancel_cv_;
  bool cancelled_ = false;                       // guarded by mu_
  std::unique_ptr<grpc::ClientContext> context_;  // guarded by mu_
};

}  // namespace hookfan::client_internal
