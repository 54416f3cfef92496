// End-to-end: a sources file with every sender-auth mode, limits,
// idempotency and CloudEvents ingress, against the real binary.

#include <httplib.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <fstream>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/e2e/hookfan_process.h"

namespace hookfan::testing {
namespace {

using ::testing::HasSubstr;

std::string Hmac(const std::string& key, const std::string& message) {
  unsigned char mac[32];
  unsigned int size = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), mac, &size);
  return std::string(reinterpret_cast<char*>(mac), size);
}

// A stream of every event from the earliest on that passes the filter
// `set_filter` fills in.
std::unique_ptr<StreamCollector> SubscribeFromEarliest(
    v1::EventBroker::Stub* stub, const std::function<void(v1::Filter*)>& set_filter) {
  v1::SubscribeRequest request;
  request.mutable_start()->set_earliest(true);
  set_filter(request.mutable_filter());
  return std::make_unique<StreamCollector>(stub, request, "admin-token");
}

std::vector<std::string> TypesOf(const std::vector<v1::Event>& events) {
  std::vector<std::string> types;
  for (const v1::Event& e : events) types.push_back(e.type());
  return types;
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

// Standard Webhooks secrets are base64 keys; these decode to "key-one"/"key-two".
constexpr char kSwKeyOne[] = "a2V5LW9uZQ==";
constexpr char kSwKeyTwo[] = "a2V5LXR3bw==";

class SourcesE2ETest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir();
    // Secrets live in files; the YAML only references them.
    for (const auto& [name, value] :
         std::vector<std::pair<std::string, std::string>>{{"applivery", "path-secret"},
                                                          {"basic", "pass-word"},
                                                          {"bearer", "bear-token"},
                                                          {"hmac-old", "hmac-old"},
                                                          {"hmac-new", "hmac-new"},
                                                          {"sw-one", std::string("whsec_") + kSwKeyOne},
                                                          {"sw-two", std::string("whsec_") + kSwKeyTwo},
                                                          {"events", "events-token"},
                                                          {"devices", "devices-token"},
                                                          {"admin", "admin-token"},
                                                          {"nanomdm", "nano-pass"},
                                                          {"jamf", "jamf-header-t0ken"},
                                                          {"wsone", "ws1-pass"}}) {
      WriteFile(dir_ + "/" + name, value + "\n");
    }
    std::string yaml = absl::StrCat(R"(sources:
  - name: applivery
    normalizer: applivery
    auth: {type: path_token, secrets: [{file: )", dir_, R"(/applivery}]}
    max_body_bytes: 4096
  - name: basic
    normalizer: json
    json: {type_pointer: /type, type_prefix: "basic."}
    auth: {type: basic, username: hook, secrets: [{file: )", dir_, R"(/basic}]}
  - name: bearer
    normalizer: json
    json: {type_header: X-Event-Type}
    auth: {type: bearer, secrets: [{file: )", dir_, R"(/bearer}]}
    rate_limit: {per_second: 0.5, burst: 2}
  - name: github
    normalizer: json
    json: {type_header: X-GitHub-Event, type_prefix: "github."}
    auth:
      type: hmac
      header: X-Hub-Signature-256
      prefix: "sha256="
      secrets: [{file: )", dir_, R"(/hmac-old}, {file: )", dir_, R"(/hmac-new}]
    dedup: {key: idempotency_key, window: 1h}
  - name: svix
    normalizer: json
    json: {type_pointer: /type, id_pointer: /id}
    auth:
      type: standard_webhooks
      secrets: [{file: )", dir_, R"(/sw-one}, {file: )", dir_, R"(/sw-two}]
    dedup: {key: webhook_id}
  - name: walled
    normalizer: json
    json: {type_pointer: /type}
    auth: {type: none}
    allowed_cidrs: [10.0.0.0/8]
  - name: events
    path: /events
    normalizer: cloudevents
    auth: {type: bearer, secrets: [{file: )", dir_, R"(/events}]}
  - name: nanomdm
    normalizer: nanomdm
    auth: {type: basic, username: nanomdm, secrets: [{file: )", dir_, R"(/nanomdm}]}
  - name: jamf
    normalizer: jamf_pro
    auth: {type: header, header: X-Jamf-Token, secrets: [{file: )", dir_, R"(/jamf}]}
  - name: jamf-basic
    normalizer: jamf_pro
    auth: {type: basic, username: jamf, secrets: [{file: )", dir_, R"(/jamf}]}
  - name: wsone
    normalizer: workspace_one
    auth: {type: basic, username: uem, secrets: [{file: )", dir_, R"(/wsone}]}
subscribers:
  - name: devices
    tokens: [{file: )", dir_, R"(/devices}]
    types: ["applivery.device.*"]
  - name: admin
    tokens: [{file: )", dir_, R"(/admin}]
    types: [">"]
)");
    WriteFile(dir_ + "/sources.yaml", yaml);
    hookfan_ = std::make_unique<HookfanProcess>(HookfanProcess::Options{
        .data_dir = dir_ + "/data", .sources_file = dir_ + "/sources.yaml"});
    ASSERT_TRUE(hookfan_->Start());
  }

  httplib::Result Post(const std::string& path, const std::string& body,
                       httplib::Headers headers = {},
                       const std::string& content_type = "application/json") {
    httplib::Client c("127.0.0.1", hookfan_->http_port());
    return c.Post(path, headers, body, content_type);
  }
  static nlohmann::json Json(const httplib::Result& res) {
    return nlohmann::json::parse(res->body, nullptr, false);
  }
  // Every stored event, oldest first, once `expected` have arrived (a slow
  // machine may take a while) and so have all the log holds (its last sequence, as
  // /metrics tells it): a test asserting the count sees extras too.
  std::vector<v1::Event> Stored(size_t expected) {
    const double stored = Metric(*hookfan_, "hookfan_events_appended_total");
    EXPECT_GE(stored, 0) << "no /metrics";
    auto stub = hookfan_->NewStub();
    v1::SubscribeRequest request;
    request.mutable_start()->set_earliest(true);
    request.mutable_filter()->add_types(">");
    StreamCollector collector(stub.get(), request, "admin-token");
    collector.WaitFor(std::max(expected, static_cast<size_t>(std::max(stored, 0.0))));
    return collector.events();
  }

  std::string dir_;
  std::unique_ptr<HookfanProcess> hookfan_;
};

