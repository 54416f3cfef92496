// End-to-end: the real hookfan binary over loopback, real SQLite files.

#include <httplib.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/e2e/hookfan_process.h"

namespace hookfan::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

const std::vector<std::string> kFixtures = {
    "emm_enrollment_token_created.json", "emm_device_enrolled.json",
    "win_device_added_mdm_user.json", "apple_push_certification_renovation.json",
    "inventory_item_registered.json"};

struct Posted {
  int status;
  nlohmann::json body;
};

class WebhookE2ETest : public ::testing::Test {
 protected:
  void SetUp() override {
    data_dir_ = MakeTempDir();
    StartHookfan();
  }

  void StartHookfan(std::vector<std::string> extra = {}, long fsize_limit = 0) {
    hookfan_ = std::make_unique<HookfanProcess>(HookfanProcess::Options{
        .data_dir = data_dir_, .extra_args = std::move(extra), .file_size_limit = fsize_limit});
    ASSERT_TRUE(hookfan_->Start());
    stub_ = hookfan_->NewStub();
  }

  httplib::Client Http() {
    httplib::Client c("127.0.0.1", hookfan_->http_port());
    c.set_read_timeout(30, 0);
    return c;
  }

  Posted Post(const std::string& path, const std::string& body,
              const std::string& content_type = "application/json") {
    httplib::Client c = Http();
    auto res = c.Post(path, body, content_type);
    if (!res) return {0, nullptr};
    EXPECT_EQ(res->get_header_value("Content-Type"), "application/json") << res->body;
    return {res->status, nlohmann::json::parse(res->body, nullptr, false)};
  }
  Posted PostFixture(const std::string& name) {
    return Post(hookfan_->webhook_path(), ReadFixture(name));
  }

  static v1::SubscribeRequest Request(std::vector<std::string> types = {},
                                      bool earliest = false) {
    v1::SubscribeRequest r;
    for (auto& t : types) r.mutable_filter()->add_types(t);
    if (earliest) r.mutable_start()->set_earliest(true);
    return r;
  }

  // The sequence the next stored event gets: proves what was (not) stored.
  uint64_t NextSequence() {
    Posted p = PostFixture("emm_device_enrolled.json");
    EXPECT_EQ(p.status, 202);
    return p.body.value("sequence", uint64_t{0});
  }

  std::string data_dir_;
  std::unique_ptr<HookfanProcess> hookfan_;
  std::unique_ptr<v1::EventBroker::Stub> stub_;
};

