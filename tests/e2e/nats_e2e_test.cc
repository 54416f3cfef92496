// hookfan replicas on one NATS JetStream (--store nats://…), as the cluster
// overlay runs them: real binaries, a real nats-server, loopback only.

#include <httplib.h>
#include <nats/nats.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/sync.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "hookfan/group_consumer.h"
#include "hookfan/subscriber.h"
#include "nlohmann/json.hpp"
#include "tests/e2e/hookfan_process.h"
#include "tests/nats/nats_server.h"

namespace hookfan::testing {
namespace {

using ::testing::Contains;

// Posts the enrollment fixture from several threads until stopped, through
// NATS outages: remembers the ids answered 202 and counts other answers.
class Poster {
 public:
  Poster(const HookfanProcess& hookfan, int threads = 4) {
    for (int t = 0; t < threads; ++t) {
      threads_.emplace_back([this, port = hookfan.http_port(), path = hookfan.webhook_path()] {
        httplib::Client c("127.0.0.1", port);
        c.set_read_timeout(30, 0);
        const std::string body = ReadFixture("emm_device_enrolled.json");
        while (!stop_) {
          auto res = c.Post(path, body, "application/json");
          std::lock_guard<std::mutex> l(mu_);
          if (!res) {
            ++failed_;
            if (dead_) return;  // the replica is gone
          } else if (res->status == 202) {
            acked_.push_back(nlohmann::json::parse(res->body)["id"].get<std::string>());
          } else {
            ++refused_[res->status];
            if (res->status == 503 && res->get_header_value("Retry-After").empty()) {
              ++missing_retry_after_;
            }
          }
          // The sender's pace after a refusal, not a synchronization.
          if (!res || res->status != 202) absl::SleepFor(absl::Milliseconds(20));
        }
      });
    }
  }
  ~Poster() { Stop(); }

  // The replica was killed: senders stop at their first failed request.
  void ReplicaDied() {
    std::lock_guard<std::mutex> l(mu_);
    dead_ = true;
  }
  size_t acked() {
    std::lock_guard<std::mutex> l(mu_);
    return acked_.size();
  }
  int refused(int status) {
    std::lock_guard<std::mutex> l(mu_);
    return refused_[status];
  }
  int missing_retry_after() {
    std::lock_guard<std::mutex> l(mu_);
    return missing_retry_after_;
  }
  // Stops and joins; returns the ids answered 202, in answer order.
  std::vector<std::string> Stop() {
    stop_ = true;
    for (std::thread& t : threads_) {
      if (t.joinable()) t.join();
    }
    std::lock_guard<std::mutex> l(mu_);
    return acked_;
  }

 private:
  std::atomic<bool> stop_ = false;
  std::mutex mu_;
  bool dead_ = false;
  std::vector<std::string> acked_;
  std::map<int, int> refused_;
  int failed_ = 0;
  int missing_retry_after_ = 0;
  std::vector<std::thread> threads_;
};

class NatsE2ETest : public ::testing::Test {
 protected:
  void SetUp() override {
    nats_ = std::make_unique<NatsServer>(MakeTempDir());
    ASSERT_TRUE(nats_->Start());
  }

  // A hookfan replica on the test's NATS.
  std::unique_ptr<HookfanProcess> StartReplica() {
    auto replica = std::make_unique<HookfanProcess>(HookfanProcess::Options{
        .data_dir = MakeTempDir(), .extra_args = {"--store=" + nats_->url()}});
    EXPECT_TRUE(replica->Start());
    return replica;
  }

  static v1::SubscribeRequest From(uint64_t after_sequence) {
    v1::SubscribeRequest r;
    if (after_sequence == 0) {
      r.mutable_start()->set_earliest(true);
    } else {
      r.mutable_start()->set_after_sequence(after_sequence);
    }
    return r;
  }

  static ConnectionOptions Connection(const HookfanProcess& replica) {
    ConnectionOptions c;
    c.target = replica.grpc_address();
    c.initial_backoff = absl::Milliseconds(50);
    c.max_backoff = absl::Milliseconds(500);
    c.log = [](absl::string_view) {};
    return c;
  }

  static int Get(const HookfanProcess& replica, const std::string& path) {
    httplib::Client c("127.0.0.1", replica.http_port());
    auto res = c.Get(path);
    return res ? res->status : 0;
  }

