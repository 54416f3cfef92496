// The JetStream log beyond the store contract (which runs against it in
// event_log_contract_test.cc): several replicas on one stream, NATS going
// away and coming back, and its configuration.

#include "nats/nats_event_log.h"

#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <latch>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "nats/nats_connection.h"
#include "common/sync.h"
#include "common/uuid.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/nats/nats_server.h"

namespace hookfan::broker {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

v1::Event NewEvent(std::string id, std::string type = "test.thing.happened") {
  v1::Event event;
  event.set_id(std::move(id));
  event.set_type(std::move(type));
  return event;
}

// Records what a log tells its listener, from its construction to its
// destruction (so that a test ending early leaves no dangling listener).
class Recorder : public CommitListener {
 public:
  explicit Recorder(EventLog* log) : log_(log) { log_->SetCommitListener(this); }
  ~Recorder() override { log_->SetCommitListener(nullptr); }

  void OnCommit(const std::vector<EventPtr>& events) override {
    MutexLock lock(&mu_);
    for (const EventPtr& e : events) ids_.push_back(e->event.id());
  }
  void OnStoreUnavailable(const absl::Status&) override {
    MutexLock lock(&mu_);
    ++unavailable_;
  }
  // Waits until `n` events were seen; returns their ids.
  std::vector<std::string> WaitForEvents(size_t n) {
    MutexLock lock(&mu_);
    auto enough = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return ids_.size() >= n; };
    mu_.AwaitWithTimeout(absl::Condition(&enough), absl::Seconds(20));
    return ids_;
  }
  bool WaitForUnavailable() {
    MutexLock lock(&mu_);
    auto told = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return unavailable_ > 0; };
    return mu_.AwaitWithTimeout(absl::Condition(&told), absl::Seconds(20));
  }

 private:
  EventLog* const log_;
  Mutex mu_;
  std::vector<std::string> ids_ ABSL_GUARDED_BY(mu_);
  int unavailable_ ABSL_GUARDED_BY(mu_) = 0;
};

class NatsEventLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string dir = ::testing::TempDir() + "nats_log_XXXXXX";
    ASSERT_NE(mkdtemp(dir.data()), nullptr);
    dir_ = dir;
    server_ = std::make_unique<testing::NatsServer>(dir_);
    ASSERT_TRUE(server_->Start());
  }
  void TearDown() override {
    logs_.clear();
    connections_.clear();
    server_.reset();
    std::filesystem::remove_all(dir_);
  }

  NatsOptions Options() {
    NatsOptions options;
    options.servers = {server_->url()};
    options.request_timeout = absl::Seconds(2);
    return options;
  }

  // One replica's log on the test server.
  NatsEventLog* OpenLog(NatsOptions options) {
    absl::StatusOr<std::unique_ptr<NatsConnection>> connection = NatsConnection::Connect(options);
    EXPECT_TRUE(connection.ok()) << connection.status();
    if (!connection.ok()) return nullptr;
    connections_.push_back(*std::move(connection));
    absl::StatusOr<std::unique_ptr<NatsEventLog>> log =
        NatsEventLog::Open(connections_.back().get());
    EXPECT_TRUE(log.ok()) << log.status();
    if (!log.ok()) return nullptr;
    logs_.push_back(*std::move(log));
    return logs_.back().get();
  }
  NatsEventLog* OpenLog() { return OpenLog(Options()); }

  std::string dir_;
  std::unique_ptr<testing::NatsServer> server_;
  std::vector<std::unique_ptr<NatsConnection>> connections_;
  std::vector<std::unique_ptr<NatsEventLog>> logs_;  // destroyed before connections_
};

TEST(ParseNatsServersTest, TakesOneOrSeveralServers) {
  EXPECT_THAT(*ParseNatsServers("nats://nats:4222"), ElementsAre("nats://nats:4222"));
  EXPECT_THAT(*ParseNatsServers("nats://a:4222,nats://b:4223,c:4224"),
              ElementsAre("nats://a:4222", "nats://b:4223", "nats://c:4224"));
  EXPECT_THAT(*ParseNatsServers("tls://a:4222,b:4222"),
              ElementsAre("tls://a:4222", "tls://b:4222"));
}

