#include "ingress/webhook_handler.h"

#include <map>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "core/ingest.h"
#include "core/trace_context.h"
#include "store/memory_event_log.h"
#include "common/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/fixtures.h"

// WebhookHandler's whole status table (webhook_handler.h), in the order it
// is checked, with a real ingest path into the memory log and a fake clock:
// the contract the binary's e2e tests exercise only in part.

namespace hookfan::ingress {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Pair;

std::string Fixture(const std::string& name) {
  return hookfan::testing::ReadFixtureFile("applivery/" + name);
}

// The one ingest path into a memory log, and a store that can be made to
// refuse writes (the injected fault behind 503).
class FailableSink final : public broker::EventSink {
 public:
  FailableSink(broker::EventLog* log, Clock* clock)
      : ingestor_(log, {.clock = clock, .rules = {.max_event_bytes = 4096}}) {}

  absl::StatusOr<broker::AppendOnceResult> Ingest(v1::Event event, std::string_view dedup_key,
                                                  absl::Duration window) override {
    if (down) return absl::UnavailableError("store down");
    return ingestor_.Ingest(std::move(event), dedup_key, window);
  }
  void Stamp(v1::Event* event) override { ingestor_.Stamp(event); }

  bool down = false;

 private:
  broker::Ingestor ingestor_;
};

class WebhookHandlerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::vector<SourceConfig> sources = {
        {.name = "applivery",
         .path = "/webhooks/applivery",
         .normalizer = "applivery",
         .auth = {.mode = AuthMode::kPathToken, .secrets = {"tok"}},
         .max_body_bytes = 8192,
         .dedup = {DedupKey::kBodyHash, absl::Minutes(10)}},
        {.name = "fenced",
         .normalizer = "applivery",
         .allowed_cidrs = {*Cidr::Parse("10.0.0.0/8")}},
        {.name = "bearer",
         .normalizer = "json",
         .json = {.type_pointer = "/type"},
         .auth = {.mode = AuthMode::kBearer, .secrets = {"s3cret"}}},
        {.name = "limited",
         .normalizer = "cloudevents",
         .rate_limit = {.per_second = 1, .burst = 1}},
        {.name = "nanomdm", .normalizer = "nanomdm"},
        {.name = "mdm-dedup",
         .normalizer = "nanomdm",
         .dedup = {DedupKey::kEventIdOrBodyHash, absl::Minutes(10)}},
        {.name = "applivery-200", .normalizer = "applivery", .success_status = 200},
        {.name = "wsone",
         .path = "/webhooks/wsone",
         .normalizer = "workspace_one",
         .auth = {.mode = AuthMode::kBasic, .secrets = {"pw"}, .username = "uem"}},
    };
    auto handler = WebhookHandler::Create(&sink_, sources, {.clock = &clock_});
    ASSERT_TRUE(handler.ok()) << handler.status();
    handler_ = *std::move(handler);
  }

  HttpAnswer Post(const std::string& path, const std::string& body,
                  std::map<std::string, std::string> headers = {
                      {"content-type", "application/json"}}) {
    return Send("POST", path, body, std::move(headers));
  }

  HttpAnswer Send(std::string_view method, const std::string& path, const std::string& body,
                  std::map<std::string, std::string> headers) {
    const std::string content_type = headers["content-type"];
    std::vector<std::string_view> names;
    for (const auto& [name, value] : headers) names.push_back(name);
    IngressRequest request{
        .method = method,
        .path = path,
        .remote_ip = "127.0.0.1",
        .content_type = content_type,
        .header = [&](std::string_view name) -> std::optional<std::string_view> {
          auto it = headers.find(absl::AsciiStrToLower(std::string(name)));
          if (it == headers.end()) return std::nullopt;
          return it->second;
        },
        .header_names = names,
        .body = body,
    };
    return handler_->Handle(request);
  }

  static std::string Message(const HttpAnswer& answer) {
    auto body = nlohmann::json::parse(answer.body, nullptr, false);
    return body.is_object() && body.contains("error") ? body["error"].value("message", "") : "";
  }

  FakeClock clock_;
  broker::MemoryEventLog log_;
  FailableSink sink_{&log_, &clock_};
  std::unique_ptr<WebhookHandler> handler_;
};