  std::unique_ptr<NatsServer> nats_;
};

// The start-up line names the store.
TEST_F(NatsE2ETest, StartsOnTheNatsStore) {
  auto a = StartReplica();
  std::vector<std::string> lines = a->Lines();
  ASSERT_FALSE(lines.empty());
  nlohmann::json listening = nlohmann::json::parse(lines.back());
  EXPECT_EQ(listening["store"], nats_->url() + " stream HOOKFAN");
  EXPECT_EQ(Get(*a, "/readyz"), 200);
}

// A webhook posted to replica A reaches a subscriber on replica B, live and
// when B's subscriber catches up from the start.
TEST_F(NatsE2ETest, WebhookPostedToOneReplicaReachesSubscribersOfAnother) {
  auto a = StartReplica();
  auto b = StartReplica();
  auto stub_b = b->NewStub();
  v1::SubscribeRequest latest;
  StreamCollector live(stub_b.get(), latest);
  std::vector<std::string> posted;
  for (int i = 0; i < 5; ++i) {
    httplib::Client c("127.0.0.1", (i % 2 == 0 ? a : b)->http_port());
    auto res = c.Post((i % 2 == 0 ? a : b)->webhook_path(),
                      ReadFixture("emm_device_enrolled.json"), "application/json");
    ASSERT_TRUE(res && res->status == 202);
    posted.push_back(nlohmann::json::parse(res->body)["id"]);
  }
  ASSERT_TRUE(live.WaitFor(5));
  StreamCollector replay(stub_b.get(), From(0));
  ASSERT_TRUE(replay.WaitFor(5));
  for (StreamCollector* c : {&live, &replay}) {
    std::vector<std::string> ids;
    for (const v1::Event& e : c->events()) ids.push_back(e.id());
    EXPECT_EQ(ids, posted);
  }
  EXPECT_EQ(replay.events()[4].sequence(), 5u);
}

// #18: the device directory is shared by the replicas. NanoMDM's
// Authenticate (which names the serial number) reaches one replica, its
// later TokenUpdate (UDID alone) the other, whose memory knows nothing of
// the device: the TokenUpdate is stored with the serial number, and a
// subscriber on the serial number sees both.
TEST_F(NatsE2ETest, ReplicasShareTheDeviceDirectory) {
  const std::string dir = MakeTempDir();
  std::ofstream(dir + "/nanomdm") << "nano-pass\n";
  std::ofstream(dir + "/admin") << "admin-token\n";
  std::ofstream(dir + "/sources.yaml") << absl::StrCat(R"(sources:
  - name: nanomdm
    normalizer: nanomdm
    auth: {type: basic, username: nanomdm, secrets: [{file: )", dir, R"(/nanomdm}]}
subscribers:
  - name: admin
    tokens: [{file: )", dir, R"(/admin}]
    types: [">"]
)");
  auto start = [&] {
    auto replica = std::make_unique<HookfanProcess>(
        HookfanProcess::Options{.data_dir = MakeTempDir(),
                                .sources_file = dir + "/sources.yaml",
                                .extra_args = {"--store=" + nats_->url()}});
    EXPECT_TRUE(replica->Start());
    return replica;
  };
  auto a = start();
  auto b = start();
  const httplib::Headers basic = {
      {"Authorization", "Basic " + absl::Base64Escape("nanomdm:nano-pass")}};
  for (auto [replica, fixture] : {std::pair{a.get(), "nanomdm/authenticate.json"},
                                  std::pair{b.get(), "nanomdm/token_update.json"}}) {
    httplib::Client c("127.0.0.1", replica->http_port());
    auto res = c.Post("/webhooks/nanomdm", basic, ReadFixture(fixture), "application/json");
    ASSERT_TRUE(res) << fixture;
    ASSERT_EQ(res->status, 200) << fixture << ": " << res->body;
  }
  auto stub = b->NewStub();
  v1::SubscribeRequest by_serial = From(0);
  by_serial.mutable_filter()->add_serial_numbers("C02HF1ZKQ6L4");
  StreamCollector serial(stub.get(), by_serial, "admin-token");
  ASSERT_TRUE(serial.WaitFor(2));
  const std::vector<v1::Event> events = serial.events();
  EXPECT_EQ(events[0].type(), "nanomdm.device.authenticated");
  EXPECT_EQ(events[1].type(), "nanomdm.device.token_updated");
  EXPECT_EQ(events[1].device().serial_number(), "C02HF1ZKQ6L4");
  EXPECT_EQ(events[1].device().udid(), "0A4C5E2B-7F31-4D8E-9B62-3C1D5A7E9F04");
}

// One consumer group, a member on each replica: every event handled once.
TEST_F(NatsE2ETest, ConsumerGroupIsSharedByMembersOnDifferentReplicas) {
  auto a = StartReplica();
  auto b = StartReplica();
  Mutex mu;
  std::map<uint64_t, int> handled;  // sequence -> times
  std::map<std::string, int> per_member;
  auto member = [&](const HookfanProcess& replica, std::string name) {
    GroupConsumer::Options options;
    options.connection = Connection(replica);
    options.open.set_group("billing");
    options.open.mutable_start()->set_earliest(true);
    options.open.set_max_in_flight(2);
    auto consumer = std::make_unique<GroupConsumer>(options);
    std::thread thread([&, c = consumer.get(), name] {
      c->Run([&](const v1::Delivery& d) {
         absl::SleepFor(absl::Milliseconds(10));  // work, so both members get some
         MutexLock lock(&mu);
         ++handled[d.event().sequence()];
         ++per_member[name];
         return absl::OkStatus();
       }).IgnoreError();
    });
    return std::make_pair(std::move(consumer), std::move(thread));
  };
  auto [on_a, thread_a] = member(*a, "a");
  auto [on_b, thread_b] = member(*b, "b");
  // Both members have joined before the first event: a member that joins
  // late under load would find the other one done with everything.
  auto billing_on = [](const HookfanProcess& replica) {
    auto stub = replica.NewStub();
    grpc::ClientContext context;
    v1::ListGroupsRequest request;
    v1::ListGroupsResponse response;
    v1::GroupInfo billing;
    if (!stub->ListGroups(&context, request, &response).ok()) return billing;
    for (const v1::GroupInfo& group : response.groups()) {
      if (group.name() == "billing") billing = group;
    }
    return billing;
  };
  auto members_on = [&](const HookfanProcess& replica) { return billing_on(replica).members(); };
  const bool joined = Eventually(
      [&] { return members_on(*a) == 1 && members_on(*b) == 1; }, absl::Seconds(30));
  if (!joined) {
    on_a->Cancel();
    on_b->Cancel();
    thread_a.join();
    thread_b.join();
  }
  ASSERT_TRUE(joined) << "a member did not join (a group created by two replicas at once)";
  constexpr int kEvents = 40;
  for (int i = 0; i < kEvents; ++i) {
    ASSERT_EQ((i % 2 == 0 ? a : b)->PostWebhook(ReadFixture("emm_device_enrolled.json")), 202);
  }
  {
    MutexLock lock(&mu);
    auto all = [&] { return handled.size() >= kEvents; };
    ASSERT_TRUE(mu.AwaitWithTimeout(absl::Condition(&all), absl::Seconds(60)));
  }
  // Once all are acked nothing is due for redelivery, and the replicas have
  // counted every lease they handed out: one per event, none a second time.
  EXPECT_TRUE(
      Eventually([&] { return billing_on(*a).ack_floor() >= kEvents; }, absl::Seconds(30)));
  EXPECT_EQ(
      Metric(*a, "hookfan_group_deliveries_total") + Metric(*b, "hookfan_group_deliveries_total"),
      kEvents);
  EXPECT_EQ(Metric(*a, "hookfan_group_redeliveries_total") +
                Metric(*b, "hookfan_group_redeliveries_total"),
            0);
  on_a->Cancel();
  on_b->Cancel();
  thread_a.join();
  thread_b.join();
  MutexLock lock(&mu);
  EXPECT_EQ(handled.size(), static_cast<size_t>(kEvents));
  for (const auto& [sequence, times] : handled) EXPECT_EQ(times, 1) << sequence;
  EXPECT_GT(per_member["a"], 0);
  EXPECT_GT(per_member["b"], 0);
}

// kill -9 of a replica under load: every event it answered 202 reaches a
// subscriber that resumes on the other replica after the last event it got
// from the dead one.
TEST_F(NatsE2ETest, KilledReplicaLosesNothingItAcknowledged) {
  auto a = StartReplica();
  auto b = StartReplica();
  auto stub_a = a->NewStub();
  auto from_a = std::make_unique<StreamCollector>(stub_a.get(), From(0));
  Poster poster(*a);
  absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (poster.acked() < 200 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(20));
  poster.ReplicaDied();
  a->Kill();
  std::vector<std::string> acked = poster.Stop();
  ASSERT_GE(acked.size(), 200u);

  std::vector<v1::Event> got = from_a->events();
  uint64_t resume = got.empty() ? 0 : got.back().sequence();
  from_a.reset();
  auto stub_b = b->NewStub();
  StreamCollector on_b(stub_b.get(), From(resume));
  std::set<std::string> seen;
  for (const v1::Event& e : got) seen.insert(e.id());
  ASSERT_TRUE(on_b.WaitFor(acked.size() - std::min(acked.size(), seen.size())));
  uint64_t previous = resume;
  for (const v1::Event& e : on_b.events()) {
    EXPECT_EQ(e.sequence(), previous + 1);  // no gap, no repeat
    previous = e.sequence();
    seen.insert(e.id());
  }
  for (const std::string& id : acked) EXPECT_TRUE(seen.contains(id)) << id;
}

// NATS stops: webhooks get 503 with Retry-After (never 202), /readyz says
// not ready, streams end UNAVAILABLE with a resume sequence. NATS returns:
// webhooks are accepted again and a subscriber that resumes gets every
// acknowledged event once, in order.
TEST_F(NatsE2ETest, NatsOutageRefusesWebhooksAndLosesNothing) {
  auto a = StartReplica();
  auto stub = a->NewStub();
  StreamCollector raw(stub.get(), From(0));
  Subscriber::Options options;
  options.connection = Connection(*a);
  options.start.set_earliest(true);
  Subscriber subscriber(options);
  std::vector<std::string> received;
  std::mutex received_mu;
  std::thread reader([&] {
    subscriber.Run([&](const v1::Event& e) {
       std::lock_guard<std::mutex> l(received_mu);
       received.push_back(e.id());
       return true;
     }).IgnoreError();
  });

  Poster poster(*a, 2);
  absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (poster.acked() < 50 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(20));
  nats_->Stop();
  grpc::Status ended = raw.WaitForEnd();
  EXPECT_EQ(ended.error_code(), grpc::StatusCode::UNAVAILABLE) << ended.error_message();
  const std::string resume = raw.Trailer("hookfan-resume-after");
  EXPECT_FALSE(resume.empty());
  // #25 item 8: the store's one message, not nats.c's internals.
  EXPECT_EQ(ended.error_message(),
            "the event store is unavailable; retry; resume after sequence " + resume);
  // A re-subscribe refused during the outage is told where to resume too.
  uint64_t resume_after = 0;
  ASSERT_TRUE(absl::SimpleAtoi(resume, &resume_after)) << resume;
  StreamCollector again(stub.get(), From(std::max<uint64_t>(resume_after, 1)));
  grpc::Status refused = again.WaitForEnd();
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::UNAVAILABLE) << refused.error_message();
  EXPECT_EQ(refused.error_message().rfind("the event store is unavailable; retry", 0), 0u)
      << refused.error_message();
  EXPECT_EQ(again.Trailer("hookfan-resume-after"), absl::StrCat(std::max<uint64_t>(resume_after, 1)));
  deadline = absl::Now() + absl::Seconds(20);
  while (poster.refused(503) < 5 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(20));
  EXPECT_GE(poster.refused(503), 5);
  EXPECT_EQ(Get(*a, "/readyz"), 503);
  size_t acked_while_down = poster.acked();

