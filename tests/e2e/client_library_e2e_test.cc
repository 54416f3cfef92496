// The C++ client library (clients/cpp) against the real binary: broker
// restarts, drains and crashes are invisible to the caller.

#include <algorithm>
#include <thread>
#include <vector>

#include "common/sync.h"
#include "gmock/gmock.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/support/client_interceptor.h"
#include "gtest/gtest.h"
#include "hookfan/group_consumer.h"
#include "hookfan/subscriber.h"
#include "hookfan/trace_context.h"
#include "tests/e2e/hookfan_process.h"

namespace hookfan::testing {
namespace {

using ::testing::Contains;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;

// Runs a Subscriber on a background thread and records what the caller sees.
class SubscriberThread {
 public:
  explicit SubscriberThread(Subscriber::Options options) : subscriber_(std::move(options)) {
    thread_ = std::thread([this] {
      absl::Status end = subscriber_.Run([this](const v1::Event& event) {
        MutexLock lock(&mu_);
        sequences_.push_back(event.sequence());
        return true;
      });
      MutexLock lock(&mu_);
      end_ = end;
      ended_ = true;
    });
  }
  ~SubscriberThread() {
    subscriber_.Cancel();
    thread_.join();
  }

  bool WaitFor(size_t n, absl::Duration timeout = absl::Seconds(30)) {
    MutexLock lock(&mu_);
    auto done = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return sequences_.size() >= n || ended_; };
    mu_.AwaitWithTimeout(absl::Condition(&done), timeout);
    return sequences_.size() >= n;
  }
  // Waits until the event `sequence` was handed to the caller.
  bool WaitForSequence(uint64_t sequence, absl::Duration timeout = absl::Seconds(30)) {
    MutexLock lock(&mu_);
    auto seen = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return std::find(sequences_.begin(), sequences_.end(), sequence) != sequences_.end();
    };
    auto done = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return seen() || ended_; };
    mu_.AwaitWithTimeout(absl::Condition(&done), timeout);
    return seen();
  }
  void Cancel() { subscriber_.Cancel(); }
  absl::Status WaitForEnd() {
    MutexLock lock(&mu_);
    mu_.Await(absl::Condition(&ended_));
    return end_;
  }
  std::vector<uint64_t> sequences() {
    MutexLock lock(&mu_);
    return sequences_;
  }

 private:
  Subscriber subscriber_;
  Mutex mu_;
  std::vector<uint64_t> sequences_ ABSL_GUARDED_BY(mu_);
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status end_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

// Counts the Subscribe calls whose "hookfan-start-after" initial metadata
// reached the client: from then on the server has registered the
// subscription and the client library knows where it starts. Give the
// client library Channel() instead of its own.
class AcceptedCalls {
 public:
  // A channel to `options.target` like hookfan::CreateChannel's (plaintext,
  // the same reconnect backoff), that counts here. Must not outlive this.
  std::shared_ptr<grpc::Channel> Channel(const ConnectionOptions& options) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS,
                static_cast<int>(absl::ToInt64Milliseconds(options.initial_backoff)));
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS,
                static_cast<int>(absl::ToInt64Milliseconds(options.max_backoff)));
    std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> factories;
    factories.push_back(std::make_unique<Factory>(this));
    return grpc::experimental::CreateCustomChannelWithInterceptors(
        options.target, grpc::InsecureChannelCredentials(), args, std::move(factories));
  }
  bool WaitFor(int n, absl::Duration timeout = absl::Seconds(30)) {
    MutexLock lock(&mu_);
    auto done = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return count_ >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&done), timeout);
  }

 private:
  class Interceptor : public grpc::experimental::Interceptor {
   public:
    explicit Interceptor(AcceptedCalls* calls) : calls_(calls) {}
    void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
      if (methods->QueryInterceptionHookPoint(
              grpc::experimental::InterceptionHookPoints::POST_RECV_INITIAL_METADATA) &&
          methods->GetRecvInitialMetadata()->count("hookfan-start-after") > 0) {
        MutexLock lock(&calls_->mu_);
        ++calls_->count_;
      }
      methods->Proceed();
    }

   private:
    AcceptedCalls* calls_;
  };
  class Factory : public grpc::experimental::ClientInterceptorFactoryInterface {
   public:
    explicit Factory(AcceptedCalls* calls) : calls_(calls) {}
    grpc::experimental::Interceptor* CreateClientInterceptor(
        grpc::experimental::ClientRpcInfo*) override {
      return new Interceptor(calls_);
    }

   private:
    AcceptedCalls* calls_;
  };

  Mutex mu_;
  int count_ ABSL_GUARDED_BY(mu_) = 0;
};