TEST(ParseNatsServersTest, RefusesWhatIsNotHostPort) {
  for (const char* bad : {"nats://", "nats://host", "nats://host:0", "nats://host:99999",
                          "nats://a:4222,", "http://a:4222", "a:4222"}) {
    EXPECT_EQ(ParseNatsServers(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

// An event appended through one replica reaches the listener of another,
// and both see one sequence order.
TEST_F(NatsEventLogTest, EveryReplicaSeesEveryAppend) {
  NatsEventLog* a = OpenLog();
  NatsEventLog* b = OpenLog();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  Recorder seen_by_a(a), seen_by_b(b);
  std::vector<v1::Event> one = {NewEvent("from-a")};
  ASSERT_EQ(a->Append(absl::MakeSpan(one)), absl::OkStatus());
  std::vector<v1::Event> two = {NewEvent("from-b")};
  ASSERT_EQ(b->Append(absl::MakeSpan(two)), absl::OkStatus());
  EXPECT_THAT(seen_by_a.WaitForEvents(2), ElementsAre("from-a", "from-b"));
  EXPECT_THAT(seen_by_b.WaitForEvents(2), ElementsAre("from-a", "from-b"));
  EXPECT_EQ(b->LastSequence(), 2u);
  absl::StatusOr<EventPtr> found = b->GetById("from-a");
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ((*found)->event.sequence(), 1u);
}

// A device one replica learned is known to another (its own memory holds
// nothing yet: the answer comes from the bucket).
TEST_F(NatsEventLogTest, EveryReplicaKnowsTheDevicesAnotherLearned) {
  NatsEventLog* a = OpenLog();
  NatsEventLog* b = OpenLog();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  std::vector<v1::Event> one = {NewEvent("authenticated")};
  one[0].mutable_device()->set_udid("00008103-000A1B2C3D4E5F60");
  one[0].mutable_device()->set_serial_number("C02XK1JQJG5H");
  ASSERT_EQ(a->Append(absl::MakeSpan(one)), absl::OkStatus());
  absl::StatusOr<std::string> serial = b->DeviceSerialNumber("00008103-000A1B2C3D4E5F60");
  ASSERT_TRUE(serial.ok()) << serial.status();
  EXPECT_EQ(*serial, "C02XK1JQJG5H");
  serial = b->DeviceSerialNumber("00008103-FFFFFFFFFFFFFFFF");
  ASSERT_TRUE(serial.ok()) << serial.status();
  EXPECT_EQ(*serial, "");
}

// A scan that finds its event ends its subscription while the rest of the
// stream is still arriving for it. With libnats 3.4.1 freeing it then could
// hang the connection's read loop (NatsConnection::EndSubscription): every
// later request timed out, within 35 scans here in each of three runs.
TEST_F(NatsEventLogTest, ScansEndingMidStreamKeepTheConnectionWorking) {
  NatsEventLog* log = OpenLog();
  ASSERT_NE(log, nullptr);
  for (int i = 0; i < 300; ++i) {
    std::vector<v1::Event> one = {NewEvent(absl::StrCat("scanned-", i))};
    ASSERT_EQ(log->Append(absl::MakeSpan(one)), absl::OkStatus());
  }
  for (int scan = 0; scan < 500; ++scan) {
    absl::StatusOr<EventPtr> found = log->GetById("scanned-0");
    ASSERT_TRUE(found.ok()) << found.status() << " (scan " << scan << ")";
    ASSERT_EQ((*found)->event.sequence(), 1u);
  }
}

// A log opened on a stream that already holds events continues after them
// and tells its listener only of new ones.
TEST_F(NatsEventLogTest, ReopenedLogContinuesTheStream) {
  NatsEventLog* first = OpenLog();
  std::vector<v1::Event> old = {NewEvent("old")};
  ASSERT_EQ(first->Append(absl::MakeSpan(old)), absl::OkStatus());
  NatsEventLog* second = OpenLog();
  ASSERT_NE(second, nullptr);
  EXPECT_EQ(second->LastSequence(), 1u);
  Recorder seen(second);
  std::vector<v1::Event> fresh = {NewEvent("new")};
  ASSERT_EQ(second->Append(absl::MakeSpan(fresh)), absl::OkStatus());
  EXPECT_EQ(fresh[0].sequence(), 2u);
  EXPECT_THAT(seen.WaitForEvents(1), ElementsAre("new"));
}

// Two replicas appending one key at once store it once.
TEST_F(NatsEventLogTest, AppendOnceIsRaceFreeAcrossReplicas) {
  std::vector<NatsEventLog*> replicas = {OpenLog(), OpenLog()};
  constexpr int kPerReplica = 4;
  std::latch start(2 * kPerReplica);
  std::atomic<int> stored{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 2 * kPerReplica; ++i) {
    threads.emplace_back([&, i] {
      start.arrive_and_wait();
      absl::StatusOr<AppendOnceResult> r = replicas[i % 2]->AppendOnce(
          NewEvent(absl::StrCat("e", i)), "source:key-1", absl::Minutes(10));
      ASSERT_TRUE(r.ok()) << r.status();
      if (!r->duplicate) ++stored;
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(stored.load(), 1);
  EXPECT_EQ(replicas[0]->LastSequence(), 1u);
}

// Ids minted by hookfan (UUIDv7) are found by a scan around their minting
// time, not of the whole stream.
TEST_F(NatsEventLogTest, GetByIdFindsUuidV7Ids) {
  NatsEventLog* log = OpenLog();
  UuidV7Generator ids;
  std::vector<v1::Event> batch;
  for (int i = 0; i < 20; ++i) batch.push_back(NewEvent(ids.Next()));
  for (v1::Event& e : batch) {
    std::vector<v1::Event> one = {e};
    ASSERT_EQ(log->Append(absl::MakeSpan(one)), absl::OkStatus());
    e.set_sequence(one[0].sequence());
  }
  for (const v1::Event& e : {batch[0], batch[13], batch[19]}) {
    absl::StatusOr<EventPtr> found = log->GetById(e.id());
    ASSERT_TRUE(found.ok()) << found.status();
    EXPECT_EQ((*found)->event.sequence(), e.sequence());
  }
  EXPECT_EQ(log->GetById(ids.Next()).status().code(), absl::StatusCode::kNotFound);
}

// Long reads stream through a consumer and return the same as short ones.
TEST_F(NatsEventLogTest, LongReadsReturnTheSameEventsAsShortOnes) {
  EventLog* log = OpenLog();
  for (int i = 1; i <= 100; ++i) {
    std::vector<v1::Event> one = {NewEvent(absl::StrCat("e", i))};
    ASSERT_EQ(log->Append(absl::MakeSpan(one)), absl::OkStatus());
  }
  auto sequences = [](const std::vector<EventPtr>& events) {
    std::vector<uint64_t> out;
    for (const EventPtr& e : events) out.push_back(e->event.sequence());
    return out;
  };
  std::vector<EventPtr> rest = *log->Read(10, 1000);
  ASSERT_EQ(rest.size(), 91u);
  EXPECT_EQ(rest.front()->event.sequence(), 10u);
  EXPECT_EQ(rest.back()->event.sequence(), 100u);
  EXPECT_EQ(rest[5]->event.id(), "e15");
  std::vector<EventPtr> twenty = *log->Read(10, 20);
  ASSERT_EQ(twenty.size(), 20u);
  EXPECT_EQ(twenty.back()->event.sequence(), 29u);
  std::vector<EventPtr> bytes = *log->Read(1, 1000, 3 * rest[0]->wire.size());
  EXPECT_EQ(bytes.size(), 3u);
  std::vector<uint64_t> short_read = sequences(*log->Read(95, 8));
  EXPECT_EQ(short_read, (std::vector<uint64_t>{95, 96, 97, 98, 99, 100}));
}

// Events go on "<prefix>.<type>", so JetStream subject filters select types.
TEST_F(NatsEventLogTest, EventTypeIsTheSubject) {
  NatsEventLog* log = OpenLog();
  std::vector<v1::Event> events = {NewEvent("a", "applivery.device.enrolled")};
  ASSERT_EQ(log->Append(absl::MakeSpan(events)), absl::OkStatus());
  natsMsg* msg = nullptr;
  ASSERT_EQ(js_GetLastMsg(&msg, connections_[0]->js(), "HOOKFAN",
                          "hookfan.events.applivery.device.enrolled", nullptr, nullptr),
            NATS_OK);
  const char* msg_id = nullptr;
  ASSERT_EQ(natsMsgHeader_Get(msg, "Nats-Msg-Id", &msg_id), NATS_OK);
  EXPECT_STREQ(msg_id, "a");
  natsMsg_Destroy(msg);
}

// A stream of that name holding other subjects is not taken over.
TEST_F(NatsEventLogTest, RefusesAStreamWithOtherSubjects) {
  OpenLog();
  NatsOptions other = Options();
  other.subject_prefix = "elsewhere.events";
  absl::StatusOr<std::unique_ptr<NatsConnection>> connection = NatsConnection::Connect(other);
  ASSERT_TRUE(connection.ok());
  absl::StatusOr<std::unique_ptr<NatsEventLog>> log = NatsEventLog::Open(connection->get());
  EXPECT_EQ(log.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(log.status().message(), HasSubstr("exists without subject elsewhere.events.>"));
}

// Stream limits given as options are applied to the stream (also when it
// already exists).
TEST_F(NatsEventLogTest, AppliesStreamLimits) {
  OpenLog();
  NatsOptions limited = Options();
  limited.max_age = absl::Hours(24);
  limited.max_bytes = 1 << 30;
  OpenLog(limited);
  jsStreamInfo* info = nullptr;
  ASSERT_EQ(js_GetStreamInfo(&info, connections_[0]->js(), "HOOKFAN", nullptr, nullptr), NATS_OK);
  EXPECT_EQ(info->Config->MaxAge, absl::ToInt64Nanoseconds(absl::Hours(24)));
  EXPECT_EQ(info->Config->MaxBytes, 1 << 30);
  EXPECT_TRUE(info->Config->AllowDirect);
  jsStreamInfo_Destroy(info);
}

// NATS going away: appends fail kUnavailable (never OK), Ready says so and
// the listener is told; when NATS returns, appends work again and the tail
// passes on what is appended then — nothing acknowledged is lost.
TEST_F(NatsEventLogTest, SurvivesANatsRestart) {
  NatsEventLog* log = OpenLog();
  ASSERT_NE(log, nullptr);
  Recorder seen(log);
  std::vector<v1::Event> before = {NewEvent("before")};
  ASSERT_EQ(log->Append(absl::MakeSpan(before)), absl::OkStatus());

  server_->Stop();
  EXPECT_TRUE(seen.WaitForUnavailable());
  std::vector<v1::Event> during = {NewEvent("during")};
  EXPECT_EQ(log->Append(absl::MakeSpan(during)).code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(log->Ready().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(log->AppendOnce(NewEvent("during-once"), "k", absl::Minutes(1)).status().code(),
            absl::StatusCode::kUnavailable);

  ASSERT_TRUE(server_->Start());
  absl::Time deadline = absl::Now() + absl::Seconds(20);
  absl::Status status;
  std::vector<v1::Event> after = {NewEvent("after")};
  do {
    absl::SleepFor(absl::Milliseconds(100));
    after = {NewEvent("after")};
    status = log->Append(absl::MakeSpan(after));
  } while (!status.ok() && absl::Now() < deadline);
  ASSERT_EQ(status, absl::OkStatus());
  EXPECT_EQ(log->Ready(), absl::OkStatus());
  EXPECT_EQ(after[0].sequence(), 2u);
  EXPECT_THAT(seen.WaitForEvents(2), ElementsAre("before", "after"));
}

}  // namespace
}  // namespace hookfan::broker
