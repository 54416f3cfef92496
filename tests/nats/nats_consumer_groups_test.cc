// What only NatsConsumerGroups promises, against a real nats-server:
// durable names, one event in flight per key_ordered group, ack_deadline
// fixed per group, filters applied by the member, bounded side streams and
// NATS going away. The behaviours every ConsumerGroups shares (also across
// two replicas) are in tests/core/consumer_groups_contract_test.cc.

#include "nats/nats_consumer_groups.h"

#include <stdlib.h>

#include <algorithm>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "nats/nats_connection.h"
#include "nats/nats_event_log.h"
#include "common/sync.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/core/test_member.h"
#include "tests/nats/nats_server.h"

namespace hookfan::broker {
namespace {

using ::hookfan::broker::group_test::Open;
using ::hookfan::broker::group_test::Seqs;
using ::hookfan::broker::group_test::TestMember;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

v1::Event NewEvent(const std::string& id, const std::string& type = "device.enrolled",
                   const std::string& action = "") {
  v1::Event event;
  event.set_id(id);
  event.set_type(type);
  event.set_action(action);
  return event;
}

class NatsConsumerGroupsTest : public ::testing::Test {
 protected:
  // One hookfan replica: its connection, log and consumer groups.
  struct Replica {
    std::unique_ptr<NatsConnection> connection;
    std::unique_ptr<NatsEventLog> log;
    std::unique_ptr<NatsConsumerGroups> groups;
  };

  void SetUp() override {
    std::string dir = ::testing::TempDir() + "nats_groups_XXXXXX";
    ASSERT_NE(mkdtemp(dir.data()), nullptr);
    dir_ = dir;
    server_ = std::make_unique<testing::NatsServer>(dir_);
    ASSERT_TRUE(server_->Start());
  }
  void TearDown() override {
    members_.clear();
    replicas_.clear();
    server_.reset();
    std::filesystem::remove_all(dir_);
  }

  NatsConsumerGroups::Options GroupOptions() {
    return {.fetch_wait = absl::Milliseconds(250)};
  }

  // Adds a replica, with the events stream `stream` (on subjects `prefix`.>)
  // limited to `max_bytes` (-1: no limit); returns its consumer groups.
  NatsConsumerGroups* AddReplica(int64_t max_bytes = -1, std::string stream = "HOOKFAN",
                                 std::string prefix = "hookfan.events") {
    NatsOptions options;
    options.servers = {server_->url()};
    options.request_timeout = absl::Seconds(2);
    options.max_bytes = max_bytes;
    options.stream = std::move(stream);
    options.subject_prefix = std::move(prefix);
    absl::StatusOr<std::unique_ptr<NatsConnection>> connection = NatsConnection::Connect(options);
    EXPECT_TRUE(connection.ok()) << connection.status();
    if (!connection.ok()) return nullptr;
    Replica& r = replicas_.emplace_back();
    r.connection = *std::move(connection);
    absl::StatusOr<std::unique_ptr<NatsEventLog>> log = NatsEventLog::Open(r.connection.get());
    EXPECT_TRUE(log.ok()) << log.status();
    if (!log.ok()) return nullptr;
    r.log = *std::move(log);
    absl::StatusOr<std::unique_ptr<NatsConsumerGroups>> groups =
        NatsConsumerGroups::Create(r.connection.get(), r.log.get(), GroupOptions());
    EXPECT_TRUE(groups.ok()) << groups.status();
    if (!groups.ok()) return nullptr;
    r.groups = *std::move(groups);
    return r.groups.get();
  }

  // Appends through the first replica; returns the sequences.
  std::vector<uint64_t> Append(std::vector<v1::Event> events) {
    std::vector<uint64_t> out;
    for (v1::Event& e : events) {
      std::vector<v1::Event> one = {e};
      EXPECT_EQ(replicas_.at(0).log->Append(absl::MakeSpan(one)), absl::OkStatus());
      out.push_back(one[0].sequence());
    }
    return out;
  }
  std::vector<uint64_t> AppendN(int n) {
    std::vector<v1::Event> events;
    for (int i = 0; i < n; ++i) events.push_back(NewEvent(absl::StrCat("e", ++next_id_)));
    return Append(std::move(events));
  }

