// Current state on connect, against the real binary on either store:
// snapshot subscriptions while senders post, GetLatest and ListKeys, and
// compacted retention across a restart. On NATS, webhooks go to one replica
// and reads to another.

#include <httplib.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/e2e/hookfan_process.h"
#include "tests/nats/nats_server.h"

namespace hookfan::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Posts both bodies of devices [0, n) `rounds` times; returns the last
// sequence answered.
uint64_t PostDevices(const HookfanProcess& hookfan, int n, int rounds) {
  httplib::Client c("127.0.0.1", hookfan.http_port());
  uint64_t last = 0;
  for (int r = 0; r < rounds; ++r) {
    for (int i = 0; i < n; ++i) {
      for (const std::string& body : DeviceWebhooks(i)) {
        auto res = c.Post(hookfan.webhook_path(), body, "application/json");
        EXPECT_TRUE(res && res->status == 202) << (res ? res->body : "no answer");
        if (res && res->status == 202) last = nlohmann::json::parse(res->body)["sequence"];
      }
    }
  }
  return last;
}

v1::SubscribeRequest FromSnapshot() {
  v1::SubscribeRequest request;
  request.mutable_start()->set_snapshot(true);
  return request;
}

enum class Store { kSqlite, kNats };

class SnapshotE2ETest : public ::testing::TestWithParam<Store> {
 protected:
  void SetUp() override {
    if (GetParam() == Store::kNats) {
      nats_ = std::make_unique<NatsServer>(MakeTempDir());
      ASSERT_TRUE(nats_->Start());
    }
  }

  // A replica: on NATS, every one shares the test's stream.
  std::unique_ptr<HookfanProcess> StartReplica(std::vector<std::string> extra_args = {},
                                               std::string data_dir = "") {
    if (nats_ != nullptr) extra_args.push_back("--store=" + nats_->url());
    auto replica = std::make_unique<HookfanProcess>(HookfanProcess::Options{
        .data_dir = data_dir.empty() ? MakeTempDir() : data_dir, .extra_args = extra_args});
    EXPECT_TRUE(replica->Start());
    return replica;
  }

  // Waits until `key`'s newest event in the latest view has `sequence`
  // (the NATS view trails the log by its writer's lag).
  static bool ViewReaches(const HookfanProcess& replica, const std::string& key,
                          uint64_t sequence) {
    auto stub = replica.NewStub();
    return Eventually(
        [&] {
          grpc::ClientContext context;
          v1::GetLatestRequest get;
          get.set_key(key);
          v1::GetLatestResponse latest;
          return stub->GetLatest(&context, get, &latest).ok() && latest.events_size() > 0 &&
                 latest.events(latest.events_size() - 1).sequence() == sequence;
        },
        absl::Seconds(20));
  }

  std::unique_ptr<NatsServer> nats_;
};

