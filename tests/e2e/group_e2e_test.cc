// End-to-end: consumer groups over gRPC against the real binary.

#include <sys/wait.h>

#include <map>
#include <set>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/e2e/hookfan_process.h"

namespace hookfan::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// One group member: a Consume stream whose deliveries are collected (and
// optionally acked at once) on a background thread.
class Member {
 public:
  Member(v1::EventBroker::Stub* stub, const std::string& group, bool auto_ack,
         uint32_t max_in_flight = 16)
      : auto_ack_(auto_ack) {
    stream_ = stub->Consume(&context_);
    v1::ConsumeRequest open;
    open.mutable_open()->set_group(group);
    open.mutable_open()->mutable_start()->set_earliest(true);
    open.mutable_open()->set_max_in_flight(max_in_flight);
    open.mutable_open()->mutable_ack_deadline()->set_seconds(2);
    stream_->Write(open);
    stream_->WaitForInitialMetadata();
    reader_ = std::thread([this] {
      v1::ConsumeResponse response;
      while (stream_->Read(&response)) {
        v1::ConsumeRequest ack;
        MutexLock lock(&mu_);
        for (const v1::Delivery& d : response.deliveries()) {
          deliveries_.push_back(d);
          ack.mutable_ack()->add_sequences(d.event().sequence());
        }
        if (auto_ack_) stream_->Write(ack);
      }
      MutexLock lock(&mu_);
      ended_ = true;
    });
  }
  ~Member() { Close(); }

  void Ack(const std::vector<uint64_t>& seqs) {
    v1::ConsumeRequest ack;
    for (uint64_t s : seqs) ack.mutable_ack()->add_sequences(s);
    MutexLock lock(&mu_);
    stream_->Write(ack);
  }
  // Waits until `n` deliveries arrived in all.
  bool WaitFor(size_t n, absl::Duration timeout = absl::Seconds(30)) {
    MutexLock lock(&mu_);
    auto done = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return deliveries_.size() >= n || ended_; };
    mu_.AwaitWithTimeout(absl::Condition(&done), timeout);
    return deliveries_.size() >= n;
  }
  std::vector<v1::Delivery> deliveries() {
    MutexLock lock(&mu_);
    return deliveries_;
  }
  // Ends the stream (cancelling it unless the server ended it within
  // `grace`) and returns its final status.
  grpc::Status Close(absl::Duration grace = absl::ZeroDuration()) {
    if (!reader_.joinable()) return status_;
    bool ended;
    {
      MutexLock lock(&mu_);
      ended = mu_.AwaitWithTimeout(absl::Condition(&ended_), grace);
    }
    if (!ended) context_.TryCancel();
    reader_.join();
    status_ = stream_->Finish();
    return status_;
  }

 private:
  const bool auto_ack_;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::ConsumeRequest, v1::ConsumeResponse>> stream_;
  std::thread reader_;
  grpc::Status status_;
  Mutex mu_;
  std::vector<v1::Delivery> deliveries_ ABSL_GUARDED_BY(mu_);
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
};

class GroupE2ETest : public ::testing::Test {
 protected:
  void SetUp() override {
    data_dir_ = MakeTempDir();
    Start();
  }
  void Start() {
    hookfan_ = std::make_unique<HookfanProcess>(HookfanProcess::Options{.data_dir = data_dir_});
    ASSERT_TRUE(hookfan_->Start());
    stub_ = hookfan_->NewStub();
  }
  void PostN(int n) {
    std::string body = ReadFixture("emm_device_enrolled.json");
    for (int i = 0; i < n; ++i) ASSERT_EQ(hookfan_->PostWebhook(body), 202);
  }
  // The ack floor of `group` as ListGroups reports it; 0 if unknown.
  uint64_t AckFloor(const std::string& group) {
    grpc::ClientContext context;
    v1::ListGroupsResponse response;
    if (!stub_->ListGroups(&context, v1::ListGroupsRequest(), &response).ok()) return 0;
    for (const v1::GroupInfo& info : response.groups()) {
      if (info.name() == group) return info.ack_floor();
    }
    return 0;
  }

  std::string data_dir_;
  std::unique_ptr<HookfanProcess> hookfan_;
  std::unique_ptr<v1::EventBroker::Stub> stub_;
};

