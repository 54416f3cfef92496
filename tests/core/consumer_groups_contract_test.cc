// The ConsumerGroups contract (core/consumer_groups.h), run against every
// implementation: GroupManager over the in-memory and the SQLite group
// store, and NatsConsumerGroups on a real nats-server. What only one
// implementation promises (GroupManager's exact backoff on a fake clock,
// NATS durable names, side streams, losing the server) stays in
// tests/core/group_manager_test.cc and tests/nats/nats_consumer_groups_test.cc.
//
// Every implementation runs on the real clock here, so that time passes
// alike for all: tests wait for conditions with deadlines, never for time.

#include <stdlib.h>

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/clock.h"
#include "core/consumer_groups.h"
#include "core/fanout.h"
#include "core/group_manager.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nats/nats_connection.h"
#include "nats/nats_consumer_groups.h"
#include "nats/nats_event_log.h"
#include "store/memory_event_log.h"
#include "store/memory_group_store.h"
#include "store/sqlite_event_log.h"
#include "store/sqlite_group_store.h"
#include "tests/core/test_member.h"
#include "tests/nats/nats_server.h"

namespace hookfan::broker {
namespace {

using ::hookfan::broker::group_test::Attempts;
using ::hookfan::broker::group_test::Open;
using ::hookfan::broker::group_test::Seqs;
using ::hookfan::broker::group_test::TestMember;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// One implementation under test, with the event log it reads.
class Backend {
 public:
  virtual ~Backend() = default;
  virtual ConsumerGroups* groups() = 0;
  // Another ConsumerGroups on the same groups: for NATS a second replica
  // (its own connection and log); a GroupManager serves one process, so
  // itself.
  virtual ConsumerGroups* peer() = 0;
  virtual EventLog* log() = 0;
  // As after a process restart (every member gone first): new
  // ConsumerGroups on the same state; groups() and peer() change.
  virtual void Restart() = 0;
};

// GroupManager with its ticker on the real clock; the backoff after a
// lapsed lease is short so that tests of lapsed leases stay fast.
class ManagerBackend : public Backend {
 public:
  // `open_store` is called at start and, when `reopen_store`, again at each
  // restart (a SQLite store comes back from its file; a memory store is
  // kept, as it would be by the process it stands for).
  ManagerBackend(std::unique_ptr<EventLog> log,
                 std::function<std::unique_ptr<GroupStore>()> open_store, bool reopen_store)
      : log_(std::move(log)), open_store_(std::move(open_store)), reopen_store_(reopen_store) {
    fanout_ = std::make_unique<Fanout>(log_.get(), Fanout::Options{});
    log_->SetCommitListener(fanout_.get());
    store_ = open_store_();
    Start();
  }
  ~ManagerBackend() override {
    manager_.reset();
    log_->SetCommitListener(nullptr);
  }

  ConsumerGroups* groups() override { return manager_.get(); }
  ConsumerGroups* peer() override { return manager_.get(); }
  EventLog* log() override { return log_.get(); }
  void Restart() override {
    manager_.reset();
    if (reopen_store_) {
      store_.reset();
      store_ = open_store_();
    }
    Start();
  }

 private:
  void Start() {
    ASSERT_NE(store_, nullptr);
    absl::StatusOr<std::unique_ptr<GroupManager>> m =
        GroupManager::Create(log_.get(), fanout_.get(), store_.get(),
                             {.backoff_base = absl::Milliseconds(100),
                              .backoff_max = absl::Seconds(1),
                              .tick_interval = absl::Milliseconds(10)});
    ASSERT_TRUE(m.ok()) << m.status();
    manager_ = *std::move(m);
  }