TEST_F(SourcesE2ETest, PathTokenAcceptsTheSecretAndHidesTheSourceOtherwise) {
  std::string body = ReadFixture("emm_device_enrolled.json");
  EXPECT_EQ(Post("/webhooks/applivery/path-secret", body)->status, 202);
  EXPECT_EQ(Post("/webhooks/applivery/wrong", body)->status, 404);
  EXPECT_EQ(Post("/webhooks/applivery", body)->status, 404);
  EXPECT_EQ(Post("/webhooks/nope/path-secret", body)->status, 404);
}

TEST_F(SourcesE2ETest, BasicAuth) {
  std::string body = R"({"type":"thing.done"})";
  httplib::Headers good = {{"Authorization", "Basic " + absl::Base64Escape("hook:pass-word")}};
  auto ok = Post("/webhooks/basic", body, good);
  EXPECT_EQ(ok->status, 202) << ok->body;
  EXPECT_EQ(Json(ok)["type"], "basic.thing.done");
  auto bad = Post("/webhooks/basic", body,
                  {{"Authorization", "Basic " + absl::Base64Escape("hook:guess")}});
  EXPECT_EQ(bad->status, 401);
  EXPECT_EQ(bad->get_header_value("WWW-Authenticate"), "Basic realm=\"hookfan\"");
  EXPECT_EQ(Json(bad)["error"]["message"], "unauthorized");  // nothing that helps a guesser
  EXPECT_EQ(Post("/webhooks/basic", body)->status, 401);
}

TEST_F(SourcesE2ETest, BearerAuthAndRateLimit) {
  // Burst 2 at 0.5/s: the third request in a row is told when to come back.
  httplib::Headers h = {{"Authorization", "Bearer bear-token"}, {"X-Event-Type", "a.b"}};
  EXPECT_EQ(Post("/webhooks/bearer", "{}", {{"Authorization", "Bearer nope"}})->status, 401);
  EXPECT_EQ(Post("/webhooks/bearer", "{}", h)->status, 202);
  EXPECT_EQ(Post("/webhooks/bearer", "{}", h)->status, 202);
  auto limited = Post("/webhooks/bearer", "{}", h);
  EXPECT_EQ(limited->status, 429);
  int retry_after = std::stoi(limited->get_header_value("Retry-After"));
  EXPECT_GE(retry_after, 1);
  EXPECT_LE(retry_after, 2);
}

