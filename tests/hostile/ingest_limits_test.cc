// End-to-end: hostile senders and clients (issue #15) against the real
// binary — the event size limit on every ingest path, small gRPC
// validation answers, and a quick drain with an idle client connected.

#include <httplib.h>
#include <sys/wait.h>

#include <iostream>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/generic/generic_stub.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/e2e/hookfan_process.h"

namespace hookfan::testing {
namespace {

using ::testing::HasSubstr;

// A Publish of ~4 MiB: just within gRPC's default 4 MiB request limit, so
// only hookfan's own rule can refuse it.
constexpr size_t kHugeData = (4 << 20) - (64 << 10);

// A context with a deadline.
std::unique_ptr<grpc::ClientContext> Context(absl::Duration timeout = absl::Seconds(30)) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  return context;
}

v1::PublishRequest PublishOf(const std::string& type, size_t data_bytes) {
  v1::PublishRequest request;
  request.set_type(type);
  request.set_data(std::string(data_bytes, 'x'));
  return request;
}

class IngestLimitsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    hookfan_ = std::make_unique<HookfanProcess>(
        HookfanProcess::Options{.data_dir = MakeTempDir(), .applivery_dedup = false});
    ASSERT_TRUE(hookfan_->Start());
    stub_ = hookfan_->NewStub();  // default client limits: 4 MiB receive
  }

  grpc::Status Publish(const v1::PublishRequest& request, v1::PublishResponse* response) {
    return stub_->Publish(Context().get(), request, response);
  }

  // POSTs `body` with `content_type` to the Applivery path.
  httplib::Result Post(const std::string& body, const std::string& content_type) {
    httplib::Client client("127.0.0.1", hookfan_->http_port());
    client.set_read_timeout(30, 0);
    return client.Post(hookfan_->webhook_path(), body, content_type);
  }

  std::unique_ptr<HookfanProcess> hookfan_;
  std::unique_ptr<v1::EventBroker::Stub> stub_;
};

// A ~4 MiB Publish is refused with RESOURCE_EXHAUSTED naming the limit and
// the flag, and nothing is stored: the next event takes sequence 1.
TEST_F(IngestLimitsTest, HugePublishIsRefusedAndNothingStored) {
  v1::PublishResponse response;
  grpc::Status status = Publish(PublishOf("internal.huge", kHugeData), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr("the limit is 1048576 (--max-event-bytes)"));

  ASSERT_TRUE(Publish(PublishOf("internal.small", 10), &response).ok());
  EXPECT_EQ(response.sequence(), 1u);
}

// A Publish larger than any event could be is refused by gRPC once it has
// arrived, naming the limit: --max-event-bytes (1 MiB here) plus 4 MiB.
TEST_F(IngestLimitsTest, PublishOverTheRequestLimitIsRefusedNamingIt) {
  v1::PublishResponse response;
  grpc::Status status = Publish(PublishOf("internal.huge", (5 << 20) + 1), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr("vs. 5242880"));
}

// A request message that does not parse is INVALID_ARGUMENT naming the
// method and the limit (gRPC 1.51 alone answers UNIMPLEMENTED, no message).
TEST_F(IngestLimitsTest, MalformedRequestMessageIsInvalidArgumentNamingTheLimit) {
  grpc::GenericStub generic(grpc::CreateChannel(absl::StrCat("127.0.0.1:", hookfan_->grpc_port()),
                                                grpc::InsecureChannelCredentials()));
  for (const char* method : {"/hookfan.v1.EventBroker/Publish", "/hookfan.v1.EventBroker/GetEvent"}) {
    // A field tag whose varint never ends.
    const std::string garbage(16, '\xff');
    grpc::Slice slice(garbage);
    grpc::ByteBuffer request(&slice, 1);
    grpc::ByteBuffer response;
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
    grpc::CompletionQueue cq;
    std::unique_ptr<grpc::GenericClientAsyncResponseReader> call =
        generic.PrepareUnaryCall(&context, method, request, &cq);
    call->StartCall();
    grpc::Status status;
    call->Finish(&response, &status, &cq);
    void* tag;
    bool ok;
    ASSERT_TRUE(cq.Next(&tag, &ok));
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << method;
    EXPECT_THAT(status.error_message(), HasSubstr(method));
    EXPECT_THAT(status.error_message(),
                HasSubstr("at most 5242880 bytes (--max-event-bytes plus 4 MiB)"));
  }
  // Nothing was stored: the next event takes sequence 1.
  v1::PublishResponse response;
  ASSERT_TRUE(Publish(PublishOf("internal.small", 10), &response).ok());
  EXPECT_EQ(response.sequence(), 1u);
}

