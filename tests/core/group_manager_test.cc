// What only GroupManager promises: fair shares among idle members, offers,
// byte-limited polls, at-once handover, and exact backoff and deadlines on a
// fake clock. The behaviours every ConsumerGroups shares are in
// tests/core/consumer_groups_contract_test.cc.

#include "core/group_manager.h"

#include <map>
#include <random>
#include <set>

#include "absl/strings/str_cat.h"
#include "store/memory_event_log.h"
#include "core/ingest.h"
#include "store/memory_group_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace hookfan::broker {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

class ConsumerGroupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fanout_ = std::make_unique<Fanout>(&log_, Fanout::Options{});
    log_.SetCommitListener(fanout_.get());
    Restart();
  }
  void TearDown() override {
    manager_.reset();
    log_.SetCommitListener(nullptr);
  }

  // A new manager on the same log and group store, as after a process restart.
  void Restart() {
    manager_.reset();
    absl::StatusOr<std::unique_ptr<GroupManager>> m = GroupManager::Create(
        &log_, fanout_.get(), &store_,
        {.clock = &clock_, .start_ticker = false});
    ASSERT_TRUE(m.ok()) << m.status();
    manager_ = *std::move(m);
  }

  void AppendN(int n, const std::string& key_prefix = "", int keys = 1) {
    for (int i = 0; i < n; ++i) {
      v1::Event e;
      e.set_id(absl::StrCat("id-", ++next_id_));
      e.set_type("applivery.device.enrolled");
      e.set_key(absl::StrCat(key_prefix, next_id_ % keys));
      ASSERT_TRUE(log_.Append(absl::MakeSpan(&e, 1)).ok());
    }
  }

  // Appends one event whose data is `bytes` long, as stored before any
  // size limit (straight to the log).
  void AppendSized(size_t bytes) {
    v1::Event e;
    e.set_id(absl::StrCat("id-", ++next_id_));
    e.set_type("applivery.device.enrolled");
    e.set_data(std::string(bytes, 'x'));
    ASSERT_TRUE(log_.Append(absl::MakeSpan(&e, 1)).ok());
  }

  static v1::ConsumerOpen Open(const std::string& group, uint32_t max_in_flight = 0) {
    v1::ConsumerOpen open;
    open.set_group(group);
    open.mutable_start()->set_earliest(true);
    open.set_max_in_flight(max_in_flight);
    open.mutable_ack_deadline()->set_seconds(10);
    return open;
  }

  std::unique_ptr<ConsumerGroupMember> Join(const v1::ConsumerOpen& open) {
    absl::StatusOr<std::unique_ptr<ConsumerGroupMember>> m = manager_->Join(open, [] {});
    EXPECT_TRUE(m.ok()) << m.status();
    return m.ok() ? *std::move(m) : nullptr;
  }

  static std::vector<uint64_t> Seqs(const std::vector<Delivery>& ds) {
    std::vector<uint64_t> out;
    for (const Delivery& d : ds) out.push_back(d.event->event.sequence());
    return out;
  }
  static std::vector<uint32_t> Attempts(const std::vector<Delivery>& ds) {
    std::vector<uint32_t> out;
    for (const Delivery& d : ds) out.push_back(d.attempt);
    return out;
  }
  std::vector<Delivery> PollOk(ConsumerGroupMember& m, size_t max = 1000) {
    absl::StatusOr<std::vector<Delivery>> got = m.Poll(max);
    EXPECT_TRUE(got.ok()) << got.status();
    return got.ok() ? *got : std::vector<Delivery>{};
  }
  void AckAll(ConsumerGroupMember& m, const std::vector<Delivery>& ds) {
    std::vector<uint64_t> seqs = Seqs(ds);
    ASSERT_TRUE(m.Ack(seqs).ok());
  }

  // `members` members of group "g" that poll when woken, as Consume streams
  // do, acking what they get at once; all have polled and found nothing.
  // Then `events` events are appended one at a time, each followed by the
  // woken members' polls, in join order: the first member always asks
  // first. Returns how many events each member received.
  std::vector<int> ShareOneAtATime(int members, int events) {
    std::vector<std::unique_ptr<ConsumerGroupMember>> joined;
    auto woken = std::make_shared<std::vector<int>>(members, 0);
    for (int i = 0; i < members; ++i) {
      absl::StatusOr<std::unique_ptr<ConsumerGroupMember>> m =
          manager_->Join(Open("g", 10), [woken, i] { (*woken)[i] = 1; });
      EXPECT_TRUE(m.ok()) << m.status();
      if (!m.ok()) return {};
      joined.push_back(*std::move(m));
      EXPECT_THAT(PollOk(*joined.back()), IsEmpty());
    }
    std::vector<int> got(members, 0);
    for (int e = 0; e < events; ++e) {
      AppendN(1);
      // Poll every woken member (waking may wake others) until none is.
      for (bool any = true; any;) {
        any = false;
        for (int i = 0; i < members; ++i) {
          if (!(*woken)[i]) continue;
          (*woken)[i] = 0;
          any = true;
          for (std::vector<Delivery> d = PollOk(*joined[i]); !d.empty();
               d = PollOk(*joined[i])) {
            got[i] += d.size();
            AckAll(*joined[i], d);
          }
        }
      }
    }
    return got;
  }

  FakeClock clock_;
  MemoryEventLog log_;
  std::unique_ptr<Fanout> fanout_;
  MemoryGroupStore store_;
  std::unique_ptr<GroupManager> manager_;
  int next_id_ = 0;
};