  ASSERT_TRUE(nats_->Start());
  deadline = absl::Now() + absl::Seconds(30);
  while (poster.acked() < acked_while_down + 50 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  std::vector<std::string> acked = poster.Stop();
  EXPECT_GE(acked.size(), acked_while_down + 50) << "webhooks were not accepted again";
  EXPECT_EQ(poster.missing_retry_after(), 0);
  // Readiness follows the write probe (NatsEventLog::kProbeInterval), which
  // may lag the first appends taken after NATS returns by a probe or two.
  EXPECT_TRUE(Eventually([&] { return Get(*a, "/readyz") == 200; }, absl::Seconds(10)));

  // Wait for the acknowledged ids themselves, not a count: an append whose
  // answer was lost in the outage is stored but was answered 503, and
  // counts among the received without being among the acknowledged.
  auto missing = [&] {
    std::lock_guard<std::mutex> l(received_mu);
    std::set<std::string> got(received.begin(), received.end());
    return std::count_if(acked.begin(), acked.end(),
                         [&](const std::string& id) { return !got.contains(id); });
  };
  deadline = absl::Now() + absl::Seconds(30);
  while (missing() > 0 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(50));
  subscriber.Cancel();
  reader.join();
  std::set<std::string> unique(received.begin(), received.end());
  EXPECT_EQ(unique.size(), received.size()) << "an event was delivered twice";
  for (const std::string& id : acked) EXPECT_THAT(received, Contains(id));
}

// The enrollment fixture made distinct by `n` (the Applivery dedup key is
// the body).
std::string EnrollmentBody(int n) {
  return absl::StrReplaceAll(ReadFixture("emm_device_enrolled.json"),
                             {{"Applivery Test", absl::StrCat("Applivery Test ", n)}});
}

// Counts every message published on a nats-server (a subscriber on ">"
// receives JetStream publishes even when JetStream refuses them, and API
// requests and replies), as nats-server's in_msgs would.
class NatsMessageCounter {
 public:
  explicit NatsMessageCounter(const std::string& url) {
    EXPECT_EQ(natsConnection_ConnectTo(&nc_, url.c_str()), NATS_OK);
    EXPECT_EQ(natsConnection_Subscribe(&sub_, nc_, ">", &NatsMessageCounter::OnMsg, this), NATS_OK);
    EXPECT_EQ(natsConnection_Flush(nc_), NATS_OK);  // subscribed from here on
  }
  ~NatsMessageCounter() {
    natsSubscription_Destroy(sub_);
    natsConnection_Destroy(nc_);
  }
  uint64_t count() const { return count_.load(); }