  std::unique_ptr<EventLog> log_;
  std::function<std::unique_ptr<GroupStore>()> open_store_;
  const bool reopen_store_;
  std::unique_ptr<Fanout> fanout_;
  std::unique_ptr<GroupStore> store_;
  std::unique_ptr<GroupManager> manager_;  // destroyed first
};

std::unique_ptr<Backend> MemoryManager(const std::string&) {
  return std::make_unique<ManagerBackend>(
      std::make_unique<MemoryEventLog>(), [] { return std::make_unique<MemoryGroupStore>(); },
      /*reopen_store=*/false);
}

// The event log and the group store in one database file, as in production.
std::unique_ptr<Backend> SqliteManager(const std::string& dir) {
  const std::string path = dir + "/hookfan.db";
  absl::StatusOr<std::unique_ptr<SqliteEventLog>> log = SqliteEventLog::Open(path);
  if (!log.ok()) {
    ADD_FAILURE() << log.status();
    return nullptr;
  }
  return std::make_unique<ManagerBackend>(
      *std::move(log),
      [path]() -> std::unique_ptr<GroupStore> {
        absl::StatusOr<std::unique_ptr<SqliteGroupStore>> store = SqliteGroupStore::Open(path);
        if (!store.ok()) {
          ADD_FAILURE() << store.status();
          return nullptr;
        }
        return *std::move(store);
      },
      /*reopen_store=*/true);
}

// Two replicas, each its own connection, log and NatsConsumerGroups, on a
// nats-server of the test's own.
class NatsBackend : public Backend {
 public:
  explicit NatsBackend(const std::string& dir) : server_(dir + "/nats") {}
  bool Start() {
    if (!server_.Start()) return false;
    for (Replica& r : replicas_) {
      NatsOptions options;
      options.servers = {server_.url()};
      options.request_timeout = absl::Seconds(2);
      absl::StatusOr<std::unique_ptr<NatsConnection>> connection =
          NatsConnection::Connect(options);
      if (!connection.ok()) {
        ADD_FAILURE() << connection.status();
        return false;
      }
      r.connection = *std::move(connection);
      absl::StatusOr<std::unique_ptr<NatsEventLog>> log = NatsEventLog::Open(r.connection.get());
      if (!log.ok()) {
        ADD_FAILURE() << log.status();
        return false;
      }
      r.log = *std::move(log);
    }
    return CreateGroups();
  }

  ConsumerGroups* groups() override { return replicas_[0].groups.get(); }
  ConsumerGroups* peer() override { return replicas_[1].groups.get(); }
  EventLog* log() override { return replicas_[0].log.get(); }
  void Restart() override {
    for (Replica& r : replicas_) r.groups.reset();
    EXPECT_TRUE(CreateGroups());
  }

 private:
  struct Replica {
    std::unique_ptr<NatsConnection> connection;
    std::unique_ptr<NatsEventLog> log;
    std::unique_ptr<NatsConsumerGroups> groups;  // destroyed first
  };

  bool CreateGroups() {
    for (Replica& r : replicas_) {
      absl::StatusOr<std::unique_ptr<NatsConsumerGroups>> groups = NatsConsumerGroups::Create(
          r.connection.get(), r.log.get(), {.fetch_wait = absl::Milliseconds(250)});
      if (!groups.ok()) {
        ADD_FAILURE() << groups.status();
        return false;
      }
      r.groups = *std::move(groups);
    }
    return true;
  }

  testing::NatsServer server_;  // stopped last
  Replica replicas_[2];
};

std::unique_ptr<Backend> NatsGroups(const std::string& dir) {
  auto backend = std::make_unique<NatsBackend>(dir);
  if (!backend->Start()) return nullptr;
  return backend;
}

struct Impl {
  const char* name;
  std::unique_ptr<Backend> (*make)(const std::string& dir);
};

// Names the parameter in test output and in ctest's test names (which
// would otherwise hold its bytes, pointers that change from run to run).
void PrintTo(const Impl& impl, std::ostream* os) { *os << impl.name; }

class ConsumerGroupsContractTest : public ::testing::TestWithParam<Impl> {
 protected:
  void SetUp() override {
    std::string dir = ::testing::TempDir() + "groups_contract_XXXXXX";
    ASSERT_NE(mkdtemp(dir.data()), nullptr);
    dir_ = dir;
    backend_ = GetParam().make(dir_);
    ASSERT_NE(backend_, nullptr);
  }
  void TearDown() override {
    members_.clear();
    backend_.reset();
    std::filesystem::remove_all(dir_);
  }

  ConsumerGroups* groups() { return backend_->groups(); }
  ConsumerGroups* peer() { return backend_->peer(); }
  // Whether peer() is another instance (with members and stats of its own).
  bool replicated() { return groups() != peer(); }

  // Appends one at a time; returns the sequences.
  std::vector<uint64_t> Append(std::vector<v1::Event> events) {
    std::vector<uint64_t> out;
    for (v1::Event& e : events) {
      EXPECT_EQ(backend_->log()->Append(absl::MakeSpan(&e, 1)), absl::OkStatus());
      out.push_back(e.sequence());
    }
    return out;
  }
  // `n` events with ids e1, e2…; with `keys`, keyed k0…k(keys-1) in turn.
  std::vector<uint64_t> AppendN(int n, int keys = 0) {
    std::vector<v1::Event> events;
    for (int i = 0; i < n; ++i) {
      v1::Event e;
      e.set_id(absl::StrCat("e", ++next_id_));
      e.set_type("device.enrolled");
      if (keys > 0) e.set_key(absl::StrCat("k", next_id_ % keys));
      events.push_back(std::move(e));
    }
    return Append(std::move(events));
  }

