// Snapshot subscriptions over the SQLite and NATS stores: random interleavings of
// appends (random keys and types) and snapshot subscriptions started and
// polled at random points. Whatever the interleaving, each subscriber's
// state once caught up equals a fold of the whole log, it sees no event
// twice, and it misses none stored after its snapshot.

#include <stdlib.h>

#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/fanout.h"
#include "core/group_manager.h"
#include "core/filter.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nats/nats_connection.h"
#include "nats/nats_event_log.h"
#include "store/sqlite_event_log.h"
#include "store/sqlite_group_store.h"
#include "tests/nats/nats_server.h"

namespace hookfan::broker {
namespace {

using ::testing::HasSubstr;

using KeyType = std::pair<std::string, std::string>;
using Fold = std::map<KeyType, uint64_t>;  // (key, type) -> newest sequence

const char* const kKeys[] = {"", "d0", "d1", "d2", "d3", "d4", "d5", "d6", "d7"};
const char* const kTypes[] = {"t.a", "t.b", "u.c", "u.d"};
const std::vector<std::vector<std::string>> kFilters = {{}, {"t.a"}, {"t.*"}, {"u.d", "t.b"}};

struct Subscriber {
  std::vector<std::string> types;
  std::unique_ptr<Filter> filter;
  std::unique_ptr<Subscription> subscription;
  uint64_t through = 0;  // where its (latest) snapshot ended
  uint64_t last = 0;     // newest sequence taken
  bool restarted = false;
  Fold state;
  std::set<uint64_t> live;  // sequences taken above its first snapshot
};

// Whether retention compacts, and how many latest-view entries wait in
// memory before they are written to the view's table (SQLite); or the NATS
// store, whose view trails the log (its own stream, written by a writer
// fed by the tail).
struct Setting {
  bool compacted;
  size_t checkpoint_entries;
  bool nats = false;
};

class SnapshotPropertyTest : public ::testing::TestWithParam<Setting> {
 protected:
  void SetUp() override {
    std::string dir = ::testing::TempDir() + "snapshot_XXXXXX";
    ASSERT_NE(mkdtemp(dir.data()), nullptr);
    compacted_ = GetParam().compacted;
    nats_ = GetParam().nats;
    if (nats_) {
      server_ = std::make_unique<testing::NatsServer>(dir);
      ASSERT_TRUE(server_->Start());
      NatsOptions options;
      options.servers = {server_->url()};
      if (compacted_) options.max_events = 40;
      auto connection = NatsConnection::Connect(options);
      ASSERT_TRUE(connection.ok()) << connection.status();
      connection_ = std::move(connection).value();
      auto log = NatsEventLog::Open(connection_.get());
      ASSERT_TRUE(log.ok()) << log.status();
      log_ = std::move(log).value();
    } else {
      OpenSqlite(dir);
    }
    // A small window and catch-up batch, so that snapshots page and
    // subscribers move between the window and the store.
    fanout_ = std::make_unique<Fanout>(
        log_.get(), Fanout::Options{.window_events = 16, .catchup_batch = 5});
    log_->SetCommitListener(fanout_.get());
  }
  void OpenSqlite(const std::string& dir) {
    SqliteEventLog::Options options;
    options.latest_checkpoint_entries = GetParam().checkpoint_entries;
    if (compacted_) {
      options.retention_max_events = 40;
      options.retention_keep_latest = true;
    }
    auto log = SqliteEventLog::Open(dir + "/hookfan.db", options);
    ASSERT_TRUE(log.ok()) << log.status();
    log_ = std::move(log).value();
  }
  void TearDown() override {
    subscribers_.clear();
    if (log_ != nullptr) log_->SetCommitListener(nullptr);
    fanout_.reset();
    log_.reset();
  }

  void AppendRandom() {
    std::vector<v1::Event> batch(std::uniform_int_distribution<int>(1, 5)(rng_));
    for (v1::Event& e : batch) {
      e.set_id(absl::StrCat("e", ++ids_));
      e.set_key(kKeys[std::uniform_int_distribution<size_t>(0, std::size(kKeys) - 1)(rng_)]);
      e.set_type(kTypes[std::uniform_int_distribution<size_t>(0, std::size(kTypes) - 1)(rng_)]);
    }
    if (nats_) {
      // One at a time: a batch on NATS looks its ids up by scanning.
      for (v1::Event& e : batch) ASSERT_EQ(log_->Append(absl::MakeSpan(&e, 1)), absl::OkStatus());
    } else {
      ASSERT_EQ(log_->Append(absl::MakeSpan(batch)), absl::OkStatus());
    }
    for (const v1::Event& e : batch) appended_.push_back(e);
  }

