#include "core/fanout.h"

#include <atomic>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "store/memory_event_log.h"
#include "tests/store/forwarding_event_log.h"
#include "common/sync.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace hookfan::broker {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// Hides events below `first` from reads, as retention would have deleted
// them (an injected fault: the stores' own retention comes later).
class RetentionLog : public ForwardingEventLog {
 public:
  explicit RetentionLog(EventLog* log) : ForwardingEventLog(log) {}
  void DropBefore(uint64_t first) { first_ = first; }

  absl::StatusOr<std::vector<EventPtr>> Read(uint64_t from, size_t max_events,
                                             size_t max_bytes) override {
    return ForwardingEventLog::Read(std::max<uint64_t>(from, first_), max_events, max_bytes);
  }
  absl::StatusOr<uint64_t> FirstSequence() override { return first_.load(); }

 private:
  std::atomic<uint64_t> first_{1};
};

class FanoutTest : public ::testing::Test {
 protected:
  void MakeFanout(Fanout::Options options = {}) {
    fanout_ = std::make_unique<Fanout>(&log_, options);
    log_.SetCommitListener(fanout_.get());
  }
  void TearDown() override { log_.SetCommitListener(nullptr); }

  // Appends events of the given types, one batch each, with times 1s apart.
  void Append(const std::vector<std::string>& types) {
    for (const std::string& type : types) {
      v1::Event e;
      e.set_id(absl::StrCat("id-", ++next_id_));
      e.set_type(type);
      e.mutable_time()->set_seconds(1000 + next_id_);
      ASSERT_TRUE(log_.Append(absl::MakeSpan(&e, 1)).ok());
    }
  }
  void AppendN(int n, const std::string& type = "t.a") {
    Append(std::vector<std::string>(n, type));
  }

  std::unique_ptr<Subscription> Subscribe(v1::Filter filter = {}, v1::StartPosition start = {},
                                          std::atomic<int>* wakes = nullptr) {
    absl::StatusOr<std::unique_ptr<Subscription>> s = fanout_->Subscribe(
        filter, start, [wakes] { if (wakes) ++*wakes; });
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? *std::move(s) : nullptr;
  }

  static std::vector<uint64_t> Seqs(const std::vector<EventPtr>& events) {
    std::vector<uint64_t> out;
    for (const EventPtr& e : events) out.push_back(e->event.sequence());
    return out;
  }

  // Polls until nothing is ready, collecting sequences.
  static std::vector<uint64_t> Drain(Subscription& s, size_t batch = 1000) {
    std::vector<uint64_t> out;
    while (true) {
      absl::StatusOr<std::vector<EventPtr>> got = s.Poll(batch, 1 << 30);
      EXPECT_TRUE(got.ok()) << got.status();
      if (!got.ok() || got->empty()) return out;
      for (uint64_t q : Seqs(*got)) out.push_back(q);
    }
  }

  MemoryEventLog log_;
  std::unique_ptr<Fanout> fanout_;
  int next_id_ = 0;
};

v1::StartPosition Earliest() {
  v1::StartPosition p;
  p.set_earliest(true);
  return p;
}

TEST_F(FanoutTest, LatestSeesOnlyNewEventsAndIsWoken) {
  // A live subscriber parks, is woken by a commit and gets just the new events.
  MakeFanout();
  AppendN(3);
  std::atomic<int> wakes = 0;
  auto sub = Subscribe({}, {}, &wakes);
  EXPECT_THAT(Drain(*sub), IsEmpty());
  AppendN(2);
  EXPECT_EQ(wakes.load(), 1);  // one wake for the first new event, then unparked
  EXPECT_THAT(Drain(*sub), ElementsAre(4, 5));
}

TEST_F(FanoutTest, NonMatchingSubscriberIsNeverWokenAndSkipsAhead) {
  // A selective subscriber is not woken by other types and jumps straight to its match.
  MakeFanout();
  v1::Filter filter;
  filter.add_types("applivery.device.*");
  std::atomic<int> wakes = 0;
  auto sub = Subscribe(filter, {}, &wakes);
  EXPECT_THAT(Drain(*sub), IsEmpty());
  Append({"applivery.build.created", "applivery.unrecognized"});
  EXPECT_EQ(wakes.load(), 0);
  Append({"applivery.device.enrolled", "applivery.build.created"});
  EXPECT_EQ(wakes.load(), 1);
  EXPECT_THAT(Drain(*sub), ElementsAre(3));
  EXPECT_EQ(sub->cursor(), 4u);
}