  TestMember& Join(ConsumerGroups* groups, const v1::ConsumerOpen& open) {
    TestMember& m = *members_.emplace_back(std::make_unique<TestMember>());
    EXPECT_EQ(m.Join(groups, open), absl::OkStatus());
    return m;
  }

  std::optional<v1::GroupInfo> Info(ConsumerGroups* groups, const std::string& name) {
    for (v1::GroupInfo& info : groups->ListGroups()) {
      if (info.name() == name) return info;
    }
    return std::nullopt;
  }

  // The totals of groups() and, if another instance, peer().
  ConsumerGroups::Stats TotalStats() {
    ConsumerGroups::Stats total = groups()->stats();
    if (replicated()) {
      ConsumerGroups::Stats p = peer()->stats();
      total.deliveries += p.deliveries;
      total.redeliveries += p.redeliveries;
      total.dead_lettered += p.dead_lettered;
    }
    return total;
  }

  // Waits until group `name` lists `n` dead letters (or 10 s pass), polling
  // `m` meanwhile, as a member of a real consumer would (NATS records a
  // lapsed last attempt when a member fetches it again); whatever `m` is
  // handed meanwhile is a failure: a dead event is never delivered.
  std::vector<v1::DeadLetter> WaitForDeadLetters(const std::string& name, size_t n,
                                                 TestMember& m) {
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    std::vector<v1::DeadLetter> dead;
    while (absl::Now() < deadline) {
      EXPECT_THAT(Seqs(m.PollNow()), IsEmpty());
      absl::StatusOr<std::vector<v1::DeadLetter>> listed = groups()->ListDeadLetters(name, 0, 100);
      EXPECT_TRUE(listed.ok()) << listed.status();
      if (listed.ok() && listed->size() >= n) return *std::move(listed);
      absl::SleepFor(absl::Milliseconds(20));
    }
    ADD_FAILURE() << "no " << n << " dead letters in group " << name;
    return dead;
  }