  void StartSnapshot(Subscriber& s) {
    v1::Filter filter;
    for (const std::string& t : s.types) filter.add_types(t);
    v1::StartPosition start;
    start.set_snapshot(true);
    auto subscription = fanout_->Subscribe(filter, start, [] {});
    ASSERT_TRUE(subscription.ok()) << subscription.status();
    s.subscription = std::move(subscription).value();
    s.through = s.subscription->snapshot_through();
    if (s.filter == nullptr) s.filter = std::make_unique<Filter>(Filter::Create(filter).value());
  }

  void AddSubscriber() {
    auto s = std::make_unique<Subscriber>();
    s->types = kFilters[std::uniform_int_distribution<size_t>(0, kFilters.size() - 1)(rng_)];
    StartSnapshot(*s);
    subscribers_.push_back(std::move(s));
  }

  // Takes up to `max` events; false when nothing was ready.
  bool Poll(Subscriber& s, size_t max) {
    absl::StatusOr<std::vector<EventPtr>> got = s.subscription->Poll(max, 1 << 30);
    if (absl::IsOutOfRange(got.status()) && compacted_) {
      // Fell behind compacted retention: start again from a snapshot, as
      // the client library does, skipping what it already has.
      EXPECT_THAT(got.status().message(), HasSubstr("start from a snapshot"));
      s.restarted = true;
      ++restarts_;
      StartSnapshot(s);
      return true;
    }
    EXPECT_TRUE(got.ok()) << got.status();
    if (!got.ok() || got->empty()) return false;
    for (const EventPtr& e : *got) {
      const v1::Event& event = e->event;
      EXPECT_TRUE(s.filter->Matches(event)) << event.ShortDebugString();
      if (event.sequence() <= s.last) {
        EXPECT_TRUE(s.restarted) << "sequence " << event.sequence() << " after " << s.last;
        continue;
      }
      s.last = event.sequence();
      if (event.sequence() > s.through) {
        s.live.insert(event.sequence());
      } else {
        ++snapshot_events_;
      }
      if (!event.key().empty()) s.state[{event.key(), event.type()}] = event.sequence();
    }
    return true;
  }

  Fold FoldOfLog(const Filter& filter) const {
    Fold fold;
    for (const v1::Event& e : appended_) {
      if (!e.key().empty() && filter.Matches(e)) fold[{e.key(), e.type()}] = e.sequence();
    }
    return fold;
  }

  // Waits until compacted retention has caught up with the appends.
  void AwaitRetention() {
    const uint64_t want = log_->LastSequence() > 40 ? log_->LastSequence() - 39 : 1;
    absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (log_->FirstSequence().value_or(0) < want && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(5));
    }
    EXPECT_GE(log_->FirstSequence().value_or(0), want);
  }

