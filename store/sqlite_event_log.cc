#include "store/sqlite_event_log.h"

#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/hash/hash.h"
#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/status_macros.h"

namespace hookfan::broker {
namespace sqlite_internal {

// A read-only connection with its prepared statements. Parameter ?1 of each
// is the highest published sequence: rows above it are not visible yet.
struct ReadConnection {
  DbPtr db;
  StmtPtr read;   // ?2 from, ?3 limit
  StmtPtr by_id;  // ?2 id
  StmtPtr first;
  StmtPtr at_time;  // ?2 time_us
  StmtPtr serial_number;  // ?1 udid
  StmtPtr latest_range;   // ?1 from, ?2 through -> seq, key, type
  StmtPtr latest_of_key;  // ?1 key -> seq, type
  StmtPtr latest_keys;    // ?1 after key -> key, type, seq
  StmtPtr event_at;       // ?1 seq -> seq, body
};

}  // namespace sqlite_internal
namespace {

using sqlite_internal::DbPtr;
using sqlite_internal::ExecSql;
using sqlite_internal::InWriteTransaction;
using sqlite_internal::OpenConnection;
using sqlite_internal::Prepare;
using sqlite_internal::Query;
using sqlite_internal::QueryInt;
using sqlite_internal::ReadConnection;
using sqlite_internal::SqliteError;
using sqlite_internal::StmtPtr;
using sqlite_internal::ToSql;

constexpr int64_t kSchemaVersion = 1;

// auto_vacuum only takes effect before the first table is created. The
// schema_version inserted is kSchemaVersion.
constexpr char kSchema[] = R"sql(
PRAGMA auto_vacuum = INCREMENTAL;
PRAGMA journal_mode = WAL;
PRAGMA synchronous = FULL;
BEGIN IMMEDIATE;
CREATE TABLE IF NOT EXISTS meta(
  key TEXT PRIMARY KEY,
  value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT OR IGNORE INTO meta(key, value) VALUES('schema_version', 1);
CREATE TABLE IF NOT EXISTS events(
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  time_us INTEGER NOT NULL,
  type TEXT NOT NULL,
  body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_time ON events(time_us);
-- One row per event stored with a dedup key, keyed by its sequence, so
-- that each commit appends to the end of the table instead of writing a
-- random page of a key-ordered one; the writer finds keys through an index
-- in memory built from it (SqliteEventLog::dedup_index_).
CREATE TABLE IF NOT EXISTS dedup_log(
  seq INTEGER PRIMARY KEY,
  key TEXT NOT NULL,
  id TEXT NOT NULL,
  time_us INTEGER NOT NULL,
  expires_us INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS dedup_log_by_expiry ON dedup_log(expires_us);
CREATE TABLE IF NOT EXISTS devices(
  udid TEXT PRIMARY KEY,
  serial_number TEXT NOT NULL
) WITHOUT ROWID;
-- The latest view: the sequence of the newest event of each (key, type),
-- as of meta 'latest_through' (later changes are in memory until the next
-- checkpoint; see SqliteEventLog::overlay_). meta 'latest_view' = 1 while
-- it is kept.
CREATE TABLE IF NOT EXISTS latest(
  key TEXT NOT NULL,
  type TEXT NOT NULL,
  seq INTEGER NOT NULL,
  PRIMARY KEY(key, type)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS latest_by_seq ON latest(seq);
COMMIT;
)sql";

constexpr char kInsertSql[] =
    "INSERT INTO events(seq, id, time_us, type, body) VALUES(?1, ?2, ?3, ?4, "
    "?5)";
constexpr char kDedupFindSql[] = "SELECT key, id FROM dedup_log WHERE seq = ?1";
constexpr char kDedupPutSql[] =
    "INSERT INTO dedup_log(seq, key, id, time_us, expires_us) VALUES(?1, ?2, ?3, ?4, ?5)";
constexpr char kDedupLoadSql[] =
    "SELECT seq, key, time_us, expires_us FROM dedup_log ORDER BY seq";
// A store written before dedup_log kept its keys in a key-ordered table:
// they move over once, at open.
constexpr char kDedupMigrateSql[] = R"sql(
BEGIN IMMEDIATE;
INSERT OR IGNORE INTO dedup_log(seq, key, id, time_us, expires_us)
  SELECT seq, key, id, time_us, expires_us FROM dedup;
DROP TABLE dedup;
COMMIT;
)sql";
constexpr char kDedupPurgeSql[] = "DELETE FROM dedup_log WHERE expires_us < ?1";
// Rewrites a device's row only when its serial number changes.
constexpr char kDevicePutSql[] =
    "INSERT INTO devices(udid, serial_number) VALUES(?1, ?2) ON CONFLICT(udid) "
    "DO UPDATE SET serial_number = excluded.serial_number "
    "WHERE serial_number <> excluded.serial_number";
constexpr char kLatestPutSql[] =
    "INSERT INTO latest(key, type, seq) VALUES(?1, ?2, ?3) ON CONFLICT(key, type) "
    "DO UPDATE SET seq = excluded.seq";
constexpr char kLatestRangeSql[] =
    "SELECT seq, key, type FROM latest INDEXED BY latest_by_seq "
    "WHERE seq >= ?1 AND seq <= ?2 ORDER BY seq";
constexpr char kLatestOfKeySql[] = "SELECT seq, type FROM latest WHERE key = ?1";
constexpr char kLatestKeysSql[] =
    "SELECT key, type, seq FROM latest WHERE key > ?1 ORDER BY key, type";
constexpr char kEventAtSql[] = "SELECT seq, body FROM events WHERE seq = ?1";
constexpr char kDeviceFindSql[] = "SELECT serial_number FROM devices WHERE udid = ?1";
// Expired dedup keys are deleted at most this often (by event time).
constexpr absl::Duration kDedupPurgeInterval = absl::Minutes(1);
constexpr char kReadSql[] =
    "SELECT seq, body FROM events WHERE seq <= ?1 AND seq >= ?2 "
    "ORDER BY seq LIMIT ?3";
constexpr char kByIdSql[] =
    "SELECT seq, body FROM events WHERE seq <= ?1 AND id = ?2";
constexpr char kFirstSql[] = "SELECT min(seq) FROM events WHERE seq <= ?1 AND seq >= ?2";
// Without INDEXED BY the planner walks the whole table in seq order.
constexpr char kAtTimeSql[] =
    "SELECT min(seq) FROM events INDEXED BY events_by_time "
    "WHERE seq <= ?1 AND time_us >= ?2";

int64_t TimeMicros(const google::protobuf::Timestamp& time) {
  return time.seconds() * 1'000'000 + time.nanos() / 1'000;
}

// Prepares and runs `sql` (one integer column) at open; 0 if it yields no
// row or NULL.
absl::StatusOr<int64_t> QueryOnce(sqlite3* db, const char* sql,
                                  absl::string_view path) {
  ASSIGN_OR_RETURN(StmtPtr stmt, Prepare(db, sql, path));
  Query query(stmt.get());
  return QueryInt(query, 0, "open", path);
}

// Builds the event of a (seq, body) row; body is the wire encoding with the
// sequence set, kept as is.
absl::StatusOr<EventPtr> DecodeRow(sqlite3_stmt* stmt, absl::string_view path) {
  int64_t seq = sqlite3_column_int64(stmt, 0);
  const void* body = sqlite3_column_blob(stmt, 1);
  int size = sqlite3_column_bytes(stmt, 1);
  auto stored = std::make_shared<StoredEvent>();
  if (size > 0) stored->wire.assign(static_cast<const char*>(body), size);
  if (!stored->event.ParseFromString(stored->wire) ||
      stored->event.sequence() != static_cast<uint64_t>(seq)) {
    return absl::DataLossError(
        absl::StrCat("event ", seq, " in ", path, " does not decode"));
  }
  return stored;
}

absl::StatusOr<std::unique_ptr<ReadConnection>> OpenReader(
    const std::string& path) {
  auto reader = std::make_unique<ReadConnection>();
  ASSIGN_OR_RETURN(reader->db, OpenConnection(path, SQLITE_OPEN_READONLY));
  sqlite3* db = reader->db.get();
  ASSIGN_OR_RETURN(reader->read, Prepare(db, kReadSql, path));
  ASSIGN_OR_RETURN(reader->by_id, Prepare(db, kByIdSql, path));
  ASSIGN_OR_RETURN(reader->first, Prepare(db, kFirstSql, path));
  ASSIGN_OR_RETURN(reader->at_time, Prepare(db, kAtTimeSql, path));
  ASSIGN_OR_RETURN(reader->serial_number, Prepare(db, kDeviceFindSql, path));
  ASSIGN_OR_RETURN(reader->latest_range, Prepare(db, kLatestRangeSql, path));
  ASSIGN_OR_RETURN(reader->latest_of_key, Prepare(db, kLatestOfKeySql, path));
  ASSIGN_OR_RETURN(reader->latest_keys, Prepare(db, kLatestKeysSql, path));
  ASSIGN_OR_RETURN(reader->event_at, Prepare(db, kEventAtSql, path));
  return reader;
}

}  // namespace

struct SqliteEventLog::Request {
  explicit Request(absl::Span<v1::Event> e) : events(e) {}

  absl::Span<v1::Event> events;
  // AppendOnce: the key and window (events holds one event); else null.
  std::string_view dedup_key;
  absl::Duration dedup_window;
  AppendOnceResult* once = nullptr;
  // Set by the writer before `done`.
  absl::Status status;
  uint64_t first_sequence = 0;
  bool done = false;  // guarded by the log's mu_
  std::condition_variable done_cv;
};

class SqliteEventLog::ReaderLease {
 public:
  explicit ReaderLease(SqliteEventLog* log) : log_(log) {
    std::unique_lock lock(log_->pool_mu_);
    log_->reader_idle_.wait(lock,
                            [log] { return !log->idle_readers_.empty(); });
    reader_ = log_->idle_readers_.back();
    log_->idle_readers_.pop_back();
  }
  ~ReaderLease() {
    {
      std::lock_guard lock(log_->pool_mu_);
      log_->idle_readers_.push_back(reader_);
    }
    log_->reader_idle_.notify_one();
  }
  ReaderLease(const ReaderLease&) = delete;
  ReaderLease& operator=(const ReaderLease&) = delete;

  ReadConnection* operator->() const { return reader_; }

 private:
  SqliteEventLog* const log_;
  ReadConnection* reader_;
};

SqliteEventLog::SqliteEventLog(std::string path, Options options)
    : path_(std::move(path)), options_(options) {}

absl::StatusOr<std::unique_ptr<SqliteEventLog>> SqliteEventLog::Open(
    const std::string& path, Options options) {
  if (options.read_connections < 1) {
    return absl::InvalidArgumentError("read_connections must be at least 1");
  }
  if (options.retention_keep_latest && !options.latest_view) {
    return absl::InvalidArgumentError("compacted retention needs the latest view");
  }
  std::unique_ptr<SqliteEventLog> log(new SqliteEventLog(path, options));
  ASSIGN_OR_RETURN(log->db_, OpenConnection(path, SQLITE_OPEN_READWRITE |
                                                      SQLITE_OPEN_CREATE));
  sqlite3* db = log->db_.get();
  RETURN_IF_ERROR(ExecSql(db, kSchema, "open", path));

  ASSIGN_OR_RETURN(
      int64_t version,
      QueryOnce(db, "SELECT value FROM meta WHERE key = 'schema_version'",
                path));
  if (version != kSchemaVersion) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, " has schema version ", version, ", this build ",
                     kSchemaVersion));
  }
  // The AUTOINCREMENT high-water mark survives the deletion of every row.
  ASSIGN_OR_RETURN(
      int64_t last,
      QueryOnce(db, "SELECT seq FROM sqlite_sequence WHERE name = 'events'",
                path));
  log->last_sequence_.store(last);
  ASSIGN_OR_RETURN(
      int64_t contiguous,
      QueryOnce(db, "SELECT value FROM meta WHERE key = 'contiguous_from'", path));
  log->contiguous_from_.store(contiguous);
  RETURN_IF_ERROR(log->LoadDedupIndex());
  RETURN_IF_ERROR(log->PrepareLatestView());
  ASSIGN_OR_RETURN(log->insert_, Prepare(db, kInsertSql, path));
  ASSIGN_OR_RETURN(log->dedup_find_, Prepare(db, kDedupFindSql, path));
  ASSIGN_OR_RETURN(log->dedup_put_, Prepare(db, kDedupPutSql, path));
  ASSIGN_OR_RETURN(log->dedup_purge_, Prepare(db, kDedupPurgeSql, path));
  ASSIGN_OR_RETURN(log->device_put_, Prepare(db, kDevicePutSql, path));
  ASSIGN_OR_RETURN(log->latest_put_, Prepare(db, kLatestPutSql, path));