  std::string dir_;
  std::unique_ptr<Backend> backend_;
  std::vector<std::unique_ptr<TestMember>> members_;  // destroyed before backend_
  int next_id_ = 0;
};

// Members (on two replicas where there are replicas) share the events: each
// is delivered to one of them and, once acked, never again.
TEST_P(ConsumerGroupsContractTest, MembersShareEventsEachDeliveredOnce) {
  TestMember& on_a = Join(groups(), Open("workers", /*max_in_flight=*/5));
  TestMember& on_b = Join(peer(), Open("workers", /*max_in_flight=*/5));
  std::vector<uint64_t> seqs = AppendN(40);

  std::map<uint64_t, int> delivered;
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (delivered.size() < 40 && absl::Now() < deadline) {
    bool any = false;
    for (TestMember* m : {&on_a, &on_b}) {
      std::vector<Delivery> got = m->PollNow(5);
      for (const Delivery& d : got) ++delivered[d.event->event.sequence()];
      ASSERT_EQ((*m)->Ack(Seqs(got)), absl::OkStatus());
      any |= !got.empty();
    }
    if (!any) absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_EQ(delivered.size(), 40u);
  for (const auto& [seq, times] : delivered) EXPECT_EQ(times, 1) << "sequence " << seq;
  EXPECT_EQ(delivered.begin()->first, seqs.front());
  EXPECT_EQ(delivered.rbegin()->first, seqs.back());
  EXPECT_EQ(TotalStats().deliveries, 40u);
  EXPECT_EQ(TotalStats().redeliveries, 0u);

  std::optional<v1::GroupInfo> info = Info(peer(), "workers");
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->ack_floor(), seqs.back());
  EXPECT_EQ(info->lag(), 0u);
  EXPECT_EQ(info->pending(), 0u);
  EXPECT_EQ(info->in_flight(), 0u);
  // `members` counts those of the instance asked.
  EXPECT_EQ(info->members(), replicated() ? 1u : 2u);
  EXPECT_EQ(info->max_deliveries(), kDefaultMaxDeliveries);
}

// A member never holds more than its max_in_flight, also as the group
// counts it; an ack makes room for one more, and the rest goes to others.
TEST_P(ConsumerGroupsContractTest, MemberNeverHoldsMoreThanMaxInFlight) {
  TestMember& small = Join(groups(), Open("g", /*max_in_flight=*/3));
  std::vector<uint64_t> seqs = AppendN(10);
  EXPECT_THAT(Seqs(small.PollFor(3)), ElementsAre(seqs[0], seqs[1], seqs[2]));
  EXPECT_THAT(small.PollNow(), IsEmpty());
  EXPECT_EQ(Info(groups(), "g")->in_flight(), 3u);

  ASSERT_EQ(small->Ack({seqs[0]}), absl::OkStatus());
  EXPECT_THAT(Seqs(small.PollFor(1)), ElementsAre(seqs[3]));
  EXPECT_THAT(small.PollNow(), IsEmpty());

  TestMember& other = Join(peer(), Open("g"));
  EXPECT_THAT(Seqs(other.PollFor(6)), ElementsAreArray(seqs.begin() + 4, seqs.end()));
  // Every event is now held by one of the two, each lease 30 s long:
  // nothing can come to either.
  EXPECT_THAT(small.PollNow(), IsEmpty());
  EXPECT_THAT(other.PollNow(), IsEmpty());
  EXPECT_EQ(small->ignored(), 0u);
}

// Where a new group starts: the latest event, or after a sequence.
TEST_P(ConsumerGroupsContractTest, StartAppliesWhenTheGroupIsCreated) {
  std::vector<uint64_t> old = AppendN(2);
  v1::ConsumerOpen latest = Open("latest");
  latest.mutable_start()->set_latest(true);
  TestMember& from_latest = Join(groups(), latest);
  v1::ConsumerOpen after = Open("after");
  after.mutable_start()->set_after_sequence(old[0]);
  TestMember& from_after = Join(groups(), after);
  std::vector<uint64_t> fresh = AppendN(1);
  // Deliveries come in sequence order, so an older event would come first.
  EXPECT_THAT(Seqs(from_latest.PollFor(1)), ElementsAre(fresh[0]));
  EXPECT_THAT(Seqs(from_after.PollFor(2)), ElementsAre(old[1], fresh[0]));
  EXPECT_THAT(from_latest.PollNow(), IsEmpty());
}

// A nack hands the event back: it comes again with the next attempt, at
// once without a delay and not before the delay given.
TEST_P(ConsumerGroupsContractTest, NackRedeliversWithTheNextAttemptAfterItsDelay) {
  TestMember& m = Join(groups(), Open("g"));
  std::vector<uint64_t> seqs = AppendN(1);
  std::vector<Delivery> first = m.PollFor(1);
  ASSERT_THAT(Seqs(first), ElementsAre(seqs[0]));
  EXPECT_EQ(first[0].attempt, 1u);

  ASSERT_EQ(m->Nack(seqs, absl::ZeroDuration()), absl::OkStatus());
  std::vector<Delivery> second = m.PollFor(1, absl::Seconds(5));
  ASSERT_THAT(Seqs(second), ElementsAre(seqs[0]));
  EXPECT_EQ(second[0].attempt, 2u);

  const absl::Time nacked = absl::Now();
  ASSERT_EQ(m->Nack(seqs, absl::Milliseconds(600)), absl::OkStatus());
  std::vector<Delivery> third = m.PollFor(1);
  // JetStream's redelivery timer is not exact to the millisecond.
  EXPECT_GE(absl::Now() - nacked, absl::Milliseconds(500));
  ASSERT_THAT(Seqs(third), ElementsAre(seqs[0]));
  EXPECT_EQ(third[0].attempt, 3u);
  EXPECT_EQ(TotalStats().deliveries, 3u);
  EXPECT_EQ(TotalStats().redeliveries, 2u);
  EXPECT_EQ(m->ignored(), 0u);
}

// A member that leaves hands what it holds to another member (here on
// another replica where there are replicas) as second attempts, long
// before the lease's deadline. (How soon differs: GroupManager at once,
// NATS within its fetch_wait; see the per-implementation tests.)
TEST_P(ConsumerGroupsContractTest, LeavingMemberHandsItsEventsBackBeforeTheDeadline) {
  TestMember& leaving = Join(groups(), Open("g", /*max_in_flight=*/3, absl::Seconds(30)));
  std::vector<uint64_t> seqs = AppendN(3);
  ASSERT_EQ(leaving.PollFor(3).size(), 3u);
  TestMember& staying = Join(peer(), Open("g", 10, absl::Seconds(30)));
  EXPECT_THAT(staying.PollNow(), IsEmpty());

  const absl::Time left = absl::Now();
  leaving.Leave();
  std::vector<Delivery> got = staying.PollFor(3, absl::Seconds(10));
  EXPECT_LT(absl::Now() - left, absl::Seconds(5));
  EXPECT_THAT(Seqs(got), ElementsAre(seqs[0], seqs[1], seqs[2]));
  EXPECT_THAT(Attempts(got), ElementsAre(2u, 2u, 2u));
}

// Leaving counts as a failed attempt, so max_deliveries still bounds a
// poison event that crashes every member that takes it.
TEST_P(ConsumerGroupsContractTest, ALeavingMembersLastAllowedAttemptIsDeadLettered) {
  std::vector<uint64_t> seqs = AppendN(1);
  v1::ConsumerOpen open = Open("g");
  open.set_max_deliveries(2);
  for (uint32_t attempt = 1; attempt <= 2; ++attempt) {
    TestMember m;
    ASSERT_EQ(m.Join(groups(), open), absl::OkStatus());
    std::vector<Delivery> got = m.PollFor(1);
    ASSERT_THAT(Seqs(got), ElementsAre(seqs[0])) << attempt;
    EXPECT_THAT(Attempts(got), ElementsAre(attempt));
  }  // and leaves
  TestMember& survivor = Join(groups(), open);
  std::vector<v1::DeadLetter> dead = WaitForDeadLetters("g", 1, survivor);
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0].event().sequence(), seqs[0]);
  EXPECT_EQ(dead[0].attempts(), 2u);
  EXPECT_EQ(Info(groups(), "g")->dead_letters(), 1u);
  // A later event is delivered, the dead one not again.
  std::vector<uint64_t> later = AppendN(1);
  EXPECT_THAT(Seqs(survivor.PollFor(1)), ElementsAre(later[0]));
}