  bool compacted_ = false;
  bool nats_ = false;
  std::mt19937 rng_;
  std::unique_ptr<testing::NatsServer> server_;
  std::unique_ptr<NatsConnection> connection_;
  std::unique_ptr<EventLog> log_;
  std::unique_ptr<Fanout> fanout_;
  std::vector<v1::Event> appended_;
  std::vector<std::unique_ptr<Subscriber>> subscribers_;
  int ids_ = 0;
  int restarts_ = 0;
  int snapshot_events_ = 0;  // taken from snapshots, by every subscriber
};

TEST_P(SnapshotPropertyTest, EverySubscriberEndsWithTheFoldOfTheWholeLog) {
  for (uint32_t seed = 1; seed <= (compacted_ || nats_ ? 6u : 40u); ++seed) {
    SCOPED_TRACE(absl::StrCat("seed ", seed));
    rng_.seed(seed);
    subscribers_.clear();
    for (int op = 0; op < 300; ++op) {
      int dice = std::uniform_int_distribution<int>(0, 99)(rng_);
      if (dice < 45) {
        AppendRandom();
      } else if (dice < 52) {
        AddSubscriber();
      } else if (!subscribers_.empty()) {
        size_t i = std::uniform_int_distribution<size_t>(0, subscribers_.size() - 1)(rng_);
        Poll(*subscribers_[i], std::uniform_int_distribution<size_t>(1, 12)(rng_));
      }
      if (compacted_ && op % 60 == 59) AwaitRetention();
    }
    for (auto& s : subscribers_) {
      while (Poll(*s, 7)) {
      }
      EXPECT_EQ(s->state, FoldOfLog(*s->filter));
      if (s->restarted) continue;
      // Live: every matching event after the snapshot, exactly once (the
      // set holds each once; the count says none came twice).
      std::set<uint64_t> want;
      for (const v1::Event& e : appended_) {
        if (e.sequence() > s->through && s->filter->Matches(e)) want.insert(e.sequence());
      }
      EXPECT_EQ(s->live, want);
    }
  }
  // Snapshots did hold events (the view was not empty when they started).
  EXPECT_GT(snapshot_events_, 100);
  // Compacted retention did overtake subscribers, and they came back.
  if (compacted_) {
    EXPECT_GT(restarts_, 0);
  }
}

INSTANTIATE_TEST_SUITE_P(Retention, SnapshotPropertyTest,
                         ::testing::Values(Setting{false, 4096}, Setting{false, 7},
                                           Setting{true, 7}, Setting{false, 0, true},
                                           Setting{true, 0, true}),
                         [](const ::testing::TestParamInfo<Setting>& info) {
                           if (info.param.nats) {
                             return absl::StrCat(info.param.compacted ? "Compacted" : "KeepAll",
                                                 "Nats");
                           }
                           return absl::StrCat(info.param.compacted ? "Compacted" : "KeepAll",
                                               "Checkpoint", info.param.checkpoint_entries);
                         });

TEST(SnapshotTest, AStoreWithoutTheViewRefusesSnapshotsAndSaysWhy) {
  std::string dir = ::testing::TempDir() + "snapshot_XXXXXX";
  ASSERT_NE(mkdtemp(dir.data()), nullptr);
  auto log = SqliteEventLog::Open(dir + "/hookfan.db", {.latest_view = false});
  ASSERT_TRUE(log.ok()) << log.status();
  Fanout fanout(log->get(), {});
  v1::StartPosition start;
  start.set_snapshot(true);
  absl::Status refused = fanout.Subscribe({}, start, [] {}).status();
  EXPECT_TRUE(absl::IsFailedPrecondition(refused)) << refused;
  EXPECT_THAT(refused.message(), HasSubstr("--latest-view=false"));
}

TEST(SnapshotTest, AGroupStartedFromASnapshotFinishesItAfterARestart) {
  std::string dir = ::testing::TempDir() + "snapshot_XXXXXX";
  ASSERT_NE(mkdtemp(dir.data()), nullptr);
  const std::string path = dir + "/hookfan.db";
  auto log = SqliteEventLog::Open(path);
  ASSERT_TRUE(log.ok()) << log.status();
  auto store = SqliteGroupStore::Open(path);
  ASSERT_TRUE(store.ok()) << store.status();
  Fanout fanout(log->get(), {});
  (*log)->SetCommitListener(&fanout);
  auto append = [&](int key) {
    static int id = 0;
    v1::Event e;
    e.set_id(absl::StrCat("e", ++id));
    e.set_type("t.a");
    e.set_key(absl::StrCat("d", key));
    ASSERT_EQ((*log)->Append(absl::MakeSpan(&e, 1)), absl::OkStatus());
  };
  // Keys 0-9 (sequences 1-10), then keys 5-9 again (11-15): the snapshot
  // is 1-5 and 11-15; 6-10 are superseded.
  for (int key = 0; key < 10; ++key) append(key);
  for (int key = 5; key < 10; ++key) append(key);

  FakeClock clock;
  auto sequences = [](const std::vector<Delivery>& deliveries) {
    std::vector<uint64_t> out;
    for (const Delivery& d : deliveries) out.push_back(d.event->event.sequence());
    return out;
  };
  v1::ConsumerOpen open;
  open.set_group("inventory");
  open.mutable_start()->set_snapshot(true);
  open.set_max_in_flight(3);
  {
    auto groups = GroupManager::Create(log->get(), &fanout, store->get(),
                                       {.clock = &clock, .start_ticker = false});
    ASSERT_TRUE(groups.ok()) << groups.status();
    auto member = (*groups)->Join(open, [] {});
    ASSERT_TRUE(member.ok()) << member.status();
    auto first = (*member)->Poll(100);
    ASSERT_TRUE(first.ok()) << first.status();
    EXPECT_THAT(sequences(*first), ::testing::ElementsAre(1, 2, 3));
    ASSERT_EQ((*member)->Ack(sequences(*first)), absl::OkStatus());
  }
  // After a restart the group finishes its snapshot (no superseded event),
  // then goes on live.
  append(0);  // 16
  auto groups = GroupManager::Create(log->get(), &fanout, store->get(),
                                     {.clock = &clock, .start_ticker = false});
  ASSERT_TRUE(groups.ok()) << groups.status();
  open.set_max_in_flight(100);
  auto member = (*groups)->Join(open, [] {});
  ASSERT_TRUE(member.ok()) << member.status();
  auto rest = (*member)->Poll(100);
  ASSERT_TRUE(rest.ok()) << rest.status();
  EXPECT_THAT(sequences(*rest), ::testing::ElementsAre(4, 5, 11, 12, 13, 14, 15, 16));
  member->reset();
  groups->reset();
  (*log)->SetCommitListener(nullptr);
}

}  // namespace
}  // namespace hookfan::broker