// A webhook body within --max-body-bytes whose event (raw body plus the
// organization copied into the envelope) passes --max-event-bytes gets 413
// with a JSON error naming the limit and the flag.
TEST_F(IngestLimitsTest, WebhookWhoseEventIsOverTheLimitGets413) {
  nlohmann::json body = nlohmann::json::parse(ReadFixture("emm_device_enrolled.json"));
  body["organization"]["name"] = std::string(600 << 10, 'n');
  httplib::Result res = Post(body.dump(), "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 413) << res->body;
  nlohmann::json error = nlohmann::json::parse(res->body, nullptr, false);
  EXPECT_EQ(error["error"]["code"], 413);
  EXPECT_THAT(error["error"]["message"].get<std::string>(),
              HasSubstr("the limit is 1048576 (--max-event-bytes)"));
  EXPECT_EQ(hookfan_->PostWebhook(ReadFixture("emm_device_enrolled.json")), 202);
}

// A subscriber with gRPC's default limits keeps receiving valid events
// around a hostile ~4 MiB Publish: its stream never breaks.
TEST_F(IngestLimitsTest, DefaultSubscriberKeepsReceivingValidEvents) {
  v1::SubscribeRequest request;
  request.mutable_start()->set_earliest(true);
  StreamCollector collector(stub_.get(), request);
  ASSERT_EQ(hookfan_->PostWebhook(ReadFixture("emm_device_enrolled.json")), 202);
  v1::PublishResponse response;
  Publish(PublishOf("internal.huge", kHugeData), &response);  // refused (tested above)
  ASSERT_EQ(hookfan_->PostWebhook(ReadFixture("emm_device_enrolled.json")), 202);
  ASSERT_TRUE(collector.WaitFor(2));
  std::vector<v1::Event> events = collector.events();
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].type(), "applivery.device.enrolled");
  EXPECT_EQ(events[1].type(), "applivery.device.enrolled");
}

// A group member with default limits gets the valid events published with
// a hostile one, and none of them is dead-lettered.
TEST_F(IngestLimitsTest, GroupMemberGetsValidBatchMatesWithoutDeadLetters) {
  v1::PublishResponse response;
  ASSERT_TRUE(Publish(PublishOf("internal.a", 100), &response).ok());
  Publish(PublishOf("internal.huge", kHugeData), &response);
  ASSERT_TRUE(Publish(PublishOf("internal.b", 100), &response).ok());
  ASSERT_TRUE(Publish(PublishOf("internal.c", 100), &response).ok());

  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
  auto stream = stub_->Consume(&context);
  v1::ConsumeRequest open;
  open.mutable_open()->set_group("g");
  open.mutable_open()->mutable_start()->set_earliest(true);
  open.mutable_open()->set_max_deliveries(1);
  ASSERT_TRUE(stream->Write(open));
  std::vector<std::string> types;
  v1::ConsumeResponse batch;
  while (types.size() < 3 && stream->Read(&batch)) {
    v1::ConsumeRequest ack;
    for (const v1::Delivery& d : batch.deliveries()) {
      types.push_back(d.event().type());
      ack.mutable_ack()->add_sequences(d.event().sequence());
    }
    ASSERT_TRUE(stream->Write(ack));
  }
  EXPECT_THAT(types, ::testing::ElementsAre("internal.a", "internal.b", "internal.c"));
  // Half-close and wait for the server's status: it reads the acks before
  // the close, in order. (A cancel could overtake the last ack, and with
  // max_deliveries 1 the member's unacked events would be dead-lettered.)
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());

  v1::ListDeadLettersRequest list;
  list.set_group("g");
  v1::ListDeadLettersResponse dead;
  ASSERT_TRUE(stub_->ListDeadLetters(Context().get(), list, &dead).ok());
  EXPECT_EQ(dead.dead_letters_size(), 0);
}

