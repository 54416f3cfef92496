// SqliteEventLog behaviour beyond the EventLog contract: durability across
// reopen and kill -9, group commit, and how file and disk failures surface.

#include "store/sqlite_event_log.h"

#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <latch>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/store/store_test_util.h"

namespace hookfan::broker {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;


template <typename T>
T ValueOrFail(absl::StatusOr<T> result) {
  EXPECT_TRUE(result.ok()) << result.status();
  return std::move(result).value();
}


void WriteLine(int fd, const std::string& line) {
  std::string data = line + "\n";
  if (write(fd, data.data(), data.size()) !=
      static_cast<ssize_t>(data.size())) {
    _exit(3);
  }
}

// A forked process running `body(out)`; the parent reads what it writes to
// `out` line by line.
class Child {
 public:
  explicit Child(const std::function<void(int out)>& body) {
    int fds[2];
    if (pipe(fds) != 0) abort();
    pid_ = fork();
    if (pid_ == 0) {
      close(fds[0]);
      body(fds[1]);
      _exit(0);
    }
    close(fds[1]);
    out_ = fdopen(fds[0], "r");
  }
  ~Child() { fclose(out_); }

  // The next line written by the child, without "\n"; false at its end.
  bool ReadLine(std::string* line) {
    char buf[256];
    if (fgets(buf, sizeof(buf), out_) == nullptr) return false;
    *line = std::string(absl::StripSuffix(buf, "\n"));
    return true;
  }

  void Kill() { kill(pid_, SIGKILL); }

  // Waits for the child to end; returns its waitpid status.
  int Wait() {
    int status = 0;
    waitpid(pid_, &status, 0);
    return status;
  }

 private:
  pid_t pid_;
  FILE* out_;
};

class SqliteEventLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string dir = ::testing::TempDir() + "sqlite_event_log_XXXXXX";
    ASSERT_NE(mkdtemp(dir.data()), nullptr);
    dir_ = dir;
    path_ = dir_ + "/events.db";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<SqliteEventLog> Open() {
    return ValueOrFail(SqliteEventLog::Open(path_));
  }

  std::string dir_;
  std::string path_;
};

// Events, ids and sequences survive closing and reopening the file, and
// sequencing continues where it stopped.
TEST_F(SqliteEventLogTest, ReopenKeepsEventsIdsAndSequences) {
  std::vector<v1::Event> batch = {NewEvent("a"), NewEvent("b")};
  batch[1].set_data("{\"raw\":true}");
  ASSERT_EQ(Open()->Append(absl::MakeSpan(batch)), absl::OkStatus());

  std::unique_ptr<SqliteEventLog> log = Open();
  EXPECT_EQ(log->LastSequence(), 2u);
  std::vector<EventPtr> events = ValueOrFail(log->Read(1, 10));
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0]->wire, batch[0].SerializeAsString());
  EXPECT_EQ(events[1]->wire, batch[1].SerializeAsString());
  EXPECT_EQ(ValueOrFail(log->GetById("b"))->event.sequence(), 2u);
  v1::Event next = NewEvent("c");
  ASSERT_EQ(log->Append(absl::MakeSpan(&next, 1)), absl::OkStatus());
  EXPECT_EQ(next.sequence(), 3u);
}

// Deleting every row (as retention will) does not make sequences reusable.
TEST_F(SqliteEventLogTest, DedupKeysSurviveReopen) {
  // A sender retrying after a restart still gets the original answer.
  v1::Event event = NewEvent("a");
  event.mutable_time()->set_seconds(100);
  ASSERT_TRUE(Open()->AppendOnce(event, "k", absl::Hours(1)).ok());
  event.set_id("b");
  AppendOnceResult again = ValueOrFail(Open()->AppendOnce(event, "k", absl::Hours(1)));
  EXPECT_TRUE(again.duplicate);
  EXPECT_EQ(again.id, "a");
  EXPECT_EQ(again.sequence, 1u);
}