  {
    std::lock_guard lock(log->pool_mu_);
    for (int i = 0; i < options.read_connections; ++i) {
      ASSIGN_OR_RETURN(std::unique_ptr<ReadConnection> reader,
                       OpenReader(path));
      log->idle_readers_.push_back(reader.get());
      log->readers_.push_back(std::move(reader));
    }
  }
  {
    std::lock_guard lock(log->close_mu_);
    log->writer_ = std::thread(&SqliteEventLog::WriterLoop, log.get());
  }
  return log;
}

SqliteEventLog::~SqliteEventLog() { Close(); }

void SqliteEventLog::Close() {
  std::lock_guard close_lock(close_mu_);
  {
    std::lock_guard lock(mu_);
    closed_ = true;
  }
  work_.notify_one();
  if (!writer_.joinable()) return;
  writer_.join();
  // The writer is gone: its connection is this thread's now. A checkpoint
  // spares the next Open a replay (the overlay is lost anyway).
  bool dirty = false;
  {
    std::lock_guard lock(overlay_mu_);
    dirty = !overlay_.empty();
  }
  if (dirty) {
    const uint64_t last = LastSequence();
    absl::Status status = InWriteTransaction(db_.get(), "close", path_,
                                             [&] { return CheckpointLatest(last); });
    FinishLatest(status.ok());
  }
}

