#include "core/send_budget.h"

#include <algorithm>
#include <utility>

namespace hookfan::broker {
namespace {

// A new batch takes at most this fraction of what is free: the budget
// fills geometrically, so the streams that come after still get batches
// larger than the minimum for a while, instead of the first few taking it
// all.
constexpr size_t kShareOfFree = 16;

}  // namespace

SendBudget::SendBudget(Options options) : options_(options) {}

size_t SendBudget::BatchBytes(size_t max) const {
  size_t free;
  {
    MutexLock lock(&mu_);
    free = queued_ < options_.total_bytes ? options_.total_bytes - queued_ : 0;
  }
  return std::min(max, std::max(options_.min_batch_bytes, free / kShareOfFree));
}

uint64_t SendBudget::Hold(size_t bytes, std::function<void(Stall)> on_stall) {
  MutexLock lock(&mu_);
  const uint64_t id = next_id_++;
  queued_ += bytes;
  held_.emplace(id, Held{.bytes = bytes,
                         .due = options_.clock->Now() + options_.stall_timeout,
                         .stalled = false,
                         .on_stall = std::move(on_stall)});
  return id;
}

void SendBudget::Release(uint64_t id) {
  // ExpireStalled calls on_stall under mu_, so taking it here waits out a
  // call in progress.
  MutexLock lock(&mu_);
  auto it = held_.find(id);
  if (it == held_.end()) return;
  queued_ -= it->second.bytes;
  held_.erase(it);
}

size_t SendBudget::ExpireStalled() {
  if (options_.stall_timeout <= absl::ZeroDuration()) return 0;
  MutexLock lock(&mu_);
  const absl::Time now = options_.clock->Now();
  size_t called = 0;
  for (auto& [id, held] : held_) {
    if (held.due > now) continue;
    const Stall which = held.stalled ? Stall::kAgain : Stall::kFirst;
    if (!held.stalled) ++stalled_;
    held.stalled = true;
    held.due = now + options_.stall_timeout;
    held.on_stall(which);
    ++called;
  }
  return called;
}

absl::Duration SendBudget::sweep_interval() const {
  return std::clamp(options_.stall_timeout / 4, absl::Milliseconds(10), absl::Seconds(1));
}

size_t SendBudget::queued_bytes() const {
  MutexLock lock(&mu_);
  return queued_;
}

uint64_t SendBudget::stalled_total() const {
  MutexLock lock(&mu_);
  return stalled_;
}

}  // namespace hookfan::broker
