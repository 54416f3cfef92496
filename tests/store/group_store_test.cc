// The GroupStore contract, run against every store, then SqliteGroupStore's
// behaviour next to the event log in the same file.

#include "store/group_store.h"

#include <sqlite3.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <ostream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "store/memory_group_store.h"
#include "store/sqlite_event_log.h"
#include "store/sqlite_group_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/store/store_test_util.h"

namespace hookfan::broker {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::FieldsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Pair;
using Changes = GroupStore::Changes;
using DeadLetterRecord = GroupStore::DeadLetterRecord;
using GroupRecord = GroupStore::GroupRecord;

template <typename T>
T ValueOrFail(absl::StatusOr<T> result) {
  EXPECT_TRUE(result.ok()) << result.status();
  return std::move(result).value();
}

// Whole microseconds, which every store keeps exactly.
absl::Time At(int64_t micros) {
  return absl::FromUnixMicros(1'700'000'000'000'000 + micros);
}

std::vector<uint64_t> SequencesOf(const std::vector<DeadLetterRecord>& dead) {
  std::vector<uint64_t> sequences;
  for (const DeadLetterRecord& d : dead) sequences.push_back(d.sequence);
  return sequences;
}

// A scratch directory, removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    std::string dir = ::testing::TempDir() + "group_store_XXXXXX";
    if (mkdtemp(dir.data()) == nullptr) abort();
    path_ = dir;
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

struct StoreFactory {
  const char* name;
  std::unique_ptr<GroupStore> (*open)(const std::string& dir);
};

// Names the parameter in ctest's test names (else its bytes: pointers that
// change from build to build).
void PrintTo(const StoreFactory& store, std::ostream* os) { *os << store.name; }

std::unique_ptr<GroupStore> OpenMemory(const std::string&) {
  return std::make_unique<MemoryGroupStore>();
}

std::unique_ptr<GroupStore> OpenSqlite(const std::string& dir) {
  absl::StatusOr<std::unique_ptr<SqliteGroupStore>> store =
      SqliteGroupStore::Open(dir + "/hookfan.db");
  if (!store.ok()) {
    ADD_FAILURE() << store.status();
    return nullptr;
  }
  return *std::move(store);
}

class GroupStoreContractTest : public ::testing::TestWithParam<StoreFactory> {
 protected:
  void SetUp() override {
    store_ = GetParam().open(dir_.path());
    ASSERT_NE(store_, nullptr);
  }

  // The loaded record of group `name`; fails the test if it is missing.
  GroupRecord Load(const std::string& name) {
    for (GroupRecord& record : ValueOrFail(store_->LoadGroups())) {
      if (record.name == name) return std::move(record);
    }
    ADD_FAILURE() << "group " << name << " not loaded";
    return {};
  }

  std::vector<DeadLetterRecord> ListAll(const std::string& name) {
    return ValueOrFail(store_->ListDeadLetters(name, 0, 1000));
  }

  TempDir dir_;
  std::unique_ptr<GroupStore> store_;
};

// A store without groups loads none.
TEST_P(GroupStoreContractTest, EmptyStoreLoadsNoGroups) {
  EXPECT_THAT(ValueOrFail(store_->LoadGroups()), IsEmpty());
}

// A created group loads by name with its config bytes and floor exactly, and
// no other state.
TEST_P(GroupStoreContractTest, CreatedGroupLoadsWithExactConfigAndFloor) {
  const std::string config("\x00\xff\x08proto\x00", 9);
  ASSERT_EQ(store_->CreateGroup("b", config, 42), absl::OkStatus());
  ASSERT_EQ(store_->CreateGroup("a", "", 0), absl::OkStatus());

  std::vector<GroupRecord> groups = ValueOrFail(store_->LoadGroups());
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[0].name, "a");
  EXPECT_EQ(groups[0].config, "");
  EXPECT_EQ(groups[0].floor, 0u);
  const GroupRecord& b = groups[1];
  EXPECT_EQ(b.name, "b");
  EXPECT_EQ(b.config, config);
  EXPECT_EQ(b.floor, 42u);
  EXPECT_THAT(b.acked_above_floor, IsEmpty());
  EXPECT_THAT(b.attempts, IsEmpty());
  EXPECT_THAT(b.dead_above_floor, IsEmpty());
  EXPECT_EQ(b.dead_letters, 0u);
}

// Creating a group that exists is kAlreadyExists and keeps the first one.
TEST_P(GroupStoreContractTest, CreatingExistingGroupIsAlreadyExists) {
  ASSERT_EQ(store_->CreateGroup("g", "first", 1), absl::OkStatus());
  absl::Status status = store_->CreateGroup("g", "second", 2);
  EXPECT_EQ(status.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(status.message(), HasSubstr("\"g\""));
  EXPECT_EQ(Load("g").config, "first");
  EXPECT_EQ(Load("g").floor, 1u);
}

// Apply, DeleteGroup and ListDeadLetters of an unknown group are kNotFound
// naming it.
TEST_P(GroupStoreContractTest, UnknownGroupIsNotFoundNamingIt) {
  const absl::Status expected =
      absl::NotFoundError("no consumer group \"ghost\"");
  EXPECT_EQ(store_->Apply("ghost", Changes{.acked = {1}}), expected);
  EXPECT_EQ(store_->DeleteGroup("ghost"), expected);
  EXPECT_EQ(store_->ListDeadLetters("ghost", 0, 10).status(), expected);
}

// A failed Apply on an unknown group leaves every other group untouched.
TEST_P(GroupStoreContractTest, FailedApplyLeavesOtherGroupsUntouched) {
  ASSERT_EQ(store_->CreateGroup("g", "c", 10), absl::OkStatus());
  ASSERT_EQ(store_->Apply("g", Changes{.acked = {11}}), absl::OkStatus());

  EXPECT_EQ(store_
                ->Apply("ghost", Changes{.set_attempts = {{12, 1}},
                                         .acked = {13},
                                         .dead = {{14, 3, At(0)}},
                                         .floor = 20})
                .code(),
            absl::StatusCode::kNotFound);

  GroupRecord g = Load("g");
  EXPECT_EQ(g.floor, 10u);
  EXPECT_THAT(g.acked_above_floor, ElementsAre(11));
  EXPECT_THAT(g.attempts, IsEmpty());
  EXPECT_EQ(g.dead_letters, 0u);
  EXPECT_THAT(ValueOrFail(store_->LoadGroups()), testing::SizeIs(1));
}

// Setting attempts inserts or overwrites; clearing removes; records at or
// below the floor stay (the event is still pending).
TEST_P(GroupStoreContractTest, AttemptsAreUpsertedAndCleared) {
  ASSERT_EQ(store_->CreateGroup("g", "", 0), absl::OkStatus());
  ASSERT_EQ(store_->Apply("g", Changes{.set_attempts = {{7, 1}, {5, 1}}}),
            absl::OkStatus());
  ASSERT_EQ(store_->Apply(
                "g", Changes{.set_attempts = {{5, 2}}, .clear_attempts = {7}}),
            absl::OkStatus());
  EXPECT_THAT(Load("g").attempts, ElementsAre(Pair(5, 2)));

  ASSERT_EQ(store_->Apply("g", Changes{.set_attempts = {{9, 1}}, .floor = 8}),
            absl::OkStatus());
  EXPECT_THAT(Load("g").attempts, ElementsAre(Pair(5, 2), Pair(9, 1)));
}

// Setting and clearing the same sequence in one Apply clears it (attempts
// are set before they are cleared).
TEST_P(GroupStoreContractTest, AttemptsClearedInSameApplyAreGone) {
  ASSERT_EQ(store_->CreateGroup("g", "", 0), absl::OkStatus());
  ASSERT_EQ(store_->Apply(
                "g", Changes{.set_attempts = {{3, 1}}, .clear_attempts = {3}}),
            absl::OkStatus());
  EXPECT_THAT(Load("g").attempts, IsEmpty());
}

// Acked sequences above the floor are recorded ascending; those at or below
// it are not; raising the floor drops those it passes.
TEST_P(GroupStoreContractTest, AckedAboveFloorIsRecordedUntilFloorPassesIt) {
  ASSERT_EQ(store_->CreateGroup("g", "", 10), absl::OkStatus());
  ASSERT_EQ(store_->Apply("g", Changes{.acked = {15, 11, 9, 10, 12}}),
            absl::OkStatus());
  EXPECT_THAT(Load("g").acked_above_floor, ElementsAre(11, 12, 15));

  ASSERT_EQ(store_->Apply("g", Changes{.floor = 12}), absl::OkStatus());
  GroupRecord g = Load("g");
  EXPECT_EQ(g.floor, 12u);
  EXPECT_THAT(g.acked_above_floor, ElementsAre(15));
}

// Acks and a floor in one Apply: acks are added first, then the floor drops
// the ones it passes.
TEST_P(GroupStoreContractTest, AcksAndFloorInOneApplyKeepOnlyAcksAboveIt) {
  ASSERT_EQ(store_->CreateGroup("g", "", 0), absl::OkStatus());
  ASSERT_EQ(store_->Apply("g", Changes{.acked = {1, 2, 4}, .floor = 2}),
            absl::OkStatus());
  GroupRecord g = Load("g");
  EXPECT_EQ(g.floor, 2u);
  EXPECT_THAT(g.acked_above_floor, ElementsAre(4));
}

// A lower floor in Changes leaves the stored floor and acks as they are.
TEST_P(GroupStoreContractTest, FloorNeverLowers) {
  ASSERT_EQ(store_->CreateGroup("g", "", 10), absl::OkStatus());
  ASSERT_EQ(store_->Apply("g", Changes{.acked = {11}, .floor = 5}),
            absl::OkStatus());
  GroupRecord g = Load("g");
  EXPECT_EQ(g.floor, 10u);
  EXPECT_THAT(g.acked_above_floor, ElementsAre(11));
}

// Dead letters list ascending with their attempts and time, after
// `after`, at most `limit`.
TEST_P(GroupStoreContractTest, DeadLettersListAscendingWithPaging) {
  ASSERT_EQ(store_->CreateGroup("g", "", 0), absl::OkStatus());
  ASSERT_EQ(
      store_->Apply(
          "g",
          Changes{.dead = {{30, 3, At(3)}, {10, 1, At(1)}, {20, 2, At(2)}}}),
      absl::OkStatus());

  EXPECT_THAT(ListAll("g"),
              ElementsAre(FieldsAre(10, 1, At(1)), FieldsAre(20, 2, At(2)),
                          FieldsAre(30, 3, At(3))));
  EXPECT_THAT(SequencesOf(ValueOrFail(store_->ListDeadLetters("g", 10, 1))),
              ElementsAre(20));
  EXPECT_THAT(SequencesOf(ValueOrFail(store_->ListDeadLetters("g", 15, 5))),
              ElementsAre(20, 30));
  EXPECT_THAT(ValueOrFail(store_->ListDeadLetters("g", 30, 5)), IsEmpty());
  EXPECT_THAT(ValueOrFail(store_->ListDeadLetters("g", 0, 0)), IsEmpty());
}

// Dead letters stay listable and counted after the floor passes them, but
// only those above the floor load as dead_above_floor.
TEST_P(GroupStoreContractTest, DeadLettersSurviveFloorPassingThem) {
  ASSERT_EQ(store_->CreateGroup("g", "", 0), absl::OkStatus());
  ASSERT_EQ(
      store_->Apply("g", Changes{.dead = {{5, 1, At(0)}, {15, 1, At(0)}}}),
      absl::OkStatus());
  EXPECT_THAT(Load("g").dead_above_floor, ElementsAre(5, 15));

  ASSERT_EQ(store_->Apply("g", Changes{.floor = 10}), absl::OkStatus());
  GroupRecord g = Load("g");
  EXPECT_THAT(g.dead_above_floor, ElementsAre(15));
  EXPECT_EQ(g.dead_letters, 2u);
  EXPECT_THAT(SequencesOf(ListAll("g")), ElementsAre(5, 15));
}

// Redriven dead letters are removed from the list and the count; in one
// Apply, a dead letter added and redriven is gone (dead added first).
TEST_P(GroupStoreContractTest, RedrivenDeadLettersAreRemoved) {
  ASSERT_EQ(store_->CreateGroup("g", "", 0), absl::OkStatus());
  ASSERT_EQ(store_->Apply("g", Changes{.dead = {{5, 3, At(0)}, {6, 3, At(0)}}}),
            absl::OkStatus());
  ASSERT_EQ(store_->Apply("g", Changes{.set_attempts = {{5, 0}},
                                       .dead = {{7, 3, At(0)}},
                                       .redriven = {5, 7}}),
            absl::OkStatus());

  EXPECT_THAT(SequencesOf(ListAll("g")), ElementsAre(6));
  GroupRecord g = Load("g");
  EXPECT_EQ(g.dead_letters, 1u);
  EXPECT_THAT(g.dead_above_floor, ElementsAre(6));
  EXPECT_THAT(g.attempts, ElementsAre(Pair(5, 0)));
}

// Deleting a group removes it and all its state: it no longer loads or
// lists, and a new group of the same name starts empty.
TEST_P(GroupStoreContractTest, DeleteRemovesGroupAndAllItsState) {
  ASSERT_EQ(store_->CreateGroup("g", "old", 0), absl::OkStatus());
  ASSERT_EQ(store_->CreateGroup("other", "", 0), absl::OkStatus());
  ASSERT_EQ(store_->Apply("g", Changes{.set_attempts = {{3, 1}},
                                       .acked = {2},
                                       .dead = {{1, 5, At(0)}}}),
            absl::OkStatus());

  ASSERT_EQ(store_->DeleteGroup("g"), absl::OkStatus());
  std::vector<GroupRecord> groups = ValueOrFail(store_->LoadGroups());
  ASSERT_EQ(groups.size(), 1u);
  EXPECT_EQ(groups[0].name, "other");
  EXPECT_EQ(store_->ListDeadLetters("g", 0, 10).status().code(),
            absl::StatusCode::kNotFound);

  ASSERT_EQ(store_->CreateGroup("g", "new", 0), absl::OkStatus());
  GroupRecord g = Load("g");
  EXPECT_EQ(g.config, "new");
  EXPECT_THAT(g.acked_above_floor, IsEmpty());
  EXPECT_THAT(g.attempts, IsEmpty());
  EXPECT_EQ(g.dead_letters, 0u);
}

// Applies from several threads to several groups are all recorded.
TEST_P(GroupStoreContractTest, ConcurrentAppliesAreAllRecorded) {
  constexpr int kThreads = 4;
  constexpr uint64_t kAcks = 50;
  for (int t = 0; t < kThreads; ++t) {
    ASSERT_EQ(store_->CreateGroup(absl::StrCat("g", t), "", 0),
              absl::OkStatus());
  }
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([this, t] {
      for (uint64_t seq = 1; seq <= kAcks; ++seq) {
        EXPECT_EQ(store_->Apply(absl::StrCat("g", t), Changes{.acked = {seq}}),
                  absl::OkStatus());
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (const GroupRecord& g : ValueOrFail(store_->LoadGroups())) {
    EXPECT_EQ(g.acked_above_floor.size(), kAcks) << g.name;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Stores, GroupStoreContractTest,
    ::testing::Values(StoreFactory{"Memory", &OpenMemory},
                      StoreFactory{"Sqlite", &OpenSqlite}),
    [](const ::testing::TestParamInfo<StoreFactory>& info) {
      return std::string(info.param.name);
    });



class SqliteGroupStoreTest : public ::testing::Test {
 protected:
  std::unique_ptr<SqliteEventLog> OpenLog() {
    return ValueOrFail(SqliteEventLog::Open(path_));
  }
  std::unique_ptr<SqliteGroupStore> OpenStore() {
    return ValueOrFail(SqliteGroupStore::Open(path_));
  }

  TempDir dir_;
  const std::string path_ = dir_.path() + "/hookfan.db";
};

// Group state and the log's events survive closing and reopening the file
// they share.
TEST_F(SqliteGroupStoreTest, StateSurvivesReopenNextToEventLog) {
  {
    std::unique_ptr<SqliteEventLog> log = OpenLog();
    std::unique_ptr<SqliteGroupStore> store = OpenStore();
    std::vector<v1::Event> batch = {NewEvent("a"), NewEvent("b")};
    ASSERT_EQ(log->Append(absl::MakeSpan(batch)), absl::OkStatus());
    ASSERT_EQ(store->CreateGroup("g", "cfg", 0), absl::OkStatus());
    ASSERT_EQ(store->Apply("g", Changes{.set_attempts = {{2, 1}},
                                        .acked = {1, 3},
                                        .dead = {{4, 5, At(7)}},
                                        .floor = 1}),
              absl::OkStatus());
  }

  std::unique_ptr<SqliteEventLog> log = OpenLog();
  std::unique_ptr<SqliteGroupStore> store = OpenStore();
  EXPECT_EQ(log->LastSequence(), 2u);
  std::vector<GroupRecord> groups = ValueOrFail(store->LoadGroups());
  ASSERT_EQ(groups.size(), 1u);
  const GroupRecord& g = groups[0];
  EXPECT_EQ(g.name, "g");
  EXPECT_EQ(g.config, "cfg");
  EXPECT_EQ(g.floor, 1u);
  EXPECT_THAT(g.acked_above_floor, ElementsAre(3));
  EXPECT_THAT(g.attempts, ElementsAre(Pair(2, 1)));
  EXPECT_THAT(g.dead_above_floor, ElementsAre(4));
  EXPECT_EQ(g.dead_letters, 1u);
  EXPECT_THAT(ValueOrFail(store->ListDeadLetters("g", 0, 10)),
              ElementsAre(FieldsAre(4, 5, At(7))));
}

// Applies succeed while the event log's writer commits appends from other
// threads: the busy timeout waits out its transactions.
TEST_F(SqliteGroupStoreTest, AppliesDuringConcurrentAppendsNeverSeeBusy) {
  constexpr int kAppenders = 4;
  constexpr int kPerAppender = 500;
  constexpr uint64_t kApplies = 500;
  std::unique_ptr<SqliteEventLog> log = OpenLog();
  std::unique_ptr<SqliteGroupStore> store = OpenStore();
  ASSERT_EQ(store->CreateGroup("g", "", 0), absl::OkStatus());

  std::vector<std::thread> appenders;
  for (int t = 0; t < kAppenders; ++t) {
    appenders.emplace_back([&log, t] {
      for (int i = 0; i < kPerAppender; ++i) {
        v1::Event event = NewEvent(absl::StrCat("t", t, "-", i));
        EXPECT_EQ(log->Append(absl::MakeSpan(&event, 1)), absl::OkStatus());
      }
    });
  }
  for (uint64_t seq = 1; seq <= kApplies; ++seq) {
    Changes changes{.set_attempts = {{seq + 1, 1}},
                    .clear_attempts = {seq},
                    .acked = {seq}};
    if (seq % 10 == 0) changes.floor = seq;
    EXPECT_EQ(store->Apply("g", changes), absl::OkStatus());
  }
  for (std::thread& appender : appenders) appender.join();

  EXPECT_EQ(log->LastSequence(), uint64_t{kAppenders * kPerAppender});
  GroupRecord g = ValueOrFail(store->LoadGroups()).at(0);
  EXPECT_EQ(g.floor, kApplies);
  EXPECT_THAT(g.acked_above_floor, IsEmpty());
  EXPECT_THAT(g.attempts, ElementsAre(Pair(kApplies + 1, 1)));
}

// A statement failing midway through Apply rolls the whole change back, and
// the store keeps working.
TEST_F(SqliteGroupStoreTest, FailureMidApplyRollsBackEverything) {
  std::unique_ptr<SqliteGroupStore> store = OpenStore();
  ASSERT_EQ(store->CreateGroup("g", "", 0), absl::OkStatus());
  ExecRaw(path_,
          "CREATE TRIGGER fail BEFORE INSERT ON group_dead WHEN NEW.seq = 13 "
          "BEGIN SELECT RAISE(ABORT, 'injected failure'); END");

  absl::Status status = store->Apply("g", Changes{.set_attempts = {{11, 1}},
                                                  .acked = {12},
                                                  .dead = {{13, 1, At(0)}},
                                                  .floor = 5});
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(status.message(),
              AllOf(HasSubstr(path_), HasSubstr("injected failure")));

  GroupRecord g = ValueOrFail(store->LoadGroups()).at(0);
  EXPECT_EQ(g.floor, 0u);
  EXPECT_THAT(g.attempts, IsEmpty());
  EXPECT_THAT(g.acked_above_floor, IsEmpty());
  EXPECT_EQ(g.dead_letters, 0u);
  EXPECT_EQ(store->Apply("g", Changes{.acked = {12}}), absl::OkStatus());
  EXPECT_THAT(ValueOrFail(store->LoadGroups()).at(0).acked_above_floor,
              ElementsAre(12));
}

// A file that is not a database fails Open with kDataLoss naming it.
TEST_F(SqliteGroupStoreTest, FileThatIsNotADatabaseIsDataLoss) {
  std::ofstream(path_) << std::string(4096, 'x');
  absl::Status status = SqliteGroupStore::Open(path_).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.message(), HasSubstr(path_));
}

// A path whose directory does not exist fails Open with kUnavailable naming
// it.
TEST_F(SqliteGroupStoreTest, MissingDirectoryIsUnavailable) {
  std::string path = dir_.path() + "/missing/hookfan.db";
  absl::Status status = SqliteGroupStore::Open(path).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(status.message(), HasSubstr(path));
}

}  // namespace
}  // namespace hookfan::broker