absl::Status SqliteEventLog::Append(absl::Span<v1::Event> events) {
  RETURN_IF_ERROR(ValidateBatch(events));
  if (events.empty()) return absl::OkStatus();
  Request request(events);
  return Submit(request);
}

absl::StatusOr<AppendOnceResult> SqliteEventLog::AppendOnce(v1::Event event,
                                                            std::string_view dedup_key,
                                                            absl::Duration window) {
  RETURN_IF_ERROR(ValidateBatch({event}));
  AppendOnceResult result;
  Request request(absl::MakeSpan(&event, 1));
  request.dedup_key = dedup_key;
  request.dedup_window = window;
  request.once = &result;
  RETURN_IF_ERROR(Submit(request));
  return result;
}

absl::Status SqliteEventLog::Submit(Request& request) {
  std::unique_lock lock(mu_);
  if (closed_) return absl::UnavailableError("event log is closed");
  queue_.push_back(&request);
  work_.notify_one();
  request.done_cv.wait(lock, [&request] { return request.done; });
  return request.status;
}

void SqliteEventLog::WriterLoop() {
  std::vector<Request*> group;
  for (;;) {
    group.clear();
    Maintain();
    {
      std::unique_lock lock(mu_);
      if (!work_.wait_for(lock, std::chrono::milliseconds(100),
                          [this] { return !queue_.empty() || closed_; })) {
        continue;  // idle: maintenance time
      }
      if (queue_.empty()) return;  // closed and drained
      size_t events = 0;
      do {
        events += queue_.front()->events.size();
        group.push_back(queue_.front());
        queue_.pop_front();
      } while (!queue_.empty() && events + queue_.front()->events.size() <=
                                      options_.max_group_commit_events);
    }
    CommitGroup(group);
  }
}

void SqliteEventLog::CommitGroup(absl::Span<Request* const> group) {
  std::vector<EventPtr> committed;
  absl::Status status = InWriteTransaction(db_.get(), "append to", path_,
                                           [&] { return WriteGroup(group, &committed); });
  FinishLatest(status.ok());  // before the sequences are published
  SetWriteHealth(status);
  if (!status.ok()) {
    for (Request* request : group) request->status = status;
  } else if (!committed.empty()) {
    last_sequence_.store(committed.back()->event.sequence(),
                         std::memory_order_release);
    for (Request* request : group) {
      if (!request->status.ok()) continue;
      for (size_t i = 0; i < request->events.size(); ++i) {
        request->events[i].set_sequence(request->first_sequence + i);
      }
    }
    std::lock_guard lock(listener_mu_);
    if (listener_ != nullptr) listener_->OnCommit(committed);
  }
  // Notified under mu_: a woken appender may destroy its Request at once.
  std::lock_guard lock(mu_);
  for (Request* request : group) {
    request->done = true;
    request->done_cv.notify_one();
  }
}

void SqliteEventLog::SetWriteHealth(const absl::Status& status) {
  std::lock_guard lock(health_mu_);
  if (!status.ok() && write_health_.ok()) {
    log::Error("the event log cannot write; answering 503 until it can",
               {{"path", path_}, {"error", std::string(status.message())}});
  } else if (status.ok() && !write_health_.ok()) {
    log::Info("the event log writes again", {{"path", path_}});
  }
  write_health_ = status;
}

absl::Status SqliteEventLog::Ready() const {
  std::lock_guard lock(health_mu_);
  return write_health_;
}