TEST_F(SourcesE2ETest, HmacAcceptsEitherRotatedSecretAndRejectsTamperingAndMissingHeader) {
  std::string body = R"({"action":"opened"})";
  auto signed_with = [&](const std::string& key, const std::string& b) {
    return httplib::Headers{{"X-GitHub-Event", "pull_request"},
                            {"X-Hub-Signature-256", "sha256=" + absl::BytesToHexString(Hmac(key, b))}};
  };
  auto old_secret = Post("/webhooks/github", body, signed_with("hmac-old", body));
  EXPECT_EQ(old_secret->status, 202) << old_secret->body;
  EXPECT_EQ(Json(old_secret)["type"], "github.pull_request");
  EXPECT_EQ(Post("/webhooks/github", body, signed_with("hmac-new", body))->status, 202);
  EXPECT_EQ(Post("/webhooks/github", R"({"action":"closed"})", signed_with("hmac-new", body))->status,
            401);
  EXPECT_EQ(Post("/webhooks/github", body, signed_with("other", body))->status, 401);
  EXPECT_EQ(Post("/webhooks/github", body, {{"X-GitHub-Event", "push"}})->status, 401);
}

TEST_F(SourcesE2ETest, StandardWebhooksWithRotationStaleTimestampAndDedupOnWebhookId) {
  std::string body = R"({"type":"invoice.paid","id":"evt_1"})";
  auto sign = [&](const std::string& key, const std::string& id, int64_t ts) {
    std::string mac = Hmac(key, absl::StrCat(id, ".", ts, ".", body));
    return httplib::Headers{{"webhook-id", id},
                            {"webhook-timestamp", absl::StrCat(ts)},
                            {"webhook-signature", "v1," + absl::Base64Escape(mac)}};
  };
  int64_t now = absl::ToUnixSeconds(absl::Now());
  auto first = Post("/webhooks/svix", body, sign("key-two", "msg_1", now));
  ASSERT_EQ(first->status, 202) << first->body;
  EXPECT_EQ(Post("/webhooks/svix", body, sign("key-one", "msg_2", now))->status, 202);
  EXPECT_EQ(Post("/webhooks/svix", body, sign("key-one", "msg_3", now - 3600))->status, 401);
  EXPECT_EQ(Post("/webhooks/svix", body, sign("key-three", "msg_4", now))->status, 401);
  // The sender retries msg_1: answered 200 with the first id, stored once.
  auto retry = Post("/webhooks/svix", body, sign("key-one", "msg_1", now));
  EXPECT_EQ(retry->status, 200);
  EXPECT_EQ(Json(retry)["id"], Json(first)["id"]);
  EXPECT_EQ(Json(retry)["duplicate"], true);
  EXPECT_EQ(Stored(2).size(), 2u);
}

TEST_F(SourcesE2ETest, AppliveryDuplicatesSequentialAndConcurrentStoreOneEvent) {
  // Applivery sends no id: identical bodies within the window are one event.
  std::string body = ReadFixture("win_device_added_mdm_user.json");
  auto first = Post("/webhooks/applivery/path-secret", body);
  ASSERT_EQ(first->status, 202);
  auto second = Post("/webhooks/applivery/path-secret", body);
  EXPECT_EQ(second->status, 200);
  EXPECT_EQ(Json(second)["id"], Json(first)["id"]);
  EXPECT_EQ(Json(second)["sequence"], Json(first)["sequence"]);

  std::string other = ReadFixture("emm_device_enrolled.json");
  std::vector<int> statuses(8);
  std::vector<std::string> ids(8);
  std::vector<std::thread> senders;
  for (int i = 0; i < 8; ++i) {
    senders.emplace_back([&, i] {
      auto res = Post("/webhooks/applivery/path-secret", other);
      statuses[i] = res->status;
      ids[i] = Json(res)["id"];
    });
  }
  for (auto& t : senders) t.join();
  EXPECT_EQ(std::count(statuses.begin(), statuses.end(), 202), 1);
  EXPECT_EQ(std::count(statuses.begin(), statuses.end(), 200), 7);
  EXPECT_THAT(ids, ::testing::Each(ids[0]));
  EXPECT_EQ(Stored(2).size(), 2u);
}