TEST_F(WebhookE2ETest, EveryFixtureIsAcceptedAndReachesOnlyMatchingSubscribers) {
  // All five documented payloads → 202 → typed events at subscribers whose filter matches.
  StreamCollector all(stub_.get(), Request({"applivery.>"}));
  StreamCollector devices(stub_.get(), Request({"applivery.device.*"}));
  v1::SubscribeRequest android_req;
  android_req.mutable_filter()->add_platforms(v1::PLATFORM_ANDROID);
  StreamCollector android(stub_.get(), android_req);
  StreamCollector none(stub_.get(), Request({"applivery.build.*"}));

  std::map<std::string, nlohmann::json> answers;
  for (const std::string& f : kFixtures) {
    Posted p = PostFixture(f);
    ASSERT_EQ(p.status, 202) << f << " " << p.body;
    EXPECT_THAT(p.body["id"].get<std::string>(), SizeIs(36));
    answers[f] = p.body;
  }
  ASSERT_TRUE(all.WaitFor(5));
  std::vector<v1::Event> events = all.events();
  ASSERT_THAT(events, SizeIs(5));
  for (size_t i = 0; i < events.size(); ++i) {
    const nlohmann::json& a = answers[kFixtures[i]];
    EXPECT_EQ(events[i].id(), a["id"].get<std::string>());
    EXPECT_EQ(events[i].sequence(), a["sequence"].get<uint64_t>());
    EXPECT_EQ(events[i].type(), a["type"].get<std::string>());
    EXPECT_EQ(events[i].data(), ReadFixture(kFixtures[i]));
    EXPECT_TRUE(events[i].has_time());
  }
  EXPECT_EQ(events[0].type(), "applivery.enrollment_token.created");
  EXPECT_EQ(events[0].platform(), v1::PLATFORM_ANDROID);
  EXPECT_EQ(events[0].enrollment_token_created().mdm_user().id(), "5e9099ee4da32b180204770e");
  EXPECT_EQ(events[1].type(), "applivery.device.enrolled");
  EXPECT_EQ(events[1].organization().id(), "5d4d1391cd523c15f50df235");
  EXPECT_EQ(events[1].device_enrolled().device().id(), "5f634c11034824062256e38c");
  EXPECT_EQ(events[2].type(), "applivery.device.user_assigned");
  EXPECT_EQ(events[2].platform(), v1::PLATFORM_WINDOWS);
  EXPECT_EQ(events[2].organization().id(), "5c34ec7810399b6cc062a04a");
  EXPECT_EQ(events[2].device_user_assigned().trigger(), "deviceUpdate");
  EXPECT_EQ(events[3].type(), "applivery.apns_certificate.expiring");
  EXPECT_EQ(events[3].apns_certificate_expiring().days_left(), 5);
  EXPECT_EQ(events[4].type(), "applivery.inventory_item.created");
  EXPECT_EQ(events[4].inventory_item_created().id(), "62bd71d980df8b001b085ceb");

  ASSERT_TRUE(devices.WaitFor(2));
  ASSERT_TRUE(android.WaitFor(2));
  // Absence, proven rather than waited for: once no subscription lags the
  // log, every one has examined all five events, and the server has handed
  // out exactly what the matching ones received (5 + 2 + 2 + 0); a wrongly
  // routed event would have been handed out too.
  EXPECT_TRUE(Eventually(
      [&] { return Metric(*hookfan_, "hookfan_subscription_max_lag_events") == 0; },
      absl::Seconds(10)));
  EXPECT_EQ(Metric(*hookfan_, "hookfan_delivered_events_total"), 9);
  ASSERT_THAT(devices.events(), SizeIs(2));
  EXPECT_EQ(devices.events()[0].type(), "applivery.device.enrolled");
  EXPECT_EQ(devices.events()[1].type(), "applivery.device.user_assigned");
  ASSERT_THAT(android.events(), SizeIs(2));
  EXPECT_EQ(android.events()[0].action(), "emm_enrollment_token_created");
  EXPECT_EQ(android.events()[1].action(), "emm_device_enrolled");
  EXPECT_THAT(none.events(), IsEmpty());
}

TEST_F(WebhookE2ETest, EarliestAfterRestartReplaysEveryAcknowledgedEvent) {
  // Events acknowledged before a graceful restart come back in order with the same ids.
  std::vector<nlohmann::json> acked;
  for (int round = 0; round < 4; ++round) {
    for (const std::string& f : kFixtures) {
      Posted p = PostFixture(f);
      ASSERT_EQ(p.status, 202);
      acked.push_back(p.body);
    }
  }
  int status = hookfan_->Terminate();
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  StartHookfan();
  StreamCollector replay(stub_.get(), Request({}, /*earliest=*/true));
  ASSERT_TRUE(replay.WaitFor(acked.size()));
  std::vector<v1::Event> events = replay.events();
  ASSERT_EQ(events.size(), acked.size());
  for (size_t i = 0; i < acked.size(); ++i) {
    EXPECT_EQ(events[i].id(), acked[i]["id"].get<std::string>());
    EXPECT_EQ(events[i].sequence(), acked[i]["sequence"].get<uint64_t>());
  }
  EXPECT_EQ(NextSequence(), acked.back()["sequence"].get<uint64_t>() + 1);
}