// W3C trace context: the sender's traceparent and tracestate headers are
// kept and the answer names the trace; without them, or with an invalid
// one, hookfan starts a trace; a CloudEvent's own traceparent attribute wins
// over the request's header; a duplicate's answer names none (the original
// keeps its own).
TEST_F(WebhookHandlerTest, TraceContextComesFromTheSenderOrIsStartedHere) {
  constexpr char kParent[] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  constexpr char kOwn[] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  auto stored = [&](const HttpAnswer& answer) {
    const auto body = nlohmann::json::parse(answer.body);
    return (*log_.GetById(body["id"].get<std::string>()))->event;
  };
  auto traceparent = [](const HttpAnswer& answer) {
    return nlohmann::json::parse(answer.body).value("traceparent", "");
  };
  auto post = [&](const std::string& body, std::map<std::string, std::string> trace) {
    trace["content-type"] = "application/json";
    trace["authorization"] = "Bearer s3cret";
    return Post("/webhooks/bearer", body, trace);
  };

  HttpAnswer sent = post(R"({"type":"a.b","n":1})",
                         {{"traceparent", kParent}, {"tracestate", "congo=t61rcWkgMzE"}});
  ASSERT_EQ(sent.status, 202) << sent.body;
  EXPECT_EQ(traceparent(sent), kParent);
  EXPECT_EQ(stored(sent).extensions().at("traceparent"), kParent);
  EXPECT_EQ(stored(sent).extensions().at("tracestate"), "congo=t61rcWkgMzE");

  HttpAnswer none = post(R"({"type":"a.b","n":2})", {});
  ASSERT_EQ(none.status, 202) << none.body;
  EXPECT_TRUE(broker::IsValidTraceparent(traceparent(none))) << none.body;
  EXPECT_EQ(stored(none).extensions().at("traceparent"), traceparent(none));

  HttpAnswer invalid = post(R"({"type":"a.b","n":3})", {{"traceparent", "00-bad"}, {"tracestate", "a=1"}});
  ASSERT_EQ(invalid.status, 202) << invalid.body;
  EXPECT_TRUE(broker::IsValidTraceparent(traceparent(invalid))) << invalid.body;
  EXPECT_EQ(stored(invalid).extensions().at("traceparent"), traceparent(invalid));
  EXPECT_EQ(stored(invalid).extensions().count("tracestate"), 0u);
  EXPECT_NE(traceparent(invalid), traceparent(none));

  HttpAnswer cloud_event = Post(
      "/webhooks/limited",
      absl::StrCat(R"({"specversion":"1.0","id":"1","source":"/s","type":"a.b","traceparent":")",
                   kOwn, R"("})"),
      {{"content-type", "application/cloudevents+json"}, {"traceparent", kParent}});
  ASSERT_EQ(cloud_event.status, 202) << cloud_event.body;
  EXPECT_EQ(traceparent(cloud_event), kOwn);
  EXPECT_EQ(stored(cloud_event).extensions().at("traceparent"), kOwn);

  HttpAnswer first = Post("/webhooks/applivery/tok", Fixture("emm_device_enrolled.json"));
  HttpAnswer again = Post("/webhooks/applivery/tok", Fixture("emm_device_enrolled.json"));
  ASSERT_EQ(first.status, 202) << first.body;
  ASSERT_EQ(again.status, 200) << again.body;
  EXPECT_FALSE(traceparent(first).empty());
  EXPECT_EQ(traceparent(again), "");
}

TEST_F(WebhookHandlerTest, UnknownPathAndWrongTokenAre404) {
  EXPECT_EQ(Post("/webhooks/nobody", "{}").status, 404);
  EXPECT_EQ(Post("/webhooks/applivery/wrong", Fixture("emm_device_enrolled.json")).status, 404);
  EXPECT_EQ(Post("/webhooks/applivery", Fixture("emm_device_enrolled.json")).status, 404);
  EXPECT_EQ(log_.LastSequence(), 0u);
}

TEST_F(WebhookHandlerTest, PeerOutsideAllowedCidrsIs403) {
  EXPECT_EQ(Post("/webhooks/fenced", Fixture("emm_device_enrolled.json")).status, 403);
}

TEST_F(WebhookHandlerTest, FailedBearerAuthIs401WithAChallenge) {
  HttpAnswer answer = Post("/webhooks/bearer", R"({"type":"a.b"})",
                           {{"content-type", "application/json"}, {"authorization", "Bearer no"}});
  EXPECT_EQ(answer.status, 401);
  EXPECT_THAT(answer.headers, Contains(Pair("WWW-Authenticate", "Bearer realm=\"hookfan\"")));
}

TEST_F(WebhookHandlerTest, BodyOverTheSourceLimitIs413) {
  HttpAnswer answer = Post("/webhooks/applivery/tok", std::string(8193, ' '));
  EXPECT_EQ(answer.status, 413);
  EXPECT_THAT(Message(answer), HasSubstr("the limit is 8192"));
}