TEST_F(SourcesE2ETest, BodyLimitAndAllowedCidrs) {
  std::string big(5000, ' ');
  big = R"({"action":"emm_device_enrolled")" + big + "}";
  auto res = Post("/webhooks/applivery/path-secret", big);
  EXPECT_EQ(res->status, 413);
  EXPECT_THAT(Json(res)["error"]["message"].get<std::string>(), HasSubstr("the limit is 4096"));
  EXPECT_EQ(Post("/webhooks/walled", R"({"type":"x.y"})")->status, 403);  // 127.0.0.1 ∉ 10/8
  EXPECT_TRUE(Stored(0).empty());
}

TEST_F(SourcesE2ETest, CloudEventsStructuredAndBinaryReachSubscribersWithTheirAttributes) {
  httplib::Headers auth = {{"Authorization", "Bearer events-token"}};
  std::string structured = R"({"specversion":"1.0","id":"ce-1","source":"/inventory",
    "type":"com.acme.item.moved","subject":"items/7","time":"2026-11-27T10:00:00Z",
    "partitionkey":"warehouse-3","data":{"to":"shelf-9"}})";
  auto s = Post("/events", structured, auth, "application/cloudevents+json");
  ASSERT_EQ(s->status, 202) << s->body;
  httplib::Headers binary = {{"Authorization", "Bearer events-token"},
                             {"ce-specversion", "1.0"},
                             {"ce-id", "ce-2"},
                             {"ce-source", "/billing"},
                             {"ce-type", "com.acme.invoice.paid"},
                             {"ce-tenant", "blue"}};
  auto b = Post("/events", "amount=12", binary, "text/plain");
  ASSERT_EQ(b->status, 202) << b->body;
  // A producer retry of ce-1 is the same event.
  EXPECT_EQ(Post("/events", structured, auth, "application/cloudevents+json")->status, 200);
  EXPECT_EQ(Post("/events", structured, {}, "application/cloudevents+json")->status, 401);

  std::vector<v1::Event> events = Stored(2);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].type(), "com.acme.item.moved");
  EXPECT_EQ(events[0].source(), "/inventory");
  EXPECT_EQ(events[0].source_event_id(), "ce-1");
  EXPECT_EQ(events[0].subject(), "items/7");
  EXPECT_EQ(events[0].key(), "warehouse-3");
  EXPECT_EQ(events[0].source_time().seconds(), absl::ToUnixSeconds(absl::FromCivil(
                                                    absl::CivilSecond(2026, 11, 27, 10, 0, 0),
                                                    absl::UTCTimeZone())));
  EXPECT_EQ(events[0].data(), R"({"to":"shelf-9"})");
  EXPECT_EQ(events[1].type(), "com.acme.invoice.paid");
  EXPECT_EQ(events[1].data_content_type(), "text/plain");
  EXPECT_EQ(events[1].data(), "amount=12");
  EXPECT_EQ(events[1].extensions().at("tenant"), "blue");
}