 private:
  static void OnMsg(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
    static_cast<NatsMessageCounter*>(closure)->count_.fetch_add(1);
    natsMsg_Destroy(msg);
  }
  natsConnection* nc_ = nullptr;
  natsSubscription* sub_ = nullptr;
  std::atomic<uint64_t> count_ = 0;
};

// #25 items 2 and 5: while NATS is frozen a webhook is answered 503 with
// Retry-After within --store-timeout (not after nats.c's stale-connection
// detection), and its identical retry after NATS continues is taken at
// once (no claim left by the refused attempt blocks it).
TEST_F(NatsE2ETest, FrozenNatsAnswersWebhooksWithinTheStoreTimeout) {
  HookfanProcess replica({.data_dir = MakeTempDir(),
                          .applivery_dedup = true,
                          .extra_args = {"--store=" + nats_->url(), "--store-timeout=2s"}});
  ASSERT_TRUE(replica.Start());
  httplib::Client c("127.0.0.1", replica.http_port());
  c.set_read_timeout(30, 0);
  ASSERT_TRUE(Eventually([&] { return Get(replica, "/readyz") == 200; }, absl::Seconds(20)));
  auto first = c.Post(replica.webhook_path(), EnrollmentBody(0), "application/json");
  ASSERT_TRUE(first);
  EXPECT_EQ(first->status, 202);

  nats_->Pause();
  absl::Time start = absl::Now();
  auto frozen = c.Post(replica.webhook_path(), EnrollmentBody(1), "application/json");
  const absl::Duration took = absl::Now() - start;
  nats_->Resume();
  ASSERT_TRUE(frozen);
  EXPECT_EQ(frozen->status, 503) << frozen->body;
  EXPECT_FALSE(frozen->get_header_value("Retry-After").empty());
  EXPECT_LT(took, absl::Milliseconds(3000)) << "answered after " << took;
  RecordProperty("frozen_webhook_ms", absl::ToInt64Milliseconds(took));

  ASSERT_TRUE(Eventually([&] { return Get(replica, "/readyz") == 200; }, absl::Seconds(20)));
  start = absl::Now();
  auto retry = c.Post(replica.webhook_path(), EnrollmentBody(1), "application/json");
  const absl::Duration retry_took = absl::Now() - start;
  ASSERT_TRUE(retry);
  // Taken (202), or, when the frozen attempt's publish reached JetStream as
  // it resumed, found (200 duplicate): a 503 after the timeout does not
  // say the write never lands, only that it is safe to retry.
  const nlohmann::json retried = nlohmann::json::parse(retry->body, nullptr, false);
  EXPECT_TRUE(retry->status == 202 || (retry->status == 200 && retried.value("duplicate", false)))
      << retry->status << " " << retry->body;
  EXPECT_LT(retry_took, absl::Seconds(1)) << "the retry was answered after " << retry_took;
  RecordProperty("retry_after_resume_us", absl::ToInt64Microseconds(retry_took));
  // Stored once: the same body again is the duplicate of that one event.
  auto again = c.Post(replica.webhook_path(), EnrollmentBody(1), "application/json");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 200) << again->body;
  const nlohmann::json duplicate = nlohmann::json::parse(again->body, nullptr, false);
  EXPECT_EQ(duplicate.value("sequence", 0), retried.value("sequence", -1)) << again->body;
}

// #25 items 4 and 5: a JetStream out of storage refuses a webhook at once,
// with a handful of NATS messages (no retry loop), counts it in
// hookfan_store_refusals_total{reason="out_of_storage"}, and once storage
// is back the identical retry is taken at once.
TEST_F(NatsE2ETest, OutOfStorageRefusesWebhooksAtOnceAndTheirRetryIsTakenAfter) {
  auto full = std::make_unique<NatsServer>(MakeTempDir(),
                                           NatsServer::Options{.max_file_store = 256 << 10});
  ASSERT_TRUE(full->Start());
  HookfanProcess replica({.data_dir = MakeTempDir(),
                          .applivery_dedup = true,
                          .extra_args = {"--store=" + full->url()}});
  ASSERT_TRUE(replica.Start());
  httplib::Client c("127.0.0.1", replica.http_port());
  c.set_read_timeout(30, 0);
  int n = 0;
  ASSERT_TRUE(Eventually(
      [&] {
        auto res = c.Post(replica.webhook_path(), EnrollmentBody(n++), "application/json");
        return res && res->status == 503;
      },
      absl::Seconds(120), [] {}))
      << "JetStream never refused a write";

  const int refused_body = n++;
  auto counter = std::make_unique<NatsMessageCounter>(full->url());
  absl::Time start = absl::Now();
  auto res = c.Post(replica.webhook_path(), EnrollmentBody(refused_body), "application/json");
  const absl::Duration took = absl::Now() - start;
  const uint64_t sent = counter->count();
  counter.reset();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 503) << res->body;
  EXPECT_FALSE(res->get_header_value("Retry-After").empty());
  EXPECT_LT(took, absl::Seconds(1)) << "refused after " << took;
  // The refused claim write and its reply, the key read and its reply, and
  // perhaps a readiness probe: not a loop.
  EXPECT_LE(sent, 12u) << "one refused webhook sent " << sent << " NATS messages";
  RecordProperty("refused_webhook_us", absl::ToInt64Microseconds(took));
  RecordProperty("refused_webhook_nats_messages", static_cast<int>(sent));
  httplib::Client m("127.0.0.1", replica.http_port());
  auto metrics = m.Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_THAT(metrics->body,
              ::testing::HasSubstr("hookfan_store_refusals_total{reason=\"out_of_storage\"}"));
  // #25 item 1: the write probe finds the store full too.
  EXPECT_TRUE(Eventually([&] { return Get(replica, "/readyz") == 503; }, absl::Seconds(3)))
      << "/readyz stayed ready with JetStream out of storage";