TEST_F(WebhookE2ETest, KillNineLosesNoAcknowledgedEvent) {
  // Webhooks answered 202 by a process that is then SIGKILLed are all there after restart.
  Senders senders(*hookfan_);
  // Killed mid-load: after a good number of answers, with more on their way.
  ASSERT_TRUE(Eventually([&] { return senders.Acked().size() >= 200; }, absl::Seconds(30)));
  hookfan_->Kill();
  std::set<std::string> acked_ids = senders.Stop();

  StartHookfan();
  std::set<std::string> stored;
  StreamCollector replay(stub_.get(), Request({}, /*earliest=*/true));
  ASSERT_TRUE(replay.WaitFor(acked_ids.size()));
  for (const v1::Event& e : replay.events()) stored.insert(e.id());
  for (const std::string& id : acked_ids) EXPECT_TRUE(stored.contains(id)) << id;
}

TEST_F(WebhookE2ETest, StalledSubscriberSlowsNeitherWebhooksNorOthers) {
  // A stream that stops reading does not hold up ingestion or other streams, and later gets everything.
  grpc::ClientContext stalled_ctx;
  auto stalled = stub_->Subscribe(&stalled_ctx, Request());
  stalled->WaitForInitialMetadata();
  StreamCollector healthy(stub_.get(), Request());

  // ~4 MB of events: far beyond HTTP/2 flow-control windows.
  constexpr int kEvents = 2000;
  nlohmann::json body = nlohmann::json::parse(ReadFixture("emm_device_enrolled.json"));
  body["padding"] = std::string(2000, 'x');
  httplib::Client c = Http();
  for (int i = 0; i < kEvents; ++i) {
    auto res = c.Post(hookfan_->webhook_path(), body.dump(), "application/json");
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 202) << res->body;
  }
  ASSERT_TRUE(healthy.WaitFor(kEvents));

  v1::SubscribeResponse response;
  uint64_t expect = 1;
  while (expect <= kEvents && stalled->Read(&response)) {
    for (const v1::Event& e : response.events()) ASSERT_EQ(e.sequence(), expect++);
  }
  EXPECT_EQ(expect, static_cast<uint64_t>(kEvents + 1));
  stalled_ctx.TryCancel();
}

TEST_F(WebhookE2ETest, WrongOrMissingTokenIs404AndStoresNothing) {
  // A bad path token looks exactly like an unknown path.
  std::string body = ReadFixture("emm_device_enrolled.json");
  Posted wrong = Post("/webhooks/applivery/not-the-token", body);
  EXPECT_EQ(wrong.status, 404);
  EXPECT_EQ(wrong.body, nlohmann::json::parse(R"({"error":{"code":404,"message":"not found"}})"));
  Posted missing = Post("/webhooks/applivery/", body);
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(missing.body, wrong.body);
  Posted unknown = Post("/no/such/path", body);
  EXPECT_EQ(unknown.body, wrong.body);
  EXPECT_EQ(NextSequence(), 1u);
}

TEST_F(WebhookE2ETest, MalformedBodiesAre400NamingTheProblem) {
  // Each malformed body gets 400 with a JSON error that says what is wrong; nothing is stored.
  struct Case {
    std::string body;
    std::string message_part;
  };
  const std::vector<Case> cases = {
      {"{\"action\": ", "not valid JSON"},
      {"", "not valid JSON"},
      {"[1,2,3]", "must be a JSON object"},
      {"\"just a string\"", "must be a JSON object"},
      {"{\"organization\": {}}", "missing required field \"action\""},
      {"{\"action\": 42}", "action"},
  };
  for (const Case& c : cases) {
    Posted p = Post(hookfan_->webhook_path(), c.body);
    EXPECT_EQ(p.status, 400) << c.body;
    EXPECT_EQ(p.body["error"]["code"], 400);
    EXPECT_THAT(p.body["error"]["message"].get<std::string>(), HasSubstr(c.message_part))
        << c.body;
  }
  EXPECT_EQ(NextSequence(), 1u);
}

