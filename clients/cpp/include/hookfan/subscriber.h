#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "hookfan/connection.h"
#include "hookfan/v1/broker.pb.h"

namespace hookfan {
namespace client_internal {
class Reconnect;
}

// Subscriber receives every event matching a filter (EventBroker.Subscribe)
// and hides broker restarts, drains and network loss from its caller: when
// the stream breaks it reconnects with jittered backoff and resumes after
// the last sequence it handed out, so the caller sees each event once, in
// sequence order, with no gap (one log line per reconnect).
//
// One thread calls Next (or Run); Cancel may be called from any thread.
//
//   hookfan::Subscriber::Options options;
//   options.connection.target = "hookfan-grpc:9090";
//   options.filter.add_types("applivery.device.*");
//   hookfan::Subscriber subscriber(options);
//   absl::Status end = subscriber.Run([](const hookfan::v1::Event& event) {
//     Handle(event);
//     return true;  // false stops
//   });
class Subscriber {
 public:
  struct Options {
    ConnectionOptions connection;
    // Which events; empty matches all.
    v1::Filter filter;
    // Where the subscription starts (default latest). After a reconnect it
    // resumes after the last event received, or where the server said the
    // stream had reached; a subscription that started at "latest" and was
    // cut off by a crash before receiving anything restarts at latest; one
    // that started from a snapshot and was cut off inside it takes a new
    // snapshot and skips what it already handed out.
    v1::StartPosition start;
    // Events per response; 0: the server's default.
    uint32_t max_batch_size = 0;
  };

  explicit Subscriber(Options options);
  ~Subscriber();
  Subscriber(const Subscriber&) = delete;
  Subscriber& operator=(const Subscriber&) = delete;

  // Blocks until the next event. Errors: kCancelled after Cancel; the
  // server's answer when retrying cannot help (kInvalidArgument for a bad
  // filter, kPermissionDenied outside the client's grant, kOutOfRange when
  // the position is older than retention); kUnavailable once
  // ConnectionOptions::give_up_after passes without a stream.
  absl::StatusOr<v1::Event> Next();

  // Calls `handler` for each event until it returns false (then OK) or Next
  // fails (then that error). The event is valid during the call only (copy
  // what you keep): it is handed over where it was parsed, which makes Run
  // cheaper per event than Next.
  absl::Status Run(const std::function<bool(const v1::Event&)>& handler);

  // Ends the stream; a blocked Next returns kCancelled. Any thread.
  void Cancel();

  // Sequence of the last event returned, 0 before the first.
  uint64_t last_sequence() const { return last_sequence_; }

 private:
  class Stream;

  // Opens a call resuming at the right place. False once cancelled.
  bool Open();

  const Options options_;
  std::unique_ptr<client_internal::Reconnect> reconnect_;
  std::unique_ptr<Stream> stream_;
  // Waits for the next response into response_, reconnecting as needed.
  // Errors: those of Next.
  absl::Status ReadResponse();

  // The last response read: reused, so its events' storage is too.
  v1::SubscribeResponse response_;
  std::deque<v1::Event> buffered_;  // events Next has read but not returned
  uint64_t last_sequence_ = 0;
  uint64_t resume_after_ = 0;  // from the server's trailer; 0: none
  // Where the snapshot of a snapshot start ends (initial metadata); 0: none.
  uint64_t snapshot_through_ = 0;
};

}  // namespace hookfan