TEST_F(ConsumerGroupTest, TwoMembersShareEveryEventExactlyOnce) {
  // 1,000 events, two members acking all: each event processed by one member; split about even.
  AppendN(1000);
  auto a = Join(Open("g", 10));
  auto b = Join(Open("g", 10));
  std::map<uint64_t, int> seen;
  size_t by_a = 0;
  for (int round = 0; round < 1000 && seen.size() < 1000; ++round) {
    for (ConsumerGroupMember* m : {a.get(), b.get()}) {
      std::vector<Delivery> got = PollOk(*m, 10);
      for (uint64_t s : Seqs(got)) seen[s]++;
      if (m == a.get()) by_a += got.size();
      AckAll(*m, got);
    }
  }
  ASSERT_EQ(seen.size(), 1000u);
  for (const auto& [seq, n] : seen) ASSERT_EQ(n, 1) << seq;
  EXPECT_GT(by_a, 400u);
  EXPECT_LT(by_a, 600u);
}

// A response is cut by bytes; what it does not carry is not leased (so a
// member that goes away never takes it along).
TEST_F(ConsumerGroupTest, PollStopsAtMaxBytesAndLeasesOnlyWhatItReturns) {
  AppendSized(400 << 10);
  AppendSized(400 << 10);
  AppendSized(400 << 10);
  auto m = Join(Open("g", 10));
  absl::StatusOr<std::vector<Delivery>> first = m->Poll(10, 1 << 20);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_THAT(Seqs(*first), ElementsAre(1, 2));
  auto other = Join(Open("g", 10));
  EXPECT_THAT(Seqs(PollOk(*other)), ElementsAre(3));  // never leased to m
  // A single event over max_bytes still goes, alone.
  AppendSized(2 << 20);
  AppendSized(10);
  absl::StatusOr<std::vector<Delivery>> big = m->Poll(10, 1 << 20);
  ASSERT_TRUE(big.ok()) << big.status();
  EXPECT_THAT(Seqs(*big), ElementsAre(4));
}

// An event stored before the size limit that no default gRPC client can
// receive even alone fails alone, at once: it is dead-lettered without
// being leased, and the events around it are delivered.
TEST_F(ConsumerGroupTest, EventTooLargeForAnyClientIsDeadLetteredAlone) {
  AppendSized(10);
  AppendSized(kMaxDeliverableEventBytes + 1);
  AppendSized(10);
  auto m = Join(Open("g", 10));
  std::vector<Delivery> got = PollOk(*m);
  EXPECT_THAT(Seqs(got), ElementsAre(1, 3));
  EXPECT_THAT(Attempts(got), ElementsAre(1, 1));
  absl::StatusOr<std::vector<v1::DeadLetter>> dead = manager_->ListDeadLetters("g", 0, 10);
  ASSERT_TRUE(dead.ok()) << dead.status();
  ASSERT_EQ(dead->size(), 1u);
  EXPECT_EQ((*dead)[0].event().sequence(), 2u);
  EXPECT_EQ((*dead)[0].attempts(), 0u);
  AckAll(*m, got);
}

