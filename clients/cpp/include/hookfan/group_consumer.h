#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <unordered_set>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "hookfan/connection.h"
#include "hookfan/v1/broker.pb.h"

namespace hookfan {
namespace client_internal {
class Reconnect;
}

// GroupConsumer is one member of a durable consumer group
// (EventBroker.Consume): the group's members share its events, each event
// is leased to one member until acked, and unacked events are redelivered.
// When the stream breaks it rejoins with jittered backoff (one log line);
// events leased on the old stream and not acked come back, possibly to
// another member — processing is at least once, so handlers should be
// idempotent. An event this consumer already acked is not handed out again
// even if the ack was lost with the connection: it is re-acked instead.
//
// One thread calls Next (or Run); Ack, Nack, Extend and Cancel may be
// called from any thread.
//
//   hookfan::GroupConsumer::Options options;
//   options.connection.target = "hookfan-grpc:9090";
//   options.open.set_group("inventory-sync");
//   options.open.mutable_filter()->add_types("applivery.inventory.>");
//   hookfan::GroupConsumer consumer(options);
//   consumer.Run([](const hookfan::v1::Delivery& d) {
//     return Sync(d.event());  // OK acks, an error nacks (redelivered)
//   });
class GroupConsumer {
 public:
  struct Options {
    ConnectionOptions connection;
    // Group name, filter, start and delivery options (see ConsumerOpen in
    // broker.proto). group must be set.
    v1::ConsumerOpen open;
  };

  explicit GroupConsumer(Options options);
  ~GroupConsumer();
  GroupConsumer(const GroupConsumer&) = delete;
  GroupConsumer& operator=(const GroupConsumer&) = delete;

  // Blocks until the next delivery leased to this member. Errors:
  // kCancelled after Cancel; the server's answer when retrying cannot help
  // (kInvalidArgument, kFailedPrecondition for a group that exists with
  // other options, kPermissionDenied, kOutOfRange, kAborted when the group
  // is deleted); kUnavailable once give_up_after passes without a stream.
  absl::StatusOr<v1::Delivery> Next();

  // Acknowledges a delivery: it will not be delivered again. Errors:
  // kUnavailable when the stream it came on is gone (the server will
  // redeliver it, and Next will then re-ack it without handing it out).
  absl::Status Ack(uint64_t sequence);
  // Hands a delivery back for redelivery after `delay`.
  absl::Status Nack(uint64_t sequence, absl::Duration delay = absl::ZeroDuration());
  // Asks for `extension` more time (from now) to process a delivery.
  absl::Status Extend(uint64_t sequence, absl::Duration extension);

  // Calls `handler` for each delivery; an OK result acks it, an error
  // nacks it. Returns when Next fails (kCancelled after Cancel).
  absl::Status Run(const std::function<absl::Status(const v1::Delivery&)>& handler);

  // Leaves the group gracefully: the server processes every ack, nack and
  // extension written so far, then ends the stream; deliveries not yet
  // handed out go back to the group. Call from Next's thread. Returns the
  // stream's final status (OK normally).
  absl::Status Close();

  // Leaves the group at once: a blocked Next returns kCancelled; acks still
  // in flight may be lost (their events are redelivered). Any thread. The
  // destructor cancels.
  void Cancel();

 private:
  class Stream;

  bool Open();
  // Writes one request on the current stream. kUnavailable without one.
  absl::Status Write(const v1::ConsumeRequest& request);
  // Remembers an acked sequence (bounded history).
  void RememberAck(uint64_t sequence);
  bool WasAcked(uint64_t sequence);

  const Options options_;
  std::unique_ptr<client_internal::Reconnect> reconnect_;
  std::deque<v1::Delivery> buffered_;  // Next's thread only

  std::mutex mu_;  // serializes writes and stream replacement
  std::unique_ptr<Stream> stream_;        // guarded by mu_ (swapped by Next's thread)
  std::deque<uint64_t> acked_order_;      // guarded by mu_
  std::unordered_set<uint64_t> acked_;    // guarded by mu_
};

}  // namespace hookfan