TEST_F(WebhookHandlerTest, OverTheRateLimitIs429WithRetryAfter) {
  const std::string event =
      R"({"specversion":"1.0","id":"1","source":"/s","type":"a.b"})";
  const std::map<std::string, std::string> ce = {{"content-type", "application/cloudevents+json"}};
  EXPECT_EQ(Post("/webhooks/limited", event, ce).status, 202);
  HttpAnswer answer = Post("/webhooks/limited", event, ce);
  EXPECT_EQ(answer.status, 429);
  EXPECT_THAT(answer.headers, Contains(Pair("Retry-After", "1")));
}

TEST_F(WebhookHandlerTest, ContentTypeTheNormalizerDoesNotTakeIs415) {
  HttpAnswer answer = Post("/webhooks/applivery/tok", Fixture("emm_device_enrolled.json"),
                           {{"content-type", "text/plain"}});
  EXPECT_EQ(answer.status, 415);
  EXPECT_THAT(Message(answer), HasSubstr("Content-Type must be application/json"));
}

TEST_F(WebhookHandlerTest, BodyTheNormalizerRejectsIs400) {
  HttpAnswer answer = Post("/webhooks/applivery/tok", "{not json");
  EXPECT_EQ(answer.status, 400);
  EXPECT_THAT(Message(answer), HasSubstr("not valid JSON"));
}

TEST_F(WebhookHandlerTest, EventOverMaxEventBytesIs413AndNothingStored) {
  // Within the source's 8 KiB body limit, over the sink's 4 KiB events.
  nlohmann::json body = nlohmann::json::parse(Fixture("emm_device_enrolled.json"));
  body["padding"] = std::string(5000, 'x');
  HttpAnswer answer = Post("/webhooks/applivery/tok", body.dump());
  EXPECT_EQ(answer.status, 413);
  EXPECT_THAT(Message(answer), HasSubstr("the limit is 4096 (--max-event-bytes)"));
  EXPECT_EQ(log_.LastSequence(), 0u);
}

TEST_F(WebhookHandlerTest, StoreThatCannotWriteIs503WithRetryAfter) {
  sink_.down = true;
  HttpAnswer answer = Post("/webhooks/applivery/tok", Fixture("emm_device_enrolled.json"));
  EXPECT_EQ(answer.status, 503);
  EXPECT_THAT(answer.headers, Contains(Pair("Retry-After", "1")));
  EXPECT_EQ(Message(answer), broker::kStoreUnavailable);
}

// 202 once durable, with an id and receive time the ingest path minted from
// the injected clock; the same body again within the window is 200
// duplicate with the original's id, and nothing new is stored.
TEST_F(WebhookHandlerTest, StoredIs202AndARedeliveryIs200Duplicate) {
  const std::string body = Fixture("emm_device_enrolled.json");
  HttpAnswer first = Post("/webhooks/applivery/tok", body);
  ASSERT_EQ(first.status, 202) << first.body;
  auto stored = nlohmann::json::parse(first.body);
  EXPECT_EQ(stored["sequence"], 1);
  EXPECT_EQ(stored["type"], "applivery.device.enrolled");
  absl::StatusOr<broker::EventPtr> event = log_.GetById(stored["id"].get<std::string>());
  ASSERT_TRUE(event.ok()) << event.status();
  EXPECT_EQ((*event)->event.time().seconds(), absl::ToUnixSeconds(clock_.Now()));
  EXPECT_EQ((*event)->event.source(), "/webhooks/applivery");

  clock_.Advance(absl::Minutes(5));
  HttpAnswer again = Post("/webhooks/applivery/tok", body);
  EXPECT_EQ(again.status, 200);
  auto duplicate = nlohmann::json::parse(again.body);
  EXPECT_EQ(duplicate["id"], stored["id"]);
  EXPECT_EQ(duplicate["duplicate"], true);
  EXPECT_EQ(log_.LastSequence(), 1u);
}

// A stored webhook gets the source's success status: 200 for nanomdm (its
// kind's), 200 for a source that says so; errors stay errors.
TEST_F(WebhookHandlerTest, StoredIsAnsweredWithTheSourcesSuccessStatus) {
  HttpAnswer nanomdm = Post("/webhooks/nanomdm", Fixture("../nanomdm/checkout.json"));
  EXPECT_EQ(nanomdm.status, 200) << nanomdm.body;
  EXPECT_EQ(nlohmann::json::parse(nanomdm.body)["type"], "nanomdm.device.checked_out");
  EXPECT_FALSE(nlohmann::json::parse(nanomdm.body).contains("duplicate"));
  HttpAnswer applivery = Post("/webhooks/applivery-200", Fixture("emm_device_enrolled.json"));
  EXPECT_EQ(applivery.status, 200) << applivery.body;
  EXPECT_EQ(Post("/webhooks/nanomdm", "{").status, 400);
  EXPECT_EQ(log_.LastSequence(), 2u);
}