std::vector<uint64_t> Range(uint64_t first, uint64_t last) {
  std::vector<uint64_t> out;
  for (uint64_t s = first; s <= last; ++s) out.push_back(s);
  return out;
}

class ClientLibraryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    data_dir_ = MakeTempDir();
    body_ = ReadFixture("emm_device_enrolled.json");
    Start();
    target_ = hookfan_->grpc_address();
  }

  // Starts hookfan on the data dir; after the first start, on the same
  // gRPC port, so clients reconnect to the same target.
  void Start() {
    std::vector<std::string> args;
    if (!target_.empty()) args.push_back("--grpc-listen=" + target_);
    hookfan_ = std::make_unique<HookfanProcess>(
        HookfanProcess::Options{.data_dir = data_dir_, .extra_args = args});
    ASSERT_TRUE(hookfan_->Start());
  }
  void PostN(int n) {
    for (int i = 0; i < n; ++i) ASSERT_EQ(hookfan_->PostWebhook(body_), 202);
  }
  ConnectionOptions Connection() {
    ConnectionOptions c;
    c.target = target_;
    c.initial_backoff = absl::Milliseconds(50);
    c.max_backoff = absl::Milliseconds(500);
    c.log = [this](absl::string_view line) {
      MutexLock lock(&log_mu_);
      log_.emplace_back(line);
    };
    return c;
  }
  // A subscriber of every event from the first, on Connection().
  Subscriber::Options FromEarliest() {
    Subscriber::Options options;
    options.connection = Connection();
    options.start.set_earliest(true);
    return options;
  }
  std::vector<std::string> log() {
    MutexLock lock(&log_mu_);
    return log_;
  }

  std::string data_dir_;
  std::string body_;
  std::string target_;
  std::unique_ptr<HookfanProcess> hookfan_;
  Mutex log_mu_;
  std::vector<std::string> log_ ABSL_GUARDED_BY(log_mu_);
};

TEST_F(ClientLibraryTest, SubscriberResumesAcrossGracefulRestartWithNoGapOrDuplicate) {
  // SIGTERM drain and restart between two bursts: the caller sees 1..20 once each, in order.
  Subscriber::Options options = FromEarliest();
  SubscriberThread subscriber(options);
  PostN(10);
  ASSERT_TRUE(subscriber.WaitFor(10));
  ASSERT_EQ(hookfan_->Terminate(), 0);
  Start();
  PostN(10);
  ASSERT_TRUE(subscriber.WaitFor(20)) << subscriber.WaitForEnd();
  EXPECT_THAT(subscriber.sequences(), ElementsAreArray(Range(1, 20)));
  EXPECT_THAT(log(), Contains(HasSubstr("UNAVAILABLE")));  // the one visible trace
}

TEST_F(ClientLibraryTest, SnapshotSubscriberCutOffInsideItsSnapshotTakesANewOne) {
  // 30 devices x 2 types (1-60), then each device enrolled again (61-90):
  // the snapshot is 2, 4, ... 60 and 61-90; the odd ones up to 59 are
  // superseded and must never come.
  for (int round = 0; round < 2; ++round) {
    for (int i = 0; i < 30; ++i) {
      std::vector<std::string> bodies = DeviceWebhooks(i);
      if (round == 1) bodies.pop_back();
      for (const std::string& body : bodies) ASSERT_EQ(hookfan_->PostWebhook(body), 202);
    }
  }
  Subscriber::Options options;
  options.connection = Connection();
  options.start.set_snapshot(true);
  options.max_batch_size = 1;
  Subscriber subscriber(options);
  std::vector<uint64_t> got;
  for (int i = 0; i < 10; ++i) {
    absl::StatusOr<v1::Event> event = subscriber.Next();
    ASSERT_TRUE(event.ok()) << event.status();
    got.push_back(event->sequence());
  }
  hookfan_->Kill();
  Start();
  // Device 15 enrolls again (91): its snapshot entry 76 is superseded
  // before the new snapshot reaches it.
  ASSERT_EQ(hookfan_->PostWebhook(DeviceWebhooks(15)[0]), 202);
  while (got.back() != 91) {
    absl::StatusOr<v1::Event> event = subscriber.Next();
    ASSERT_TRUE(event.ok()) << event.status();
    got.push_back(event->sequence());
  }
  std::vector<uint64_t> want;
  for (uint64_t s = 2; s <= 60; s += 2) want.push_back(s);
  for (uint64_t s = 61; s <= 91; ++s) {
    if (s != 76) want.push_back(s);
  }
  EXPECT_THAT(got, ElementsAreArray(want));
}