// Lag counts what a subscription has yet to examine. A selective one that
// is parked has examined everything (nothing since matched it), however far
// its cursor is; one woken by a match lags until it polls.
TEST_F(FanoutTest, LagIsWhatASubscriptionHasYetToExamine) {
  MakeFanout();
  v1::Filter filter;
  filter.add_types("applivery.device.*");
  auto selective = Subscribe(filter);
  auto all = Subscribe();
  EXPECT_THAT(Drain(*selective), IsEmpty());
  EXPECT_THAT(Drain(*all), IsEmpty());
  Append({"applivery.build.created", "applivery.unrecognized"});
  EXPECT_EQ(fanout_->stats().max_lag, 2u);  // `all` was woken and has not polled
  EXPECT_THAT(Drain(*all), ElementsAre(1, 2));
  EXPECT_EQ(fanout_->stats().max_lag, 0u);  // `selective` is parked behind, caught up
  Append({"applivery.build.created", "applivery.device.enrolled"});
  EXPECT_THAT(Drain(*all), ElementsAre(3, 4));
  EXPECT_EQ(fanout_->stats().max_lag, 1u);  // `selective` woken for 4, not polled yet
  EXPECT_THAT(Drain(*selective), ElementsAre(4));
  EXPECT_EQ(fanout_->stats().max_lag, 0u);
}

TEST_F(FanoutTest, EarliestCatchesUpFromStoreThenRejoinsWindow) {
  // Events older than the window come from the store, newer ones from memory, with no gap.
  MakeFanout({.window_events = 8, .window_bytes = 1 << 20, .catchup_batch = 5});
  AppendN(50);
  auto sub = Subscribe({}, Earliest());
  std::vector<uint64_t> got = Drain(*sub, 7);
  AppendN(3);
  for (uint64_t q : Drain(*sub, 7)) got.push_back(q);
  ASSERT_EQ(got.size(), 53u);
  for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], i + 1);
}

TEST_F(FanoutTest, SlowSubscriberFallsBehindWindowAndLosesNothing) {
  // A reader that stops while 1,000 events pass resumes in order from the store.
  MakeFanout({.window_events = 16, .window_bytes = 1 << 20, .catchup_batch = 64});
  auto sub = Subscribe();
  AppendN(5);
  absl::StatusOr<std::vector<EventPtr>> first = sub->Poll(2, 1 << 20);
  ASSERT_TRUE(first.ok());
  EXPECT_THAT(Seqs(*first), ElementsAre(1, 2));
  AppendN(1000);
  std::vector<uint64_t> rest = Drain(*sub, 100);
  ASSERT_EQ(rest.size(), 1003u);
  for (size_t i = 0; i < rest.size(); ++i) EXPECT_EQ(rest[i], i + 3);
}

TEST_F(FanoutTest, BatchesRespectEventAndByteLimits) {
  // max_events caps a batch; max_bytes caps it too but never below one event.
  MakeFanout();
  auto sub = Subscribe({}, Earliest());
  AppendN(10);
  absl::StatusOr<std::vector<EventPtr>> a = sub->Poll(4, 1 << 20);
  ASSERT_TRUE(a.ok());
  EXPECT_THAT(Seqs(*a), ElementsAre(1, 2, 3, 4));
  absl::StatusOr<std::vector<EventPtr>> b = sub->Poll(100, 1);
  ASSERT_TRUE(b.ok());
  EXPECT_THAT(Seqs(*b), ElementsAre(5));
}

TEST_F(FanoutTest, StartPositionsAfterSequenceAndAtTime) {
  // after_sequence resumes past N; at_time starts at the first event at or after T.
  MakeFanout();
  AppendN(6);  // times 1001..1006
  v1::StartPosition after;
  after.set_after_sequence(4);
  auto s1 = Subscribe({}, after);
  EXPECT_THAT(Drain(*s1), ElementsAre(5, 6));
  v1::StartPosition at;
  at.mutable_at_time()->set_seconds(1003);
  auto s2 = Subscribe({}, at);
  EXPECT_THAT(Drain(*s2), ElementsAre(3, 4, 5, 6));
}

TEST_F(FanoutTest, BadFilterOrTimeIsInvalidArgument) {
  MakeFanout();
  v1::Filter bad;
  bad.add_types("a.>.b");
  EXPECT_EQ(fanout_->Subscribe(bad, {}, [] {}).status().code(),
            absl::StatusCode::kInvalidArgument);
  v1::StartPosition at;
  at.mutable_at_time()->set_nanos(-1);
  EXPECT_EQ(fanout_->Subscribe({}, at, [] {}).status(),
            absl::InvalidArgumentError("start.at_time is not a valid timestamp"));
}

