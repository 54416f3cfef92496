// The SQLite store's latest view (the newest event of each key and type)
// and compacted retention, which never deletes what the view names.

#include <stdlib.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "store/sqlite_event_log.h"
#include "tests/store/store_test_util.h"

namespace hookfan::broker {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

v1::Event KeyedEvent(const std::string& id, const std::string& key, const std::string& type) {
  v1::Event event = NewEvent(id);
  event.set_key(key);
  event.set_type(type);
  return event;
}

std::vector<uint64_t> Sequences(const std::vector<EventPtr>& events) {
  std::vector<uint64_t> out;
  for (const EventPtr& e : events) out.push_back(e->event.sequence());
  return out;
}

template <typename T>
T ValueOrDie(absl::StatusOr<T> result) {
  EXPECT_TRUE(result.ok()) << result.status();
  return std::move(result).value();
}

class LatestViewTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string dir = ::testing::TempDir() + "latest_view_XXXXXX";
    ASSERT_NE(mkdtemp(dir.data()), nullptr);
    path_ = dir + "/hookfan.db";
  }

  std::unique_ptr<SqliteEventLog> Open(SqliteEventLog::Options options = {}) {
    auto log = SqliteEventLog::Open(path_, options);
    EXPECT_TRUE(log.ok()) << log.status();
    return log.ok() ? std::move(log).value() : nullptr;
  }

  // Appends one event per (key, type) given, ids e1, e2, ... from `next_`.
  void Append(SqliteEventLog& log,
              const std::vector<std::pair<std::string, std::string>>& key_types) {
    std::vector<v1::Event> batch;
    for (const auto& [key, type] : key_types) {
      batch.push_back(KeyedEvent(absl::StrCat("e", ++next_), key, type));
    }
    ASSERT_EQ(log.Append(absl::MakeSpan(batch)), absl::OkStatus());
  }

  std::string path_;
  int next_ = 0;
};

TEST_F(LatestViewTest, HoldsTheNewestEventOfEachKeyAndType) {
  auto log = Open();
  ASSERT_NE(log, nullptr);
  Append(*log, {{"d1", "a.enrolled"}, {"d1", "a.checked_in"}, {"d2", "a.checked_in"}});  // 1-3
  Append(*log, {{"d1", "a.checked_in"}, {"", "a.org_changed"}});                      // 4-5
  Append(*log, {{"d2", "a.checked_in"}, {"d1", "a.enrolled"}});                        // 6-7

  EXPECT_THAT(Sequences(ValueOrDie(log->GetLatest("d1"))), ElementsAre(4, 7));
  EXPECT_THAT(Sequences(ValueOrDie(log->GetLatest("d2"))), ElementsAre(6));
  EXPECT_THAT(ValueOrDie(log->GetLatest("nobody")), IsEmpty());
  // Events without a key are in no view.
  EXPECT_THAT(Sequences(ValueOrDie(log->ReadLatest(1, 100, 100))), ElementsAre(4, 6, 7));
  EXPECT_THAT(Sequences(ValueOrDie(log->ReadLatest(5, 6, 100))), ElementsAre(6));
  EXPECT_THAT(Sequences(ValueOrDie(log->ReadLatest(1, 100, 2))), ElementsAre(4, 6));

  std::vector<KeyLatest> page = ValueOrDie(log->ListLatest("", 1));
  ASSERT_EQ(page.size(), 1u);
  EXPECT_EQ(page[0].key, "d1");
  EXPECT_EQ(page[0].events.size(), 2u);
  page = ValueOrDie(log->ListLatest("d1", 10));
  ASSERT_EQ(page.size(), 1u);
  EXPECT_EQ(page[0].key, "d2");
  EXPECT_THAT(Sequences(page[0].events), ElementsAre(6));
  EXPECT_THAT(ValueOrDie(log->ListLatest("d2", 10)), IsEmpty());
}

TEST_F(LatestViewTest, ReadsMergeTheTableWithWhatWaitsForACheckpoint) {
  // A checkpoint every 3 entries: some of the view is in its table, the
  // rest in memory, and one read sees both.
  auto log = Open({.latest_checkpoint_entries = 3});
  ASSERT_NE(log, nullptr);
  Append(*log, {{"d1", "a.x"}, {"d2", "a.x"}, {"d3", "a.x"}});  // 1-3: checkpointed
  Append(*log, {{"d2", "a.x"}, {"d4", "a.y"}});                 // 4-5: in memory
  EXPECT_EQ(QueryRawInt(path_, "SELECT value FROM meta WHERE key = 'latest_through'"), 3);
  EXPECT_THAT(Sequences(ValueOrDie(log->ReadLatest(1, 100, 100))), ElementsAre(1, 3, 4, 5));
  EXPECT_THAT(Sequences(ValueOrDie(log->ReadLatest(2, 4, 100))), ElementsAre(3, 4));
  EXPECT_THAT(Sequences(ValueOrDie(log->ReadLatest(1, 100, 3))), ElementsAre(1, 3, 4));
  EXPECT_THAT(Sequences(ValueOrDie(log->GetLatest("d2"))), ElementsAre(4));
  std::vector<KeyLatest> keys = ValueOrDie(log->ListLatest("d1", 2));
  ASSERT_EQ(keys.size(), 2u);
  EXPECT_EQ(keys[0].key, "d2");
  EXPECT_THAT(Sequences(keys[0].events), ElementsAre(4));
  EXPECT_EQ(keys[1].key, "d3");
  keys = ValueOrDie(log->ListLatest("d3", 10));
  ASSERT_EQ(keys.size(), 1u);
  EXPECT_EQ(keys[0].key, "d4");
}

