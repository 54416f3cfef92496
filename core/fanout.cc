#include "core/fanout.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/status_macros.h"
#include "core/event_rules.h"

namespace hookfan::broker {
namespace {

// Window events examined per lock hold, so one selective subscriber
// scanning the window never holds up commits for long.
constexpr size_t kMaxScanPerLock = 4096;

}  // namespace

struct Fanout::State : std::enable_shared_from_this<State> {
  explicit State(Filter f)
      : filter(std::move(f)),
        index_patterns(filter.types().empty() ? std::vector<std::string>{">"}
                                              : filter.types()) {}

  // Calls the holder's wake callback unless it unsubscribed.
  void Wake() {
    MutexLock lock(&wake_mu);
    if (wake) wake();
  }

  const Filter filter;
  // Where a parked subscription sits in the type index: its type patterns,
  // or ">" (every type) when it has none.
  const std::vector<std::string> index_patterns;
  // Guarded by Fanout::mu_. While parked, every event committed after
  // `cursor` failed the filter (else a commit would have woken it), so a
  // commit may move the cursor forward to just before its first match.
  uint64_t cursor = 0;
  // A snapshot start: while cursor < snapshot_through, events come from the
  // log's latest view instead of the log. Fixed at Subscribe.
  uint64_t snapshot_through = 0;
  bool parked = false;
  // Set when the store became unreachable: Poll fails with it from then on.
  absl::Status interrupted;

  Mutex wake_mu;
  std::function<void()> wake ABSL_GUARDED_BY(wake_mu);
};

absl::Status Fanout::NoLongerHeld(uint64_t sequence, uint64_t first) const {
  return absl::OutOfRangeError(absl::StrCat(
      "sequence ", sequence, " is no longer held; the oldest event held is sequence ", first,
      log_->LatestView().ok()
          ? " (start from a snapshot for the newest event of each key and type)"
          : ""));
}

Fanout::Fanout(EventLog* log, Options options)
    : log_(log), options_(options), last_committed_(log->LastSequence()) {}

Fanout::~Fanout() { Shutdown(); }

absl::StatusOr<std::unique_ptr<Subscription>> Fanout::Subscribe(
    const v1::Filter& filter, const v1::StartPosition& start,
    std::function<void()> wake, uint64_t snapshot_through) {
  ASSIGN_OR_RETURN(Filter parsed, Filter::Create(filter));
  // Before the log opens, "latest" has no meaning yet.
  RETURN_IF_ERROR(log_->Opened());
  auto state = std::make_shared<State>(std::move(parsed));
  // The cursor is the last sequence *not* wanted; latest is read under the
  // lock below so no commit slips between reading and registering.
  bool latest = false;
  bool snapshot = false;
  uint64_t view_through = 0;  // a snapshot's: where the view stands
  switch (start.position_case()) {
    case v1::StartPosition::POSITION_NOT_SET:
    case v1::StartPosition::kLatest:
      latest = true;
      break;
    case v1::StartPosition::kSnapshot: {
      // Refused now, not at the first Poll, when the store keeps no view.
      RETURN_IF_ERROR(log_->LatestView());
      ASSIGN_OR_RETURN(view_through, log_->LatestThrough());
      latest = snapshot = true;
      break;
    }
    case v1::StartPosition::kEarliest: {
      ASSIGN_OR_RETURN(uint64_t first, log_->FirstSequence());
      state->cursor = first - 1;
      break;
    }
    case v1::StartPosition::kAfterSequence: {
      // No sequence follows the largest one (and +1 below would wrap). A
      // smaller position past the end waits for the log to reach it: a
      // replica may not have seen yet what another one served.
      if (start.after_sequence() == std::numeric_limits<uint64_t>::max()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "after_sequence ", start.after_sequence(),
            " is beyond the end of the log (last sequence ", log_->LastSequence(),
            "); no event can follow it"));
      }
      state->cursor = start.after_sequence();
      if (snapshot_through > state->cursor) {
        // Inside a snapshot: the rest of it comes from the view.
        RETURN_IF_ERROR(log_->LatestView());
        state->snapshot_through = snapshot_through;
        break;
      }
      // Retention may have deleted it although the window still holds it.
      ASSIGN_OR_RETURN(uint64_t first, log_->FirstSequence());
      if (start.after_sequence() + 1 < first) {
        return NoLongerHeld(start.after_sequence() + 1, first);
      }
      break;
    }
    case v1::StartPosition::kAtTime: {
      const auto& ts = start.at_time();
      if (!IsValidTimestamp(ts)) {
        return absl::InvalidArgumentError("start.at_time is not a valid timestamp");
      }
      ASSIGN_OR_RETURN(uint64_t seq, log_->SequenceAtTime(ToTime(ts)));
      state->cursor = seq - 1;
      break;
    }
  }
  {
    MutexLock lock(&state->wake_mu);
    state->wake = std::move(wake);
  }
  MutexLock lock(&mu_);
  if (shutdown_) return ShuttingDownError();
  if (latest) state->cursor = last_committed_;
  // The snapshot covers what is committed now, or what the view holds
  // where it trails the log; live delivery follows it.
  if (snapshot) {
    state->snapshot_through = std::min(state->cursor, view_through);
    state->cursor = 0;
  }
  states_.insert(state);
  return std::unique_ptr<Subscription>(new Subscription(this, std::move(state)));
}