TEST_F(SqliteEventLogTest, AStoreWithTheKeyOrderedDedupTableKeepsItsKeys) {
  // Stores written before dedup_log held their keys in a table ordered by
  // key; opening one moves them over, and its duplicates are still found.
  v1::Event event = NewEvent("a");
  event.mutable_time()->set_seconds(100);
  ASSERT_TRUE(Open()->AppendOnce(event, "k", absl::Hours(1)).ok());
  ExecRaw(path_,
          "CREATE TABLE dedup(key TEXT PRIMARY KEY, seq INTEGER NOT NULL, id TEXT NOT NULL, "
          "time_us INTEGER NOT NULL, expires_us INTEGER NOT NULL) WITHOUT ROWID; "
          "INSERT INTO dedup SELECT key, seq, id, time_us, expires_us FROM dedup_log; "
          "DELETE FROM dedup_log;");
  std::unique_ptr<SqliteEventLog> log = Open();
  event.set_id("b");
  AppendOnceResult again = ValueOrFail(log->AppendOnce(event, "k", absl::Hours(1)));
  EXPECT_TRUE(again.duplicate);
  EXPECT_EQ(again.id, "a");
  EXPECT_EQ(again.sequence, 1u);
  log.reset();
  EXPECT_EQ(QueryRawInt(path_, "SELECT count(*) FROM sqlite_master WHERE name = 'dedup'"), 0);
  EXPECT_EQ(QueryRawInt(path_, "SELECT count(*) FROM dedup_log"), 1);
}

TEST_F(SqliteEventLogTest, EachKeyIsFoundByItselfNotByAnotherKey) {
  // Many keys in one store: each repeat names its own original, and a key
  // never seen is stored (the in-memory index is confirmed by the row).
  std::unique_ptr<SqliteEventLog> log = Open();
  for (int i = 0; i < 2000; ++i) {
    v1::Event event = NewEvent(absl::StrCat("e", i));
    event.mutable_time()->set_seconds(100);
    ASSERT_FALSE(ValueOrFail(log->AppendOnce(event, absl::StrCat("key-", i), absl::Hours(1)))
                     .duplicate);
  }
  log = Open();
  for (int i = 0; i < 2000; i += 7) {
    v1::Event event = NewEvent(absl::StrCat("again", i));
    event.mutable_time()->set_seconds(200);
    AppendOnceResult again =
        ValueOrFail(log->AppendOnce(event, absl::StrCat("key-", i), absl::Hours(1)));
    ASSERT_TRUE(again.duplicate) << i;
    EXPECT_EQ(again.id, absl::StrCat("e", i));
    EXPECT_EQ(again.sequence, static_cast<uint64_t>(i + 1));
  }
  v1::Event fresh = NewEvent("fresh");
  fresh.mutable_time()->set_seconds(200);
  EXPECT_FALSE(ValueOrFail(log->AppendOnce(fresh, "key-2000", absl::Hours(1))).duplicate);
}

TEST_F(SqliteEventLogTest, SequencesAreNotReusedAfterAllRowsAreDeleted) {
  std::vector<v1::Event> batch = {NewEvent("a"), NewEvent("b"), NewEvent("c")};
  ASSERT_EQ(Open()->Append(absl::MakeSpan(batch)), absl::OkStatus());
  ExecRaw(path_, "DELETE FROM events");

  std::unique_ptr<SqliteEventLog> log = Open();
  EXPECT_EQ(log->LastSequence(), 3u);
  EXPECT_EQ(ValueOrFail(log->FirstSequence()), 4u);
  v1::Event next = NewEvent("d");
  ASSERT_EQ(log->Append(absl::MakeSpan(&next, 1)), absl::OkStatus());
  EXPECT_EQ(next.sequence(), 4u);
}

class CountingListener : public CommitListener {
 public:
  void OnCommit(const std::vector<EventPtr>& events) override {
    commits += 1;
    events_seen += events.size();
  }
  std::atomic<int> commits{0};
  std::atomic<size_t> events_seen{0};
};