TEST_F(ClientLibraryTest, EveryEventNamesItsTrace) {
  // The webhook brings no trace context, so hookfan starts one per event:
  // the client reads a sampled trace, a different one for each.
  PostN(2);
  Subscriber::Options options = FromEarliest();
  Subscriber subscriber(options);
  std::vector<std::string> trace_ids;
  for (int i = 0; i < 2; ++i) {
    absl::StatusOr<v1::Event> event = subscriber.Next();
    ASSERT_TRUE(event.ok()) << event.status();
    std::optional<TraceContext> trace = TraceContextOf(*event);
    ASSERT_TRUE(trace.has_value());
    EXPECT_EQ(trace->traceparent, event->extensions().at("traceparent"));
    EXPECT_THAT(std::string(trace->trace_id()), MatchesRegex("[0-9a-f]{32}"));
    EXPECT_TRUE(trace->sampled());
    trace_ids.emplace_back(trace->trace_id());
  }
  EXPECT_NE(trace_ids[0], trace_ids[1]);
}

TEST_F(ClientLibraryTest, SubscriberResumesAfterACrashWithNoGapOrDuplicate) {
  // kill -9 (no trailer): the subscriber resumes after the last event it handed out.
  Subscriber::Options options = FromEarliest();
  SubscriberThread subscriber(options);
  PostN(7);
  ASSERT_TRUE(subscriber.WaitFor(7));
  hookfan_->Kill();
  Start();
  PostN(5);
  ASSERT_TRUE(subscriber.WaitFor(12));
  // A duplicate of 1..12 would come before 13, which follows them on the
  // stream: once 13 is handed out, any would have been.
  PostN(1);
  ASSERT_TRUE(subscriber.WaitForSequence(13));
  EXPECT_THAT(subscriber.sequences(), ElementsAreArray(Range(1, 13)));
}

TEST_F(ClientLibraryTest, LatestSubscriberCutOffBeforeItsFirstEventMissesNothing) {
  // Started at "latest", crashed server, events posted while the client waits to
  // reconnect: it resumes where "latest" resolved to, not at the new latest.
  PostN(3);
  AcceptedCalls accepted;
  Subscriber::Options options;
  options.connection = Connection();
  options.connection.initial_backoff = absl::Seconds(4);  // retry in 2–4 s
  options.connection.max_backoff = absl::Seconds(4);
  options.start.set_latest(true);
  options.connection.channel = accepted.Channel(options.connection);
  SubscriberThread subscriber(options);
  ASSERT_TRUE(accepted.WaitFor(1));  // registered at latest = 3, and the client knows it
  hookfan_->Kill();
  Start();
  PostN(2);  // 4 and 5, before the client is back
  ASSERT_TRUE(subscriber.WaitFor(2));
  EXPECT_THAT(subscriber.sequences(), ElementsAreArray(Range(4, 5)));
}

TEST_F(ClientLibraryTest, RunStoppedMidResponseLeavesTheRestForNextAndRun) {
  // Six stored events arrive in one response: Run hands them over in place,
  // and what it did not hand over when told to stop is not lost.
  PostN(6);
  Subscriber::Options options = FromEarliest();
  Subscriber subscriber(options);
  std::vector<uint64_t> seen;
  auto until = [&](uint64_t last) {
    return [&seen, last](const v1::Event& event) {
      seen.push_back(event.sequence());
      return event.sequence() < last;
    };
  };
  ASSERT_TRUE(subscriber.Run(until(2)).ok());
  EXPECT_THAT(seen, ElementsAreArray(Range(1, 2)));
  absl::StatusOr<v1::Event> third = subscriber.Next();
  ASSERT_TRUE(third.ok()) << third.status();
  EXPECT_EQ(third->sequence(), 3u);
  seen.clear();
  ASSERT_TRUE(subscriber.Run(until(6)).ok());
  EXPECT_THAT(seen, ElementsAreArray(Range(4, 6)));
  EXPECT_EQ(subscriber.last_sequence(), 6u);
}