// Only undeliverable events ready: the member is not parked on them.
TEST_F(ConsumerGroupTest, EventsBehindAnUndeliverableOneAreDeliveredInTheSamePoll) {
  AppendSized(kMaxDeliverableEventBytes + 1);
  auto m = Join(Open("g", 1));
  AppendSized(10);
  EXPECT_THAT(Seqs(PollOk(*m)), ElementsAre(2));
}

TEST_F(ConsumerGroupTest, TwoIdleMembersShareEventsAppendedOneAtATime) {
  // Equal members get equal shares, though the first always polls first.
  std::vector<int> got = ShareOneAtATime(2, 300);
  EXPECT_EQ(got[0] + got[1], 300);
  for (int n : got) {
    EXPECT_GE(n, 120) << "shares " << got[0] << "/" << got[1];
    EXPECT_LE(n, 180) << "shares " << got[0] << "/" << got[1];
  }
}

TEST_F(ConsumerGroupTest, ThreeIdleMembersShareEventsAppendedOneAtATime) {
  std::vector<int> got = ShareOneAtATime(3, 300);
  EXPECT_EQ(got[0] + got[1] + got[2], 300);
  for (int n : got) {
    EXPECT_GE(n, 80) << "shares " << got[0] << "/" << got[1] << "/" << got[2];
    EXPECT_LE(n, 120) << "shares " << got[0] << "/" << got[1] << "/" << got[2];
  }
}

TEST_F(ConsumerGroupTest, ListGroupsSplitsUnackedEventsIntoPendingAndLag) {
  // Taken from the log and not acked (pending), or not read yet (lag):
  // each unacked event counted once (NATS counts the lag in pending too).
  AppendN(5);
  auto m = Join(Open("g", 2));
  ASSERT_EQ(PollOk(*m).size(), 2u);
  ASSERT_TRUE(m->Ack({1}).ok());
  std::vector<v1::GroupInfo> groups = manager_->ListGroups();
  ASSERT_EQ(groups.size(), 1u);
  EXPECT_EQ(groups[0].in_flight(), 1u);
  EXPECT_EQ(groups[0].pending() + groups[0].lag(), 4u);
}

TEST_F(ConsumerGroupTest, AnOfferedEventGoesToAnotherMemberWhenItsTakerLeaves) {
  // b is offered the event a's poll found, but leaves before taking it.
  auto a = Join(Open("g"));
  auto b = Join(Open("g"));
  EXPECT_THAT(PollOk(*a), IsEmpty());
  EXPECT_THAT(PollOk(*b), IsEmpty());
  AppendN(2);
  EXPECT_THAT(Seqs(PollOk(*a)), ElementsAre(1));  // 2 is b's
  b.reset();
  EXPECT_THAT(Seqs(PollOk(*a)), ElementsAre(2));
}

TEST_F(ConsumerGroupTest, LeasesOfALeavingMemberGoToAnotherAtOnce) {
  // A member that disconnects holding events: the other member gets them
  // in its very next poll, as second attempts (the contract only promises
  // "before the deadline"; NATS takes up to a fetch_wait).
  AppendN(5);
  auto a = Join(Open("g"));
  auto b = Join(Open("g"));
  EXPECT_THAT(Seqs(PollOk(*a)), ElementsAre(1, 2, 3, 4, 5));
  EXPECT_THAT(PollOk(*b), IsEmpty());
  a.reset();
  std::vector<Delivery> got = PollOk(*b);
  EXPECT_THAT(Seqs(got), ElementsAre(1, 2, 3, 4, 5));
  EXPECT_THAT(Attempts(got), ElementsAre(2, 2, 2, 2, 2));
}