// Concurrent appends share transactions: fewer commits than appends.
TEST_F(SqliteEventLogTest, GroupCommitSharesTransactions) {
  std::unique_ptr<SqliteEventLog> log = Open();
  CountingListener listener;
  log->SetCommitListener(&listener);
  constexpr int kThreads = 8;
  constexpr int kPerThread = 200;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&log, t] {
      for (int i = 0; i < kPerThread; ++i) {
        v1::Event event = NewEvent(absl::StrCat(t, "-", i));
        EXPECT_EQ(log->Append(absl::MakeSpan(&event, 1)), absl::OkStatus());
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  log->SetCommitListener(nullptr);

  EXPECT_EQ(listener.events_seen, size_t{kThreads * kPerThread});
  EXPECT_LT(listener.commits, kThreads * kPerThread);
}

// Every append acknowledged before the process is killed with SIGKILL is in
// the file afterwards, with its sequence, and the log has no gaps.
TEST_F(SqliteEventLogTest, AcknowledgedAppendsSurviveKill9) {
  constexpr size_t kKillAfter = 300;
  Child child([this](int out) {
    std::unique_ptr<SqliteEventLog> log = Open();
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&log, out, t] {
        for (int i = 0;; ++i) {
          v1::Event event = NewEvent(absl::StrCat("k", t, "-", i));
          if (!log->Append(absl::MakeSpan(&event, 1)).ok()) _exit(2);
          WriteLine(out, absl::StrCat(event.sequence(), " ", event.id()));
        }
      });
    }
    for (std::thread& thread : threads) thread.join();
  });
  std::vector<std::pair<uint64_t, std::string>> acked;
  std::string line;
  while (child.ReadLine(&line)) {
    std::pair<std::string, std::string> ack = absl::StrSplit(line, ' ');
    acked.emplace_back(std::stoull(ack.first), ack.second);
    if (acked.size() == kKillAfter) child.Kill();
  }
  int status = child.Wait();
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
  ASSERT_GE(acked.size(), kKillAfter);

  std::unique_ptr<SqliteEventLog> log = Open();
  for (const auto& [sequence, id] : acked) {
    EXPECT_EQ(ValueOrFail(log->GetById(id))->event.sequence(), sequence) << id;
  }
  uint64_t last = log->LastSequence();
  std::vector<EventPtr> events = ValueOrFail(log->Read(1, last + 1));
  ASSERT_EQ(events.size(), last);
  EXPECT_EQ(events.back()->event.sequence(), last);
}

// A file that is not a database fails Open with kDataLoss naming it.
TEST_F(SqliteEventLogTest, FileThatIsNotADatabaseIsDataLoss) {
  std::ofstream(path_) << std::string(4096, 'x');
  absl::Status status = SqliteEventLog::Open(path_).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.message(),
              AllOf(HasSubstr(path_), HasSubstr("file is not a database")));
}

// A path whose directory does not exist fails Open with kUnavailable naming
// it.
TEST_F(SqliteEventLogTest, MissingDirectoryIsUnavailable) {
  std::string path = dir_ + "/missing/events.db";
  absl::Status status = SqliteEventLog::Open(path).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(status.message(), HasSubstr(path));
}