TEST_F(WebhookE2ETest, NonJsonContentTypeIs415) {
  Posted p = Post(hookfan_->webhook_path(), ReadFixture("emm_device_enrolled.json"),
                  "text/plain");
  EXPECT_EQ(p.status, 415);
  EXPECT_EQ(p.body["error"]["message"],
            "Content-Type must be application/json, got \"text/plain\"");
  Posted charset = Post(hookfan_->webhook_path(), ReadFixture("emm_device_enrolled.json"),
                        "application/json; charset=utf-8");
  EXPECT_EQ(charset.status, 202);
  EXPECT_EQ(charset.body["sequence"], 1);
}

TEST_F(WebhookE2ETest, BodyOverLimitIs413) {
  // The default limit is 1 MiB; one byte more is refused with a JSON error.
  std::string big = R"({"action":"x","pad":")" + std::string(1 << 20, 'a') + "\"}";
  Posted p = Post(hookfan_->webhook_path(), big);
  EXPECT_EQ(p.status, 413);
  EXPECT_EQ(p.body["error"]["message"], "body is larger than the limit of 1048576 bytes");
  EXPECT_EQ(NextSequence(), 1u);
}

TEST_F(WebhookE2ETest, UnknownActionIsAcceptedAsUnrecognized) {
  // Nothing is dropped silently: an unknown action is stored with its body.
  StreamCollector sub(stub_.get(), Request({"applivery.unrecognized"}));
  std::string body = R"({"action":"emm_device_exploded","organization":{"id":"o1"}})";
  Posted p = Post(hookfan_->webhook_path(), body);
  ASSERT_EQ(p.status, 202);
  EXPECT_EQ(p.body["type"], "applivery.unrecognized");
  ASSERT_TRUE(sub.WaitFor(1));
  EXPECT_EQ(sub.events()[0].action(), "emm_device_exploded");
  EXPECT_EQ(sub.events()[0].data(), body);
}

// #21: the sender's W3C trace context reaches the subscriber on the event
// (extensions["traceparent"], ["tracestate"]) and names the trace in the
// answer; a webhook that sends none gets a trace of its own, the same in
// the answer and on the delivered event.
TEST_F(WebhookE2ETest, TraceContextTravelsFromSenderToSubscriber) {
  constexpr char kParent[] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  StreamCollector sub(stub_.get(), Request({"applivery.device.enrolled"}));
  httplib::Client c = Http();
  auto traced = c.Post(hookfan_->webhook_path(),
                       {{"traceparent", kParent}, {"tracestate", "congo=t61rcWkgMzE"}},
                       ReadFixture("emm_device_enrolled.json"), "application/json");
  ASSERT_TRUE(traced);
  ASSERT_EQ(traced->status, 202) << traced->body;
  EXPECT_EQ(nlohmann::json::parse(traced->body)["traceparent"], kParent);
  Posted untraced = PostFixture("emm_device_enrolled.json");
  ASSERT_EQ(untraced.status, 202);
  const std::string started = untraced.body.value("traceparent", "");
  EXPECT_THAT(started, ::testing::MatchesRegex("00-[0-9a-f]{32}-[0-9a-f]{16}-01"));

  ASSERT_TRUE(sub.WaitFor(2));
  EXPECT_EQ(sub.events()[0].extensions().at("traceparent"), kParent);
  EXPECT_EQ(sub.events()[0].extensions().at("tracestate"), "congo=t61rcWkgMzE");
  EXPECT_EQ(sub.events()[1].extensions().at("traceparent"), started);
}