// A Publish type in upper case is refused: types are lowercase, by the
// same rule webhooks obey.
TEST_F(IngestLimitsTest, UpperCasePublishTypeIsInvalidArgument) {
  v1::PublishResponse response;
  grpc::Status status = Publish(PublishOf("Internal.Thing", 1), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("(types are lowercase)"));
}

// after_sequence 2^64-1 gets an answer about the position asked for, not
// about sequence 0.
TEST_F(IngestLimitsTest, SubscribeAfterLargestSequenceIsInvalidArgument) {
  v1::SubscribeRequest request;
  request.mutable_start()->set_after_sequence(std::numeric_limits<uint64_t>::max());
  StreamCollector collector(stub_.get(), request);
  grpc::Status status = collector.WaitForEnd();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(),
            "after_sequence 18446744073709551615 is beyond the end of the log (last "
            "sequence 0); no event can follow it");
}

// A 20 KB GetEvent id is refused as malformed; the error echoes only the
// first 64 characters.
TEST_F(IngestLimitsTest, GetEventWithHugeIdIsInvalidArgumentAndShort) {
  v1::GetEventRequest request;
  request.set_id(std::string(20 << 10, 'z'));
  v1::GetEventResponse response;
  grpc::Status status = stub_->GetEvent(Context().get(), request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(),
            "id \"" + std::string(64, 'z') +
                "...\" (20480 bytes) is not a hookfan event id (a UUID such as "
                "01a21a5a-5965-7000-9a6a-c7b991c35543)");
}

// multipart/form-data is a content type no source takes: 415, as
// documented, whether or not the body is well-formed multipart.
TEST_F(IngestLimitsTest, MultipartWebhookGets415) {
  for (const std::string& body :
       {ReadFixture("emm_device_enrolled.json"),
        std::string("--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--b--\r\n")}) {
    httplib::Result res = Post(body, "multipart/form-data; boundary=b");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 415) << res->body;
    EXPECT_THAT(res->body, HasSubstr("Content-Type must be application/json, got "));
  }
  // Without a boundary too.
  httplib::Result res = Post("{}", "multipart/form-data");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 415) << res->body;
  // The ingress still serves.
  EXPECT_EQ(hookfan_->PostWebhook(ReadFixture("emm_device_enrolled.json")), 202);
}

// SIGTERM with an idle but connected gRPC client drains quickly: well
// within the 20 s drain timeout (bounded, not slept).
TEST_F(IngestLimitsTest, DrainWithIdleConnectedClientIsQuick) {
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateChannel(hookfan_->grpc_address(), grpc::InsecureChannelCredentials());
  ASSERT_TRUE(channel->WaitForConnected(absl::ToChronoTime(absl::Now() + absl::Seconds(10))));
  absl::Time start = absl::Now();
  int status = hookfan_->Terminate(absl::Seconds(30));
  absl::Duration took = absl::Now() - start;
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_LT(took, absl::Seconds(2));
  if (took >= absl::Seconds(2)) {  // which drain step took the time
    for (const std::string& line : hookfan_->Lines()) std::cerr << line << "\n";
  }
}

}  // namespace
}  // namespace hookfan::testing
