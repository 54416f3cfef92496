#include "rpc/event_broker_service.h"

#include <atomic>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/authz.h"
#include "core/group_manager.h"
#include "core/fanout.h"
#include "core/ingest.h"
#include "tests/store/forwarding_event_log.h"
#include "store/memory_group_store.h"
#include "common/clock.h"
#include "common/uuid.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"

namespace hookfan::broker {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

// A memory log whose appends can be made to fail as a full disk would,
// and its reads as a store that lost its server would.
class FaultyLog : public ForwardingEventLog {
 public:
  void FailAppends(bool fail) { fail_ = fail; }
  void FailReads(bool fail) { fail_reads_ = fail; }

  absl::Status Append(absl::Span<v1::Event> events) override {
    if (fail_) return absl::UnavailableError("disk full");
    return ForwardingEventLog::Append(events);
  }
  absl::StatusOr<AppendOnceResult> AppendOnce(v1::Event event,
                                              std::string_view key,
                                              absl::Duration window) override {
    if (fail_) return absl::UnavailableError("disk full");
    return ForwardingEventLog::AppendOnce(std::move(event), key, window);
  }
  absl::StatusOr<uint64_t> FirstSequence() override {
    if (fail_reads_) return absl::UnavailableError("reading stream info: Insufficient Buffer");
    return ForwardingEventLog::FirstSequence();
  }

 private:
  std::atomic<bool> fail_{false};
  std::atomic<bool> fail_reads_{false};
};

// The grant of the authorization tests.
SubscriberGrant DevicesGrant() {
  return {.name = "devices",
          .tokens = {"t1"},
          .types = {"applivery.device.*"},
          .publish = {"internal.>"}};
}

// Runs the real EventBrokerService over an in-process channel, wired as
// server/app.cc wires it, on a memory log and a fake clock.
class GrpcServiceTest : public ::testing::Test {
 protected:
  void SetUp() override { Start({}); }

  void TearDown() override { Stop(); }

  // (Re)starts the server with these grants (none: open).
  void Start(std::vector<SubscriberGrant> grants, int max_streams = 0,
             size_t send_buffer_bytes = EventBrokerService::Options{}.send_buffer_bytes) {
    Stop();
    authorizer_ = std::make_unique<Authorizer>(std::move(grants));
    fanout_ = std::make_unique<Fanout>(&log_, Fanout::Options{});
    log_.SetCommitListener(fanout_.get());
    absl::StatusOr<std::unique_ptr<GroupManager>> groups =
        GroupManager::Create(&log_, fanout_.get(), &group_store_,
                             {.clock = &clock_, .start_ticker = false});
    ASSERT_TRUE(groups.ok()) << groups.status();
    groups_ = *std::move(groups);
    service_ = std::make_unique<EventBrokerService>(
        &log_, fanout_.get(), groups_.get(),
        EventBrokerService::Options{.clock = &clock_,
                                    .authorizer = authorizer_.get(),
                                    .max_streams = max_streams,
                                    .send_buffer_bytes = send_buffer_bytes});
    grpc::ServerBuilder builder;
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = v1::EventBroker::NewStub(
        server_->InProcessChannel(grpc::ChannelArguments()));
  }

  // Shuts down in app.cc's drain order.
  void Stop() {
    if (server_ == nullptr) return;
    groups_->Shutdown();
    fanout_->Shutdown();
    server_->Shutdown();
    server_->Wait();
    stub_.reset();
    server_.reset();
    service_.reset();
    groups_.reset();
    log_.SetCommitListener(nullptr);
    fanout_.reset();
  }

  // A context with a 10 s deadline and, unless empty, a bearer token.
  static std::unique_ptr<grpc::ClientContext> Context(
      const std::string& token = "") {
    auto context = std::make_unique<grpc::ClientContext>();
    context->set_deadline(std::chrono::system_clock::now() +
                          std::chrono::seconds(10));
    if (!token.empty())
      context->AddMetadata("authorization", "Bearer " + token);
    return context;
  }

  grpc::Status Publish(const v1::PublishRequest& request,
                       v1::PublishResponse* response,
                       const std::string& token = "") {
    return stub_->Publish(Context(token).get(), request, response);
  }

  static v1::PublishRequest Request(const std::string& type,
                                    const std::string& id = "") {
    v1::PublishRequest request;
    request.set_type(type);
    request.set_id(id);
    return request;
  }

  // Appends an event as the webhook ingress would.
  v1::Event AppendWebhookEvent(const std::string& type) {
    v1::Event e;
    e.set_id(ids_.Next());
    e.set_type(type);
    e.set_source("/webhooks/applivery");
    SetTimestamp(clock_.Now(), e.mutable_time());
    EXPECT_TRUE(log_.Append(absl::MakeSpan(&e, 1)).ok());
    return e;
  }