TEST_F(ConsumerGroupTest, RedeliveryBackoffGrowsExponentially) {
  AppendN(1);
  auto m = Join(Open("g"));
  for (int attempt = 1; attempt <= 3; ++attempt) {
    ASSERT_THAT(Seqs(PollOk(*m)), ElementsAre(1)) << attempt;
    clock_.Advance(absl::Seconds(10));  // lease expires
    manager_->Tick();
    absl::Duration backoff = absl::Seconds(1 << (attempt - 1));
    clock_.Advance(backoff - absl::Milliseconds(1));
    manager_->Tick();
    EXPECT_THAT(PollOk(*m), IsEmpty()) << attempt;
    clock_.Advance(absl::Milliseconds(1));
    manager_->Tick();
  }
}

TEST_F(ConsumerGroupTest, ExtendMovesTheDeadlineByTheExtensionAsked) {
  // Longer than the member's ack_deadline, to the fake clock's tick (NATS
  // only restarts the ack_deadline).
  AppendN(1);
  auto a = Join(Open("g"));
  auto b = Join(Open("g"));
  ASSERT_THAT(Seqs(PollOk(*a)), ElementsAre(1));
  clock_.Advance(absl::Seconds(9));
  ASSERT_TRUE(a->Extend({1}, absl::Seconds(60)).ok());
  clock_.Advance(absl::Seconds(30));
  manager_->Tick();
  EXPECT_THAT(PollOk(*b), IsEmpty());
  ASSERT_TRUE(a->Ack({1}).ok());
  EXPECT_EQ(a->ignored(), 0u);
}

TEST_F(ConsumerGroupTest, NackRedeliversAfterExactlyItsDelay) {
  // To the fake clock's tick; the contract checks it on the real clock.
  AppendN(1);
  auto m = Join(Open("g"));
  ASSERT_THAT(Seqs(PollOk(*m)), ElementsAre(1));
  ASSERT_TRUE(m->Nack({1}, absl::Seconds(5)).ok());
  manager_->Tick();
  EXPECT_THAT(PollOk(*m), IsEmpty());
  clock_.Advance(absl::Seconds(5));
  manager_->Tick();
  std::vector<Delivery> again = PollOk(*m);
  EXPECT_THAT(Seqs(again), ElementsAre(1));
  EXPECT_THAT(Attempts(again), ElementsAre(2));
  ASSERT_TRUE(m->Nack({1}, absl::ZeroDuration()).ok());
  EXPECT_THAT(Attempts(PollOk(*m)), ElementsAre(3));  // no delay: at once
}

TEST_F(ConsumerGroupTest, KeyOrderedRunsDifferentKeysInParallel) {
  // With two members and random ack order, different keys are in flight at
  // once (NATS has one event in flight per key_ordered group); per-key order,
  // which the contract checks, holds meanwhile.
  AppendN(600, "device-", 7);
  v1::ConsumerOpen open = Open("g", 8);
  open.set_key_ordered(true);
  auto a = Join(open);
  auto b = Join(open);
  std::mt19937 rng(42);
  std::map<std::string, uint64_t> last_processed;
  std::map<std::string, int> in_flight_per_key;
  std::vector<std::pair<ConsumerGroupMember*, Delivery>> held;
  size_t processed = 0, max_parallel_keys = 0;
  while (processed < 600) {
    for (ConsumerGroupMember* m : {a.get(), b.get()}) {
      for (const Delivery& d : PollOk(*m, 8)) {
        const std::string& key = d.event->event.key();
        ASSERT_EQ(++in_flight_per_key[key], 1) << "key " << key << " in flight twice";
        held.emplace_back(m, d);
      }
    }
    size_t keys_now = 0;
    for (const auto& [k, n] : in_flight_per_key) keys_now += n > 0;
    max_parallel_keys = std::max(max_parallel_keys, keys_now);
    ASSERT_FALSE(held.empty());
    std::shuffle(held.begin(), held.end(), rng);
    size_t n = 1 + rng() % held.size();
    for (size_t i = 0; i < n; ++i) {
      auto [m, d] = held.back();
      held.pop_back();
      const std::string& key = d.event->event.key();
      uint64_t seq = d.event->event.sequence();
      ASSERT_GT(seq, last_processed[key]) << "key " << key << " out of order";
      last_processed[key] = seq;
      in_flight_per_key[key]--;
      ASSERT_TRUE(m->Ack({seq}).ok());
      ++processed;
    }
  }
  EXPECT_GT(max_parallel_keys, 1u);
}

}  // namespace
}  // namespace hookfan::broker