void SqliteEventLog::Maintain() {
  const absl::Time now = absl::Now();  // pacing is real time; retention_max_age uses the clock
  if (!Ready().ok() && now - last_probe_ >= absl::Seconds(1)) {
    // Nothing may be appending (readiness keeps webhooks away): find out
    // by writing a row whether the store has recovered.
    last_probe_ = now;
    std::string probe = absl::StrCat(
        "INSERT OR REPLACE INTO meta(key, value) VALUES('write_probe', ",
        absl::ToUnixMicros(now), ")");
    SetWriteHealth(InWriteTransaction(db_.get(), "write to", path_, [&] {
      return ExecSql(db_.get(), probe.c_str(), "write to", path_);
    }));
  }
  const Options& o = options_;
  bool retention = o.retention_max_events > 0 || o.retention_max_bytes > 0 ||
                   o.retention_max_age > absl::ZeroDuration();
  if (!retention || now - last_retention_ < absl::Milliseconds(100)) return;
  last_retention_ = now;
  if (absl::Status status = RetentionStep(); !status.ok()) {
    log::Warn("retention step failed; retrying", {{"error", std::string(status.message())}});
  }
}

absl::Status SqliteEventLog::RetentionStep() {
  constexpr int64_t kBatch = 1000;
  sqlite3* db = db_.get();
  auto query_int = [&](const std::string& sql) -> absl::StatusOr<int64_t> {
    ASSIGN_OR_RETURN(StmtPtr stmt, Prepare(db, sql.c_str(), path_));
    Query query(stmt.get());
    return QueryInt(query, 0, "trim", path_);
  };
  const int64_t contiguous = static_cast<int64_t>(contiguous_from_.load());
  ASSIGN_OR_RETURN(int64_t first, query_int(absl::StrCat("SELECT MIN(seq) FROM events WHERE seq >= ",
                                                         contiguous)));
  if (first == 0) return absl::OkStatus();  // empty
  const int64_t last = static_cast<int64_t>(last_sequence_.load(std::memory_order_acquire));
  int64_t cutoff = first;  // events below it go
  const Options& o = options_;
  if (o.retention_max_events > 0) {
    cutoff = std::max(cutoff, last - static_cast<int64_t>(o.retention_max_events) + 1);
  }
  if (o.retention_max_age > absl::ZeroDuration()) {
    int64_t oldest_kept = absl::ToUnixMicros(o.clock->Now() - o.retention_max_age);
    ASSIGN_OR_RETURN(int64_t young,
                     query_int(absl::StrCat("SELECT MIN(seq) FROM events WHERE seq >= ", first,
                                            " AND seq < ", first + kBatch,
                                            " AND time_us >= ", oldest_kept)));
    cutoff = std::max(cutoff, young == 0 ? first + kBatch : young);
  }
  if (o.retention_max_bytes > 0) {
    ASSIGN_OR_RETURN(int64_t pages, query_int("PRAGMA page_count"));
    ASSIGN_OR_RETURN(int64_t free_pages, query_int("PRAGMA freelist_count"));
    ASSIGN_OR_RETURN(int64_t page_size, query_int("PRAGMA page_size"));
    if ((pages - free_pages) * page_size > o.retention_max_bytes) {
      cutoff = std::max(cutoff, first + kBatch / 2);
    }
  }
  cutoff = std::min({cutoff, first + kBatch, last + 1});
  if (cutoff <= first) return absl::OkStatus();
  // Compacted retention spares the view's events; plain retention takes
  // them, and their rows in the view with them.
  std::string sql =
      o.retention_keep_latest
          ? absl::StrCat("DELETE FROM events WHERE seq >= ", first, " AND seq < ", cutoff,
                         " AND seq NOT IN (SELECT seq FROM latest WHERE seq >= ", first,
                         " AND seq < ", cutoff, ");")
          : absl::StrCat("DELETE FROM events WHERE seq < ", cutoff, ";");
  int deleted = 0;
  absl::Status trimmed = InWriteTransaction(db, "trim", path_, [&]() -> absl::Status {
    // The view's table must name every event the view holds before
    // compacted retention asks it what to spare.
    if (o.latest_view) RETURN_IF_ERROR(CheckpointLatest(static_cast<uint64_t>(last)));
    RETURN_IF_ERROR(ExecSql(db, sql.c_str(), "trim", path_));
    deleted = sqlite3_changes(db);
    if (!o.retention_keep_latest) {
      std::string view = absl::StrCat("DELETE FROM latest WHERE seq < ", cutoff);
      RETURN_IF_ERROR(ExecSql(db, view.c_str(), "trim", path_));
    }
    std::string mark = absl::StrCat(
        "INSERT OR REPLACE INTO meta(key, value) VALUES('contiguous_from', ", cutoff, ")");
    return ExecSql(db, mark.c_str(), "trim", path_);
  });
  FinishLatest(trimmed.ok());
  RETURN_IF_ERROR(trimmed);
  contiguous_from_.store(static_cast<uint64_t>(cutoff));
  retention_deleted_.fetch_add(static_cast<uint64_t>(deleted), std::memory_order_relaxed);
  // Give the freed pages back (auto_vacuum = INCREMENTAL).
  return ExecSql(db, "PRAGMA incremental_vacuum", "trim", path_);
}