  // Storage is back (a larger limit on the same store and port).
  const std::string dir = full->store_dir();
  const int port = full->port();
  full->Stop();
  full = std::make_unique<NatsServer>(dir, NatsServer::Options{.port = port});
  ASSERT_TRUE(full->Start());
  ASSERT_TRUE(Eventually([&] { return Get(replica, "/readyz") == 200; }, absl::Seconds(30)));
  start = absl::Now();
  auto retry = c.Post(replica.webhook_path(), EnrollmentBody(refused_body), "application/json");
  const absl::Duration retry_took = absl::Now() - start;
  ASSERT_TRUE(retry);
  EXPECT_EQ(retry->status, 202) << retry->body;
  EXPECT_LT(retry_took, absl::Seconds(1)) << "the retry was answered after " << retry_took;
  RecordProperty("retry_after_recovery_us", absl::ToInt64Microseconds(retry_took));
}


// #25 item 6: started before NATS answers, hookfan listens at once, is alive
// and not ready (saying what it waits for), refuses webhooks with
// Retry-After, and serves once NATS comes up, with no restart.
TEST_F(NatsE2ETest, StartsBeforeNatsAndServesOnceItAnswers) {
  nats_->Stop();  // keeps its port: hookfan is pointed at a server not up yet
  HookfanProcess replica({.data_dir = MakeTempDir(),
                          .extra_args = {"--store=" + nats_->url()}});
  ASSERT_TRUE(replica.Start()) << "hookfan did not listen without NATS";
  httplib::Client c("127.0.0.1", replica.http_port());
  auto alive = c.Get("/healthz");
  ASSERT_TRUE(alive);
  EXPECT_EQ(alive->status, 200);
  auto ready = c.Get("/readyz");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 503);
  EXPECT_THAT(ready->body, ::testing::HasSubstr("waiting for NATS at " + nats_->url()));
  auto refused = c.Post(replica.webhook_path(), ReadFixture("emm_device_enrolled.json"),
                        "application/json");
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 503) << refused->body;
  EXPECT_FALSE(refused->get_header_value("Retry-After").empty());
  // A subscriber that connects now is told to come back, not ended for good.
  auto stub = replica.NewStub();
  StreamCollector early(stub.get(), From(0));
  EXPECT_EQ(early.WaitForEnd().error_code(), grpc::StatusCode::UNAVAILABLE);

  // NATS comes up: the reconnect backoff (at most 2 s) bounds the wait.
  ASSERT_TRUE(nats_->Start());
  const absl::Time up = absl::Now();
  ASSERT_TRUE(Eventually([&] { return Get(replica, "/readyz") == 200; }, absl::Seconds(10)));
  RecordProperty("ready_after_nats_ms", absl::ToInt64Milliseconds(absl::Now() - up));
  auto taken = c.Post(replica.webhook_path(), ReadFixture("emm_device_enrolled.json"),
                      "application/json");
  ASSERT_TRUE(taken);
  EXPECT_EQ(taken->status, 202) << taken->body;
  StreamCollector late(stub.get(), From(0));
  EXPECT_TRUE(late.WaitFor(1));
}