// event_id_or_body_hash (the nanomdm default): a body with an event id
// (MicroMDM's) is one event per id, whatever else differs; a body with
// none (NanoMDM's) is one event per body.
TEST_F(WebhookHandlerTest, EventIdOrBodyHashDedupTakesTheIdElseTheBody) {
  auto post = [&](const std::string& body) {
    const HttpAnswer answer = Post("/webhooks/mdm-dedup", body);
    EXPECT_EQ(answer.status, 200) << answer.body;
    return nlohmann::json::parse(answer.body, nullptr, false);
  };
  const std::string micromdm = Fixture("../nanomdm/micromdm_command_report.json");
  const nlohmann::json first = post(micromdm);
  EXPECT_FALSE(first.contains("duplicate"));
  std::string resent = micromdm;
  resent.replace(resent.find("2026-11-30T10:02:44.5127Z"), 25, "2026-11-30T10:09:00Z");
  EXPECT_EQ(post(resent)["duplicate"], true);
  EXPECT_EQ(post(resent)["id"], first["id"]);
  std::string other_id = micromdm;
  other_id.replace(other_id.find("3f9b2c71"), 8, "00000000");
  EXPECT_FALSE(post(other_id).contains("duplicate"));

  const std::string nanomdm = Fixture("../nanomdm/checkout.json");
  EXPECT_FALSE(post(nanomdm).contains("duplicate"));
  EXPECT_EQ(post(nanomdm)["duplicate"], true);
  std::string later = nanomdm;
  later.replace(later.find("17:40:22"), 8, "17:41:00");
  EXPECT_FALSE(post(later).contains("duplicate"));
  EXPECT_EQ(log_.LastSequence(), 4u);
}

// A source naming a kind no normalizer has is refused when the handler is
// built, naming the kinds there are.
TEST(WebhookHandlerCreateTest, UnknownNormalizerIsRefused) {
  broker::MemoryEventLog log;
  broker::Ingestor sink(&log, {});
  auto handler = WebhookHandler::Create(&sink, {{.name = "x", .normalizer = "nope"}}, {});
  ASSERT_FALSE(handler.ok());
  EXPECT_THAT(handler.status().message(),
              HasSubstr("source x: unknown normalizer \"nope\" (want applivery|cloudevents|jamf_pro|json|nanomdm|workspace_one)"));
}

// Workspace ONE's Test Connection: an authenticated GET (or HEAD) on a
// workspace_one source is 200 and stores nothing; unauthenticated it is
// 401 like a webhook; on a source whose sender never tests, 405.
TEST_F(WebhookHandlerTest, ConnectionTestIsAnsweredWhereTheKindTakesIt) {
  const std::map<std::string, std::string> basic = {
      {"authorization", "Basic dWVtOnB3"}};  // uem:pw
  for (const char* method : {"GET", "HEAD"}) {
    const HttpAnswer ok = Send(method, "/webhooks/wsone", "", basic);
    EXPECT_EQ(ok.status, 200) << method;
    EXPECT_EQ(nlohmann::json::parse(ok.body)["source"], "wsone");
  }
  const HttpAnswer unauthenticated = Send("GET", "/webhooks/wsone", "", {});
  EXPECT_EQ(unauthenticated.status, 401);
  EXPECT_THAT(unauthenticated.headers, Contains(Pair("WWW-Authenticate", HasSubstr("Basic"))));
  const HttpAnswer wrong = Send("GET", "/webhooks/wsone", "", {{"authorization", "Basic dWVtOng="}});
  EXPECT_EQ(wrong.status, 401);
  const HttpAnswer elsewhere = Send("GET", "/webhooks/nanomdm", "", {});
  EXPECT_EQ(elsewhere.status, 405);
  EXPECT_THAT(elsewhere.headers, Contains(Pair("Allow", "POST")));
  EXPECT_EQ(Send("GET", "/webhooks/nobody", "", {}).status, 404);
  EXPECT_EQ(log_.LastSequence(), 0u);

  // A notification itself is a POST, answered 200 once stored.
  const HttpAnswer stored = Send(
      "POST", "/webhooks/wsone",
      R"({"EventId":148,"EventType":"MDM Enrollment Complete","DeviceId":7,"SerialNumber":"S1"})",
      {{"authorization", "Basic dWVtOnB3"}, {"content-type", "application/json"}});
  EXPECT_EQ(stored.status, 200) << stored.body;
  EXPECT_EQ(log_.LastSequence(), 1u);
}

}  // namespace
}  // namespace hookfan::ingress
