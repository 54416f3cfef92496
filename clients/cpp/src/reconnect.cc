#include "src/reconnect.h"

#include <algorithm>
#include <chrono>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"

namespace hookfan::client_internal {

bool IsRetryable(const grpc::Status& status) {
  switch (status.error_code()) {
    case grpc::StatusCode::OK:         // the server ended the stream: carry on
    case grpc::StatusCode::CANCELLED:  // by a server shutting down (ours is checked first)
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
    case grpc::StatusCode::INTERNAL:  // e.g. a connection reset mid-frame
    case grpc::StatusCode::UNKNOWN:
      return true;
    default:
      return false;
  }
}

absl::Status ToAbsl(const grpc::Status& status) {
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      status.error_message());
}

namespace {

std::shared_ptr<grpc::Channel> MakeChannel(const ConnectionOptions& options) {
  if (options.channel) return options.channel;
  return CreateChannel(options);
}

}  // namespace

std::string CodeName(const grpc::Status& status) {
  return absl::StatusCodeToString(static_cast<absl::StatusCode>(status.error_code()));
}

Reconnect::Reconnect(ConnectionOptions options)
    : options_(std::move(options)),
      channel_(MakeChannel(options_)),
      rng_(std::random_device{}()),
      last_alive_(absl::Now()) {}

grpc::ClientContext* Reconnect::NewCall() {
  auto context = std::make_unique<grpc::ClientContext>();
  if (!options_.bearer_token.empty()) {
    context->AddMetadata("authorization", absl::StrCat("Bearer ", options_.bearer_token));
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (cancelled_) return nullptr;
  context_ = std::move(context);
  return context_.get();
}

void Reconnect::Accepted() {
  if (failures_ > 0) Log("stream accepted again");
  failures_ = 0;
  last_alive_ = absl::Now();
}

absl::Status Reconnect::AfterEnd(const grpc::Status& status, bool was_accepted,
                                 absl::string_view what) {
  if (cancelled()) return absl::CancelledError("cancelled");
  if (!IsRetryable(status)) return ToAbsl(status);
  if (was_accepted) last_alive_ = absl::Now();
  if (absl::Now() - last_alive_ > options_.give_up_after) {
    return absl::UnavailableError(absl::StrCat(
        "no stream accepted by ", options_.target, " for ",
        absl::FormatDuration(options_.give_up_after), "; last error: ", status.error_message()));
  }
  ++failures_;
  absl::Duration ceiling = options_.initial_backoff;
  for (int i = 1; i < failures_ && ceiling < options_.max_backoff; ++i) ceiling *= 2;
  ceiling = std::min(ceiling, options_.max_backoff);
  std::uniform_int_distribution<int64_t> jitter(absl::ToInt64Microseconds(ceiling) / 2,
                                                absl::ToInt64Microseconds(ceiling));
  absl::Duration wait = absl::Microseconds(jitter(rng_));
  Log(absl::StrCat(what, " ended: ", CodeName(status), " ", status.error_message(),
                   "; reconnecting within ", absl::FormatDuration(absl::Trunc(wait, absl::Milliseconds(1)))));

  // A stream that ended with its connection (server killed or restarted,
  // network lost) is retried as soon as the channel is connected again,
  // within the backoff: otherwise the calls failing fast while the server
  // is away grow the backoff, and a server back in 0.1 s is found seconds
  // later. A stream the connected server ended waits the whole backoff.
  const bool connected = channel_->GetState(false) == GRPC_CHANNEL_READY;
  const absl::Time deadline = absl::Now() + wait;
  std::unique_lock<std::mutex> lock(mu_);
  while (!cancelled_ && absl::Now() < deadline) {
    if (connected) {
      cancel_cv_.wait_until(lock, absl::ToChronoTime(deadline), [this] { return cancelled_; });
      continue;
    }
    lock.unlock();  // Cancel may come meanwhile: look at least every 50 ms
    const bool ready = channel_->WaitForConnected(
        absl::ToChronoTime(std::min(deadline, absl::Now() + absl::Milliseconds(50))));
    lock.lock();
    if (ready) break;
  }
  if (cancelled_) return absl::CancelledError("cancelled");
  return absl::OkStatus();
}

void Reconnect::Cancel() {
  std::lock_guard<std::mutex> lock(mu_);
  cancelled_ = true;
  if (context_) context_->TryCancel();
  cancel_cv_.notify_all();
}

bool Reconnect::cancelled() const {
  std::lock_guard<std::mutex> lock(mu_);
  return cancelled_;
}

void Reconnect::Log(absl::string_view line) const {
  if (options_.log) {
    options_.log(line);
  } else {
    std::cerr << "hookfan client: " << line << std::endl;
  }
}

}  // namespace hookfan::client_internal

namespace hookfan {

std::shared_ptr<grpc::Channel> CreateChannel(const ConnectionOptions& options) {
  auto credentials =
      options.credentials ? options.credentials : grpc::InsecureChannelCredentials();
  auto ms = [](absl::Duration d) { return static_cast<int>(absl::ToInt64Milliseconds(d)); };
  grpc::ChannelArguments args;
  // Not GRPC_ARG_MIN_RECONNECT_BACKOFF_MS: gRPC also takes it as the
  // connect timeout, and a short one aborts handshakes with a busy server.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, ms(options.initial_backoff));
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, ms(options.max_backoff));
  return grpc::CreateCustomChannel(options.target, credentials, args);
}

}  // namespace hookfan