  TestMember& Join(NatsConsumerGroups* groups, const v1::ConsumerOpen& open) {
    TestMember& m = *members_.emplace_back(std::make_unique<TestMember>());
    EXPECT_EQ(m.Join(groups, open), absl::OkStatus());
    return m;
  }

  // The byte limit of a stream on the test's server (-1: none).
  int64_t MaxBytes(const std::string& stream) {
    jsStreamInfo* info = nullptr;
    EXPECT_EQ(js_GetStreamInfo(&info, replicas_.at(0).connection->js(), stream.c_str(), nullptr,
                               nullptr),
              NATS_OK)
        << stream;
    if (info == nullptr) return 0;
    const int64_t limit = info->Config->MaxBytes;
    jsStreamInfo_Destroy(info);
    return limit;
  }

  std::optional<v1::GroupInfo> Info(NatsConsumerGroups* groups, const std::string& name) {
    for (v1::GroupInfo& info : groups->ListGroups()) {
      if (info.name() == name) return info;
    }
    return std::nullopt;
  }

  std::string dir_;
  std::unique_ptr<testing::NatsServer> server_;
  std::vector<Replica> replicas_;
  std::vector<std::unique_ptr<TestMember>> members_;  // destroyed before replicas_
  int next_id_ = 0;
};

TEST(NatsConsumerGroupsNamesTest, DurableNamesMapBackToGroups) {
  EXPECT_EQ(NatsConsumerGroups::DurableName("billing.v2_x-y"), "hookfan-grp-billing~v2_x-y");
  EXPECT_EQ(NatsConsumerGroups::GroupName("hookfan-grp-billing~v2_x-y"), "billing.v2_x-y");
  std::string longest(128, '.');
  EXPECT_EQ(NatsConsumerGroups::GroupName(NatsConsumerGroups::DurableName(longest)), longest);
  EXPECT_EQ(NatsConsumerGroups::GroupName("someone-else"), std::nullopt);
  EXPECT_EQ(NatsConsumerGroups::GroupName("hookfan-grp-"), std::nullopt);
}

// key_ordered groups have one event in flight for the whole group
// (MaxAckPending 1), so events go out in sequence order whatever their keys.
TEST_F(NatsConsumerGroupsTest, KeyOrderedHasOneEventInFlight) {
  NatsConsumerGroups* a = AddReplica();
  NatsConsumerGroups* b = AddReplica();
  v1::ConsumerOpen open = Open("ordered", 10);
  open.set_key_ordered(true);
  TestMember& on_a = Join(a, open);
  TestMember& on_b = Join(b, open);
  std::vector<uint64_t> seqs = AppendN(3);

  std::vector<uint64_t> order;
  for (int round = 0; round < 3; ++round) {
    std::vector<Delivery> got;
    absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (got.empty() && absl::Now() < deadline) {
      for (TestMember* m : {&on_a, &on_b}) {
        std::vector<Delivery> d = m->PollNow(10);
        got.insert(got.end(), d.begin(), d.end());
      }
      if (got.empty()) absl::SleepFor(absl::Milliseconds(5));
    }
    ASSERT_EQ(got.size(), 1u) << "round " << round;
    // Nothing else is out while it is in flight: JetStream counts every
    // event a member fetched (also ahead of its polls) as in flight, so
    // this would be more if a second one had gone to either member.
    EXPECT_EQ(Info(a, "ordered")->in_flight(), 1u) << "round " << round;
    for (TestMember* m : {&on_a, &on_b}) EXPECT_THAT(m->PollNow(10), IsEmpty());
    order.push_back(got[0].event->event.sequence());
    ASSERT_EQ(on_a->Ack(Seqs(got)), absl::OkStatus());
    ASSERT_EQ(on_b->Ack(Seqs(got)), absl::OkStatus());  // one of the two is ignored
  }
  EXPECT_EQ(order, seqs);
  EXPECT_EQ(on_a->ignored() + on_b->ignored(), 3u);
}

// Unlike GroupManager's, a NATS group's ack_deadline is fixed when it is
// created, like its filter (JetStream's AckWait): a member asking for
// another one is refused, on every replica, and the message says so.
TEST_F(NatsConsumerGroupsTest, JoinWithAnotherAckDeadlineIsRefused) {
  NatsConsumerGroups* a = AddReplica();
  NatsConsumerGroups* b = AddReplica();
  v1::ConsumerOpen open = Open("g");
  Join(a, open);
  v1::ConsumerOpen other_deadline = open;
  other_deadline.mutable_ack_deadline()->set_seconds(5);
  TestMember m;
  EXPECT_EQ(m.Join(b, other_deadline),
            absl::FailedPreconditionError(
                "consumer group \"g\" exists with a different filter, max_deliveries, "
                "key_ordered or ack_deadline; delete it to change them"));
}

// Parts of a filter JetStream cannot apply (actions, several type
// patterns) are applied by the member: what does not match is acked
// unseen.
TEST_F(NatsConsumerGroupsTest, FilterBeyondOneTypePatternIsAppliedByTheMember) {
  NatsConsumerGroups* groups = AddReplica();
  v1::ConsumerOpen by_action = Open("emm");
  by_action.mutable_filter()->add_types("device.*");
  by_action.mutable_filter()->add_actions("emm_*");
  TestMember& emm = Join(groups, by_action);
  v1::ConsumerOpen two_types = Open("two");
  two_types.mutable_filter()->add_types("device.removed");
  two_types.mutable_filter()->add_types("user.*");
  TestMember& two = Join(groups, two_types);

  Append({NewEvent("match-1", "device.enrolled", "emm_enrolled"),
          NewEvent("other-action", "device.enrolled", "manual"),
          NewEvent("other-type", "user.created", "emm_user"),
          NewEvent("match-2", "device.removed", "emm_removed")});
  std::vector<Delivery> got = emm.PollFor(2);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].event->event.id(), "match-1");
  EXPECT_EQ(got[1].event->event.id(), "match-2");
  std::vector<Delivery> got_two = two.PollFor(2);
  ASSERT_EQ(got_two.size(), 2u);
  EXPECT_EQ(got_two[0].event->event.id(), "other-type");
  EXPECT_EQ(got_two[1].event->event.id(), "match-2");
  // A later event both groups match comes next: nothing the filters drop
  // was shown before it.
  std::vector<uint64_t> marker = Append({NewEvent("marker", "device.removed", "emm_marker")});
  EXPECT_THAT(Seqs(emm.PollFor(1)), ElementsAre(marker[0]));
  EXPECT_THAT(Seqs(two.PollFor(1)), ElementsAre(marker[0]));