absl::Status SqliteEventLog::WriteGroup(absl::Span<Request* const> group,
                                        std::vector<EventPtr>* committed) {
  uint64_t next = last_sequence_.load(std::memory_order_relaxed) + 1;
  for (Request* request : group) {
    // A savepoint per batch lets a duplicate id undo its own batch only.
    if (request->once != nullptr) {
      ASSIGN_OR_RETURN(bool duplicate, FindDuplicate(*request));
      if (duplicate) continue;  // nothing stored; `once` holds the original
    }
    RETURN_IF_ERROR(Exec("SAVEPOINT batch"));
    size_t mark = committed->size();
    size_t latest_mark = pending_latest_.size();
    absl::Status status = InsertBatch(request->events, next, committed);
    if (status.ok() && request->once != nullptr) status = RememberKey(*request, next);
    if (status.ok()) {
      RETURN_IF_ERROR(Exec("RELEASE batch"));
      request->first_sequence = next;
      next += request->events.size();
    } else if (absl::IsInvalidArgument(status)) {
      RETURN_IF_ERROR(Exec("ROLLBACK TO batch; RELEASE batch"));
      committed->erase(committed->begin() + mark, committed->end());
      pending_latest_.resize(latest_mark);
      request->status = std::move(status);
    } else {
      return status;
    }
  }
  if (!pending_latest_.empty()) {
    size_t held;
    {
      std::lock_guard lock(overlay_mu_);
      held = overlay_.size();
    }
    if (held + pending_latest_.size() >= options_.latest_checkpoint_entries) {
      RETURN_IF_ERROR(CheckpointLatest(next - 1));
    }
  }
  return absl::OkStatus();
}

absl::Status SqliteEventLog::LoadDedupIndex() {
  sqlite3* db = db_.get();
  ASSIGN_OR_RETURN(int64_t old_table,
                   QueryOnce(db, "SELECT count(*) FROM sqlite_master WHERE name = 'dedup'", path_));
  if (old_table > 0) RETURN_IF_ERROR(ExecSql(db, kDedupMigrateSql, "open", path_));
  ASSIGN_OR_RETURN(StmtPtr load, Prepare(db, kDedupLoadSql, path_));
  Query query(load.get());
  int rc;
  while ((rc = query.Step()) == SQLITE_ROW) {
    const auto* key = reinterpret_cast<const char*>(sqlite3_column_text(query.stmt(), 1));
    Remember(absl::string_view(key, sqlite3_column_bytes(query.stmt(), 1)),
             {.sequence = static_cast<uint64_t>(sqlite3_column_int64(query.stmt(), 0)),
              .time_us = sqlite3_column_int64(query.stmt(), 2),
              .expires_us = sqlite3_column_int64(query.stmt(), 3)});
  }
  if (rc != SQLITE_DONE) return SqliteError(rc, db, "open", path_);
  return absl::OkStatus();
}

void SqliteEventLog::Remember(absl::string_view key, const RememberedKey& remembered) {
  // Called in sequence order: the newest event under a key is the one
  // duplicates name. (After a failed transaction, a retry may take a lower
  // sequence than the one remembered for it: it replaces it all the same.)
  dedup_index_[absl::Hash<absl::string_view>{}(key)] = remembered;
}

absl::StatusOr<bool> SqliteEventLog::FindDuplicate(const Request& request) {
  const v1::Event& event = request.events[0];
  const absl::string_view key(request.dedup_key.data(), request.dedup_key.size());
  auto it = dedup_index_.find(absl::Hash<absl::string_view>{}(key));
  if (it == dedup_index_.end()) return false;
  const RememberedKey& remembered = it->second;
  if (TimeMicros(event.time()) - remembered.time_us >=
      absl::ToInt64Microseconds(request.dedup_window)) {
    return false;  // the key's window has passed
  }
  // The index holds hashes: the row says whether it is this key (and that
  // its transaction committed, or is this one).
  Query find(dedup_find_.get());
  find.Bind(1, ToSql(remembered.sequence));
  int rc = find.Step();
  if (rc == SQLITE_DONE) return false;
  if (rc != SQLITE_ROW) return SqliteError(rc, db_.get(), "append to", path_);
  const auto* stored_key = reinterpret_cast<const char*>(sqlite3_column_text(find.stmt(), 0));
  if (absl::string_view(stored_key, sqlite3_column_bytes(find.stmt(), 0)) != key) return false;
  request.once->sequence = remembered.sequence;
  request.once->id = reinterpret_cast<const char*>(sqlite3_column_text(find.stmt(), 1));
  request.once->duplicate = true;
  return true;
}

absl::Status SqliteEventLog::RememberKey(const Request& request, uint64_t sequence) {
  const v1::Event& event = request.events[0];
  int64_t time_us = TimeMicros(event.time());
  const int64_t expires_us = time_us + absl::ToInt64Microseconds(request.dedup_window);
  Query put(dedup_put_.get());
  put.Bind(1, ToSql(sequence))
      .BindText(2, request.dedup_key)
      .BindText(3, event.id())
      .Bind(4, time_us)
      .Bind(5, expires_us);
  if (int rc = put.Step(); rc != SQLITE_DONE) return SqliteError(rc, db_.get(), "append to", path_);
  Remember(absl::string_view(request.dedup_key.data(), request.dedup_key.size()),
           {.sequence = sequence, .time_us = time_us, .expires_us = expires_us});
  request.once->id = event.id();
  request.once->sequence = sequence;
  if (time_us - last_dedup_purge_us_ > absl::ToInt64Microseconds(kDedupPurgeInterval)) {
    last_dedup_purge_us_ = time_us;
    Query purge(dedup_purge_.get());
    purge.Bind(1, time_us);
    if (int rc = purge.Step(); rc != SQLITE_DONE) {
      return SqliteError(rc, db_.get(), "append to", path_);
    }
    for (auto it = dedup_index_.begin(); it != dedup_index_.end();) {
      if (it->second.expires_us < time_us) {
        dedup_index_.erase(it++);
      } else {
        ++it;
      }
    }
  }
  return absl::OkStatus();
}