TEST_F(LatestViewTest, OpenReplaysWhatTheLastCheckpointMissed) {
  {
    auto log = Open();
    ASSERT_NE(log, nullptr);
    Append(*log, {{"d1", "a.x"}, {"d2", "a.x"}, {"d1", "a.x"}});
  }
  // As if the process died before any checkpoint: the table is empty.
  ExecRaw(path_, "DELETE FROM latest; UPDATE meta SET value = 0 WHERE key = 'latest_through'");
  auto log = Open();
  ASSERT_NE(log, nullptr);
  EXPECT_THAT(Sequences(ValueOrDie(log->ReadLatest(1, 100, 100))), ElementsAre(2, 3));
  EXPECT_EQ(QueryRawInt(path_, "SELECT count(*) FROM latest"), 2);
}

TEST_F(LatestViewTest, ABatchThatFailsLeavesTheViewAsItWas) {
  auto log = Open();
  ASSERT_NE(log, nullptr);
  Append(*log, {{"d1", "a.checked_in"}});  // e1, sequence 1
  std::vector<v1::Event> batch = {KeyedEvent("new", "d1", "a.checked_in"),
                                  KeyedEvent("e1", "d1", "a.checked_in")};  // e1 again
  EXPECT_TRUE(absl::IsInvalidArgument(log->Append(absl::MakeSpan(batch))));
  EXPECT_THAT(Sequences(ValueOrDie(log->GetLatest("d1"))), ElementsAre(1));
}

TEST_F(LatestViewTest, IsBuiltFromTheEventsWhenTurnedOnForAStoreKeptWithoutIt) {
  {
    auto log = Open({.latest_view = false});
    ASSERT_NE(log, nullptr);
    Append(*log, {{"d1", "a.x"}, {"d2", "a.x"}, {"d1", "a.x"}, {"d1", "a.y"}});
    absl::Status refused = log->GetLatest("d1").status();
    EXPECT_TRUE(absl::IsFailedPrecondition(refused)) << refused;
    EXPECT_THAT(refused.message(), HasSubstr("--latest-view=false"));
  }
  auto log = Open();
  ASSERT_NE(log, nullptr);
  EXPECT_THAT(Sequences(ValueOrDie(log->ReadLatest(1, 100, 100))), ElementsAre(2, 3, 4));
  Append(*log, {{"d2", "a.x"}});  // 5
  EXPECT_THAT(Sequences(ValueOrDie(log->ReadLatest(1, 100, 100))), ElementsAre(3, 4, 5));
}

TEST_F(LatestViewTest, CompactedRetentionKeepsTheNewestOfEachKeyAndType) {
  auto log = Open({.retention_max_events = 100, .retention_keep_latest = true});
  ASSERT_NE(log, nullptr);
  // 10 devices x 2 types, 30 rounds: 600 events, 20 of them newest.
  for (int round = 0; round < 30; ++round) {
    std::vector<std::pair<std::string, std::string>> batch;
    for (int d = 0; d < 10; ++d) {
      batch.push_back({absl::StrCat("d", d), "a.checked_in"});
      batch.push_back({absl::StrCat("d", d), round == 0 ? "a.enrolled" : "a.checked_in"});
    }
    Append(*log, batch);
  }
  // Retention runs between commits, a batch at a time.
  absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (ValueOrDie(log->FirstSequence()) < 501 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_EQ(ValueOrDie(log->FirstSequence()), 501u);
  // Each device's enrollment (sequences 2, 4, ... 20) outlives the history.
  std::vector<EventPtr> view = ValueOrDie(log->ReadLatest(1, 1000, 1000));
  ASSERT_EQ(view.size(), 20u);
  EXPECT_EQ(view[0]->event.sequence(), 2u);
  EXPECT_EQ(view[0]->event.type(), "a.enrolled");
  EXPECT_EQ(ValueOrDie(log->GetById(view[0]->event.id()))->event.sequence(), 2u);
  // Reads of the log start where it is contiguous, not at a kept event.
  std::vector<EventPtr> read = ValueOrDie(log->Read(1, 1));
  ASSERT_EQ(read.size(), 1u);
  EXPECT_EQ(read[0]->event.sequence(), 501u);
  EXPECT_EQ(QueryRawInt(path_, "SELECT count(*) FROM events"), 100 + 10);

  // Where the log is contiguous survives a restart.
  log.reset();
  log = Open({.retention_keep_latest = true});
  ASSERT_NE(log, nullptr);
  EXPECT_EQ(ValueOrDie(log->FirstSequence()), 501u);
  EXPECT_EQ(ValueOrDie(log->ReadLatest(1, 1000, 1000)).size(), 20u);
}

TEST_F(LatestViewTest, PlainRetentionTakesTheViewsRowsWithItsEvents) {
  auto log = Open({.retention_max_events = 10});
  ASSERT_NE(log, nullptr);
  Append(*log, {{"old", "a.enrolled"}});
  for (int i = 0; i < 20; ++i) Append(*log, {{"d", "a.checked_in"}});
  absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (ValueOrDie(log->FirstSequence()) < 12 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_EQ(ValueOrDie(log->FirstSequence()), 12u);
  EXPECT_THAT(ValueOrDie(log->GetLatest("old")), IsEmpty());
  EXPECT_EQ(QueryRawInt(path_, "SELECT count(*) FROM latest"), 1);
}

TEST_F(LatestViewTest, CompactedRetentionNeedsTheView) {
  auto log = SqliteEventLog::Open(path_, {.latest_view = false, .retention_keep_latest = true});
  EXPECT_TRUE(absl::IsInvalidArgument(log.status())) << log.status();
}

}  // namespace
}  // namespace hookfan::broker