TEST_F(GroupE2ETest, TwoMembersShareEventsEachProcessedOnce) {
  // Two members of one group over gRPC, 1,000 webhooks: each reaches exactly one of them.
  Member a(stub_.get(), "workers", /*auto_ack=*/true);
  Member b(stub_.get(), "workers", /*auto_ack=*/true);
  PostN(1000);
  absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (a.deliveries().size() + b.deliveries().size() < 1000 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  std::map<uint64_t, int> seen;
  for (Member* m : {&a, &b}) {
    for (const v1::Delivery& d : m->deliveries()) seen[d.event().sequence()]++;
  }
  ASSERT_EQ(seen.size(), 1000u);
  for (const auto& [seq, n] : seen) EXPECT_EQ(n, 1) << seq;
  // Both members work; the exact split depends on scheduling.
  EXPECT_GT(a.deliveries().size(), 100u);
  EXPECT_GT(b.deliveries().size(), 100u);
}

TEST_F(GroupE2ETest, RestartRedeliversUnackedAndNeverAcked) {
  // hookfan restarts mid-stream: acked events never come back, unacked ones do.
  PostN(10);
  {
    Member m(stub_.get(), "g", /*auto_ack=*/false);
    ASSERT_TRUE(m.WaitFor(10));
    m.Ack({1, 2, 3, 4, 5});
    // The acks are processed before the drain.
    ASSERT_TRUE(Eventually([&] { return AckFloor("g") >= 5; }, absl::Seconds(10)));
    int status = hookfan_->Terminate();
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0);
    EXPECT_EQ(m.Close(absl::Seconds(10)).error_code(), grpc::StatusCode::UNAVAILABLE);
  }
  Start();
  Member again(stub_.get(), "g", /*auto_ack=*/true);
  ASSERT_TRUE(again.WaitFor(5));
  // An acked event coming back would come before a new one: 11 closes the list.
  PostN(1);
  ASSERT_TRUE(again.WaitFor(6));
  std::vector<v1::Delivery> got = again.deliveries();
  ASSERT_EQ(got.size(), 6u);
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(got[i].event().sequence(), 6 + i);
    EXPECT_EQ(got[i].attempt(), 2u);
  }
  EXPECT_EQ(got[5].event().sequence(), 11u);
  EXPECT_EQ(got[5].attempt(), 1u);
}

TEST_F(GroupE2ETest, UnackedEventsOfADisconnectedMemberReachTheOther) {
  PostN(4);
  auto quitter = std::make_unique<Member>(stub_.get(), "g", /*auto_ack=*/false);
  ASSERT_TRUE(quitter->WaitFor(4));
  Member stayer(stub_.get(), "g", /*auto_ack=*/true);
  quitter.reset();  // disconnects holding 4 leases (deadline 2s)
  ASSERT_TRUE(stayer.WaitFor(4, absl::Seconds(15)));
  for (const v1::Delivery& d : stayer.deliveries()) EXPECT_EQ(d.attempt(), 2u);
}

TEST_F(GroupE2ETest, GroupAdministrationRpcs) {
  {
    Member m(stub_.get(), "admin", /*auto_ack=*/true);
    PostN(3);
    ASSERT_TRUE(m.WaitFor(3));
  }
  grpc::ClientContext list_ctx;
  v1::ListGroupsResponse groups;
  ASSERT_TRUE(stub_->ListGroups(&list_ctx, {}, &groups).ok());
  ASSERT_EQ(groups.groups_size(), 1);
  EXPECT_EQ(groups.groups(0).name(), "admin");

  grpc::ClientContext dead_ctx;
  v1::ListDeadLettersRequest dead_req;
  dead_req.set_group("admin");
  v1::ListDeadLettersResponse dead;
  ASSERT_TRUE(stub_->ListDeadLetters(&dead_ctx, dead_req, &dead).ok());
  EXPECT_EQ(dead.dead_letters_size(), 0);

  grpc::ClientContext del_ctx;
  v1::DeleteGroupRequest del;
  del.set_group("admin");
  v1::DeleteGroupResponse del_resp;
  ASSERT_TRUE(stub_->DeleteGroup(&del_ctx, del, &del_resp).ok());
  grpc::ClientContext del_again_ctx;
  grpc::Status again = stub_->DeleteGroup(&del_again_ctx, del, &del_resp);
  EXPECT_EQ(again.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(again.error_message(), "no consumer group \"admin\"");
}

TEST_F(GroupE2ETest, FirstRequestMustOpen) {
  grpc::ClientContext ctx;
  auto stream = stub_->Consume(&ctx);
  v1::ConsumeRequest ack;
  ack.mutable_ack()->add_sequences(1);
  stream->Write(ack);
  v1::ConsumeResponse r;
  EXPECT_FALSE(stream->Read(&r));
  grpc::Status s = stream->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(), "the first ConsumeRequest must carry open");
}

TEST_F(GroupE2ETest, TailGroupModeAcksAfterPrinting) {
  // Two hookfan-tail --group runs share the events: the second sees only what the first did not ack.
  PostN(3);
  std::string cmd = std::string(HOOKFAN_TAIL_BINARY) + " --server " + hookfan_->grpc_address() +
                    " --group cli --from earliest --max ";
  auto run = [](const std::string& c) {
    CommandResult r = RunCommand(c);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return r.output;
  };
  std::string first = run(cmd + "2");
  EXPECT_THAT(first, HasSubstr("\"sequence\":\"1\""));
  EXPECT_THAT(first, HasSubstr("\"sequence\":\"2\""));
  EXPECT_THAT(first, Not(HasSubstr("\"sequence\":\"3\"")));
  PostN(1);
  // Event 3 was leased to the first run and not printed: released when it
  // left, so the second run gets it and 4, and never 1 or 2.
  std::string second = run(cmd + "2");
  EXPECT_THAT(second, HasSubstr("\"sequence\":\"3\""));
  EXPECT_THAT(second, HasSubstr("\"sequence\":\"4\""));
  EXPECT_THAT(second, Not(HasSubstr("\"sequence\":\"1\"")));
  EXPECT_THAT(second, Not(HasSubstr("\"sequence\":\"2\"")));
}

}  // namespace
}  // namespace hookfan::testing