TEST_P(SnapshotE2ETest, ASnapshotStartedWhileFourSendersPostSeesEveryLaterEventOnce) {
  std::unique_ptr<HookfanProcess> sender = StartReplica();
  std::unique_ptr<HookfanProcess> reader =
      nats_ != nullptr ? StartReplica() : std::unique_ptr<HookfanProcess>();
  const HookfanProcess& hookfan = *sender;
  const uint64_t preloaded = PostDevices(hookfan, 100, 2);  // 400 events, 200 (key, type)
  ASSERT_EQ(preloaded, 400u);
  const HookfanProcess& reading = reader != nullptr ? *reader : hookfan;
  ASSERT_TRUE(ViewReaches(reading, DeviceId(99), 400));
  auto stub = reading.NewStub();
  v1::SubscribeRequest everything;
  everything.mutable_start()->set_earliest(true);
  StreamCollector log(stub.get(), everything);

  Senders senders(hookfan);
  ASSERT_TRUE(Eventually([&] { return senders.Acked().size() >= 50; }, absl::Seconds(30)));
  StreamCollector snapshot(stub.get(), FromSnapshot());
  uint64_t through = 0;
  ASSERT_TRUE(absl::SimpleAtoi(snapshot.InitialMetadata("hookfan-snapshot-through"), &through));
  const size_t acked_at_start = senders.Acked().size();
  ASSERT_TRUE(Eventually([&] { return senders.Acked().size() >= acked_at_start + 300; },
                         absl::Seconds(60)));
  const std::set<std::string> acked = senders.Stop();
  const size_t total = preloaded + acked.size();
  ASSERT_TRUE(log.WaitFor(total));

  // What the log holds, and its fold at `through`.
  std::map<std::pair<std::string, std::string>, uint64_t> fold;
  std::vector<std::string> later;  // ids after the snapshot, in order
  for (const v1::Event& e : log.events()) {
    if (e.sequence() <= through) {
      fold[{e.key(), e.type()}] = e.sequence();
    } else {
      later.push_back(e.id());
    }
  }
  ASSERT_GT(later.size(), 250u);  // the senders went on after it started

  // The snapshot, then each later event once: wait for the last one.
  const std::string last_id = later.back();
  ASSERT_TRUE(Eventually(
      [&] {
        std::vector<v1::Event> got = snapshot.events();
        return !got.empty() && got.back().id() == last_id;
      },
      absl::Seconds(30)));
  std::vector<v1::Event> got = snapshot.events();
  std::set<uint64_t> superseded_since;  // snapshot entries that moved on while it was read
  std::vector<std::string> got_later;
  uint64_t previous = 0;
  size_t snapshot_events = 0;
  for (const v1::Event& e : got) {
    ASSERT_GT(e.sequence(), previous) << "out of order or twice";
    previous = e.sequence();
    if (e.sequence() > through) {
      got_later.push_back(e.id());
      continue;
    }
    ++snapshot_events;
    EXPECT_EQ((fold[{e.key(), e.type()}]), e.sequence()) << "not the newest of its key and type";
  }
  EXPECT_EQ(got_later, later);
  // Every (key, type) once: the 200 preloaded, and the senders' device
  // unless it was superseded before the snapshot reached it (then it came
  // live).
  EXPECT_GE(snapshot_events, 200u);
  EXPECT_LE(snapshot_events, fold.size());
  EXPECT_EQ(fold.size(), 201u);
}

