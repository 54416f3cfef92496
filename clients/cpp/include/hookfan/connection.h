#pragma once

#include <functional>
#include <memory>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace grpc {
class Channel;
class ChannelCredentials;
}  // namespace grpc

namespace hookfan {

// ConnectionOptions says how a client reaches hookfan and how it behaves
// when the connection breaks. Shared by Subscriber and GroupConsumer.
struct ConnectionOptions {
  // gRPC target, e.g. "hookfan-grpc.hookfan.svc:9090" or
  // "dns:///hookfan-grpc-headless.hookfan.svc:9090".
  std::string target = "127.0.0.1:9090";
  // Channel credentials; null means plaintext (insecure).
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  // Use this channel instead of creating one from target and credentials.
  std::shared_ptr<grpc::Channel> channel;
  // Sent as "authorization: Bearer <token>" on every call when non-empty
  // (hookfan's per-client subscriber grants).
  std::string bearer_token;

  // Reconnect backoff: the n-th consecutive retry waits a random time in
  // [d/2, d] where d = min(initial_backoff * 2^(n-1), max_backoff). The
  // count resets once a stream is accepted again. A stream that ended with
  // its connection (server restart, network loss) is retried as soon as
  // the channel is connected again, within that wait.
  absl::Duration initial_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(10);
  // Give up (Next returns kUnavailable) once no stream has been accepted
  // for this long. Infinite: retry for ever.
  absl::Duration give_up_after = absl::InfiniteDuration();

  // Receives one line per reconnect ("stream ended: UNAVAILABLE ...;
  // reconnecting within 180ms"). Null: written to stderr.
  std::function<void(absl::string_view)> log;
};

// The channel Subscriber and GroupConsumer use when ConnectionOptions has
// none: to `target` with `credentials`, and gRPC's own reconnect backoff
// bounded by initial_backoff and max_backoff, so that a restarted server is
// found as soon as the client retries (gRPC's default would wait 1 s and
// more, growing, while the server is already back).
std::shared_ptr<grpc::Channel> CreateChannel(const ConnectionOptions& options);

}  // namespace hookfan