TEST_F(WebhookE2ETest, FullDiskAnswers503AndRecoversByItselfLosingNothing) {
  // With the file size capped, appends fail: 503 with Retry-After, never a 2xx that was not
  // stored, and /readyz says not ready. Once the "disk" has room again hookfan takes webhooks
  // again by itself (no restart), and everything acknowledged is there.
  hookfan_->Terminate();
  StartHookfan({}, /*fsize_limit=*/256 * 1024);
  nlohmann::json body = nlohmann::json::parse(ReadFixture("emm_device_enrolled.json"));
  body["padding"] = std::string(4000, 'x');
  httplib::Client c = Http();
  std::vector<std::string> acked;
  int unavailable = 0;
  for (int i = 0; i < 400 && unavailable < 5; ++i) {
    auto res = c.Post(hookfan_->webhook_path(), body.dump(), "application/json");
    ASSERT_TRUE(res);
    if (res->status == 202) {
      acked.push_back(nlohmann::json::parse(res->body)["id"]);
    } else {
      ASSERT_EQ(res->status, 503) << res->body;
      EXPECT_EQ(res->get_header_value("Retry-After"), "1");
      ++unavailable;
    }
  }
  ASSERT_EQ(unavailable, 5) << "the size limit never made an append fail";
  ASSERT_FALSE(acked.empty());
  EXPECT_EQ(c.Get("/readyz")->status, 503);
  ASSERT_TRUE(hookfan_->SetFileSizeLimit(0));  // room again
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (c.Get("/readyz")->status != 200 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_EQ(c.Get("/readyz")->status, 200) << "no recovery without webhooks";
  auto res = c.Post(hookfan_->webhook_path(), body.dump(), "application/json");
  ASSERT_TRUE(res && res->status == 202);
  acked.push_back(nlohmann::json::parse(res->body)["id"]);
  hookfan_->Kill();
  StartHookfan();
  StreamCollector replay(stub_.get(), Request({}, /*earliest=*/true));
  ASSERT_TRUE(replay.WaitFor(acked.size()));
  std::vector<v1::Event> events = replay.events();
  std::set<std::string> stored;
  for (const v1::Event& e : events) stored.insert(e.id());
  for (const std::string& id : acked) EXPECT_TRUE(stored.contains(id)) << id;
  EXPECT_EQ(NextSequence(), events.back().sequence() + 1);
}

TEST_F(WebhookE2ETest, SlowSenderDoesNotBlockOthers) {
  // A client that sends half a request and stalls does not stop other webhooks.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(hookfan_->http_port());
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  std::string partial = "POST " + hookfan_->webhook_path() +
                        " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                        "Content-Length: 500\r\n\r\n{\"action\":";
  ASSERT_EQ(send(fd, partial.data(), partial.size(), 0), static_cast<ssize_t>(partial.size()));
  EXPECT_EQ(PostFixture("emm_device_enrolled.json").status, 202);
  close(fd);
}

TEST_F(WebhookE2ETest, ConnectionsOverTheCapAre503UntilOthersClose) {
  // At most 3 connections, all 3 mid-request (a silent or idle connection would be
  // evicted instead): a webhook on a 4th is answered 503 naming the limit and the server
  // closes that connection; once the others close, webhooks are accepted again and
  // /metrics counts the 503s.
  hookfan_->Terminate();
  StartHookfan({"--http-threads=2", "--http-max-connections=3", "--http-read-timeout=20"});
  std::vector<int> busy;
  for (int i = 0; i < 3; ++i) {
    busy.push_back(ConnectTo(hookfan_->http_port()));
    ASSERT_GE(busy.back(), 0);
    // "100 Continue" shows the server has read the head: the request is under way.
    timeval five_seconds{.tv_sec = 5, .tv_usec = 0};
    setsockopt(busy.back(), SOL_SOCKET, SO_RCVTIMEO, &five_seconds, sizeof(five_seconds));
    const std::string head = "POST " + hookfan_->webhook_path() +
                             " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                             "Content-Length: 100000\r\nExpect: 100-continue\r\n\r\n";
    ASSERT_EQ(send(busy.back(), head.data(), head.size(), 0), static_cast<ssize_t>(head.size()));
    std::string answer;
    char buf[256];
    ssize_t n;
    while (!absl::StrContains(answer, "\r\n\r\n") &&
           (n = recv(busy.back(), buf, sizeof(buf), 0)) > 0) {
      answer.append(buf, n);
    }
    ASSERT_EQ(answer, "HTTP/1.1 100 Continue\r\n\r\n");
  }
  httplib::Client c = Http();
  c.set_keep_alive(true);  // the server, not the request, must end the connection
  auto refused = c.Post(hookfan_->webhook_path(), ReadFixture("emm_device_enrolled.json"),
                        "application/json");
  ASSERT_TRUE(refused) << httplib::to_string(refused.error());
  EXPECT_EQ(refused->status, 503);
  EXPECT_EQ(refused->get_header_value("Retry-After"), "1");
  EXPECT_EQ(refused->get_header_value("Connection"), "close");
  EXPECT_FALSE(refused->has_header("Keep-Alive"));
  EXPECT_EQ(refused->get_header_value("Content-Type"), "application/json");
  nlohmann::json error = nlohmann::json::parse(refused->body, nullptr, false);
  EXPECT_EQ(error["error"]["code"], 503);
  EXPECT_EQ(error["error"]["message"],
            "too many connections: hookfan serves at most 3 at once; retry");
  // A keep-alive request is answered and the connection closed at once; one that waits for
  // "100 Continue" is answered without its body being asked for.
  for (const std::string& request : std::vector<std::string>{
           "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
           "POST " + hookfan_->webhook_path() + " HTTP/1.1\r\nHost: x\r\n"
               "Content-Type: application/json\r\nContent-Length: 100000\r\n"
               "Expect: 100-continue\r\n\r\n"}) {
    int fd = ConnectTo(hookfan_->http_port());
    ASSERT_GE(fd, 0);
    timeval three_seconds{.tv_sec = 3, .tv_usec = 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &three_seconds, sizeof(three_seconds));
    ASSERT_EQ(send(fd, request.data(), request.size(), 0), static_cast<ssize_t>(request.size()));
    std::string answer;
    char buf[4096];
    ssize_t n;
    while ((n = recv(fd, buf, sizeof(buf), 0)) > 0) answer.append(buf, n);
    EXPECT_EQ(n, 0) << "no end of stream within 3 s: " << strerror(errno) << "\n" << request;
    EXPECT_THAT(answer, ::testing::StartsWith("HTTP/1.1 503 ")) << request;
    EXPECT_THAT(answer, HasSubstr("too many connections")) << request;
    close(fd);
  }
  for (int fd : busy) close(fd);

  // The server notices the closed connections within moments.
  auto health = c.Get("/healthz");
  for (absl::Time deadline = absl::Now() + absl::Seconds(10);
       health && health->status == 503 && absl::Now() < deadline;) {
    absl::SleepFor(absl::Milliseconds(20));
    health = c.Get("/healthz");
  }
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  EXPECT_EQ(PostFixture("emm_device_enrolled.json").status, 202);
  auto metrics = c.Get("/metrics");
  ASSERT_TRUE(metrics);
  std::smatch refusals;
  ASSERT_TRUE(std::regex_search(metrics->body, refusals,
                                std::regex("\nhookfan_http_connections_refused_total (\\d+)\n")))
      << metrics->body;
  EXPECT_GE(std::stoi(refusals[1]), 3);
  EXPECT_THAT(metrics->body, HasSubstr("\nhookfan_http_connections "));
}

TEST_F(WebhookE2ETest, MaxConnectionsBelowThreadsStopsStartUp) {
  // A cap that could not keep every thread busy is a configuration error.
  HookfanProcess p({.data_dir = MakeTempDir(),
                    .extra_args = {"--http-threads=8", "--http-max-connections=4"}});
  ASSERT_FALSE(p.Start());
  std::string log;
  for (const std::string& line : p.Lines()) log += line + "\n";
  EXPECT_THAT(log, HasSubstr("--http-max-connections (4) must be at least --http-threads (8)"));
}

TEST_F(WebhookE2ETest, NegativeRetentionStopsStartUpWhateverTheStore) {
  // Checked before any store is opened: no 30 s wait for a NATS that is not there.
  for (std::string store : {"sqlite://" + MakeTempDir() + "/x.db", std::string("nats://127.0.0.1:1")}) {
    HookfanProcess p({.data_dir = MakeTempDir(),
                      .extra_args = {"--store=" + store, "--retention-max-events=-1"}});
    absl::Time start = absl::Now();
    ASSERT_FALSE(p.Start()) << store;
    EXPECT_LT(absl::Now() - start, absl::Seconds(10)) << store;
    std::string log;
    for (const std::string& line : p.Lines()) log += line + "\n";
    EXPECT_THAT(log, HasSubstr("retention limits must not be negative")) << store;
  }
}

TEST_F(WebhookE2ETest, EveryFlagAlsoComesFromTheEnvironmentAndTheCommandLineWins) {
  // HOOKFAN_STORE was once left out of a hand-written list of variables.
  std::string dir = MakeTempDir();
  HookfanProcess p({.data_dir = dir,
                    .extra_args = {"--http-threads=8"},
                    .env = {"HOOKFAN_STORE=sqlite://" + dir + "/from-env.db",
                            "HOOKFAN_HTTP_THREADS=0"}});
  ASSERT_TRUE(p.Start());
  EXPECT_EQ(p.PostWebhook(ReadFixture("emm_device_enrolled.json")), 202);
  EXPECT_TRUE(std::filesystem::exists(dir + "/from-env.db"));
  EXPECT_FALSE(std::filesystem::exists(dir + "/hookfan.db"));
}

TEST_F(WebhookE2ETest, HealthAndReadiness) {
  httplib::Client c = Http();
  auto health = c.Get("/healthz");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  auto ready = c.Get("/readyz");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 200);
}

TEST_F(WebhookE2ETest, GetEventBySequenceAndId) {
  Posted p = PostFixture("apple_push_certification_renovation.json");
  ASSERT_EQ(p.status, 202);
  grpc::ClientContext ctx1;
  v1::GetEventRequest by_seq;
  by_seq.set_sequence(1);
  v1::GetEventResponse r1;
  ASSERT_TRUE(stub_->GetEvent(&ctx1, by_seq, &r1).ok());
  EXPECT_EQ(r1.event().id(), p.body["id"].get<std::string>());
  grpc::ClientContext ctx2;
  v1::GetEventRequest by_id;
  by_id.set_id(p.body["id"].get<std::string>());
  v1::GetEventResponse r2;
  ASSERT_TRUE(stub_->GetEvent(&ctx2, by_id, &r2).ok());
  EXPECT_EQ(r2.event().sequence(), 1u);
  grpc::ClientContext ctx3;
  v1::GetEventRequest missing;
  missing.set_sequence(99);
  EXPECT_EQ(stub_->GetEvent(&ctx3, missing, &r2).error_code(), grpc::StatusCode::NOT_FOUND);
  grpc::ClientContext ctx4;
  EXPECT_EQ(stub_->GetEvent(&ctx4, v1::GetEventRequest(), &r2).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(WebhookE2ETest, BadFilterIsInvalidArgument) {
  StreamCollector bad(stub_.get(), Request({"applivery.>.x"}));
  grpc::Status s = bad.WaitForEnd();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("\">\" must be the last token"));
}

TEST_F(WebhookE2ETest, SigtermEndsStreamsUnavailableWithResumeSequence) {
  // A drain ends streams with UNAVAILABLE and the sequence to resume after; resuming loses nothing.
  StreamCollector sub(stub_.get(), Request());
  for (int i = 0; i < 3; ++i) ASSERT_EQ(PostFixture("emm_device_enrolled.json").status, 202);
  ASSERT_TRUE(sub.WaitFor(3));
  int status = hookfan_->Terminate();
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  grpc::Status end = sub.WaitForEnd();
  EXPECT_EQ(end.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(sub.Trailer("hookfan-resume-after"), "3");

  StartHookfan();
  for (int i = 0; i < 2; ++i) ASSERT_EQ(PostFixture("emm_device_enrolled.json").status, 202);
  v1::SubscribeRequest resume;
  resume.mutable_start()->set_after_sequence(3);
  StreamCollector resumed(stub_.get(), resume);
  ASSERT_TRUE(resumed.WaitFor(2));
  EXPECT_EQ(resumed.events()[0].sequence(), 4u);
  EXPECT_EQ(resumed.events()[1].sequence(), 5u);
}

TEST_F(WebhookE2ETest, SigtermDuringPostingAndStreamingLosesNothingAndResumesWithoutGap) {
  // Senders post and a subscriber streams while SIGTERM drains the process:
  // every 2xx event reaches the subscriber, before the drain or after it
  // resumes on a restarted process from the trailer's sequence, with no gap.
  StreamCollector sub(stub_.get(), Request({}, /*earliest=*/true));
  Senders senders(*hookfan_);
  // Drained mid-load, once the subscriber has seen some of it.
  ASSERT_TRUE(sub.WaitFor(100));
  int status = hookfan_->Terminate();
  std::set<std::string> acked = senders.Stop();
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  ASSERT_GT(acked.size(), 0u);
  EXPECT_EQ(sub.WaitForEnd().error_code(), grpc::StatusCode::UNAVAILABLE);
  uint64_t resume_after = std::stoull(sub.Trailer("hookfan-resume-after"));

  StartHookfan();
  v1::SubscribeRequest resume = Request();
  resume.mutable_start()->set_after_sequence(resume_after);
  StreamCollector resumed(stub_.get(), resume);
  std::vector<v1::Event> seen = sub.events();
  ASSERT_TRUE(resumed.WaitFor(acked.size() - std::min(acked.size(), seen.size())));
  for (const v1::Event& e : resumed.events()) seen.push_back(e);
  std::set<std::string> seen_ids;
  for (size_t i = 0; i < seen.size(); ++i) {
    ASSERT_EQ(seen[i].sequence(), i + 1) << "gap or duplicate at " << i;
    seen_ids.insert(seen[i].id());
  }
  for (const std::string& id : acked) EXPECT_TRUE(seen_ids.contains(id)) << id;
}

TEST(AppliveryShorthandTest, ARetriedWebhookIsAnsweredWithTheFirstIdAndStoredOnce) {
  // The flag-only setup dedups Applivery bodies for 10 minutes by default.
  std::string dir = MakeTempDir();
  HookfanProcess p({.data_dir = dir, .applivery_dedup = true});
  ASSERT_TRUE(p.Start());
  httplib::Client c("127.0.0.1", p.http_port());
  std::string body = ReadFixture("emm_device_enrolled.json");
  auto first = c.Post(p.webhook_path(), body, "application/json");
  auto retry = c.Post(p.webhook_path(), body, "application/json");
  ASSERT_TRUE(first && retry);
  EXPECT_EQ(first->status, 202);
  EXPECT_EQ(retry->status, 200);
  nlohmann::json a = nlohmann::json::parse(first->body), b = nlohmann::json::parse(retry->body);
  EXPECT_EQ(b["id"], a["id"]);
  EXPECT_EQ(b["sequence"], 1);
  EXPECT_EQ(b["duplicate"], true);
  EXPECT_EQ(c.Post(p.webhook_path(), ReadFixture("win_device_added_mdm_user.json"),
                   "application/json")->status,
            202);
}

}  // namespace
}  // namespace hookfan::testing