TEST_F(FanoutTest, CursorBehindRetentionIsOutOfRangeNamingOldest) {
  // A subscriber whose next event was deleted gets OUT_OF_RANGE with the oldest held.
  RetentionLog retention(&log_);
  fanout_ = std::make_unique<Fanout>(&retention, Fanout::Options{.window_events = 2});
  log_.SetCommitListener(fanout_.get());
  AppendN(10);
  v1::StartPosition after;
  after.set_after_sequence(2);
  auto behind = Subscribe({}, after);  // subscribed before retention ran
  retention.DropBefore(7);
  auto sub = Subscribe({}, Earliest());  // earliest is 7 now: fine
  EXPECT_THAT(Drain(*sub), ElementsAre(7, 8, 9, 10));
  const absl::Status gone =
      absl::OutOfRangeError("sequence 3 is no longer held; the oldest event held is sequence 7");
  EXPECT_EQ(behind->Poll(10, 1 << 20).status(), gone);
  // Resuming there is refused at once.
  EXPECT_EQ(fanout_->Subscribe({}, after, [] {}).status(), gone);
}

TEST_F(FanoutTest, ShutdownWakesEveryoneAndEndsPolls) {
  MakeFanout();
  std::atomic<int> wakes = 0;
  auto sub = Subscribe({}, {}, &wakes);
  EXPECT_THAT(Drain(*sub), IsEmpty());
  fanout_->Shutdown();
  EXPECT_EQ(wakes.load(), 1);
  EXPECT_EQ(sub->Poll(1, 1).status(), ShuttingDownError());
  EXPECT_EQ(fanout_->Subscribe({}, {}, [] {}).status().code(), absl::StatusCode::kUnavailable);
}

TEST_F(FanoutTest, StoreUnavailableEndsOpenSubscriptionsOnly) {
  // A store that lost its backend (NATS) ends the streams open now, so that
  // clients resume; new subscriptions are served as usual.
  MakeFanout();
  AppendN(2);
  std::atomic<int> wakes = 0;
  auto open = Subscribe({}, Earliest(), &wakes);
  EXPECT_THAT(Drain(*open), ElementsAre(1, 2));
  fanout_->OnStoreUnavailable(absl::UnavailableError("lost the NATS connection"));
  EXPECT_EQ(wakes.load(), 1);
  absl::Status ended = open->Poll(1, 1).status();
  EXPECT_EQ(ended.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(ended.message(), HasSubstr("lost the NATS connection"));
  auto later = Subscribe({}, Earliest());
  EXPECT_THAT(Drain(*later), ElementsAre(1, 2));
}

TEST_F(FanoutTest, ConcurrentAppendsAndWakeDrivenReadersSeeEverythingOnce) {
  // Readers that poll only when woken, racing 4 appending threads, get every event once in order.
  MakeFanout({.window_events = 64, .window_bytes = 1 << 20, .catchup_batch = 32});
  constexpr int kWriters = 4, kPerWriter = 500, kReaders = 3;
  constexpr uint64_t kTotal = kWriters * kPerWriter;
  struct Reader {
    Mutex mu;
    bool woken ABSL_GUARDED_BY(mu) = false;
    std::vector<uint64_t> got;
    std::unique_ptr<Subscription> sub;
  };
  std::vector<std::unique_ptr<Reader>> readers;
  for (int i = 0; i < kReaders; ++i) {
    auto r = std::make_unique<Reader>();
    Reader* raw = r.get();
    r->sub = *fanout_->Subscribe({}, Earliest(), [raw] {
      MutexLock lock(&raw->mu);
      raw->woken = true;
    });
    readers.push_back(std::move(r));
  }
  std::vector<std::thread> threads;
  for (auto& r : readers) {
    threads.emplace_back([&r] {
      while (r->got.size() < kTotal) {
        absl::StatusOr<std::vector<EventPtr>> batch = r->sub->Poll(7, 1 << 20);
        ASSERT_TRUE(batch.ok());
        for (uint64_t q : Seqs(*batch)) r->got.push_back(q);
        if (batch->empty()) {  // parked: wait for the wake, as a stream would
          MutexLock lock(&r->mu);
          ASSERT_TRUE(r->mu.AwaitWithTimeout(absl::Condition(&r->woken), absl::Seconds(30)));
          r->woken = false;
        }
      }
    });
  }
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      for (int i = 0; i < kPerWriter; ++i) {
        v1::Event e;
        e.set_id(absl::StrCat("w", w, "-", i));
        e.set_type("t.a");
        ASSERT_TRUE(log_.Append(absl::MakeSpan(&e, 1)).ok());
      }
    });
  }
  for (auto& t : writers) t.join();
  for (auto& t : threads) t.join();
  for (auto& r : readers) {
    ASSERT_EQ(r->got.size(), kTotal);
    for (uint64_t i = 0; i < kTotal; ++i) ASSERT_EQ(r->got[i], i + 1);
  }
}

}  // namespace
}  // namespace hookfan::broker