// NanoMDM counts anything but 200 a failure: its source answers 200 (a
// retry too, marked duplicate) behind Basic auth, which Go's client sends
// from the webhook URL's user:password. A subscriber naming one device by
// its UDID and by its Applivery id sees that device's events from both
// providers, and no other device's.
TEST_F(SourcesE2ETest, NanoMdmGets200AndADeviceFilterSeesOneDeviceAcrossProviders) {
  constexpr char kUdid[] = "0A4C5E2B-7F31-4D8E-9B62-3C1D5A7E9F04";
  auto stub = hookfan_->NewStub();
  v1::SubscribeRequest request;
  request.mutable_start()->set_earliest(true);
  request.mutable_filter()->add_udids(kUdid);
  request.mutable_filter()->add_device_ids("applivery:5f634c11034824062256e38c");
  StreamCollector one_device(stub.get(), request, "admin-token");

  const httplib::Headers auth = {
      {"Authorization", "Basic " + absl::Base64Escape("nanomdm:nano-pass")}};
  const std::string json = "application/json; charset=utf-8";  // as NanoMDM sends it
  const std::string authenticate = ReadFixture("nanomdm/authenticate.json");
  auto stored = Post("/webhooks/nanomdm", authenticate, auth, json);
  ASSERT_EQ(stored->status, 200) << stored->body;
  EXPECT_EQ(Json(stored)["type"], "nanomdm.device.authenticated");
  EXPECT_FALSE(Json(stored).contains("duplicate"));
  auto retry = Post("/webhooks/nanomdm", authenticate, auth, json);
  EXPECT_EQ(retry->status, 200);
  EXPECT_EQ(Json(retry)["duplicate"], true);
  EXPECT_EQ(Json(retry)["sequence"], Json(stored)["sequence"]);
  EXPECT_EQ(Post("/webhooks/nanomdm", authenticate, {}, json)->status, 401);
  EXPECT_EQ(Post("/webhooks/nanomdm", authenticate,
                 {{"Authorization", "Basic " + absl::Base64Escape("nanomdm:guess")}}, json)
                ->status,
            401);
  // Another device, then Applivery's device (answered 202 as before), then
  // this device again.
  ASSERT_EQ(Post("/webhooks/nanomdm", ReadFixture("nanomdm/micromdm_command_report.json"), auth,
                 json)->status,
            200);
  ASSERT_EQ(Post("/webhooks/applivery/path-secret", ReadFixture("emm_device_enrolled.json"))->status,
            202);
  ASSERT_EQ(Post("/webhooks/nanomdm", ReadFixture("nanomdm/token_update.json"), auth, json)->status,
            200);

  ASSERT_TRUE(one_device.WaitFor(3));
  const std::vector<v1::Event> events = one_device.events();
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].type(), "nanomdm.device.authenticated");
  EXPECT_EQ(events[0].device().udid(), kUdid);
  EXPECT_EQ(events[0].key(), kUdid);
  EXPECT_EQ(events[0].source(), "/webhooks/nanomdm");
  EXPECT_EQ(events[1].type(), "applivery.device.enrolled");
  EXPECT_EQ(events[1].device().provider(), "applivery");
  EXPECT_EQ(events[1].device().id(), "5f634c11034824062256e38c");
  EXPECT_EQ(events[2].type(), "nanomdm.device.token_updated");
  EXPECT_EQ(events[2].apple_mdm_checkin().token_update_tally(), 1);
}