absl::Status SqliteEventLog::InsertBatch(absl::Span<const v1::Event> events,
                                         uint64_t first_sequence,
                                         std::vector<EventPtr>* committed) {
  for (size_t i = 0; i < events.size(); ++i) {
    v1::Event event = events[i];
    event.set_sequence(first_sequence + i);
    EventPtr stored = MakeStoredEvent(std::move(event));
    const v1::Event& e = stored->event;
    Query insert(insert_.get());
    insert.Bind(1, ToSql(e.sequence()))
        .BindText(2, e.id())
        .Bind(3, TimeMicros(e.time()))
        .BindText(4, e.type())
        .BindBlob(5, stored->wire);
    int rc = insert.Step();
    if (rc == SQLITE_CONSTRAINT_UNIQUE) {
      return absl::InvalidArgumentError(
          absl::StrCat("event id ", e.id(), " already stored"));
    }
    if (rc != SQLITE_DONE) {
      return SqliteError(rc, db_.get(), "append to", path_);
    }
    // In the event's own transaction: the directory knows what the log holds.
    if (std::optional<DeviceRecord> device = DeviceRecordOf(e)) {
      Query put(device_put_.get());
      put.BindText(1, device->udid).BindText(2, device->serial_number);
      if (rc = put.Step(); rc != SQLITE_DONE) return SqliteError(rc, db_.get(), "append to", path_);
    }
    if (options_.latest_view && !e.key().empty()) {
      pending_latest_.push_back({e.key(), e.type(), e.sequence()});
    }
    committed->push_back(std::move(stored));
  }
  return absl::OkStatus();
}

absl::Status SqliteEventLog::Exec(const char* sql) {
  return ExecSql(db_.get(), sql, "append to", path_);
}

absl::StatusOr<std::vector<EventPtr>> SqliteEventLog::Read(uint64_t from,
                                                           size_t max_events,
                                                           size_t max_bytes) {
  ReaderLease reader(this);
  Query query(reader->read.get());
  query.Bind(1, ToSql(LastSequence()))
      .Bind(2, ToSql(std::max(from, contiguous_from_.load())))
      .Bind(3, ToSql(max_events));
  std::vector<EventPtr> events;
  size_t bytes = 0;
  int rc;
  while ((rc = query.Step()) == SQLITE_ROW) {
    size_t size = sqlite3_column_bytes(query.stmt(), 1);
    if (!events.empty() && bytes + size > max_bytes) break;
    ASSIGN_OR_RETURN(EventPtr event, DecodeRow(query.stmt(), path_));
    bytes += size;
    events.push_back(std::move(event));
  }
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
    return SqliteError(rc, query.db(), "read", path_);
  }
  return events;
}

absl::StatusOr<EventPtr> SqliteEventLog::GetById(std::string_view id) {
  ReaderLease reader(this);
  Query query(reader->by_id.get());
  query.Bind(1, ToSql(LastSequence())).BindText(2, id);
  int rc = query.Step();
  if (rc == SQLITE_ROW) return DecodeRow(query.stmt(), path_);
  if (rc == SQLITE_DONE) {
    return absl::NotFoundError(
        absl::StrCat("event id ", std::string(id), " not found"));
  }
  return SqliteError(rc, query.db(), "read", path_);
}

absl::StatusOr<std::string> SqliteEventLog::DeviceSerialNumber(std::string_view udid) {
  ReaderLease reader(this);
  Query query(reader->serial_number.get());
  query.BindText(1, udid);
  int rc = query.Step();
  if (rc == SQLITE_ROW) {
    return std::string(reinterpret_cast<const char*>(sqlite3_column_text(query.stmt(), 0)));
  }
  if (rc == SQLITE_DONE) return std::string();
  return SqliteError(rc, query.db(), "read", path_);
}

absl::StatusOr<uint64_t> SqliteEventLog::FirstSequence() {
  ReaderLease reader(this);
  uint64_t last = LastSequence();
  Query query(reader->first.get());
  query.Bind(1, ToSql(last)).Bind(2, ToSql(contiguous_from_.load()));
  return QueryInt(query, ToSql(last + 1), "read", path_);
}

uint64_t SqliteEventLog::LastSequence() const {
  return last_sequence_.load(std::memory_order_acquire);
}

absl::StatusOr<uint64_t> SqliteEventLog::SequenceAtTime(absl::Time t) {
  ReaderLease reader(this);
  uint64_t last = LastSequence();
  Query query(reader->at_time.get());
  query.Bind(1, ToSql(last)).Bind(2, absl::ToUnixMicros(t));
  return QueryInt(query, ToSql(last + 1), "read", path_);
}

absl::Status SqliteEventLog::LatestView() const {
  if (options_.latest_view) return absl::OkStatus();
  return NoLatestViewError("it was started with --latest-view=false");
}

SqliteEventLog::LatestOverlay SqliteEventLog::CopyOverlay(const std::string_view* keep,
                                                          uint64_t* generation) const {
  std::lock_guard lock(overlay_mu_);
  *generation = overlay_generation_;
  if (keep == nullptr) return overlay_;
  LatestOverlay copy;
  for (const auto& [key_type, sequence] : overlay_) {
    if (key_type.first == *keep) copy.emplace(key_type, sequence);
  }
  return copy;
}

uint64_t SqliteEventLog::OverlayGeneration() const {
  std::lock_guard lock(overlay_mu_);
  return overlay_generation_;
}

absl::Status SqliteEventLog::CheckpointLatest(uint64_t through) {
  // In key order, so that neighbouring entries share their page writes.
  std::vector<LatestEntry> entries;
  {
    std::lock_guard lock(overlay_mu_);
    entries.reserve(overlay_.size() + pending_latest_.size());
    for (const auto& [key_type, sequence] : overlay_) {
      entries.push_back({key_type.first, key_type.second, sequence});
    }
  }
  entries.insert(entries.end(), pending_latest_.begin(), pending_latest_.end());
  std::stable_sort(entries.begin(), entries.end(), [](const LatestEntry& a, const LatestEntry& b) {
    return std::tie(a.key, a.type, a.sequence) < std::tie(b.key, b.type, b.sequence);
  });
  for (const LatestEntry& e : entries) {  // a later entry of a (key, type) overwrites
    Query put(latest_put_.get());
    put.BindText(1, e.key).BindText(2, e.type).Bind(3, ToSql(e.sequence));
    if (int rc = put.Step(); rc != SQLITE_DONE) {
      return SqliteError(rc, db_.get(), "append to", path_);
    }
  }
  std::string mark = absl::StrCat(
      "INSERT OR REPLACE INTO meta(key, value) VALUES('latest_through', ", through, ")");
  RETURN_IF_ERROR(Exec(mark.c_str()));
  latest_checkpointed_ = true;
  return absl::OkStatus();
}