  // An open Subscribe stream.
  struct Stream {
    std::unique_ptr<grpc::ClientContext> context;
    std::unique_ptr<grpc::ClientReader<v1::SubscribeResponse>> reader;
  };

  // Opens a subscription to `types` from the latest event, and waits until
  // the server has registered it (or refused it).
  Stream Subscribe(const std::vector<std::string>& types,
                   const std::string& token = "") {
    Stream stream{Context(token), nullptr};
    v1::SubscribeRequest request;
    for (const std::string& t : types) request.mutable_filter()->add_types(t);
    stream.reader = stub_->Subscribe(stream.context.get(), request);
    stream.reader->WaitForInitialMetadata();
    return stream;
  }

  // The final status of a stream the server refused.
  static grpc::Status Refusal(Stream& stream) {
    v1::SubscribeResponse response;
    EXPECT_FALSE(stream.reader->Read(&response));
    return stream.reader->Finish();
  }

  // Joins `group` directly on the manager, creating it with `types`.
  // Appends `n` events of 1 MiB each straight to the log (as if stored
  // before the event size limit).
  void AppendMiBEvents(int n) {
    for (int i = 0; i < n; ++i) {
      v1::Event e;
      e.set_id(ids_.Next());
      e.set_type("internal.big");
      e.set_data(std::string(1 << 20, 'x'));
      ASSERT_TRUE(log_.Append(absl::MakeSpan(&e, 1)).ok());
    }
  }

  void CreateGroup(const std::string& group,
                   const std::vector<std::string>& types) {
    v1::ConsumerOpen open;
    open.set_group(group);
    for (const std::string& t : types) open.mutable_filter()->add_types(t);
    absl::StatusOr<std::unique_ptr<ConsumerGroupMember>> member =
        groups_->Join(open, [] {});
    ASSERT_TRUE(member.ok()) << member.status();
  }

