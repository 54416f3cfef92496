#pragma once

#include <cstddef>
#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "store/event_log.h"
#include "core/filter.h"
#include "common/sync.h"
#include "hookfan/v1/broker.pb.h"

namespace hookfan::broker {

class Subscription;

// Fanout turns committed events into per-subscription batches.
//
// The log is the truth and every subscription is a cursor on it. Fanout
// keeps a bounded in-memory window of the newest committed events; a
// subscription reads from the window while the window still holds
// cursor + 1 and from the store otherwise (catch-up), asking the same
// question either way ("matching events after my cursor"), so there is no
// hand-off race between catch-up and live delivery. Commits only wake
// subscriptions (found through a type index, so waking costs
// O(matching subscriptions), not O(all)); ingestion never waits for any
// subscriber, and a subscriber that stops reading holds no more than the
// batch it was last handed.
//
// Thread-safe. Register it as the log's CommitListener.
class Fanout : public CommitListener {
 public:
  struct Options {
    size_t window_events = 65536;     // newest events kept in memory
    size_t window_bytes = 64 << 20;   // and at most this much wire encoding
    size_t catchup_batch = 512;       // events per store read when catching up
  };

  // `log` must outlive the Fanout.
  Fanout(EventLog* log, Options options);
  ~Fanout() override;
  Fanout(const Fanout&) = delete;
  Fanout& operator=(const Fanout&) = delete;

  // Opens a subscription. `wake` is called (from any thread, never
  // concurrently with itself for one subscription, and must not block or
  // call back into Fanout) when a parked subscription has new matching
  // events or the Fanout shuts down; the holder then calls Poll.
  //
  // Errors: kInvalidArgument for a bad filter or start position (also
  // after_sequence 2^64-1, which no event can follow; a smaller position
  // past the end of the log is accepted and waits for it);
  // kUnavailable after Shutdown or on store failure; kFailedPrecondition
  // for a snapshot start when the log keeps no latest view.
  //
  // `snapshot_through` resumes a snapshot subscription (a consumer group's
  // reader after a restart): with start.after_sequence below it, events up
  // to it still come from the latest view (see snapshot_through()).
  absl::StatusOr<std::unique_ptr<Subscription>> Subscribe(
      const v1::Filter& filter, const v1::StartPosition& start,
      std::function<void()> wake, uint64_t snapshot_through = 0);

  // Ends every subscription: each is woken and its Poll returns
  // kUnavailable from now on. Idempotent.
  void Shutdown();

  // CommitListener.
  void OnCommit(const std::vector<EventPtr>& events) override;
  // Ends the subscriptions open now: their Poll fails with kUnavailable
  // (clients resume by sequence). Later subscriptions are unaffected.
  void OnStoreUnavailable(const absl::Status& why) override;
  // "latest" starts after `last_sequence` from now on.
  void OnStoreOpened(uint64_t last_sequence) override;

  // Number of open subscriptions.
  size_t subscription_count() const;

  // What fan-out has done since it started, for metrics.
  struct Stats {
    size_t subscriptions = 0;
    uint64_t events = 0;          // handed to subscriptions (Subscribe streams, group readers)
    uint64_t bytes = 0;           // their wire encoding
    uint64_t catchup_reads = 0;   // store reads for cursors behind the window
    uint64_t max_lag = 0;         // most committed events any subscription has not examined
                                  // (a parked one has: none matched it)
  };
  Stats stats() const;

 private:
  friend class Subscription;
  struct State;

  absl::StatusOr<std::vector<EventPtr>> Poll(State* state, size_t max_events,
                                             size_t max_bytes);
  void Unsubscribe(State* state);
  // The kOutOfRange of a cursor below what the log holds.
  absl::Status NoLongerHeld(uint64_t sequence, uint64_t first) const;
  void Park(State* state) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Unpark(State* state) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  EventLog* const log_;
  const Options options_;
  std::atomic<uint64_t> events_out_{0};
  std::atomic<uint64_t> bytes_out_{0};
  std::atomic<uint64_t> catchup_reads_{0};

  mutable Mutex mu_;
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t last_committed_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<EventPtr> window_ ABSL_GUARDED_BY(mu_);
  size_t window_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  // Every open subscription, and the parked ones indexed by type pattern.
  absl::flat_hash_set<std::shared_ptr<State>> states_ ABSL_GUARDED_BY(mu_);
  TypeIndex<State> parked_ ABSL_GUARDED_BY(mu_);
};

// Subscription is one cursor over the log with a filter. Created by
// Fanout::Subscribe; destroying it unsubscribes (after which `wake` is never
// called). Poll calls must not overlap (one reader per subscription); the
// object may be destroyed from any thread but not during a Poll.
class Subscription {
 public:
  ~Subscription();
  Subscription(const Subscription&) = delete;
  Subscription& operator=(const Subscription&) = delete;

  // Returns the next matching events after the cursor, oldest first: at most
  // `max_events` and stopping once `max_bytes` is reached (always at least
  // one event when any is ready), advancing the cursor past them. Returns an
  // empty vector when none is ready: the subscription is then parked and
  // `wake` is called once there is more.
  //
  // Errors: kOutOfRange when the next event was already removed from the
  // log ("...; the oldest event held is sequence N"); kUnavailable after
  // shutdown or on store failure; kDataLoss for an undecodable record.
  absl::StatusOr<std::vector<EventPtr>> Poll(size_t max_events, size_t max_bytes);

  // Sequence of the last event examined (delivered or skipped by the
  // filter). Resuming with after_sequence = cursor() continues seamlessly.
  uint64_t cursor() const;

  // For a snapshot start, the last sequence the snapshot covers: events up
  // to it come from the latest view, later ones live. Else 0.
  uint64_t snapshot_through() const;

 private:
  friend class Fanout;
  Subscription(Fanout* fanout, std::shared_ptr<Fanout::State> state)
      : fanout_(fanout), state_(std::move(state)) {}

  Fanout* const fanout_;
  const std::shared_ptr<Fanout::State> state_;
};

}  // namespace hookfan::broker