void SqliteEventLog::FinishLatest(bool committed) {
  if (committed && (latest_checkpointed_ || !pending_latest_.empty())) {
    std::lock_guard lock(overlay_mu_);
    if (latest_checkpointed_) {
      overlay_.clear();
      ++overlay_generation_;
    } else {
      for (LatestEntry& e : pending_latest_) {
        overlay_[{std::move(e.key), std::move(e.type)}] = e.sequence;
      }
    }
  }
  pending_latest_.clear();
  latest_checkpointed_ = false;
}

namespace {

// The events at `sequences` through `reader`, leaving out those retention
// has deleted.
absl::StatusOr<std::vector<EventPtr>> EventsAt(ReadConnection& reader,
                                               const std::vector<uint64_t>& sequences,
                                               absl::string_view path) {
  std::vector<EventPtr> events;
  for (uint64_t seq : sequences) {
    Query query(reader.event_at.get());
    query.Bind(1, ToSql(seq));
    int rc = query.Step();
    if (rc == SQLITE_DONE) continue;
    if (rc != SQLITE_ROW) return SqliteError(rc, query.db(), "read", path);
    ASSIGN_OR_RETURN(EventPtr event, DecodeRow(query.stmt(), path));
    events.push_back(std::move(event));
  }
  return events;
}

std::string ColumnText(sqlite3_stmt* stmt, int column) {
  return std::string(reinterpret_cast<const char*>(sqlite3_column_text(stmt, column)),
                     sqlite3_column_bytes(stmt, column));
}

}  // namespace

// The view is its table (as of its last checkpoint) overlaid with the
// entries since: a reader copies the overlay, reads the table and takes the
// overlay's entry for every (key, type) it holds. A checkpoint between the
// copy and the read could make the copy stale, so ReadView reads again when
// the overlay's generation moved.
template <typename ReadFn>
auto SqliteEventLog::ReadView(ReadFn read, const std::string_view* key) {
  for (;;) {
    uint64_t generation;
    const LatestOverlay overlay = CopyOverlay(key, &generation);
    ReaderLease reader(this);
    auto result = read(overlay, *reader.operator->());
    if (!result.ok() || OverlayGeneration() == generation) return result;
  }
}

absl::StatusOr<std::vector<EventPtr>> SqliteEventLog::ReadLatest(uint64_t from, uint64_t through,
                                                                 size_t max_events) {
  RETURN_IF_ERROR(LatestView());
  through = std::min(through, LastSequence());
  return ReadView([&](const LatestOverlay& overlay, ReadConnection& reader)
                      -> absl::StatusOr<std::vector<EventPtr>> {
    std::vector<uint64_t> in_range;  // the overlay's entries in [from, through]
    for (const auto& [key_type, sequence] : overlay) {
      if (sequence >= from && sequence <= through) in_range.push_back(sequence);
    }
    std::sort(in_range.begin(), in_range.end());
    std::vector<uint64_t> sequences;
    {
      Query query(reader.latest_range.get());
      query.Bind(1, ToSql(from)).Bind(2, ToSql(through));
      size_t next = 0;
      int rc = SQLITE_DONE;
      while (sequences.size() < max_events && (rc = query.Step()) == SQLITE_ROW) {
        const uint64_t seq = sqlite3_column_int64(query.stmt(), 0);
        if (overlay.contains(std::make_pair(ColumnText(query.stmt(), 1),
                                            ColumnText(query.stmt(), 2)))) {
          continue;  // superseded since the checkpoint
        }
        while (next < in_range.size() && in_range[next] < seq && sequences.size() < max_events) {
          sequences.push_back(in_range[next++]);
        }
        if (sequences.size() < max_events) sequences.push_back(seq);
      }
      if (sequences.size() < max_events && rc != SQLITE_ROW && rc != SQLITE_DONE) {
        return SqliteError(rc, query.db(), "read", path_);
      }
      // The overlay's entries past the table's last row in range (all of
      // them once the table's rows ran out).
      const uint64_t last_taken = sequences.empty() ? 0 : sequences.back();
      while (next < in_range.size() && sequences.size() < max_events) {
        if (in_range[next] > last_taken) sequences.push_back(in_range[next]);
        ++next;
      }
    }
    return EventsAt(reader, sequences, path_);
  });
}

absl::StatusOr<std::vector<EventPtr>> SqliteEventLog::GetLatest(std::string_view key) {
  RETURN_IF_ERROR(LatestView());
  const uint64_t last = LastSequence();
  return ReadView([&](const LatestOverlay& overlay, ReadConnection& reader)
                      -> absl::StatusOr<std::vector<EventPtr>> {
    std::vector<uint64_t> sequences;  // the overlay holds this key's entries only
    for (const auto& [key_type, sequence] : overlay) {
      if (sequence <= last) sequences.push_back(sequence);
    }
    {
      Query query(reader.latest_of_key.get());
      query.BindText(1, key);
      int rc;
      while ((rc = query.Step()) == SQLITE_ROW) {
        const uint64_t seq = sqlite3_column_int64(query.stmt(), 0);
        if (seq > last || overlay.contains(std::make_pair(std::string(key),
                                                          ColumnText(query.stmt(), 1)))) {
          continue;
        }
        sequences.push_back(seq);
      }
      if (rc != SQLITE_DONE) return SqliteError(rc, query.db(), "read", path_);
    }
    std::sort(sequences.begin(), sequences.end());
    return EventsAt(reader, sequences, path_);
  }, &key);
}