TEST_P(SnapshotE2ETest, CompactedRetentionKeepsTheCurrentStateAcrossARestart) {
  const std::string dir = MakeTempDir();
  const std::vector<std::string> args = {"--retention-max-events=50", "--retention-keep-latest"};
  {
    std::unique_ptr<HookfanProcess> first = StartReplica(args, dir);
    PostDevices(*first, 20, 1);  // 40 events: 20 devices x 2 types
    ASSERT_EQ(PostDevices(*first, 1, 50), 140u);  // device 0 churns
    EXPECT_TRUE(Eventually([&] { return Metric(*first, "hookfan_log_first_sequence") == 91; },
                           absl::Seconds(20)));
    ASSERT_TRUE(ViewReaches(*first, DeviceId(0), 140));
    EXPECT_EQ(first->Terminate(), 0);
  }
  std::unique_ptr<HookfanProcess> restarted = StartReplica(args, dir);
  const HookfanProcess& hookfan = *restarted;
  EXPECT_TRUE(Eventually([&] { return Metric(hookfan, "hookfan_log_first_sequence") == 91; },
                         absl::Seconds(20)));
  auto stub = hookfan.NewStub();

  // The snapshot still names every device's two types.
  StreamCollector snapshot(stub.get(), FromSnapshot());
  EXPECT_EQ(snapshot.InitialMetadata("hookfan-snapshot-through"), "140");
  ASSERT_TRUE(snapshot.WaitFor(40));
  std::map<std::string, std::set<std::string>> types_by_device;
  for (const v1::Event& e : snapshot.events()) types_by_device[e.key()].insert(e.type());
  ASSERT_EQ(types_by_device.size(), 20u);
  for (const auto& [device, types] : types_by_device) {
    EXPECT_THAT(types, ElementsAre("applivery.device.enrolled", "applivery.device.user_assigned"))
        << device;
  }
  EXPECT_EQ(snapshot.events().back().sequence(), 140u);
  EXPECT_EQ(snapshot.events().size(), 40u);

  // A resume below the compacted range is told where the way back is.
  v1::SubscribeRequest from_one;
  from_one.mutable_start()->set_after_sequence(0);
  StreamCollector late(stub.get(), from_one);
  grpc::Status status = late.WaitForEnd();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::OUT_OF_RANGE);
  EXPECT_THAT(status.error_message(), HasSubstr("the oldest event held is sequence 91"));
  EXPECT_THAT(status.error_message(), HasSubstr("start from a snapshot"));

  // What is known about one device.
  v1::GetLatestRequest get;
  get.set_key(DeviceId(3));
  v1::GetLatestResponse latest;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(stub->GetLatest(&context, get, &latest).ok());
  }
  ASSERT_EQ(latest.events_size(), 2);
  EXPECT_EQ(latest.events(0).type(), "applivery.device.enrolled");
  EXPECT_EQ(latest.events(0).sequence(), 7u);
  get.add_types("applivery.device.user_assigned");
  {
    grpc::ClientContext context;
    ASSERT_TRUE(stub->GetLatest(&context, get, &latest).ok());
  }
  ASSERT_EQ(latest.events_size(), 1);
  EXPECT_EQ(latest.events(0).sequence(), 8u);
  get.clear_key();
  {
    grpc::ClientContext context;
    grpc::Status empty = stub->GetLatest(&context, get, &latest);
    EXPECT_EQ(empty.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(empty.error_message(), HasSubstr("key must be 1 to 1024 bytes"));
  }

  // Every key, seven at a time.
  std::vector<std::string> keys;
  v1::ListKeysRequest list;
  list.set_page_size(7);
  int pages = 0;
  do {
    grpc::ClientContext context;
    v1::ListKeysResponse page;
    ASSERT_TRUE(stub->ListKeys(&context, list, &page).ok());
    ++pages;
    for (const v1::KeyState& k : page.keys()) {
      keys.push_back(k.key());
      EXPECT_EQ(k.types_size(), 2);
      if (k.key() == DeviceId(0)) {
        EXPECT_EQ(k.last_sequence(), 140u);
      }
    }
    list.set_page_token(page.next_page_token());
  } while (!list.page_token().empty() && pages < 10);
  EXPECT_EQ(keys.size(), 20u);
  EXPECT_TRUE(std::is_sorted(keys.begin(), keys.end()));
  EXPECT_EQ(pages, 3);
  list.set_page_token("not a token!");
  {
    grpc::ClientContext context;
    v1::ListKeysResponse page;
    EXPECT_EQ(stub->ListKeys(&context, list, &page).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }

  // hookfan-tail prints the snapshot too.
  CommandResult tail = RunCommand(absl::StrCat(HOOKFAN_TAIL_BINARY, " --server ",
                                               hookfan.grpc_address(),
                                               " --from snapshot --max 40 --output json"));
  EXPECT_EQ(tail.exit_code, 0) << tail.output;
  std::vector<std::string> lines = absl::StrSplit(tail.output, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 40u) << tail.output;
  EXPECT_EQ(nlohmann::json::parse(lines.back())["sequence"], "140");
}

INSTANTIATE_TEST_SUITE_P(Stores, SnapshotE2ETest, ::testing::Values(Store::kSqlite, Store::kNats),
                         [](const ::testing::TestParamInfo<Store>& info) {
                           return info.param == Store::kNats ? "Nats" : "Sqlite";
                         });

}  // namespace
}  // namespace hookfan::testing
