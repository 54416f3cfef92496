#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/sync.h"

namespace hookfan::broker {

// SendBudget bounds the bytes of responses handed to gRPC for all
// Subscribe and Consume streams together and not yet written out, and
// finds the streams whose write has been outstanding too long.
//
// A client that stops reading (with HTTP/2 windows as large as it likes)
// keeps the batch it was handed in the server until the write completes;
// a thousand such clients held a gigabyte. Under the budget the batches
// shrink as it fills, so the stalled streams together hold about the
// budget, plus at most min_batch_bytes (or one event, if larger) each.
// A stream is never refused its minimum, so a live reader keeps flowing
// however many stalled ones hold the budget.
//
// Thread-safe. Callbacks passed to Hold run on the thread calling
// ExpireStalled, under the budget's lock: they must be quick, must not
// call back into the budget, and must not take a lock a Release caller
// holds.
class SendBudget {
 public:
  struct Options {
    // Bytes queued to all streams before batches are cut to the minimum.
    size_t total_bytes = 64 << 20;
    // What a stream may always have in flight (a batch always holds at
    // least one event, even a larger one).
    size_t min_batch_bytes = 16 << 10;
    // A write outstanding this long marks its stream stalled; 0: never.
    absl::Duration stall_timeout = absl::Seconds(30);
    Clock* clock = Clock::Real();
  };

  // Which call of a hold's on_stall this is: the first ends the stream
  // with a status; later ones (each a further stall_timeout on) cancel it,
  // for a client that does not even read the status.
  enum class Stall { kFirst, kAgain };

  explicit SendBudget(Options options);
  SendBudget(const SendBudget&) = delete;
  SendBudget& operator=(const SendBudget&) = delete;

  // The most bytes a stream's next batch may carry, given the `max` it
  // would carry with the budget empty: `max` while plenty is free, then a
  // sixteenth of what is free (so each new batch leaves room for more
  // streams), never less than min_batch_bytes (nor more than `max`).
  size_t BatchBytes(size_t max) const;

  // Counts `bytes` as queued until Release(id). `on_stall` is called (see
  // the class comment) each further stall_timeout the hold is not released.
  uint64_t Hold(size_t bytes, std::function<void(Stall)> on_stall);
  // Ends a hold. After it returns, its on_stall is not running and is
  // never called again. Unknown ids are ignored.
  void Release(uint64_t id);

  // Calls on_stall of each hold due; returns how many were called. The
  // service calls it periodically (see sweep_interval()).
  size_t ExpireStalled();

  // How often ExpireStalled should run: a quarter of the stall timeout,
  // within 10 ms..1 s. Meaningless when stalling is off (timeout 0).
  absl::Duration sweep_interval() const;
  absl::Duration stall_timeout() const { return options_.stall_timeout; }

  size_t queued_bytes() const;
  // Holds that reached their first stall since start.
  uint64_t stalled_total() const;

 private:
  struct Held {
    size_t bytes;
    absl::Time due;  // when on_stall is next called
    bool stalled;    // on_stall was called at least once
    std::function<void(Stall)> on_stall;
  };

  const Options options_;
  mutable Mutex mu_;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  size_t queued_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t stalled_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<uint64_t, Held> held_ ABSL_GUARDED_BY(mu_);
};

}  // namespace hookfan::broker