  ASSERT_EQ(emm->Ack(Seqs(got)), absl::OkStatus());
  ASSERT_EQ(two->Ack(Seqs(got_two)), absl::OkStatus());
  ASSERT_EQ(emm->Ack(marker), absl::OkStatus());
  ASSERT_EQ(two->Ack(marker), absl::OkStatus());
  EXPECT_EQ(Info(groups, "emm")->pending(), 0u);
  EXPECT_EQ(Info(groups, "two")->pending(), 0u);
  EXPECT_THAT(Info(groups, "emm")->filter().actions(), ElementsAre("emm_*"));
}

// A group that starts from a snapshot (#19): first the newest event of each
// key and type the latest view holds, then every event after the snapshot,
// each once; a member that joins later gets none of the snapshot again, and
// the snapshot's consumer on the view's stream goes once it is done.
TEST_F(NatsConsumerGroupsTest, AGroupStartsFromASnapshotOfTheLatestView) {
  NatsConsumerGroups* groups = AddReplica();
  NatsEventLog* log = replicas_.at(0).log.get();
  std::vector<v1::Event> before;
  for (int round = 0; round < 3; ++round) {
    for (int device = 0; device < 5; ++device) {
      for (const char* type : {"device.enrolled", "device.checked_in"}) {
        v1::Event e = NewEvent(absl::StrCat("e", ++next_id_), type);
        e.set_key(absl::StrCat("d", device));
        before.push_back(e);
      }
    }
  }
  Append(before);  // 30 events: the newest of each (key, type) are 21..30
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (log->LatestThrough().value_or(0) < 30 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_EQ(*log->LatestThrough(), 30u);

  v1::ConsumerOpen inventory = Open("inventory");
  inventory.mutable_start()->set_snapshot(true);
  TestMember& member = Join(groups, inventory);
  v1::ConsumerOpen enrolled = Open("enrolled");
  enrolled.mutable_start()->set_snapshot(true);
  enrolled.mutable_filter()->add_types("device.enrolled");
  TestMember& only_enrolled = Join(groups, enrolled);
  v1::ConsumerOpen key_ordered = Open("ordered");
  key_ordered.mutable_start()->set_snapshot(true);
  key_ordered.set_key_ordered(true);
  TestMember& ordered = Join(groups, key_ordered);
  // Live events about other devices (one about a device in the snapshot
  // could supersede its entry before the group reads it: the entry then
  // comes live instead, the rule of every snapshot, whose property test in
  // core/snapshot_test.cc covers every interleaving for Subscribe).
  std::vector<v1::Event> after;
  for (int device = 5; device < 10; ++device) {
    v1::Event e = NewEvent(absl::StrCat("e", ++next_id_), "device.enrolled");
    e.set_key(absl::StrCat("d", device));
    after.push_back(e);
  }
  std::vector<uint64_t> live = Append(after);  // 31..35

  std::vector<Delivery> got = member.PollFor(15);
  std::vector<uint64_t> seqs = Seqs(got);
  std::sort(seqs.begin(), seqs.end());
  std::vector<uint64_t> want;
  for (uint64_t seq = 21; seq <= 35; ++seq) want.push_back(seq);
  EXPECT_EQ(seqs, want);
  ASSERT_EQ(member->Ack(Seqs(got)), absl::OkStatus());
  // A key_ordered group keeps one event in flight: its snapshot first, one
  // at a time, and its events only once the snapshot is done.
  std::vector<uint64_t> in_order;
  while (in_order.size() < 15) {
    std::vector<Delivery> one = ordered.PollFor(1);
    ASSERT_EQ(one.size(), 1u) << "after " << in_order.size();
    EXPECT_THAT(ordered.PollNow(), IsEmpty());  // nothing else in flight
    in_order.push_back(one[0].event->event.sequence());
    ASSERT_EQ(ordered->Ack(Seqs(one)), absl::OkStatus());
  }
  std::vector<uint64_t> snapshot_part(in_order.begin(), in_order.begin() + 10);
  std::sort(snapshot_part.begin(), snapshot_part.end());
  EXPECT_EQ(snapshot_part, std::vector<uint64_t>(want.begin(), want.begin() + 10));
  EXPECT_THAT(std::vector<uint64_t>(in_order.begin() + 10, in_order.end()),
              ElementsAre(31, 32, 33, 34, 35));

  std::vector<uint64_t> enrolled_seqs = Seqs(only_enrolled.PollFor(10));
  std::sort(enrolled_seqs.begin(), enrolled_seqs.end());
  EXPECT_THAT(enrolled_seqs, ElementsAre(21, 23, 25, 27, 29, 31, 32, 33, 34, 35));

  // Done: a member joining now gets only what comes next.
  member.Leave();
  TestMember& later = Join(groups, inventory);
  v1::Event next = NewEvent("next", "device.enrolled");
  next.set_key("d9");
  std::vector<uint64_t> next_seq = Append({next});
  EXPECT_THAT(Seqs(later.PollFor(1)), ElementsAre(next_seq[0]));
  EXPECT_THAT(later.PollNow(), IsEmpty());
  // The snapshot's consumer on the view's stream is gone (deleted by the
  // member that saw an entry past the snapshot with none in flight).
  const std::string view_stream = log->latest_view()->Stream();
  const std::string durable = NatsConsumerGroups::DurableName("inventory");
  auto snapshot_consumer_exists = [&] {
    jsConsumerInfo* info = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    natsStatus s = js_GetConsumerInfo(&info, replicas_.at(0).connection->js(),
                                      view_stream.c_str(), durable.c_str(), nullptr, &jerr);
    if (info != nullptr) jsConsumerInfo_Destroy(info);
    nats_GetLastError(nullptr);
    return s == NATS_OK;
  };
  const absl::Time gone_by = absl::Now() + absl::Seconds(10);
  while (snapshot_consumer_exists() && absl::Now() < gone_by) absl::SleepFor(absl::Milliseconds(20));
  EXPECT_FALSE(snapshot_consumer_exists());
}

// #25 item 7: what hookfan keeps next to the events (the AppendOnce key
// bucket, the dead letters, the device directory) is bounded by the
// events' byte limit: a quarter, an eighth and a sixty-fourth of it (at
// least 1 MiB), set at creation and applied to streams that exist without
// it; no limit when the events have none.
TEST_F(NatsConsumerGroupsTest, SideStreamsAreBoundedByTheEventsByteLimit) {
  ASSERT_NE(AddReplica(), nullptr);
  EXPECT_EQ(MaxBytes("KV_HOOKFAN_DEDUP"), -1);
  EXPECT_EQ(MaxBytes("HOOKFAN_DEAD"), -1);
  EXPECT_EQ(MaxBytes("KV_HOOKFAN_DEVICES"), -1);

  ASSERT_NE(AddReplica(int64_t{128} << 20), nullptr);  // the same streams, now limited
  EXPECT_EQ(MaxBytes("HOOKFAN"), int64_t{128} << 20);
  EXPECT_EQ(MaxBytes("KV_HOOKFAN_DEDUP"), int64_t{32} << 20);
  EXPECT_EQ(MaxBytes("HOOKFAN_DEAD"), int64_t{16} << 20);
  EXPECT_EQ(MaxBytes("KV_HOOKFAN_DEVICES"), int64_t{2} << 20);

  ASSERT_NE(AddReplica(int64_t{64} << 20, "FRESH", "fresh.events"), nullptr);  // created limited
  EXPECT_EQ(MaxBytes("KV_FRESH_DEDUP"), int64_t{16} << 20);
  EXPECT_EQ(MaxBytes("FRESH_DEAD"), int64_t{8} << 20);
  EXPECT_EQ(MaxBytes("KV_FRESH_DEVICES"), int64_t{1} << 20);
}

// When NATS goes away, members end with kUnavailable (their clients
// reconnect, here or elsewhere) and joining fails alike.
TEST_F(NatsConsumerGroupsTest, LostNatsEndsMembersWithUnavailable) {
  NatsConsumerGroups* groups = AddReplica();
  TestMember& m = Join(groups, Open("g"));
  AppendN(1);
  ASSERT_EQ(m.PollFor(1).size(), 1u);
  server_->Stop();
  EXPECT_EQ(m.PollUntilError(absl::Seconds(10)).code(), absl::StatusCode::kUnavailable);
  TestMember late;
  EXPECT_EQ(late.Join(groups, Open("g")).code(), absl::StatusCode::kUnavailable);
}

// A group's config lives in its consumer's description (4 KiB): a filter
// too long for it is refused with kInvalidArgument. (The errors every
// implementation shares are in the contract.)
TEST_F(NatsConsumerGroupsTest, TooLongAFilterIsRefused) {
  NatsConsumerGroups* groups = AddReplica();
  TestMember m;
  v1::ConsumerOpen huge_filter = Open("g");
  for (int i = 0; i < 200; ++i) huge_filter.mutable_filter()->add_organization_ids(std::string(20, 'o'));
  absl::Status refused = m.Join(groups, huge_filter);
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.message(), HasSubstr("too long a filter"));
  EXPECT_THAT(groups->ListGroups(), IsEmpty());
}

}  // namespace
}  // namespace hookfan::broker