// #25 items 1 and 3: NATS frozen under load. Every webhook worker is held
// by a sender waiting for the store, yet /healthz and /readyz answer at
// once; /readyz turns 503 within 3 s of the freeze and 200 within 3 s of
// the server continuing.
TEST_F(NatsE2ETest, HealthAnswersAtOnceAndReadinessFollowsAFrozenNats) {
  HookfanProcess replica({.data_dir = MakeTempDir(),
                          .extra_args = {"--store=" + nats_->url(), "--http-threads=2"}});
  ASSERT_TRUE(replica.Start());
  ASSERT_TRUE(Eventually([&] { return Get(replica, "/readyz") == 200; }, absl::Seconds(20)));
  // Each health check on a new connection, as a kubelet makes them.
  absl::Duration slowest = absl::ZeroDuration();
  auto check = [&](const char* path) {
    httplib::Client c("127.0.0.1", replica.http_port());
    c.set_read_timeout(5, 0);
    const absl::Time start = absl::Now();
    auto res = c.Get(path);
    slowest = std::max(slowest, absl::Now() - start);
    return res ? res->status : 0;
  };

  Poster poster(replica, 8);  // four senders for each of the two workers
  ASSERT_TRUE(Eventually([&] { return poster.acked() >= 20; }, absl::Seconds(20)));
  nats_->Pause();
  const absl::Time frozen = absl::Now();
  ASSERT_TRUE(Eventually([&] { return check("/readyz") == 503; }, absl::Seconds(10),
                         [] { absl::SleepFor(absl::Milliseconds(50)); }));
  const absl::Duration not_ready_after = absl::Now() - frozen;
  // The workers are all held now: a webhook waits for the store timeout.
  const absl::Time probing_until = absl::Now() + absl::Seconds(2);
  while (absl::Now() < probing_until) {
    EXPECT_EQ(check("/healthz"), 200);
    EXPECT_EQ(check("/readyz"), 503);
    absl::SleepFor(absl::Milliseconds(50));  // the probes' pace
  }
  nats_->Resume();
  const absl::Time resumed = absl::Now();
  ASSERT_TRUE(Eventually([&] { return check("/readyz") == 200; }, absl::Seconds(10),
                         [] { absl::SleepFor(absl::Milliseconds(50)); }));
  const absl::Duration ready_after = absl::Now() - resumed;
  const size_t acked_at_resume = poster.acked();
  EXPECT_TRUE(Eventually([&] { return poster.acked() > acked_at_resume; }, absl::Seconds(10)));
  poster.Stop();

  EXPECT_LT(not_ready_after, absl::Seconds(3));
  EXPECT_LT(ready_after, absl::Seconds(3));
  EXPECT_LT(slowest, absl::Milliseconds(100) * kTimeFactor)
      << "a health check took " << slowest;
  RecordProperty("not_ready_after_freeze_ms", absl::ToInt64Milliseconds(not_ready_after));
  RecordProperty("ready_after_resume_ms", absl::ToInt64Milliseconds(ready_after));
  RecordProperty("slowest_health_check_us", absl::ToInt64Microseconds(slowest));
}