// A file written by another schema version is refused.
TEST_F(SqliteEventLogTest, OtherSchemaVersionIsFailedPrecondition) {
  Open();
  ExecRaw(path_, "UPDATE meta SET value = 2 WHERE key = 'schema_version'");
  EXPECT_EQ(SqliteEventLog::Open(path_).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

// Open refuses a pool without read connections.
TEST_F(SqliteEventLogTest, NoReadConnectionsIsInvalidArgument) {
  EXPECT_EQ(
      SqliteEventLog::Open(path_, {.read_connections = 0}).status().code(),
      absl::StatusCode::kInvalidArgument);
}

// A stored record that does not decode is kDataLoss naming its sequence.
TEST_F(SqliteEventLogTest, UndecodableRecordIsDataLoss) {
  std::unique_ptr<SqliteEventLog> log = Open();
  std::vector<v1::Event> batch = {NewEvent("a"), NewEvent("b")};
  ASSERT_EQ(log->Append(absl::MakeSpan(batch)), absl::OkStatus());
  ExecRaw(path_, "UPDATE events SET body = x'ff' WHERE seq = 2");

  absl::Status status = log->Read(1, 10).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.message(), HasSubstr("event 2 "));
  EXPECT_EQ(log->GetById("b").status().code(), absl::StatusCode::kDataLoss);
}

// Makes this process's writes past a file's first byte fail (EFBIG), as a
// full disk would, or lets them through again.
void RefuseWrites(bool refuse) {
  signal(SIGXFSZ, SIG_IGN);
  rlimit limit = {.rlim_cur = refuse ? 1 : RLIM_INFINITY, .rlim_max = RLIM_INFINITY};
  setrlimit(RLIMIT_FSIZE, &limit);
}

// Waits up to 10 s for the writer's probe to find the store writable.
void WaitUntilReady(const SqliteEventLog& log) {
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (!log.Ready().ok() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(20));
}

// The lines `child` wrote; expects it to exit 0.
std::vector<std::string> ReportOf(Child& child) {
  std::vector<std::string> report;
  std::string line;
  while (child.ReadLine(&line)) report.push_back(line);
  int status = child.Wait();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  return report;
}

// When the disk refuses writes, Append is kUnavailable, nothing of the batch
// becomes visible or durable, and appends succeed again once it recovers.
TEST_F(SqliteEventLogTest, FailedDiskWriteIsUnavailableAndLeavesNothing) {
  // The child reports: the failed append's code, its message, then what is
  // visible afterwards, then the sequence of the append after recovery.
  Child child([this](int out) {
    std::unique_ptr<SqliteEventLog> log = Open();
    v1::Event before = NewEvent("before");
    if (!log->Append(absl::MakeSpan(&before, 1)).ok()) _exit(2);
    RefuseWrites(true);
    std::vector<v1::Event> failed = {NewEvent("failed-1"),
                                     NewEvent("failed-2")};
    absl::Status status = log->Append(absl::MakeSpan(failed));
    WriteLine(out, absl::StatusCodeToString(status.code()));
    WriteLine(out, std::string(status.message()));
    WriteLine(out, absl::StrCat(log->LastSequence()));
    WriteLine(out, absl::StrCat(log->Read(1, 10)->size()));
    WriteLine(out, absl::StatusCodeToString(log->Ready().code()));
    RefuseWrites(false);
    // With nothing appended, the writer's probe finds the disk writable.
    WaitUntilReady(*log);
    WriteLine(out, absl::StatusCodeToString(log->Ready().code()));
    v1::Event after = NewEvent("after");
    WriteLine(out, log->Append(absl::MakeSpan(&after, 1)).ToString());
    WriteLine(out, absl::StrCat(after.sequence()));
  });
  EXPECT_THAT(ReportOf(child), ElementsAre("UNAVAILABLE", HasSubstr(path_), "1", "1",
                                          "UNAVAILABLE", "OK", "OK", "2"));

  std::unique_ptr<SqliteEventLog> log = Open();
  EXPECT_EQ(log->GetById("failed-1").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(ValueOrFail(log->GetById("after"))->event.sequence(), 2u);
}

TEST_F(SqliteEventLogTest, AKeyWhoseWriteFailedIsNotADuplicate) {
  // The failed AppendOnce took sequence 2 in a transaction that rolled back;
  // an event without a key then takes 2 for real. The retry is stored, and
  // the next repeat names the retry.
  Child child([this](int out) {
    std::unique_ptr<SqliteEventLog> log = Open();
    v1::Event before = NewEvent("before");
    if (!log->Append(absl::MakeSpan(&before, 1)).ok()) _exit(2);
    RefuseWrites(true);
    WriteLine(out, log->AppendOnce(NewEvent("first"), "k", absl::Hours(1)).status().ToString());
    RefuseWrites(false);
    WaitUntilReady(*log);
    v1::Event other = NewEvent("other");
    const absl::Status appended = log->Append(absl::MakeSpan(&other, 1));
    WriteLine(out, absl::StrCat(appended.ToString(), " ", other.sequence()));
    for (const char* id : {"retry", "repeat"}) {
      absl::StatusOr<AppendOnceResult> once = log->AppendOnce(NewEvent(id), "k", absl::Hours(1));
      WriteLine(out, once.ok() ? absl::StrCat(once->duplicate, " ", once->id, " ", once->sequence)
                               : once.status().ToString());
    }
  });
  EXPECT_THAT(ReportOf(child),
              ElementsAre(HasSubstr("UNAVAILABLE"), "OK 2", "0 retry 3", "1 retry 3"));
}

// Appends `n` events in batches of 100 with ids "<prefix>-<i>".
void AppendMany(SqliteEventLog& log, int n, const std::string& prefix, absl::Time time = {}) {
  for (int i = 0; i < n; i += 100) {
    std::vector<v1::Event> batch;
    for (int j = i; j < std::min(n, i + 100); ++j) {
      batch.push_back(NewEvent(absl::StrCat(prefix, "-", j)));
      if (time != absl::Time()) SetTimestamp(time, batch.back().mutable_time());
      batch.back().set_data(std::string(200, 'x'));
    }
    ASSERT_EQ(log.Append(absl::MakeSpan(batch)), absl::OkStatus());
  }
}

// Waits until the log's first sequence reaches `first`; returns it.
uint64_t WaitForFirst(SqliteEventLog& log, uint64_t first) {
  absl::Time deadline = absl::Now() + absl::Seconds(20);
  uint64_t now = 0;
  while ((now = ValueOrFail(log.FirstSequence())) < first && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  return now;
}

// The device directory is kept with the events, survives a restart, and
// outlives the events that taught it (retention deletes events only).
TEST_F(SqliteEventLogTest, DevicesSurviveReopenAndRetention) {
  {
    std::unique_ptr<SqliteEventLog> log =
        ValueOrFail(SqliteEventLog::Open(path_, {.retention_max_events = 10}));
    v1::Event event = NewEvent("taught");
    event.mutable_device()->set_udid("00008103-000A1B2C3D4E5F60");
    event.mutable_device()->set_serial_number("C02XK1JQJG5H");
    ASSERT_EQ(log->Append(absl::MakeSpan(&event, 1)), absl::OkStatus());
    AppendMany(*log, 100, "later");
    EXPECT_EQ(WaitForFirst(*log, 92), 92u);  // the newest 10 of 101 kept
  }
  std::unique_ptr<SqliteEventLog> log = Open();
  EXPECT_TRUE(absl::IsNotFound(log->GetById("taught").status()));
  EXPECT_EQ(ValueOrFail(log->DeviceSerialNumber("00008103-000A1B2C3D4E5F60")), "C02XK1JQJG5H");
}

// With a limit of 1,000 events the oldest go, in batches between commits;
// the file stops growing; sequences keep counting.
TEST_F(SqliteEventLogTest, RetentionKeepsTheNewestEventsAndTheFileStopsGrowing) {
  std::unique_ptr<SqliteEventLog> log =
      ValueOrFail(SqliteEventLog::Open(path_, {.retention_max_events = 1000}));
  AppendMany(*log, 5000, "a");
  EXPECT_EQ(WaitForFirst(*log, 4001), 4001u);
  auto size = [this] {
    return std::filesystem::file_size(path_) + std::filesystem::file_size(path_ + "-wal");
  };
  uint64_t after_5k = size();
  AppendMany(*log, 5000, "b");
  EXPECT_EQ(WaitForFirst(*log, 9001), 9001u);
  EXPECT_EQ(log->LastSequence(), 10000u);
  EXPECT_EQ(log->retention_deleted(), 9000u);
  std::vector<EventPtr> oldest = ValueOrFail(log->Read(1, 1));
  ASSERT_EQ(oldest.size(), 1u);
  EXPECT_EQ(oldest[0]->event.sequence(), 9001u);
  EXPECT_LE(size(), after_5k * 5 / 4) << "the file kept growing";
}

// Events older than the maximum age (event time, on the injected clock) go.
TEST_F(SqliteEventLogTest, RetentionByAgeDropsOldEvents) {
  FakeClock clock(absl::FromUnixSeconds(1767225600));
  std::unique_ptr<SqliteEventLog> log = ValueOrFail(SqliteEventLog::Open(
      path_, {.retention_max_age = absl::Hours(1), .clock = &clock}));
  AppendMany(*log, 300, "old", clock.Now() - absl::Hours(2));
  AppendMany(*log, 200, "new", clock.Now() - absl::Minutes(30));
  EXPECT_EQ(WaitForFirst(*log, 301), 301u);
  clock.Advance(absl::Minutes(31));  // now the second lot is too old as well
  EXPECT_EQ(WaitForFirst(*log, 501), 501u);
  EXPECT_TRUE(ValueOrFail(log->Read(1, 10)).empty());
}

// A size limit bounds the pages in use: old events go until it holds.
TEST_F(SqliteEventLogTest, RetentionBySizeBoundsTheFile) {
  constexpr int64_t kLimit = 1 << 20;
  std::unique_ptr<SqliteEventLog> log =
      ValueOrFail(SqliteEventLog::Open(path_, {.retention_max_bytes = kLimit}));
  AppendMany(*log, 20000, "a");  // about 5 MB of events
  // Freed pages leave the database file when the WAL is checkpointed
  // (SQLite does so every 1,000 pages written; forced here).
  absl::Time deadline = absl::Now() + absl::Seconds(20);
  do {
    absl::SleepFor(absl::Milliseconds(50));
    ExecRaw(path_, "PRAGMA wal_checkpoint(TRUNCATE)");
  } while (std::filesystem::file_size(path_) > kLimit * 5 / 4 && absl::Now() < deadline);
  EXPECT_LE(std::filesystem::file_size(path_), kLimit * 5 / 4);
  EXPECT_GT(ValueOrFail(log->FirstSequence()), 10000u);
  EXPECT_EQ(log->LastSequence(), 20000u);
}

// Once closed, Append fails with kUnavailable.
TEST_F(SqliteEventLogTest, AppendAfterCloseIsUnavailable) {
  std::unique_ptr<SqliteEventLog> log = Open();
  log->Close();
  v1::Event event = NewEvent("a");
  absl::Status status = log->Append(absl::MakeSpan(&event, 1));
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(status.message(), HasSubstr("event log is closed"));
  EXPECT_THAT(ValueOrFail(log->Read(1, 10)), ::testing::IsEmpty());
}

// Appends racing with Close either commit durably or fail as closed; none
// is lost or half done.
TEST_F(SqliteEventLogTest, AppendsRacingCloseCommitOrFailCleanly) {
  std::unique_ptr<SqliteEventLog> log = Open();
  std::latch started(1);
  std::vector<std::vector<std::string>> committed(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0;; ++i) {
        v1::Event event = NewEvent(absl::StrCat(t, "-", i));
        absl::Status status = log->Append(absl::MakeSpan(&event, 1));
        if (!status.ok()) {
          EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
          EXPECT_THAT(status.message(), HasSubstr("event log is closed"));
          return;
        }
        committed[t].push_back(event.id());
        if (t == 0 && i == 10) started.count_down();
      }
    });
  }
  started.wait();
  log->Close();
  for (std::thread& thread : threads) thread.join();
  log.reset();

  log = Open();
  size_t total = 0;
  for (const std::vector<std::string>& ids : committed) {
    total += ids.size();
    for (const std::string& id : ids) {
      EXPECT_TRUE(log->GetById(id).ok()) << id;
    }
  }
  EXPECT_EQ(log->LastSequence(), total);
}

}  // namespace
}  // namespace hookfan::broker