absl::StatusOr<std::vector<KeyLatest>> SqliteEventLog::ListLatest(std::string_view after_key,
                                                                  size_t max_keys) {
  RETURN_IF_ERROR(LatestView());
  const uint64_t last = LastSequence();
  return ReadView([&](const LatestOverlay& overlay, ReadConnection& reader)
                      -> absl::StatusOr<std::vector<KeyLatest>> {
    // The overlay's entries after `after_key`, in (key, type) order, merged
    // with the table's as both are walked.
    std::vector<LatestEntry> extra;
    for (const auto& [key_type, sequence] : overlay) {
      if (key_type.first > after_key) extra.push_back({key_type.first, key_type.second, sequence});
    }
    std::sort(extra.begin(), extra.end(), [](const LatestEntry& a, const LatestEntry& b) {
      return std::tie(a.key, a.type) < std::tie(b.key, b.type);
    });
    std::vector<std::pair<std::string, std::vector<uint64_t>>> keys;
    bool full = false;
    // Takes one entry; false once max_keys keys are complete.
    auto take = [&](const std::string& key, uint64_t seq) {
      if (keys.empty() || keys.back().first != key) {
        if (keys.size() == max_keys) {
          full = true;
          return false;
        }
        keys.push_back({key, {}});
      }
      if (seq <= last) keys.back().second.push_back(seq);
      return true;
    };
    {
      Query query(reader.latest_keys.get());
      query.BindText(1, after_key);
      size_t next = 0;
      int rc = SQLITE_DONE;
      while (!full && (rc = query.Step()) == SQLITE_ROW) {
        LatestEntry row{ColumnText(query.stmt(), 0), ColumnText(query.stmt(), 1),
                        static_cast<uint64_t>(sqlite3_column_int64(query.stmt(), 2))};
        while (!full && next < extra.size() &&
               std::tie(extra[next].key, extra[next].type) < std::tie(row.key, row.type)) {
          if (take(extra[next].key, extra[next].sequence)) ++next;
        }
        if (full) break;
        if (next < extra.size() && extra[next].key == row.key && extra[next].type == row.type) {
          row.sequence = extra[next++].sequence;  // superseded since the checkpoint
        }
        take(row.key, row.sequence);
      }
      if (!full && rc != SQLITE_DONE) return SqliteError(rc, query.db(), "read", path_);
      while (!full && next < extra.size()) {
        if (take(extra[next].key, extra[next].sequence)) ++next;
      }
    }
    std::vector<KeyLatest> out;
    for (auto& [key, sequences] : keys) {
      std::sort(sequences.begin(), sequences.end());
      KeyLatest& k = out.emplace_back();
      k.key = std::move(key);
      ASSIGN_OR_RETURN(k.events, EventsAt(reader, sequences, path_));
    }
    return out;
  });
}

absl::Status SqliteEventLog::PrepareLatestView() {
  sqlite3* db = db_.get();
  ASSIGN_OR_RETURN(int64_t kept,
                   QueryOnce(db, "SELECT value FROM meta WHERE key = 'latest_view'", path_));
  if (!options_.latest_view) {
    if (kept == 0) return absl::OkStatus();
    return ExecSql(db,
                   "BEGIN IMMEDIATE; DELETE FROM latest; "
                   "INSERT OR REPLACE INTO meta(key, value) VALUES('latest_view', 0); COMMIT;",
                   "open", path_);
  }
  // A store kept without the view (or older than it) folds every event
  // held; one kept with it, those after its last checkpoint.
  int64_t through = 0;
  if (kept == 1) {
    ASSIGN_OR_RETURN(through,
                     QueryOnce(db, "SELECT value FROM meta WHERE key = 'latest_through'", path_));
  }
  const uint64_t last = last_sequence_.load();
  if (kept == 1 && static_cast<uint64_t>(through) >= last) return absl::OkStatus();
  const absl::Time start = absl::Now();
  ASSIGN_OR_RETURN(StmtPtr scan,
                   Prepare(db, "SELECT seq, body FROM events WHERE seq > ?1 ORDER BY seq", path_));
  ASSIGN_OR_RETURN(StmtPtr put, Prepare(db, kLatestPutSql, path_));
  uint64_t events = 0;
  RETURN_IF_ERROR(InWriteTransaction(db, "open", path_, [&]() -> absl::Status {
    if (kept != 1) RETURN_IF_ERROR(ExecSql(db, "DELETE FROM latest", "open", path_));
    Query query(scan.get());
    query.Bind(1, through);
    int rc;
    while ((rc = query.Step()) == SQLITE_ROW) {
      ASSIGN_OR_RETURN(EventPtr event, DecodeRow(query.stmt(), path_));
      ++events;
      if (event->event.key().empty()) continue;
      Query upsert(put.get());
      upsert.BindText(1, event->event.key())
          .BindText(2, event->event.type())
          .Bind(3, ToSql(event->event.sequence()));
      if (rc = upsert.Step(); rc != SQLITE_DONE) return SqliteError(rc, db, "open", path_);
    }
    if (rc != SQLITE_DONE) return SqliteError(rc, db, "open", path_);
    std::string marks = absl::StrCat(
        "INSERT OR REPLACE INTO meta(key, value) VALUES('latest_view', 1); "
        "INSERT OR REPLACE INTO meta(key, value) VALUES('latest_through', ", last, ");");
    return ExecSql(db, marks.c_str(), "open", path_);
  }));
  if (events > 0) {
    log::Info(kept == 1 ? "brought the latest view up to date" : "built the latest view",
              {{"path", path_}, {"events_read", events},
               {"seconds", absl::ToDoubleSeconds(absl::Now() - start)}});
  }
  return absl::OkStatus();
}

void SqliteEventLog::SetCommitListener(CommitListener* listener) {
  std::lock_guard lock(listener_mu_);
  listener_ = listener;
}

}  // namespace hookfan::broker