// #25 item 7: --retention-max-bytes bounds every stream hookfan keeps on
// JetStream (events, AppendOnce keys, dead letters); without it hookfan
// says at start that nothing keeps JetStream's disk from filling.
TEST_F(NatsE2ETest, RetentionMaxBytesBoundsEveryStreamHookfanKeeps) {
  HookfanProcess unbounded({.data_dir = MakeTempDir(), .extra_args = {"--store=" + nats_->url()}});
  ASSERT_TRUE(unbounded.Start());
  auto warned = [](HookfanProcess& replica) {
    for (const std::string& line : replica.Lines()) {
      if (line.find("the NATS store has no byte limit") != std::string::npos) return true;
    }
    return false;
  };
  EXPECT_TRUE(warned(unbounded));
  EXPECT_EQ(unbounded.Terminate(), 0);

  HookfanProcess bounded({.data_dir = MakeTempDir(),
                          .extra_args = {"--store=" + nats_->url(),
                                         "--retention-max-bytes=67108864"}});
  ASSERT_TRUE(bounded.Start());
  EXPECT_FALSE(warned(bounded));
  natsConnection* nc = nullptr;
  jsCtx* js = nullptr;
  ASSERT_EQ(natsConnection_ConnectTo(&nc, nats_->url().c_str()), NATS_OK);
  ASSERT_EQ(natsConnection_JetStream(&js, nc, nullptr), NATS_OK);
  auto max_bytes = [&](const char* stream) {
    jsStreamInfo* info = nullptr;
    if (js_GetStreamInfo(&info, js, stream, nullptr, nullptr) != NATS_OK) return int64_t{0};
    const int64_t limit = info->Config->MaxBytes;
    jsStreamInfo_Destroy(info);
    return limit;
  };
  // The streams the first replica created without limits get them now.
  EXPECT_EQ(max_bytes("HOOKFAN"), int64_t{64} << 20);
  EXPECT_EQ(max_bytes("KV_HOOKFAN_DEDUP"), int64_t{16} << 20);
  EXPECT_EQ(max_bytes("HOOKFAN_DEAD"), int64_t{8} << 20);
  EXPECT_EQ(max_bytes("KV_HOOKFAN_DEVICES"), int64_t{1} << 20);
  EXPECT_EQ(max_bytes("HOOKFAN_LATEST"), int64_t{16} << 20);
  jsCtx_Destroy(js);
  natsConnection_Destroy(nc);
}