// After max_deliveries failed attempts an event is a dead letter, listed
// with its attempts; a redrive delivers it again, from attempt 1.
TEST_P(ConsumerGroupsContractTest, MaxDeliveriesDeadLettersAndRedriveDeliversAgain) {
  v1::ConsumerOpen open = Open("g");
  open.set_max_deliveries(2);
  TestMember& m = Join(groups(), open);
  std::vector<uint64_t> seqs = AppendN(2);
  ASSERT_EQ(m.PollFor(2).size(), 2u);
  ASSERT_EQ(m->Ack({seqs[1]}), absl::OkStatus());
  ASSERT_EQ(m->Nack({seqs[0]}, absl::ZeroDuration()), absl::OkStatus());
  ASSERT_THAT(Attempts(m.PollFor(1)), ElementsAre(2u));
  ASSERT_EQ(m->Nack({seqs[0]}, absl::ZeroDuration()), absl::OkStatus());  // the last attempt

  std::vector<v1::DeadLetter> dead = WaitForDeadLetters("g", 1, m);
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0].event().sequence(), seqs[0]);
  EXPECT_EQ(dead[0].event().id(), "e1");
  EXPECT_EQ(dead[0].event().type(), "device.enrolled");  // read from the log
  EXPECT_EQ(dead[0].attempts(), 2u);
  EXPECT_LT(absl::Now() - ToTime(dead[0].time()), absl::Seconds(10));
  EXPECT_THAT(*groups()->ListDeadLetters("g", seqs[0], 10), IsEmpty());
  EXPECT_EQ(Info(groups(), "g")->dead_letters(), 1u);
  EXPECT_EQ(TotalStats().dead_lettered, 1u);
  // The nack with no delay would have redelivered it before a later event.
  std::vector<uint64_t> later = AppendN(1);
  EXPECT_THAT(Seqs(m.PollFor(1)), ElementsAre(later[0]));
  ASSERT_EQ(m->Ack(later), absl::OkStatus());

  absl::StatusOr<uint64_t> redriven = peer()->Redrive("g", {});
  ASSERT_TRUE(redriven.ok()) << redriven.status();
  EXPECT_EQ(*redriven, 1u);
  std::vector<Delivery> again = m.PollFor(1);
  ASSERT_THAT(Seqs(again), ElementsAre(seqs[0]));
  EXPECT_EQ(again[0].attempt, 1u);
  EXPECT_EQ(again[0].event->event.id(), "e1");
  EXPECT_THAT(*groups()->ListDeadLetters("g", 0, 10), IsEmpty());
  ASSERT_EQ(m->Ack({seqs[0]}), absl::OkStatus());
  std::optional<v1::GroupInfo> info = Info(groups(), "g");
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->dead_letters(), 0u);
  EXPECT_EQ(info->pending(), 0u);
  EXPECT_EQ(m->ignored(), 0u);

  EXPECT_EQ(groups()->ListDeadLetters("nope", 0, 10).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(groups()->Redrive("nope", {}).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(*groups()->Redrive("g", {12345}), 0u);
}

// A lease of the last attempt that lapses makes a dead letter too, and the
// event is not shown again; an ack after the lapse is ignored.
TEST_P(ConsumerGroupsContractTest, LapsedLastAttemptIsDeadLettered) {
  v1::ConsumerOpen open = Open("g", 0, absl::Seconds(1));
  open.set_max_deliveries(1);
  TestMember& m = Join(groups(), open);
  std::vector<uint64_t> seqs = AppendN(1);
  ASSERT_EQ(m.PollFor(1).size(), 1u);  // and never acked

  std::vector<v1::DeadLetter> dead = WaitForDeadLetters("g", 1, m);
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0].event().sequence(), seqs[0]);
  EXPECT_EQ(dead[0].attempts(), 1u);
  EXPECT_EQ(m->Ack(seqs), absl::OkStatus());
  EXPECT_EQ(m->ignored(), 1u);  // the lease had lapsed
}