// Jamf Pro behind header authentication, and behind Basic: its JSON
// webhooks get 200, XML gets 415 saying to choose JSON, wrong or missing
// credentials 401. One Mac
// known to Jamf and to NanoMDM: subscribers on its serial number and on its
// UDID see both MDMs' events. NanoMDM names the serial number only in the
// Authenticate message's property list; its later messages, by UDID alone,
// get it from the device directory.
TEST_F(SourcesE2ETest, JamfProHeaderAuthAndOneMacAcrossTwoMdms) {
  constexpr char kUdid[] = "0A4C5E2B-7F31-4D8E-9B62-3C1D5A7E9F04";
  auto stub = hookfan_->NewStub();
  auto serial = SubscribeFromEarliest(
      stub.get(), [](v1::Filter* f) { f->add_serial_numbers("C02HF1ZKQ6L4"); });
  auto udid = SubscribeFromEarliest(stub.get(), [&](v1::Filter* f) { f->add_udids(kUdid); });

  const httplib::Headers jamf = {{"X-Jamf-Token", "jamf-header-t0ken"}};
  auto added = Post("/webhooks/jamf", ReadFixture("jamf_pro/computer_added.json"), jamf);
  ASSERT_EQ(added->status, 200) << added->body;
  EXPECT_EQ(Json(added)["type"], "jamf_pro.computer.added");
  auto xml = Post("/webhooks/jamf", "<JSSEvent/>", jamf, "text/xml");
  EXPECT_EQ(xml->status, 415);
  EXPECT_THAT(Json(xml)["error"]["message"].get<std::string>(), HasSubstr("choose JSON"));
  EXPECT_EQ(Post("/webhooks/jamf", ReadFixture("jamf_pro/computer_added.json"),
                 {{"X-Jamf-Token", "guess"}})->status,
            401);
  EXPECT_EQ(Post("/webhooks/jamf", ReadFixture("jamf_pro/computer_added.json"))->status, 401);
  // Jamf's other choice, Basic (another device's event, below): wrong
  // credentials and the header meant for the other source fail.
  EXPECT_EQ(Post("/webhooks/jamf-basic", ReadFixture("jamf_pro/computer_added.json"),
                 {{"Authorization", "Basic " + absl::Base64Escape("jamf:guess")}})
                ->status,
            401);
  EXPECT_EQ(Post("/webhooks/jamf-basic", ReadFixture("jamf_pro/computer_added.json"),
                 {{"X-Jamf-Token", "jamf-header-t0ken"}})
                ->status,
            401);
  auto enrolled = Post(
      "/webhooks/jamf-basic", ReadFixture("jamf_pro/mobile_device_enrolled.json"),
      {{"Authorization", "Basic " + absl::Base64Escape("jamf:jamf-header-t0ken")}});
  ASSERT_EQ(enrolled->status, 200) << enrolled->body;
  EXPECT_EQ(Json(enrolled)["type"], "jamf_pro.mobile_device.enrolled");
  ASSERT_EQ(Post("/webhooks/nanomdm", ReadFixture("nanomdm/authenticate.json"),
                 {{"Authorization", "Basic " + absl::Base64Escape("nanomdm:nano-pass")}})
                ->status,
            200);
  for (const char* fixture : {"nanomdm/token_update.json", "nanomdm/command_report.json"}) {
    ASSERT_EQ(Post("/webhooks/nanomdm", ReadFixture(fixture),
                   {{"Authorization", "Basic " + absl::Base64Escape("nanomdm:nano-pass")}})
                  ->status,
              200)
        << fixture;
  }
  ASSERT_EQ(Post("/webhooks/jamf", ReadFixture("jamf_pro/computer_check_in.json"), jamf)->status,
            200);

  ASSERT_TRUE(serial->WaitFor(5));
  ASSERT_TRUE(udid->WaitFor(5));
  const auto both_mdms = ::testing::ElementsAre(
      "jamf_pro.computer.added", "nanomdm.device.authenticated", "nanomdm.device.token_updated",
      "nanomdm.command.reported", "jamf_pro.computer.checked_in");
  EXPECT_THAT(TypesOf(serial->events()), both_mdms);
  EXPECT_THAT(TypesOf(udid->events()), both_mdms);
  EXPECT_EQ(serial->events()[0].device().id(), "217");
  for (const v1::Event& e : serial->events()) {
    EXPECT_EQ(e.key(), kUdid) << e.type();
    EXPECT_EQ(e.device().serial_number(), "C02HF1ZKQ6L4") << e.type();
  }
}