  FakeClock clock_;
  FaultyLog log_;
  MemoryGroupStore group_store_;
  std::unique_ptr<Authorizer> authorizer_;
  std::unique_ptr<Fanout> fanout_;
  std::unique_ptr<GroupManager> groups_;
  std::unique_ptr<EventBrokerService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::EventBroker::Stub> stub_;
  UuidV7Generator ids_;
};

// A published event is durable on OK and reaches a subscriber with every
// attribute of the request.
// With the send buffer full (here: of size 0) every stream still gets
// batches, cut to the 16 KiB minimum instead of the full 1 MiB.
TEST_F(GrpcServiceTest, BatchesShrinkToTheMinimumWhileTheSendBufferIsFull) {
  Start({}, /*max_streams=*/0, /*send_buffer_bytes=*/0);
  constexpr int kEvents = 64;
  for (int i = 0; i < kEvents; ++i) {
    v1::Event e;
    e.set_id(ids_.Next());
    e.set_type("internal.bulk");
    e.set_data(std::string(4 << 10, 'x'));
    ASSERT_TRUE(log_.Append(absl::MakeSpan(&e, 1)).ok());
  }
  auto context = Context();
  v1::SubscribeRequest request;
  request.mutable_start()->set_earliest(true);
  auto reader = stub_->Subscribe(context.get(), request);
  int received = 0, responses = 0;
  v1::SubscribeResponse response;
  while (received < kEvents && reader->Read(&response)) {
    EXPECT_LE(response.ByteSizeLong(), size_t{16} << 10) << "response " << responses;
    received += response.events_size();
    ++responses;
  }
  EXPECT_EQ(received, kEvents);
  EXPECT_GE(responses, kEvents / 4);  // at most 3 events of 4 KiB and more fit in 16 KiB
}

// Streams past --grpc-max-streams are refused with RESOURCE_EXHAUSTED; a
// closed stream gives its slot back.
TEST_F(GrpcServiceTest, StreamsBeyondTheLimitAreRefusedUntilOneCloses) {
  Start({}, /*max_streams=*/2);
  auto accepted = [](Stream& s) {
    return s.context->GetServerInitialMetadata().count(kStartAfterKey) == 1;
  };
  Stream a = Subscribe({});
  Stream b = Subscribe({});
  EXPECT_TRUE(accepted(a));
  EXPECT_TRUE(accepted(b));
  Stream c = Subscribe({});
  grpc::Status refused = Refusal(c);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(refused.error_message(), ::testing::HasSubstr("at most 2 streams"));
  a.context->TryCancel();
  a.reader->Finish();
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  bool again = false;
  while (!again && absl::Now() < deadline) {
    Stream d = Subscribe({});
    again = accepted(d);
    if (!again) Refusal(d);
  }
  EXPECT_TRUE(again) << "the closed stream's slot never came back";
}

TEST_F(GrpcServiceTest, PublishedEventReachesSubscriberWithAllAttributes) {
  Stream stream = Subscribe({"internal.>"});

  v1::PublishRequest request = Request("internal.device.wiped", "producer-42");
  request.set_source("/inventory");
  request.set_subject("devices/d1");
  request.mutable_time()->set_seconds(1700000000);
  request.mutable_time()->set_nanos(5);
  request.set_data_content_type("application/json");
  request.set_data(R"({"device":"d1"})");
  (*request.mutable_extensions())["traceparent"] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  (*request.mutable_extensions())["tenant"] = "acme";
  request.set_key("org-7");
  request.set_data_schema("https://schemas.example/wiped.json");
  v1::PublishResponse response;
  grpc::Status status = Publish(request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_FALSE(response.duplicate());
  EXPECT_EQ(response.sequence(), 1u);
  EXPECT_EQ(log_.LastSequence(), 1u);  // durable before the answer

  v1::SubscribeResponse batch;
  ASSERT_TRUE(stream.reader->Read(&batch));
  ASSERT_EQ(batch.events_size(), 1);
  const v1::Event& e = batch.events(0);
  EXPECT_EQ(e.id(), response.id());
  EXPECT_EQ(e.id().size(),
            36u);  // a UUID minted by hookfan, not the producer's id
  EXPECT_EQ(e.sequence(), response.sequence());
  EXPECT_EQ(e.source(), "/inventory");
  EXPECT_EQ(e.type(), "internal.device.wiped");
  EXPECT_EQ(ToTime(e.time()), clock_.Now());  // receive time
  EXPECT_EQ(e.subject(), "devices/d1");
  EXPECT_EQ(e.key(), "org-7");
  EXPECT_EQ(e.data_content_type(), "application/json");
  EXPECT_EQ(e.data(), R"({"device":"d1"})");
  EXPECT_THAT(e.extensions(),
              UnorderedElementsAre(Pair("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
                                   Pair("tenant", "acme")));
  EXPECT_EQ(e.source_event_id(), "producer-42");
  EXPECT_EQ(e.source_time().seconds(), 1700000000);
  EXPECT_EQ(e.source_time().nanos(), 5);
  EXPECT_EQ(e.data_schema(), "https://schemas.example/wiped.json");
  EXPECT_EQ(e.payload_case(), v1::Event::PAYLOAD_NOT_SET);
  stream.context->TryCancel();
}

// Unset source and key take their documented defaults.
TEST_F(GrpcServiceTest, PublishDefaultsSourceAndKey) {
  v1::PublishRequest by_subject = Request("internal.x");
  by_subject.set_subject("devices/d1");
  v1::PublishRequest by_partition = by_subject;
  (*by_partition.mutable_extensions())["partitionkey"] = "p-9";
  v1::PublishResponse first, second;
  ASSERT_TRUE(Publish(by_subject, &first).ok());
  ASSERT_TRUE(Publish(by_partition, &second).ok());

  absl::StatusOr<EventPtr> e = log_.GetById(first.id());
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ((*e)->event.source(), "/grpc/publish");
  EXPECT_EQ((*e)->event.key(), "devices/d1");
  EXPECT_EQ((*e)->event.source_event_id(), "");
  EXPECT_FALSE((*e)->event.has_source_time());
  e = log_.GetById(second.id());
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ((*e)->event.key(), "p-9");
}

// A retry with the same id stores nothing and answers with the original.
TEST_F(GrpcServiceTest, PublishWithSameIdTwiceStoresOneEvent) {
  v1::PublishResponse first, second;
  ASSERT_TRUE(Publish(Request("internal.x", "once"), &first).ok());
  clock_.Advance(absl::Hours(1));
  grpc::Status status = Publish(Request("internal.x", "once"), &second);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_FALSE(first.duplicate());
  EXPECT_TRUE(second.duplicate());
  EXPECT_EQ(second.id(), first.id());
  EXPECT_EQ(second.sequence(), first.sequence());
  EXPECT_EQ(log_.LastSequence(), 1u);
}

// The id is scoped by source: another producer may reuse it.
TEST_F(GrpcServiceTest, PublishDeduplicatesPerSource) {
  v1::PublishRequest a = Request("internal.x", "42");
  a.set_source("/a");
  v1::PublishRequest b = Request("internal.x", "42");
  b.set_source("/b");
  v1::PublishResponse ra, rb;
  ASSERT_TRUE(Publish(a, &ra).ok());
  ASSERT_TRUE(Publish(b, &rb).ok());
  EXPECT_FALSE(rb.duplicate());
  EXPECT_NE(rb.sequence(), ra.sequence());
}

// The dedup window is 24 hours of receive time.
TEST_F(GrpcServiceTest, PublishWithSameIdAfterWindowIsStoredAgain) {
  v1::PublishResponse first, later;
  ASSERT_TRUE(Publish(Request("internal.x", "once"), &first).ok());
  clock_.Advance(absl::Hours(24) + absl::Seconds(1));
  ASSERT_TRUE(Publish(Request("internal.x", "once"), &later).ok());
  EXPECT_FALSE(later.duplicate());
  EXPECT_EQ(later.sequence(), 2u);
}

// Without an id, every call stores an event.
TEST_F(GrpcServiceTest, PublishWithoutIdStoresEveryCall) {
  v1::PublishResponse first, second;
  ASSERT_TRUE(Publish(Request("internal.x"), &first).ok());
  ASSERT_TRUE(Publish(Request("internal.x"), &second).ok());
  EXPECT_FALSE(second.duplicate());
  EXPECT_NE(second.id(), first.id());
  EXPECT_EQ(log_.LastSequence(), 2u);
}

// A malformed type is refused with the rule webhook types obey
// (core/event_rules.h), naming the field.
TEST_F(GrpcServiceTest, PublishInvalidTypeIsInvalidArgument) {
  const std::string kNot = " is not a valid event type: ";
  const std::string kWildcards =
      "\"*\" and \">\" are subscription wildcards, not allowed in a type";
  const std::string kEmptyToken =
      "it has an empty token (a leading, trailing or doubled \".\")";
  struct Case {
    std::string type;
    std::string message;
  };
  for (const Case& c : std::vector<Case>{
           {"", "type is required"},
           {"applivery.>", "type \"applivery.>\"" + kNot + kWildcards},
           {"applivery.*.x", "type \"applivery.*.x\"" + kNot + kWildcards},
           {"a..b", "type \"a..b\"" + kNot + kEmptyToken},
           {"a.b.", "type \"a.b.\"" + kNot + kEmptyToken},
           {"a b", "type \"a b\"" + kNot +
                       "' ' at byte 1 is not allowed: tokens are a-z 0-9 _ -"},
           {std::string(256, 'a'), "type \"" + std::string(64, 'a') +
                                       "...\" (256 bytes)" + kNot +
                                       "it is longer than 255 bytes"},
       }) {
    v1::PublishResponse response;
    grpc::Status status = Publish(Request(c.type), &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << c.type;
    EXPECT_EQ(status.error_message(), c.message);
  }
  EXPECT_EQ(log_.LastSequence(), 0u);
  v1::PublishResponse response;
  grpc::Status status =
      Publish(Request("inventory_v2.item-moved.x9"), &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
}

// Types are lowercase (event.proto): an upper-case one is refused as a
// webhook's would be, and nothing is stored.
TEST_F(GrpcServiceTest, PublishUpperCaseTypeIsInvalidArgument) {
  v1::PublishResponse response;
  grpc::Status status = Publish(Request("Inventory.Item.Moved"), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(),
            "type \"Inventory.Item.Moved\" is not a valid event type: 'I' at byte 0 is "
            "not allowed: tokens are a-z 0-9 _ - (types are lowercase)");
  EXPECT_EQ(log_.LastSequence(), 0u);
}

// One Publish larger than --max-event-bytes is refused before anything is
// stored, naming the limit and the flag: it would otherwise reach every
// subscriber as a message beyond gRPC's default 4 MiB receive limit.
TEST_F(GrpcServiceTest, PublishOverMaxEventBytesIsResourceExhausted) {
  v1::PublishRequest request = Request("internal.big");
  request.set_data(std::string(kDefaultMaxEventBytes, 'x'));
  v1::PublishResponse response;
  grpc::Status status = Publish(request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(status.error_message(),
              ::testing::MatchesRegex("the event is [0-9]+ bytes; the limit is 1048576 "
                                      "\\(--max-event-bytes\\)"));
  EXPECT_EQ(log_.LastSequence(), 0u);
  // Just under the limit is stored.
  request.set_data(std::string(kDefaultMaxEventBytes - 1024, 'x'));
  status = Publish(request, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
}

// Extensions follow the CloudEvents naming rules.
TEST_F(GrpcServiceTest, PublishInvalidExtensionIsInvalidArgument) {
  struct Case {
    std::string name;
    std::string message;
  };
  for (const Case& c : std::vector<Case>{
           {"Trace",
            "extensions[\"Trace\"]: a name must be 1 to 20 lowercase letters "
            "and digits"},
           {"trace_id",
            "extensions[\"trace_id\"]: a name must be 1 to 20 lowercase "
            "letters and digits"},
           {"",
            "extensions[\"\"]: a name must be 1 to 20 lowercase letters and "
            "digits"},
           {"abcdefghijklmnopqrstu",
            "extensions[\"abcdefghijklmnopqrstu\"]: a name must be 1 to 20 "
            "lowercase letters "
            "and digits"},
           {"subject",
            "extensions[\"subject\"]: a CloudEvents attribute, not an "
            "extension; use the field"},
       }) {
    v1::PublishRequest request = Request("internal.x");
    (*request.mutable_extensions())[c.name] = "v";
    v1::PublishResponse response;
    grpc::Status status = Publish(request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << c.name;
    EXPECT_EQ(status.error_message(), c.message);
  }
}

// Other fields are bounded and the producer's time must be a valid one.
TEST_F(GrpcServiceTest, PublishInvalidFieldsAreInvalidArgument) {
  v1::PublishRequest long_subject = Request("internal.x");
  long_subject.set_subject(std::string(1025, 's'));
  v1::PublishRequest bad_time = Request("internal.x");
  bad_time.mutable_time()->set_nanos(-1);
  v1::PublishResponse response;
  grpc::Status status = Publish(long_subject, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(),
            "subject is 1025 characters; the limit is 1024");
  status = Publish(bad_time, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(), "time is not a valid timestamp");
  EXPECT_EQ(log_.LastSequence(), 0u);
}

// A log that cannot take writes answers UNAVAILABLE; a retry with the same
// id then stores the event once.
TEST_F(GrpcServiceTest, PublishWhenLogCannotWriteIsUnavailable) {
  log_.FailAppends(true);
  v1::PublishResponse response;
  grpc::Status status = Publish(Request("internal.x", "retry-me"), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(status.error_message(), kStoreUnavailable);  // the store's words are logged
  status = Publish(Request("internal.x"), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);

  log_.FailAppends(false);
  v1::PublishResponse first, retry;
  ASSERT_TRUE(Publish(Request("internal.x", "retry-me"), &first).ok());
  ASSERT_TRUE(Publish(Request("internal.x", "retry-me"), &retry).ok());
  EXPECT_FALSE(first.duplicate());
  EXPECT_TRUE(retry.duplicate());
  EXPECT_EQ(log_.LastSequence(), 1u);
}

// A re-subscribe refused while the store is away gets the store's one
// message, never its internals, and the position to resume after.
TEST_F(GrpcServiceTest, SubscribeRefusedByAnUnavailableStoreCarriesTheResumePoint) {
  log_.FailReads(true);
  v1::SubscribeRequest request;
  request.mutable_start()->set_after_sequence(41);
  grpc::ClientContext context;
  auto reader = stub_->Subscribe(&context, request);
  v1::SubscribeResponse response;
  EXPECT_FALSE(reader->Read(&response));
  grpc::Status status = reader->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(status.error_message(), kStoreUnavailable);
  auto resume = context.GetServerTrailingMetadata().find(kResumeAfterKey);
  ASSERT_NE(resume, context.GetServerTrailingMetadata().end());
  EXPECT_EQ(std::string(resume->second.data(), resume->second.size()), "41");

  log_.FailReads(false);
  grpc::ClientContext again;
  auto accepted = stub_->Subscribe(&again, request);
  accepted->WaitForInitialMetadata();
  EXPECT_EQ(again.GetServerInitialMetadata().count(kStartAfterKey), 1u);
  again.TryCancel();
  accepted->Finish().IgnoreError();
}

// Without grants, calls need no credentials.
TEST_F(GrpcServiceTest, WithoutGrantsNoCredentialsAreNeeded) {
  Stream stream = Subscribe({});
  AppendWebhookEvent("applivery.device.enrolled");
  v1::SubscribeResponse batch;
  ASSERT_TRUE(stream.reader->Read(&batch));
  EXPECT_EQ(batch.events(0).type(), "applivery.device.enrolled");
  stream.context->TryCancel();
}

// A granted client subscribes within its grant and receives events.
TEST_F(GrpcServiceTest, SubscribeWithinGrantWorks) {
  Start({DevicesGrant()});
  Stream stream = Subscribe({"applivery.device.*"}, "t1");
  EXPECT_EQ(stream.context->GetServerInitialMetadata().count(kStartAfterKey),
            1u);
  AppendWebhookEvent("applivery.device.enrolled");
  v1::SubscribeResponse batch;
  ASSERT_TRUE(stream.reader->Read(&batch));
  EXPECT_EQ(batch.events(0).type(), "applivery.device.enrolled");
  stream.context->TryCancel();
}

// Asking for more than granted is refused, naming the pattern and grant.
TEST_F(GrpcServiceTest, SubscribeBeyondGrantIsPermissionDenied) {
  Start({DevicesGrant()});
  Stream stream = Subscribe({"applivery.>"}, "t1");
  grpc::Status status = Refusal(stream);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(status.error_message(),
            "client \"devices\" may not receive \"applivery.>\" (granted: "
            "applivery.device.*)");

  Stream everything = Subscribe({}, "t1");
  EXPECT_EQ(Refusal(everything).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
}

// No token, a wrong token or another scheme: UNAUTHENTICATED, token not echoed.
TEST_F(GrpcServiceTest, SubscribeWithoutKnownTokenIsUnauthenticated) {
  Start({DevicesGrant()});
  Stream none = Subscribe({"applivery.device.*"});
  grpc::Status status = Refusal(none);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(status.error_message(), "missing or unknown bearer token");

  Stream wrong = Subscribe({"applivery.device.*"}, "s3cret-guess");
  status = Refusal(wrong);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(status.error_message(), "missing or unknown bearer token");

  Stream basic{Context(), nullptr};
  basic.context->AddMetadata("authorization", "Basic t1");
  v1::SubscribeRequest request;
  basic.reader = stub_->Subscribe(basic.context.get(), request);
  EXPECT_EQ(Refusal(basic).error_code(), grpc::StatusCode::UNAUTHENTICATED);
}

// The bearer scheme is case-insensitive (RFC 7235).
TEST_F(GrpcServiceTest, BearerSchemeIsCaseInsensitive) {
  Start({DevicesGrant()});
  auto context = Context();
  context->AddMetadata("authorization", "bearer t1");
  v1::PublishResponse response;
  grpc::Status status =
      stub_->Publish(context.get(), Request("internal.x"), &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
}

// Publishing is allowed only for the grant's publish patterns.
TEST_F(GrpcServiceTest, PublishNeedsPublishGrant) {
  Start({DevicesGrant()});
  v1::PublishResponse response;
  grpc::Status status = Publish(Request("internal.x"), &response, "t1");
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.sequence(), 1u);

  status = Publish(Request("applivery.x"), &response, "t1");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(status.error_message(),
            "client \"devices\" may not publish \"applivery.x\" (granted: "
            "internal.>)");

  status = Publish(Request("internal.x"), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(log_.LastSequence(), 1u);
}

// GetEvent refuses events outside the grant and does not reveal them.
TEST_F(GrpcServiceTest, GetEventOutsideGrantIsPermissionDenied) {
  Start({DevicesGrant()});
  v1::Event inside = AppendWebhookEvent("applivery.device.enrolled");
  v1::Event outside = AppendWebhookEvent("applivery.inventory_item.created");

  v1::GetEventRequest request;
  request.set_id(inside.id());
  v1::GetEventResponse response;
  grpc::Status status =
      stub_->GetEvent(Context("t1").get(), request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.event().id(), inside.id());

  for (bool by_sequence : {false, true}) {
    if (by_sequence) {
      request.set_sequence(outside.sequence());
    } else {
      request.set_id(outside.id());
    }
    v1::GetEventResponse denied;
    status = stub_->GetEvent(Context("t1").get(), request, &denied);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
    EXPECT_EQ(status.error_message(),
              "client \"devices\" may not receive this event (granted: "
              "applivery.device.*)");
    EXPECT_FALSE(denied.has_event());
  }
}

// GetLatest and ListKeys are authorized like Subscribe, before the store is
// asked; a store without the latest view (this memory log) says so.
TEST_F(GrpcServiceTest, LatestReadsAreAuthorizedLikeSubscribe) {
  Start({DevicesGrant()});
  v1::GetLatestRequest get;
  get.set_key("5f634c11034824062256e38c");
  v1::GetLatestResponse latest;
  grpc::Status status = stub_->GetLatest(Context().get(), get, &latest);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  status = stub_->GetLatest(Context("t1").get(), get, &latest);  // every type
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(status.error_message(),
              ::testing::HasSubstr("client \"devices\" may not receive"));
  get.add_types("applivery.device.enrolled");
  status = stub_->GetLatest(Context("t1").get(), get, &latest);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(), ::testing::HasSubstr("keeps no latest event per key"));
  get.add_types("applivery..bad");
  status = stub_->GetLatest(Context("t1").get(), get, &latest);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  v1::ListKeysRequest list;
  list.mutable_filter()->add_types("applivery.>");
  v1::ListKeysResponse keys;
  status = stub_->ListKeys(Context("t1").get(), list, &keys);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(status.error_message(),
            "client \"devices\" may not receive \"applivery.>\" (granted: "
            "applivery.device.*)");
  list.mutable_filter()->set_types(0, "applivery.device.*");
  status = stub_->ListKeys(Context("t1").get(), list, &keys);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);

  v1::SubscribeRequest snapshot;
  snapshot.mutable_filter()->add_types("applivery.device.*");
  snapshot.mutable_start()->set_snapshot(true);
  auto context = Context("t1");
  auto stream = stub_->Subscribe(context.get(), snapshot);
  v1::SubscribeResponse response;
  EXPECT_FALSE(stream->Read(&response));
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::FAILED_PRECONDITION);
}

// Consume is authorized like Subscribe, on the open request's filter.
TEST_F(GrpcServiceTest, ConsumeBeyondGrantIsPermissionDenied) {
  Start({DevicesGrant()});
  auto context = Context("t1");
  auto stream = stub_->Consume(context.get());
  v1::ConsumeRequest open;
  open.mutable_open()->set_group("everything");
  open.mutable_open()->mutable_filter()->add_types("applivery.>");
  stream->Write(open);
  v1::ConsumeResponse response;
  EXPECT_FALSE(stream->Read(&response));
  grpc::Status status = stream->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(status.error_message(),
            "client \"devices\" may not receive \"applivery.>\" (granted: "
            "applivery.device.*)");
  EXPECT_THAT(groups_->ListGroups(), IsEmpty());  // not created
}

TEST_F(GrpcServiceTest, ConsumeWithinGrantJoinsTheGroup) {
  Start({DevicesGrant()});
  auto context = Context("t1");
  auto stream = stub_->Consume(context.get());
  v1::ConsumeRequest open;
  open.mutable_open()->set_group("devices");
  open.mutable_open()->mutable_filter()->add_types("applivery.device.*");
  open.mutable_open()->mutable_start()->set_earliest(true);
  ASSERT_TRUE(stream->Write(open));
  AppendWebhookEvent("applivery.device.enrolled");
  v1::ConsumeResponse response;
  ASSERT_TRUE(stream->Read(&response));
  EXPECT_EQ(context->GetServerInitialMetadata().find(kGroupKey)->second,
            "devices");
  ASSERT_EQ(response.deliveries_size(), 1);
  EXPECT_EQ(response.deliveries(0).event().type(), "applivery.device.enrolled");
  context->TryCancel();
}

// Events stored before the size limit, 5 MiB together: a client with
// gRPC's default 4 MiB receive limit gets them all, in responses cut by
// bytes, and the stream never breaks.
TEST_F(GrpcServiceTest, ConsumeResponsesAreCutByBytes) {
  AppendMiBEvents(5);
  auto context = Context();
  auto stream = stub_->Consume(context.get());
  v1::ConsumeRequest open;
  open.mutable_open()->set_group("g");
  open.mutable_open()->mutable_start()->set_earliest(true);
  ASSERT_TRUE(stream->Write(open));
  int received = 0;
  v1::ConsumeResponse response;
  while (received < 5 && stream->Read(&response)) {
    EXPECT_LE(response.ByteSizeLong(), size_t{4} << 20);
    received += response.deliveries_size();
  }
  EXPECT_EQ(received, 5);
  context->TryCancel();
  grpc::Status status = stream->Finish();
  EXPECT_NE(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
}

// ListDeadLetters pages are cut by bytes like stream responses.
TEST_F(GrpcServiceTest, ListDeadLettersIsCutByBytes) {
  AppendMiBEvents(5);
  auto member = groups_->Join(
      [] {
        v1::ConsumerOpen open;
        open.set_group("g");
        open.mutable_start()->set_earliest(true);
        open.set_max_deliveries(1);
        return open;
      }(),
      [] {});
  ASSERT_TRUE(member.ok()) << member.status();
  size_t leased = 0;
  while (leased < 5) {
    absl::StatusOr<std::vector<Delivery>> got = (*member)->Poll(10);
    ASSERT_TRUE(got.ok()) << got.status();
    ASSERT_FALSE(got->empty());
    std::vector<uint64_t> seqs;
    for (const Delivery& d : *got) seqs.push_back(d.event->event.sequence());
    ASSERT_TRUE((*member)->Nack(seqs, absl::ZeroDuration()).ok());  // last attempt: dead
    leased += seqs.size();
  }
  v1::ListDeadLettersRequest request;
  request.set_group("g");
  request.set_limit(1000);
  uint64_t after = 0;
  int pages = 0, listed = 0;
  while (listed < 5 && pages < 10) {
    request.set_after_sequence(after);
    v1::ListDeadLettersResponse response;
    grpc::Status status = stub_->ListDeadLetters(Context().get(), request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    ASSERT_GT(response.dead_letters_size(), 0);
    EXPECT_LE(response.ByteSizeLong(), size_t{4} << 20);
    listed += response.dead_letters_size();
    after = response.dead_letters(response.dead_letters_size() - 1).event().sequence();
    ++pages;
  }
  EXPECT_EQ(listed, 5);
}

// GetEvent takes ids as hookfan mints them; anything else is refused at
// once and echoed at most 64 characters long.
TEST_F(GrpcServiceTest, GetEventWithMalformedIdIsInvalidArgument) {
  v1::GetEventRequest request;
  request.set_id(std::string(20000, 'a'));
  v1::GetEventResponse response;
  grpc::Status status = stub_->GetEvent(Context().get(), request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(),
            "id \"" + std::string(64, 'a') +
                "...\" (20000 bytes) is not a hookfan event id (a UUID such as "
                "01a21a5a-5965-7000-9a6a-c7b991c35543)");
  // A well-formed id that is not stored is NOT_FOUND.
  request.set_id("01a21a5a-5965-7000-9a6a-c7b991c35543");
  status = stub_->GetEvent(Context().get(), request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
}

// after_sequence 2^64-1: no event can follow it; the answer says so rather
// than "sequence 0 is no longer held".
TEST_F(GrpcServiceTest, SubscribeAfterLargestSequenceIsInvalidArgument) {
  AppendWebhookEvent("applivery.device.enrolled");
  v1::SubscribeRequest request;
  request.mutable_start()->set_after_sequence(std::numeric_limits<uint64_t>::max());
  auto context = Context();
  auto reader = stub_->Subscribe(context.get(), request);
  v1::SubscribeResponse response;
  EXPECT_FALSE(reader->Read(&response));
  grpc::Status status = reader->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(),
            "after_sequence 18446744073709551615 is beyond the end of the log (last "
            "sequence 1); no event can follow it");
}

TEST_F(GrpcServiceTest, ConsumeWithoutTokenIsUnauthenticated) {
  Start({DevicesGrant()});
  auto context = Context();
  auto stream = stub_->Consume(context.get());
  v1::ConsumeResponse response;
  EXPECT_FALSE(stream->Read(&response));
  grpc::Status status = stream->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(status.error_message(), "missing or unknown bearer token");
}

// Group administration is limited to groups the client may fully receive.
TEST_F(GrpcServiceTest, GroupAdminIsLimitedToCoveredGroups) {
  Start({DevicesGrant()});
  CreateGroup("enrolled", {"applivery.device.enrolled"});
  CreateGroup("everything", {});

  v1::ListGroupsResponse listed;
  ASSERT_TRUE(stub_->ListGroups(Context("t1").get(), {}, &listed).ok());
  std::vector<std::string> names;
  for (const v1::GroupInfo& g : listed.groups()) names.push_back(g.name());
  EXPECT_THAT(names, ElementsAre("enrolled"));

  const std::string kDenied =
      "client \"devices\" may not manage consumer group \"everything\": it "
      "receives more than "
      "granted (granted: applivery.device.*)";
  v1::ListDeadLettersRequest list_dead;
  list_dead.set_group("everything");
  v1::ListDeadLettersResponse dead;
  grpc::Status status =
      stub_->ListDeadLetters(Context("t1").get(), list_dead, &dead);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(status.error_message(), kDenied);

  v1::RedriveDeadLettersRequest redrive;
  redrive.set_group("everything");
  v1::RedriveDeadLettersResponse redriven;
  status = stub_->RedriveDeadLetters(Context("t1").get(), redrive, &redriven);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(status.error_message(), kDenied);

  v1::DeleteGroupRequest remove;
  remove.set_group("everything");
  v1::DeleteGroupResponse removed;
  status = stub_->DeleteGroup(Context("t1").get(), remove, &removed);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(status.error_message(), kDenied);

  remove.set_group("enrolled");
  status = stub_->DeleteGroup(Context("t1").get(), remove, &removed);
  EXPECT_TRUE(status.ok()) << status.error_message();
  remove.set_group("never-existed");
  status = stub_->DeleteGroup(Context("t1").get(), remove, &removed);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);

  EXPECT_EQ(stub_->ListGroups(Context().get(), {}, &listed).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
}

}  // namespace
}  // namespace hookfan::broker

namespace hookfan::broker {
namespace {

// Subscribe responses are framed by hand from each event's stored wire
// bytes (no re-serialization per subscriber); they must parse as the
// SubscribeResponse the generated clients expect, whatever the events'
// sizes (1-, 2- and 3-byte length prefixes).
TEST(EncodeSubscribeResponseTest, ParsesAsTheGeneratedMessage) {
  std::vector<EventPtr> events;
  for (size_t data : {0, 200, 20000}) {
    v1::Event event;
    event.set_id(absl::StrCat("id-", data));
    event.set_type("a.b");
    event.set_sequence(events.size() + 1);
    event.set_data(std::string(data, 'x'));
    events.push_back(MakeStoredEvent(event));
  }
  grpc::ByteBuffer buffer = EncodeSubscribeResponse(events);
  v1::SubscribeResponse response;
  ASSERT_TRUE(grpc::SerializationTraits<v1::SubscribeResponse>::Deserialize(&buffer, &response).ok());
  ASSERT_EQ(response.events_size(), 3);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(response.events(i).SerializeAsString(), events[i]->wire) << i;
  }
  EXPECT_EQ(EncodeSubscribeResponse({}).Length(), 0u);
}

}  // namespace
}  // namespace hookfan::broker