// In a key_ordered group (members on two replicas, acks in random order) a
// key is never in flight twice and its events are processed in sequence
// order. (Whether different keys run in parallel differs: GroupManager
// does, NATS keeps one event in flight per group.)
TEST_P(ConsumerGroupsContractTest, KeyOrderedKeepsPerKeyOrderUnderRandomAcks) {
  v1::ConsumerOpen open = Open("g", 8);
  open.set_key_ordered(true);
  TestMember& a = Join(groups(), open);
  TestMember& b = Join(peer(), open);
  constexpr size_t kEvents = 60;
  AppendN(kEvents, /*keys=*/5);

  std::mt19937 rng(42);
  std::map<std::string, uint64_t> last_processed;
  std::map<std::string, int> in_flight_per_key;
  std::vector<std::pair<TestMember*, Delivery>> held;
  size_t processed = 0;
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (processed < kEvents) {
    ASSERT_LT(absl::Now(), deadline) << processed << " processed";
    for (TestMember* m : {&a, &b}) {
      for (const Delivery& d : m->PollNow(8)) {
        const std::string& key = d.event->event.key();
        ASSERT_EQ(++in_flight_per_key[key], 1) << "key " << key << " in flight twice";
        held.emplace_back(m, d);
      }
    }
    if (held.empty()) {
      absl::SleepFor(absl::Milliseconds(5));
      continue;
    }
    std::shuffle(held.begin(), held.end(), rng);
    for (size_t n = 1 + rng() % held.size(); n > 0; --n) {
      auto [m, d] = held.back();
      held.pop_back();
      const std::string& key = d.event->event.key();
      uint64_t seq = d.event->event.sequence();
      ASSERT_GT(seq, last_processed[key]) << "key " << key << " out of order";
      last_processed[key] = seq;
      in_flight_per_key[key]--;
      ASSERT_EQ((*m)->Ack({seq}), absl::OkStatus());
      ++processed;
    }
  }
  EXPECT_EQ(a->ignored() + b->ignored(), 0u);
  EXPECT_TRUE(Info(groups(), "g")->key_ordered());
}