TEST_F(ClientLibraryTest, SubscriberReturnsTheServersRefusalWithoutRetrying) {
  // A malformed filter is the caller's bug: Next fails with INVALID_ARGUMENT at once.
  Subscriber::Options options;
  options.connection = Connection();
  options.filter.add_types("applivery..device");
  Subscriber subscriber(options);
  absl::StatusOr<v1::Event> event = subscriber.Next();
  EXPECT_EQ(event.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(log(), ::testing::IsEmpty());
}

TEST_F(ClientLibraryTest, SubscriberGivesUpAfterTheConfiguredTime) {
  // Nobody listening: kUnavailable once give_up_after has passed.
  hookfan_->Kill();
  Subscriber::Options options;
  options.connection = Connection();
  options.connection.give_up_after = absl::Milliseconds(600);
  Subscriber subscriber(options);
  absl::Time start = absl::Now();
  absl::StatusOr<v1::Event> event = subscriber.Next();
  EXPECT_EQ(event.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(600));
}

TEST_F(ClientLibraryTest, CancelEndsABlockedNext) {
  // Cancel from another thread while Next waits for an event on an accepted stream.
  AcceptedCalls accepted;
  Subscriber::Options options;
  options.connection = Connection();
  options.connection.channel = accepted.Channel(options.connection);
  SubscriberThread subscriber(options);
  ASSERT_TRUE(accepted.WaitFor(1));
  subscriber.Cancel();
  EXPECT_EQ(subscriber.WaitForEnd().code(), absl::StatusCode::kCancelled);
  EXPECT_THAT(subscriber.sequences(), ::testing::IsEmpty());
}

TEST_F(ClientLibraryTest, GroupConsumersShareEventsAndAckedOnesNeverReturn) {
  // Two members ack everything they get: 40 events, each handled once in all,
  // also across a graceful restart in the middle.
  GroupConsumer::Options options;
  options.connection = Connection();
  options.open.set_group("workers");
  options.open.mutable_start()->set_earliest(true);
  Mutex mu;
  std::vector<uint64_t> handled;
  auto run = [&](GroupConsumer* consumer) {
    return std::thread([&, consumer] {
      consumer->Run([&](const v1::Delivery& d) {
        MutexLock lock(&mu);
        handled.push_back(d.event().sequence());
        return absl::OkStatus();
      }).IgnoreError();
    });
  };
  GroupConsumer a(options), b(options);
  std::thread ta = run(&a), tb = run(&b);
  auto wait_for = [&](size_t n) {
    MutexLock lock(&mu);
    auto done = [&] { return handled.size() >= n; };
    return mu.AwaitWithTimeout(absl::Condition(&done), absl::Seconds(30));
  };
  PostN(20);
  ASSERT_TRUE(wait_for(20));
  // The acks have landed before the restart (the group's ack floor passed
  // the 20 events): one still on its way when the server stops is
  // redelivered after it, as at-least-once requires.
  auto ack_floor = [&] {
    auto stub = hookfan_->NewStub();
    grpc::ClientContext context;
    v1::ListGroupsResponse response;
    if (!stub->ListGroups(&context, v1::ListGroupsRequest(), &response).ok()) return uint64_t{0};
    for (const v1::GroupInfo& group : response.groups()) {
      if (group.name() == "workers") return group.ack_floor();
    }
    return uint64_t{0};
  };
  ASSERT_TRUE(Eventually([&] { return ack_floor() >= 20; }, absl::Seconds(30)));
  ASSERT_EQ(hookfan_->Terminate(), 0);
  Start();
  PostN(20);
  ASSERT_TRUE(wait_for(40));
  // Once all 40 are acked nothing is due for redelivery, and the restarted
  // server has counted every lease it handed out: 21..40 once each, none a
  // second time.
  ASSERT_TRUE(Eventually([&] { return ack_floor() >= 40; }, absl::Seconds(30)));
  EXPECT_EQ(Metric(*hookfan_, "hookfan_group_deliveries_total"), 20);
  EXPECT_EQ(Metric(*hookfan_, "hookfan_group_redeliveries_total"), 0);
  a.Cancel();
  b.Cancel();
  ta.join();
  tb.join();
  std::vector<uint64_t> sorted = handled;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_THAT(sorted, ElementsAreArray(Range(1, 40)));
}

TEST_F(ClientLibraryTest, NackedDeliveryComesBackAndCloseKeepsTheLastAck) {
  // A nack redelivers (attempt 2); after an ack and a graceful Close, a new
  // member gets only what was never acked.
  PostN(2);
  GroupConsumer::Options options;
  options.connection = Connection();
  options.open.set_group("careful");
  options.open.mutable_start()->set_earliest(true);
  options.open.set_max_in_flight(1);
  {
    GroupConsumer consumer(options);
    absl::StatusOr<v1::Delivery> first = consumer.Next();
    ASSERT_TRUE(first.ok()) << first.status();
    EXPECT_EQ(first->event().sequence(), 1u);
    ASSERT_TRUE(consumer.Nack(1).ok());
    absl::StatusOr<v1::Delivery> again = consumer.Next();
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_EQ(again->event().sequence(), 1u);
    EXPECT_EQ(again->attempt(), 2u);
    ASSERT_TRUE(consumer.Ack(1).ok());
    EXPECT_TRUE(consumer.Close().ok());
  }
  GroupConsumer next(options);
  absl::StatusOr<v1::Delivery> delivery = next.Next();
  ASSERT_TRUE(delivery.ok()) << delivery.status();
  EXPECT_EQ(delivery->event().sequence(), 2u);
}

}  // namespace
}  // namespace hookfan::testing
