// The JetStream log beyond the store contract (which runs against it in
// event_log_contract_test.cc): several replicas on one stream, NATS going
// away and coming back, and its configuration.

#include "nats/nats_event_log.h"

#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <latch>
#include <map>
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

// ---- The latest view (NatsLatestView) ----

v1::Event KeyedEvent(std::string id, std::string key, std::string type) {
  v1::Event event = NewEvent(std::move(id), std::move(type));
  event.set_key(std::move(key));
  return event;
}

std::vector<uint64_t> Sequences(const std::vector<EventPtr>& events) {
  std::vector<uint64_t> out;
  for (const EventPtr& e : events) out.push_back(e->event.sequence());
  return out;
}

// Waits until the view holds every event up to the log's last one.
bool ViewCaughtUp(NatsEventLog* log, uint64_t last) {
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (absl::Now() < deadline) {
    if (log->LatestThrough().value_or(0) >= last) return true;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return false;
}

void AppendAll(NatsEventLog* log, std::vector<v1::Event> events) {
  for (v1::Event& e : events) ASSERT_EQ(log->Append(absl::MakeSpan(&e, 1)), absl::OkStatus());
}

TEST_F(NatsEventLogTest, LatestViewHoldsTheNewestEventOfEachKeyAndType) {
  NatsEventLog* log = OpenLog();
  ASSERT_NE(log, nullptr);
  ASSERT_EQ(log->LatestView(), absl::OkStatus());
  AppendAll(log, {KeyedEvent("1", "d1", "t.a"), KeyedEvent("2", "d2", "t.a"),
                  KeyedEvent("3", "", "t.a"), KeyedEvent("4", "d1", "t.a"),
                  KeyedEvent("5", "d1", "t.b"), KeyedEvent("6", "d2", "t.a"),
                  KeyedEvent("7", "", "t.b")});
  ASSERT_TRUE(ViewCaughtUp(log, 7));  // the last event has no key: a marker says so
  EXPECT_THAT(Sequences(*log->GetLatest("d1")), ElementsAre(4, 5));
  EXPECT_THAT(Sequences(*log->GetLatest("d2")), ElementsAre(6));
  EXPECT_THAT(*log->GetLatest("nobody"), ::testing::IsEmpty());
  EXPECT_THAT(Sequences(*log->ReadLatest(1, 100, 100)), ElementsAre(4, 5, 6));
  EXPECT_THAT(Sequences(*log->ReadLatest(5, 5, 100)), ElementsAre(5));
  EXPECT_THAT(Sequences(*log->ReadLatest(1, 100, 2)), ElementsAre(4, 5));
  EXPECT_THAT(Sequences(*log->ReadLatest(6, 100, 100)), ElementsAre(6));
  std::vector<KeyLatest> page = *log->ListLatest("", 1);
  ASSERT_EQ(page.size(), 1u);
  EXPECT_EQ(page[0].key, "d1");
  EXPECT_THAT(Sequences(page[0].events), ElementsAre(4, 5));
  page = *log->ListLatest("d1", 10);
  ASSERT_EQ(page.size(), 1u);
  EXPECT_EQ(page[0].key, "d2");
  EXPECT_THAT(*log->ListLatest("d2", 10), ::testing::IsEmpty());
  // Keys of any bytes, and keys that are prefixes of others, sort as bytes.
  AppendAll(log, {KeyedEvent("8", "d", "t.a"), KeyedEvent("9", std::string("d1\x01.>*", 6), "t.a")});
  ASSERT_TRUE(ViewCaughtUp(log, 9));
  std::vector<std::string> keys;
  page = *log->ListLatest("", 10);
  for (const KeyLatest& k : page) keys.push_back(k.key);
  EXPECT_THAT(keys, ElementsAre("d", "d1", std::string("d1\x01.>*", 6), "d2"));
}

TEST_F(NatsEventLogTest, LatestViewIsOneForAllReplicasAndOutlivesItsWriter) {
  NatsEventLog* a = OpenLog();
  NatsEventLog* b = OpenLog();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  // Both replicas append at once; the view is one, in log order.
  std::map<std::pair<std::string, std::string>, uint64_t> fold;
  std::thread other([&] {
    for (int i = 0; i < 150; ++i) {
      v1::Event e = KeyedEvent(absl::StrCat("b", i), absl::StrCat("k", i % 7), "t.b");
      ASSERT_EQ(b->Append(absl::MakeSpan(&e, 1)), absl::OkStatus());
    }
  });
  for (int i = 0; i < 150; ++i) {
    v1::Event e = KeyedEvent(absl::StrCat("a", i), absl::StrCat("k", i % 5), i % 2 ? "t.a" : "t.c");
    ASSERT_EQ(a->Append(absl::MakeSpan(&e, 1)), absl::OkStatus());
  }
  other.join();
  const uint64_t last = 300;
  const absl::Time seen_by = absl::Now() + absl::Seconds(20);  // a's tail passes b's appends
  while (a->LastSequence() < last && absl::Now() < seen_by) absl::SleepFor(absl::Milliseconds(5));
  ASSERT_EQ(a->LastSequence(), last);
  for (uint64_t from = 1; from <= last;) {
    std::vector<EventPtr> events = *a->Read(from, 100, 1 << 30);
    ASSERT_FALSE(events.empty());
    for (const EventPtr& e : events) fold[{e->event.key(), e->event.type()}] = e->event.sequence();
    from = events.back()->event.sequence() + 1;
  }
  auto view_of = [](NatsEventLog* log) {
    std::map<std::pair<std::string, std::string>, uint64_t> view;
    std::vector<EventPtr> all = *log->ReadLatest(1, 1000, 1000);
    for (const EventPtr& e : all) view[{e->event.key(), e->event.type()}] = e->event.sequence();
    EXPECT_TRUE(std::is_sorted(all.begin(), all.end(), [](const EventPtr& x, const EventPtr& y) {
      return x->event.sequence() < y->event.sequence();
    }));
    EXPECT_EQ(all.size(), view.size());
    return view;
  };
  ASSERT_TRUE(ViewCaughtUp(b, last));
  EXPECT_EQ(view_of(a), fold);
  EXPECT_EQ(view_of(b), fold);

  // One of them writes the view, the other watches: a race lost makes a
  // writer follow. (Both may lead after a take-over until the next race.)
  uint64_t appended = last;
  for (int i = 0; i < 20 && a->LatestViewWriterLeads() == b->LatestViewWriterLeads(); ++i) {
    v1::Event e = KeyedEvent(absl::StrCat("r", i), "k1", "t.a");
    ASSERT_EQ(a->Append(absl::MakeSpan(&e, 1)), absl::OkStatus());
    ASSERT_TRUE(ViewCaughtUp(b, ++appended));
  }
  ASSERT_NE(a->LatestViewWriterLeads(), b->LatestViewWriterLeads());
  // The one that writes goes; the one that watched takes over.
  const bool a_leads = a->LatestViewWriterLeads();
  NatsEventLog* survivor = a_leads ? b : a;
  logs_.erase(logs_.begin() + (a_leads ? 0 : 1));
  for (int i = 0; i < 20; ++i) {
    v1::Event e = KeyedEvent(absl::StrCat("c", i), "k0", "t.a");
    ASSERT_EQ(survivor->Append(absl::MakeSpan(&e, 1)), absl::OkStatus());
  }
  ASSERT_TRUE(ViewCaughtUp(survivor, appended + 20));
  EXPECT_TRUE(survivor->LatestViewWriterLeads());
  EXPECT_THAT(Sequences(*survivor->GetLatest("k0")).back(), appended + 20);
}

TEST_F(NatsEventLogTest, LatestViewIsBuiltFromEventsStoredBeforeItAndOutlivesTheirTrimming) {
  NatsOptions options = Options();
  options.latest_view = false;
  NatsEventLog* without = OpenLog(options);
  ASSERT_NE(without, nullptr);
  EXPECT_THAT(without->GetLatest("d1").status().message(), HasSubstr("--latest-view=false"));
  for (int i = 0; i < 30; ++i) {
    v1::Event e = KeyedEvent(absl::StrCat("e", i), absl::StrCat("d", i % 10), "t.a");
    ASSERT_EQ(without->Append(absl::MakeSpan(&e, 1)), absl::OkStatus());
  }
  logs_.clear();
  // Turned on, the view is built from the stream; then the stream keeps
  // its last 5 events only, and the view still knows every device.
  options.latest_view = true;
  NatsEventLog* log = OpenLog(options);
  ASSERT_NE(log, nullptr);
  ASSERT_TRUE(ViewCaughtUp(log, 30));
  logs_.clear();
  options.max_events = 5;
  log = OpenLog(options);
  ASSERT_NE(log, nullptr);
  v1::Event e = KeyedEvent("last", "d0", "t.a");
  ASSERT_EQ(log->Append(absl::MakeSpan(&e, 1)), absl::OkStatus());
  EXPECT_EQ(*log->FirstSequence(), 27u);
  ASSERT_TRUE(ViewCaughtUp(log, 31));
  std::vector<EventPtr> view = *log->ReadLatest(1, 100, 100);
  EXPECT_THAT(Sequences(view), ElementsAre(22, 23, 24, 25, 26, 27, 28, 29, 30, 31));
  EXPECT_EQ(view.front()->event.key(), "d1");
  EXPECT_EQ(view.front()->event.id(), "e21");
}

}  // namespace
}  // namespace hookfan::broker