// Extend keeps a lease past its deadline: the event goes to no member
// again, while an event held beside it and not extended lapses and is
// delivered again (proof that the extended one would have been too).
TEST_P(ConsumerGroupsContractTest, ExtendKeepsTheLease) {
  TestMember& holder = Join(groups(), Open("g", 0, absl::Seconds(1)));
  std::vector<uint64_t> seqs = AppendN(2);
  ASSERT_THAT(Seqs(holder.PollFor(2)), ElementsAre(seqs[0], seqs[1]));
  const absl::Time leased = absl::Now();
  TestMember& other = Join(peer(), Open("g", 0, absl::Seconds(1)));

  // Extends seqs[0] every 300 ms, by the group's 1 s ack_deadline (all NATS
  // can do), until the lapsed seqs[1] came back (to either member: NATS may
  // hand it to the holder's fetch) and at least 2.5 deadlines have passed.
  std::vector<Delivery> lapsed;  // acked at once
  absl::Time extended = leased;
  const absl::Time deadline = leased + absl::Seconds(15);
  while (lapsed.empty() || absl::Now() < leased + absl::Milliseconds(2500)) {
    ASSERT_LT(absl::Now(), deadline) << "the lease of " << seqs[1] << " never lapsed";
    if (absl::Now() - extended >= absl::Milliseconds(300)) {
      ASSERT_EQ(holder->Extend({seqs[0]}, absl::Seconds(1)), absl::OkStatus());
      extended = absl::Now();
    }
    for (TestMember* m : {&holder, &other}) {
      for (const Delivery& d : m->PollNow()) {
        ASSERT_EQ(d.event->event.sequence(), seqs[1]) << "an extended lease was delivered again";
        ASSERT_EQ((*m)->Ack({seqs[1]}), absl::OkStatus());
        EXPECT_EQ((*m)->ignored(), 0u);
        lapsed.push_back(d);
      }
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_EQ(lapsed.size(), 1u);
  EXPECT_EQ(lapsed[0].attempt, 2u);
  ASSERT_EQ(holder->Ack({seqs[0]}), absl::OkStatus());
  EXPECT_EQ(holder->ignored(), 0u);
}

// Acks (and extends) of events not leased to the member are ignored and
// counted; they settle nothing.
TEST_P(ConsumerGroupsContractTest, AckOfEventNotLeasedToMemberIsIgnoredAndCounted) {
  TestMember& a = Join(groups(), Open("g", 1));
  std::vector<uint64_t> seqs = AppendN(2);
  ASSERT_THAT(Seqs(a.PollFor(1)), ElementsAre(seqs[0]));
  TestMember& b = Join(peer(), Open("g", 1));
  ASSERT_EQ(b->Ack({seqs[0], 99}), absl::OkStatus());
  EXPECT_EQ(b->ignored(), 2u);
  ASSERT_EQ(b->Nack({seqs[0]}, absl::ZeroDuration()), absl::OkStatus());
  EXPECT_EQ(b->ignored(), 3u);
  ASSERT_EQ(b->Extend({999}, absl::Seconds(1)), absl::OkStatus());
  EXPECT_EQ(b->ignored(), 4u);
  EXPECT_THAT(Seqs(b.PollFor(1)), ElementsAre(seqs[1]));  // seqs[0] is still a's
  EXPECT_EQ(Info(groups(), "g")->in_flight(), 2u);
  ASSERT_EQ(a->Ack({seqs[0]}), absl::OkStatus());
  EXPECT_EQ(a->ignored(), 0u);
}

// ListGroups reports a group's config and progress.
TEST_P(ConsumerGroupsContractTest, ListGroupsReportsProgress) {
  TestMember& m = Join(groups(), Open("g", 2));
  std::vector<uint64_t> seqs = AppendN(5);
  ASSERT_EQ(m.PollFor(2).size(), 2u);
  ASSERT_EQ(m->Ack({seqs[0]}), absl::OkStatus());
  std::optional<v1::GroupInfo> info = Info(groups(), "g");
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(groups()->ListGroups().size(), 1u);
  EXPECT_EQ(info->ack_floor(), seqs[0]);
  // One leased to the member; NATS also counts what the member fetched
  // ahead, within its max_in_flight (GroupManager's exact count is in its
  // own test).
  EXPECT_GE(info->in_flight(), 1u);
  EXPECT_LE(info->in_flight(), 2u);
  EXPECT_EQ(info->members(), 1u);
  EXPECT_EQ(info->max_deliveries(), kDefaultMaxDeliveries);
  EXPECT_FALSE(info->key_ordered());
  // Four events are not acked. How pending and lag count them differs:
  // GroupManager splits them (pending: taken from the log; lag: not yet
  // read), NATS reports all four as pending and the three not yet
  // delivered as lag too. Common to both: neither exceeds them, and
  // together they cover them.
  EXPECT_GE(info->pending(), info->in_flight());
  EXPECT_LE(info->pending(), 4u);
  EXPECT_LE(info->lag(), 4u);
  EXPECT_GE(info->pending() + info->lag(), 4u);
}

// A group outlives the ConsumerGroups that made it: after a restart, acked
// events never come back, unacked ones do with their attempts counted.
TEST_P(ConsumerGroupsContractTest, GroupSurvivesARestart) {
  TestMember& before = Join(groups(), Open("g"));
  std::vector<uint64_t> seqs = AppendN(6);
  ASSERT_EQ(before.PollFor(6).size(), 6u);
  ASSERT_EQ(before->Ack({seqs[0], seqs[1], seqs[2], seqs[4]}), absl::OkStatus());
  members_.clear();
  backend_->Restart();

  TestMember& after = Join(groups(), Open("g"));
  std::vector<Delivery> got = after.PollFor(2);
  EXPECT_THAT(Seqs(got), ElementsAre(seqs[3], seqs[5]));
  EXPECT_THAT(Attempts(got), ElementsAre(2u, 2u));
  ASSERT_EQ(after->Ack(Seqs(got)), absl::OkStatus());
  // The group goes on from where it was; acked events would have come
  // before these.
  std::vector<uint64_t> later = AppendN(2);
  EXPECT_THAT(Seqs(after.PollFor(2)), ElementsAreArray(later));
  EXPECT_EQ(Info(groups(), "g")->ack_floor(), seqs.back());
}

// Deleting a group ends its members on every replica (kAborted), removes
// it from every list, and leaves other groups alone; joining again
// creates it afresh, starting where asked.
TEST_P(ConsumerGroupsContractTest, DeletedGroupEndsItsMembersEverywhere) {
  std::vector<uint64_t> seqs = AppendN(3);
  TestMember& on_a = Join(groups(), Open("doomed"));
  ASSERT_EQ(on_a.PollFor(3).size(), 3u);
  ASSERT_EQ(on_a->Ack(seqs), absl::OkStatus());
  // Joins only now: a NATS member fetches ahead before its first poll.
  TestMember& on_b = Join(peer(), Open("doomed"));
  Join(groups(), Open("kept"));
  ASSERT_TRUE(Info(peer(), "doomed").has_value());

  ASSERT_EQ(groups()->DeleteGroup("doomed"), absl::OkStatus());
  const absl::Status deleted = absl::AbortedError("consumer group \"doomed\" was deleted");
  // Where it was deleted, at once; elsewhere once that replica learns it.
  EXPECT_EQ(on_a->Poll(10).status(), deleted);
  EXPECT_EQ(on_b.PollUntilError(absl::Seconds(10)), deleted);
  EXPECT_FALSE(Info(groups(), "doomed").has_value());
  EXPECT_FALSE(Info(peer(), "doomed").has_value());
  EXPECT_TRUE(Info(peer(), "kept").has_value());
  EXPECT_EQ(peer()->DeleteGroup("doomed"), absl::NotFoundError("no consumer group \"doomed\""));

  // Nothing remembered: the acked events come again.
  TestMember& fresh = Join(peer(), Open("doomed"));
  EXPECT_THAT(Seqs(fresh.PollFor(3)), ElementsAreArray(seqs));
}

// A group's filter, max_deliveries and key_ordered are fixed when it is
// created; joining with others fails (on every replica). Per-member
// options may differ. (NATS also fixes ack_deadline; its exact message
// says so.)
TEST_P(ConsumerGroupsContractTest, JoinWithAnotherConfigIsRefused) {
  v1::ConsumerOpen open = Open("g");
  open.mutable_filter()->add_types("device.>");
  Join(groups(), open);

  v1::ConsumerOpen other_filter = open;
  other_filter.mutable_filter()->set_types(0, "user.>");
  v1::ConsumerOpen other_deliveries = open;
  other_deliveries.set_max_deliveries(9);
  v1::ConsumerOpen other_ordering = open;
  other_ordering.set_key_ordered(true);
  for (const v1::ConsumerOpen& bad : {other_filter, other_deliveries, other_ordering}) {
    TestMember m;
    absl::Status refused = m.Join(peer(), bad);
    EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition) << refused;
    EXPECT_THAT(refused.message(), HasSubstr("consumer group \"g\" exists with a different filter"));
    EXPECT_THAT(refused.message(), HasSubstr("delete it to change them"));
  }
  v1::ConsumerOpen per_member = open;
  per_member.set_max_in_flight(7);
  per_member.mutable_start()->set_latest(true);
  TestMember m;
  EXPECT_EQ(m.Join(peer(), per_member), absl::OkStatus());
}

// After Shutdown (idempotent), members' polls and new joins fail with
// kUnavailable.
TEST_P(ConsumerGroupsContractTest, ShutdownEndsMembersWithUnavailable) {
  TestMember& m = Join(groups(), Open("g"));
  groups()->Shutdown();
  groups()->Shutdown();
  EXPECT_EQ(m.PollUntilError(absl::Seconds(1)), ShuttingDownError());
  TestMember late;
  EXPECT_EQ(late.Join(groups(), Open("g")), ShuttingDownError());
}

// Bad input is refused with kInvalidArgument (and the message says what),
// unknown groups with kNotFound.
TEST_P(ConsumerGroupsContractTest, ErrorsNameTheProblem) {
  TestMember m;
  EXPECT_EQ(m.Join(groups(), Open("bad name!")).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(m.Join(groups(), Open(std::string(129, 'g'))).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(m.Join(groups(), Open("g", kMaxMaxInFlight + 1)),
            absl::InvalidArgumentError("max_in_flight must be at most 10000"));
  EXPECT_EQ(m.Join(groups(), Open("g", 0, absl::ZeroDuration())),
            absl::InvalidArgumentError("ack_deadline must be at least 1s"));
  v1::ConsumerOpen bad_filter = Open("g");
  bad_filter.mutable_filter()->add_types("a.>.b");
  EXPECT_EQ(m.Join(groups(), bad_filter).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(groups()->ListGroups(), IsEmpty());  // no refused join created a group

  EXPECT_EQ(groups()->DeleteGroup("nope"), absl::NotFoundError("no consumer group \"nope\""));
  EXPECT_EQ(groups()->ListDeadLetters("nope", 0, 1).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(groups()->Redrive("nope", {}).status().code(), absl::StatusCode::kNotFound);
}

INSTANTIATE_TEST_SUITE_P(Implementations, ConsumerGroupsContractTest,
                         ::testing::Values(Impl{"MemoryGroupManager", &MemoryManager},
                                           Impl{"SqliteGroupManager", &SqliteManager},
                                           Impl{"Nats", &NatsGroups}),
                         [](const ::testing::TestParamInfo<Impl>& info) {
                           return std::string(info.param.name);
                         });

}  // namespace
}  // namespace hookfan::broker