void Fanout::Park(State* state) {
  if (state->parked) return;
  state->parked = true;
  for (const std::string& p : state->index_patterns) parked_.Add(p, state);
}

void Fanout::Unpark(State* state) {
  if (!state->parked) return;
  state->parked = false;
  for (const std::string& p : state->index_patterns) parked_.Remove(p, state);
}

void Fanout::OnCommit(const std::vector<EventPtr>& events) {
  if (events.empty()) return;
  std::vector<std::shared_ptr<State>> woken;
  {
    MutexLock lock(&mu_);
    // The window must stay contiguous for index arithmetic; a gap (which a
    // store never produces) just sends readers to the store.
    if (!window_.empty() &&
        events.front()->event.sequence() != window_.back()->event.sequence() + 1) {
      window_.clear();
      window_bytes_ = 0;
    }
    for (const EventPtr& e : events) {
      window_.push_back(e);
      window_bytes_ += e->wire.size();
    }
    while (window_.size() > 1 && (window_.size() > options_.window_events ||
                                  window_bytes_ > options_.window_bytes)) {
      window_bytes_ -= window_.front()->wire.size();
      window_.pop_front();
    }
    last_committed_ = std::max(last_committed_, events.back()->event.sequence());

    for (const EventPtr& e : events) {
      if (parked_.empty()) break;
      std::vector<State*> matched;
      parked_.ForEachMatch(e->event.type(), [&](State* s) {
        if (s->parked && s->filter.Matches(e->event) &&
            std::find(matched.begin(), matched.end(), s) == matched.end()) {
          matched.push_back(s);
        }
      });
      for (State* s : matched) {
        s->cursor = std::max(s->cursor, e->event.sequence() - 1);
        Unpark(s);
        woken.push_back(s->shared_from_this());
      }
    }
  }
  for (const auto& s : woken) s->Wake();
}