// Workspace ONE behind Basic auth: the console's Test Connection (an
// authenticated GET) gets 200 and stores nothing, a notification 200, XML
// 415 saying to choose JSON, wrong or missing credentials 401. The Mac that
// Jamf and NanoMDM know: subscribers on its serial number and on its UDID
// see all three MDMs' events (Workspace ONE sends the UDID without dashes;
// hookfan gives it back Apple's spelling).
TEST_F(SourcesE2ETest, WorkspaceOneTestConnectionAndOneMacAcrossThreeMdms) {
  constexpr char kUdid[] = "0A4C5E2B-7F31-4D8E-9B62-3C1D5A7E9F04";
  auto stub = hookfan_->NewStub();
  auto serial = SubscribeFromEarliest(
      stub.get(), [](v1::Filter* f) { f->add_serial_numbers("C02HF1ZKQ6L4"); });
  auto udid = SubscribeFromEarliest(stub.get(), [&](v1::Filter* f) { f->add_udids(kUdid); });

  const httplib::Headers uem = {{"Authorization", "Basic " + absl::Base64Escape("uem:ws1-pass")}};
  httplib::Client c("127.0.0.1", hookfan_->http_port());
  auto test_connection = c.Get("/webhooks/wsone", uem);
  ASSERT_TRUE(test_connection);
  EXPECT_EQ(test_connection->status, 200) << test_connection->body;
  EXPECT_EQ(c.Get("/webhooks/wsone")->status, 401);
  EXPECT_EQ(c.Get("/webhooks/wsone", {{"Authorization", "Basic " + absl::Base64Escape("uem:guess")}})
                ->status,
            401);
  const httplib::Headers jamf = {{"X-Jamf-Token", "jamf-header-t0ken"}};
  EXPECT_EQ(c.Get("/webhooks/jamf")->status, 401);         // checked as a webhook would be,
  EXPECT_EQ(c.Get("/webhooks/jamf", jamf)->status, 405);   // then: Jamf never tests with a GET
  EXPECT_EQ(Metric(*hookfan_, "hookfan_events_appended_total"), 0);

  auto xml = Post("/webhooks/wsone", "<Eventlog/>", uem, "application/xml");
  EXPECT_EQ(xml->status, 415);
  EXPECT_THAT(Json(xml)["error"]["message"].get<std::string>(), HasSubstr("choose JSON"));
  EXPECT_EQ(Post("/webhooks/wsone", ReadFixture("workspace_one/compliance_status_changed.json"))->status,
            401);
  ASSERT_EQ(Post("/webhooks/jamf", ReadFixture("jamf_pro/computer_added.json"), jamf)->status, 200);
  ASSERT_EQ(Post("/webhooks/nanomdm", ReadFixture("nanomdm/authenticate.json"),
                 {{"Authorization", "Basic " + absl::Base64Escape("nanomdm:nano-pass")}})
                ->status,
            200);
  ASSERT_EQ(Post("/webhooks/wsone", ReadFixture("workspace_one/mdm_enrollment_complete.json"), uem)
                ->status,
            200);  // another device
  auto compliance =
      Post("/webhooks/wsone", ReadFixture("workspace_one/compliance_status_changed.json"), uem,
           "application/json; charset=utf-8");
  ASSERT_EQ(compliance->status, 200) << compliance->body;
  EXPECT_EQ(Json(compliance)["type"], "workspace_one.device.compliance_status_changed");

  ASSERT_TRUE(serial->WaitFor(3));
  ASSERT_TRUE(udid->WaitFor(3));
  const auto three_mdms =
      ::testing::ElementsAre("jamf_pro.computer.added", "nanomdm.device.authenticated",
                             "workspace_one.device.compliance_status_changed");
  EXPECT_THAT(TypesOf(serial->events()), three_mdms);
  EXPECT_THAT(TypesOf(udid->events()), three_mdms);
  // One key for the Mac whichever MDM sent its event: per-device order
  // holds across them in a key-ordered group.
  for (const v1::Event& e : udid->events()) EXPECT_EQ(e.key(), kUdid) << e.type();
  EXPECT_EQ(udid->events()[2].device().id(), "10482");
}

TEST_F(SourcesE2ETest, SubscriberGrantLimitsWhatATokenMayReceive) {
  // A token granted applivery.device.* gets those events, and PERMISSION_DENIED beyond.
  ASSERT_EQ(Post("/webhooks/applivery/path-secret", ReadFixture("emm_device_enrolled.json"))->status,
            202);
  std::string tail = std::string(HOOKFAN_TAIL_BINARY) + " --server " +
                     hookfan_->grpc_address() + " --from earliest --max 1 --output json";
  CommandResult allowed = RunCommand(tail + " --token devices-token --type 'applivery.device.*'");
  EXPECT_EQ(allowed.exit_code, 0) << allowed.output;
  EXPECT_THAT(allowed.output, HasSubstr("\"type\":\"applivery.device.enrolled\""));
  CommandResult denied = RunCommand(tail + " --token devices-token --type 'applivery.>'");
  EXPECT_EQ(denied.exit_code, 1);
  EXPECT_THAT(denied.output, HasSubstr("PERMISSION_DENIED"));
  EXPECT_THAT(denied.output, HasSubstr("may not receive \"applivery.>\""));
  CommandResult anonymous = RunCommand(tail + " --type 'applivery.device.*'");
  EXPECT_EQ(anonymous.exit_code, 1);
  EXPECT_THAT(anonymous.output, HasSubstr("UNAUTHENTICATED"));
}

TEST(SourcesFileTest, BadFileStopsStartUpNamingLineAndField) {
  std::string dir = MakeTempDir();
  WriteFile(dir + "/sources.yaml", "sources:\n  - name: applivery\n    normalizer: applivery\n    auth: {type: token}\n");
  CommandResult r = RunCommand(std::string(HOOKFAN_BINARY) + " --data-dir " + dir +
                               "/data --sources " + dir + "/sources.yaml");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("sources.yaml:4:"));
  EXPECT_THAT(r.output, HasSubstr("sources[0].auth.type: unknown auth type"));
}

}  // namespace
}  // namespace hookfan::testing