// Snapshots need the latest view, which only the SQLite store keeps so far:
// a replica on NATS says so instead of starting somewhere else.
// kill -9 of the replica writing the latest view while webhooks go on to
// the other: the other takes the writing over, and its snapshot holds
// every device's newest events.
TEST_F(NatsE2ETest, TheLatestViewOutlivesTheReplicaWritingItKilled) {
  auto a = StartReplica();
  auto b = StartReplica();
  auto writing = [](const HookfanProcess& replica) {
    return Metric(replica, "hookfan_latest_view_writing");
  };
  // Webhooks to both until one writes the view and the other watches (a
  // writer that loses a race to write follows).
  int posted = 0;
  ASSERT_TRUE(Eventually(
      [&] {
        for (const std::string& body : DeviceWebhooks(posted % 20)) {
          EXPECT_EQ((posted % 2 ? a : b)->PostWebhook(body), 202);
        }
        ++posted;
        return posted >= 20 && writing(*a) + writing(*b) == 1;
      },
      absl::Seconds(60)));
  const bool a_writes = writing(*a) == 1;
  HookfanProcess& survivor = a_writes ? *b : *a;
  (a_writes ? a : b)->Kill();
  for (int i = 0; i < 20; ++i) {
    for (const std::string& body : DeviceWebhooks(i)) EXPECT_EQ(survivor.PostWebhook(body), 202);
  }
  const double last = Metric(survivor, "hookfan_events_appended_total");
  EXPECT_EQ(last, 2 * (posted + 20));
  ASSERT_TRUE(Eventually(
      [&] { return Metric(survivor, "hookfan_latest_view_through_sequence") == last; },
      absl::Seconds(30)));
  EXPECT_EQ(writing(survivor), 1);
  auto stub = survivor.NewStub();
  v1::SubscribeRequest snapshot;
  snapshot.mutable_start()->set_snapshot(true);
  StreamCollector collector(stub.get(), snapshot);
  ASSERT_TRUE(collector.WaitFor(40));
  std::set<std::pair<std::string, std::string>> entries;
  for (const v1::Event& e : collector.events()) {
    EXPECT_GT(e.sequence(), last - 40) << "not the newest of its device and type";
    entries.insert({e.key(), e.type()});
  }
  EXPECT_EQ(entries.size(), 40u);
  EXPECT_EQ(collector.InitialMetadata("hookfan-snapshot-through"), absl::StrCat(last));
}

// Snapshots, latest reads and snapshot groups work on NATS
// (snapshot_e2e_test.cc, nats_consumer_groups_test.cc); a replica kept
// without the view refuses them, saying why.
TEST_F(NatsE2ETest, WithoutTheLatestViewSnapshotsAreRefusedWithTheReason) {
  HookfanProcess without({.data_dir = MakeTempDir(),
                          .extra_args = {"--store=" + nats_->url(), "--latest-view=false"}});
  ASSERT_TRUE(without.Start());
  auto stub = without.NewStub();
  {
    grpc::ClientContext context;
    auto stream = stub->Consume(&context);
    v1::ConsumeRequest open;
    open.mutable_open()->set_group("inventory");
    open.mutable_open()->mutable_start()->set_snapshot(true);
    ASSERT_TRUE(stream->Write(open));
    stream->WritesDone();
    v1::ConsumeResponse response;
    while (stream->Read(&response)) {
    }
    grpc::Status status = stream->Finish();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
    EXPECT_THAT(status.error_message(),
                ::testing::HasSubstr("consumer group \"inventory\" cannot start from a snapshot"));
    EXPECT_THAT(status.error_message(), ::testing::HasSubstr("--latest-view=false"));
  }
  v1::SubscribeRequest snapshot;
  snapshot.mutable_start()->set_snapshot(true);
  StreamCollector refused(stub.get(), snapshot);
  grpc::Status status = refused.WaitForEnd();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(), ::testing::HasSubstr("--latest-view=false"));
  grpc::ClientContext context;
  v1::GetLatestRequest get;
  get.set_key("5f634c11034824062256e38c");
  v1::GetLatestResponse latest;
  EXPECT_EQ(stub->GetLatest(&context, get, &latest).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);

  HookfanProcess compacted({.data_dir = MakeTempDir(),
                            .extra_args = {"--store=" + nats_->url(), "--latest-view=false",
                                           "--retention-keep-latest"}});
  EXPECT_FALSE(compacted.Start());
}

}  // namespace
}  // namespace hookfan::testing