absl::StatusOr<std::vector<EventPtr>> Fanout::Poll(State* s, size_t max_events,
                                                   size_t max_bytes) {
  max_events = std::max<size_t>(max_events, 1);
  std::vector<EventPtr> out;
  size_t bytes = 0;
  bool full = false;
  // Examines one event at the cursor: takes it if it matches and fits.
  // Returns false (cursor unmoved) once the batch is full.
  auto offer = [&](const EventPtr& e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (s->filter.Matches(e->event)) {
      if (!out.empty() && (out.size() >= max_events ||
                           bytes + e->wire.size() > max_bytes)) {
        full = true;
        return false;
      }
      out.push_back(e);
      bytes += e->wire.size();
      events_out_.fetch_add(1, std::memory_order_relaxed);
      bytes_out_.fetch_add(e->wire.size(), std::memory_order_relaxed);
    }
    s->cursor = e->event.sequence();
    return true;
  };

  while (true) {
    uint64_t from;
    bool from_view = false;
    {
      MutexLock lock(&mu_);
      if (shutdown_) return ShuttingDownError();
      if (!s->interrupted.ok()) return s->interrupted;
      Unpark(s);
      from = s->cursor + 1;
      from_view = s->cursor < s->snapshot_through;
      if (!from_view) {
        if (s->cursor >= last_committed_) {
          if (out.empty()) Park(s);
          return out;
        }
        if (!window_.empty() && window_.front()->event.sequence() <= s->cursor + 1) {
          size_t i = s->cursor + 1 - window_.front()->event.sequence();
          for (size_t scanned = 0; i < window_.size() && scanned < kMaxScanPerLock;
               ++i, ++scanned) {
            if (!offer(window_[i])) break;
          }
          if (full) return out;
          continue;
        }
      }
    }
    if (from_view) {
      // The snapshot: the view's events up to where it ends, in order. An
      // entry superseded meanwhile has moved past snapshot_through and comes
      // live instead.
      ASSIGN_OR_RETURN(std::vector<EventPtr> read,
                       log_->ReadLatest(from, s->snapshot_through, options_.catchup_batch));
      MutexLock lock(&mu_);
      for (const EventPtr& e : read) {
        if (e->event.sequence() <= s->cursor) continue;
        if (!offer(e)) break;
      }
      if (full) return out;
      if (read.size() < options_.catchup_batch) {
        s->cursor = std::max(s->cursor, s->snapshot_through);
      }
      continue;
    }

    // Catch-up: the window no longer holds the cursor; read the store.
    catchup_reads_.fetch_add(1, std::memory_order_relaxed);
    ASSIGN_OR_RETURN(std::vector<EventPtr> read,
                     log_->Read(from, options_.catchup_batch));
    if (read.empty() || read.front()->event.sequence() != from) {
      if (!out.empty()) return out;  // deliver what is ready; fail next time
      ASSIGN_OR_RETURN(uint64_t first, log_->FirstSequence());
      return NoLongerHeld(from, first);
    }
    MutexLock lock(&mu_);
    for (const EventPtr& e : read) {
      if (e->event.sequence() <= s->cursor) continue;
      if (!offer(e)) break;
    }
    if (full) return out;
  }
}

void Fanout::Unsubscribe(State* state) {
  {
    MutexLock lock(&mu_);
    Unpark(state);
    states_.erase(state->shared_from_this());
  }
  MutexLock lock(&state->wake_mu);  // waits out a wake in progress
  state->wake = nullptr;
}

void Fanout::Shutdown() {
  std::vector<std::shared_ptr<State>> all;
  {
    MutexLock lock(&mu_);
    if (shutdown_) return;
    shutdown_ = true;
    all.assign(states_.begin(), states_.end());
  }
  for (const auto& s : all) s->Wake();
}

void Fanout::OnStoreUnavailable(const absl::Status& why) {
  std::vector<std::shared_ptr<State>> all;
  {
    MutexLock lock(&mu_);
    for (const auto& state : states_) {
      state->interrupted = absl::UnavailableError(
          absl::StrCat("the event store is unavailable (", why.message(),
                       "); resume after your last sequence"));
      all.push_back(state);
    }
  }
  for (const auto& state : all) state->Wake();
}

void Fanout::OnStoreOpened(uint64_t last_sequence) {
  MutexLock lock(&mu_);
  last_committed_ = std::max(last_committed_, last_sequence);
}

size_t Fanout::subscription_count() const {
  MutexLock lock(&mu_);
  return states_.size();
}

Fanout::Stats Fanout::stats() const {
  Stats stats{.events = events_out_.load(std::memory_order_relaxed),
              .bytes = bytes_out_.load(std::memory_order_relaxed),
              .catchup_reads = catchup_reads_.load(std::memory_order_relaxed)};
  MutexLock lock(&mu_);
  stats.subscriptions = states_.size();
  for (const auto& state : states_) {
    // A parked subscription is caught up: every event committed since it
    // parked failed its filter (a match would have unparked it), however
    // far behind its cursor sits.
    if (state->parked) continue;
    stats.max_lag = std::max(stats.max_lag, last_committed_ - std::min(state->cursor, last_committed_));
  }
  return stats;
}

Subscription::~Subscription() { fanout_->Unsubscribe(state_.get()); }

absl::StatusOr<std::vector<EventPtr>> Subscription::Poll(size_t max_events,
                                                         size_t max_bytes) {
  return fanout_->Poll(state_.get(), max_events, max_bytes);
}

uint64_t Subscription::snapshot_through() const { return state_->snapshot_through; }

uint64_t Subscription::cursor() const {
  MutexLock lock(&fanout_->mu_);
  return state_->cursor;
}

}  // namespace hookfan::broker
