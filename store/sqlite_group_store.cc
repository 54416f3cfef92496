#include "store/sqlite_group_store.h"

#include <sqlite3.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace hookfan::broker {

using sqlite_internal::ExecSql;
using sqlite_internal::InWriteTransaction;
using sqlite_internal::OpenConnection;
using sqlite_internal::Prepare;
using sqlite_internal::Query;
using sqlite_internal::QueryInt;
using sqlite_internal::SqliteError;
using sqlite_internal::StmtPtr;
using sqlite_internal::ToSql;

struct SqliteGroupStore::Statements {
  StmtPtr list_groups;      // → name, config, floor, snapshot_through
  StmtPtr floor_of;         // ?1 name → floor
  StmtPtr insert_group;     // ?1 name, ?2 config, ?3 floor, ?4 snapshot_through
  StmtPtr delete_group;     // ?1 name
  StmtPtr delete_acks;      // ?1 name
  StmtPtr delete_attempts;  // ?1 name
  StmtPtr delete_dead;      // ?1 name
  StmtPtr acked;            // ?1 name → seq
  StmtPtr attempts;         // ?1 name → seq, attempts
  StmtPtr dead_above;       // ?1 name, ?2 floor → seq
  StmtPtr dead_count;       // ?1 name → count
  StmtPtr dead_page;        // ?1 name, ?2 after, ?3 limit → seq, attempts, us
  StmtPtr set_attempts;     // ?1 name, ?2 seq, ?3 attempts
  StmtPtr clear_attempts;   // ?1 name, ?2 seq
  StmtPtr add_ack;          // ?1 name, ?2 seq
  StmtPtr add_dead;         // ?1 name, ?2 seq, ?3 attempts, ?4 time_us
  StmtPtr remove_dead;      // ?1 name, ?2 seq
  StmtPtr set_floor;        // ?1 name, ?2 floor (callers never lower it)
  StmtPtr drop_acks;        // ?1 name, ?2 floor: drops acks at or below it
};

namespace {

// WAL is normally set already by SqliteEventLog; synchronous is per
// connection.
constexpr char kSchema[] = R"sql(
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
BEGIN IMMEDIATE;
CREATE TABLE IF NOT EXISTS groups(
  name TEXT PRIMARY KEY,
  config BLOB NOT NULL,
  floor INTEGER NOT NULL,
  snapshot_through INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS group_acks(
  grp TEXT,
  seq INTEGER,
  PRIMARY KEY(grp, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS group_attempts(
  grp TEXT,
  seq INTEGER,
  attempts INTEGER NOT NULL,
  PRIMARY KEY(grp, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS group_dead(
  grp TEXT,
  seq INTEGER,
  attempts INTEGER NOT NULL,
  time_us INTEGER NOT NULL,
  PRIMARY KEY(grp, seq)
) WITHOUT ROWID;
COMMIT;
)sql";

constexpr char kRead[] = "read consumer groups from";
constexpr char kWrite[] = "write consumer groups to";

absl::Status NoSuchGroup(const std::string& name) {
  return absl::NotFoundError(absl::StrCat("no consumer group \"", name, "\""));
}

// A text or blob column's bytes.
std::string ColumnBytes(sqlite3_stmt* row, int column) {
  const char* data = static_cast<const char*>(sqlite3_column_blob(row, column));
  return std::string(data,
                     data == nullptr ? 0 : sqlite3_column_bytes(row, column));
}

uint64_t ColumnUint(sqlite3_stmt* row, int column) {
  return static_cast<uint64_t>(sqlite3_column_int64(row, column));
}

// Steps a statement that returns no rows.
absl::Status RunWrite(Query& query, absl::string_view path) {
  int rc = query.Step();
  if (rc != SQLITE_DONE) return SqliteError(rc, query.db(), kWrite, path);
  return absl::OkStatus();
}

// Steps through every row of `query`, handing each to `row`.
absl::Status ForEachRow(Query& query, absl::string_view path,
                        absl::FunctionRef<void(sqlite3_stmt*)> row) {
  int rc;
  while ((rc = query.Step()) == SQLITE_ROW) row(query.stmt());
  if (rc != SQLITE_DONE) return SqliteError(rc, query.db(), kRead, path);
  return absl::OkStatus();
}

}  // namespace

SqliteGroupStore::SqliteGroupStore(std::string path) : path_(std::move(path)) {}

SqliteGroupStore::~SqliteGroupStore() = default;

absl::StatusOr<std::unique_ptr<SqliteGroupStore>> SqliteGroupStore::Open(
    const std::string& path) {
  using S = Statements;
  static constexpr std::pair<StmtPtr S::*, const char*> kStatements[] = {
      {&S::list_groups,
       "SELECT name, config, floor, snapshot_through FROM groups ORDER BY name"},
      {&S::floor_of, "SELECT floor FROM groups WHERE name = ?1"},
      {&S::insert_group,
       "INSERT INTO groups(name, config, floor, snapshot_through) VALUES(?1, ?2, ?3, ?4)"},
      {&S::delete_group, "DELETE FROM groups WHERE name = ?1"},
      {&S::delete_acks, "DELETE FROM group_acks WHERE grp = ?1"},
      {&S::delete_attempts, "DELETE FROM group_attempts WHERE grp = ?1"},
      {&S::delete_dead, "DELETE FROM group_dead WHERE grp = ?1"},
      {&S::acked, "SELECT seq FROM group_acks WHERE grp = ?1 ORDER BY seq"},
      {&S::attempts,
       "SELECT seq, attempts FROM group_attempts WHERE grp = ?1 ORDER BY seq"},
      {&S::dead_above,
       "SELECT seq FROM group_dead WHERE grp = ?1 AND seq > ?2 ORDER BY seq"},
      {&S::dead_count, "SELECT count(*) FROM group_dead WHERE grp = ?1"},
      {&S::dead_page,
       "SELECT seq, attempts, time_us FROM group_dead WHERE grp = ?1 "
       "AND seq > ?2 ORDER BY seq LIMIT ?3"},
      {&S::set_attempts,
       "INSERT OR REPLACE INTO group_attempts(grp, seq, attempts) "
       "VALUES(?1, ?2, ?3)"},
      {&S::clear_attempts,
       "DELETE FROM group_attempts WHERE grp = ?1 AND seq = ?2"},
      {&S::add_ack,
       "INSERT OR IGNORE INTO group_acks(grp, seq) VALUES(?1, ?2)"},
      {&S::add_dead,
       "INSERT OR REPLACE INTO group_dead(grp, seq, attempts, time_us) "
       "VALUES(?1, ?2, ?3, ?4)"},
      {&S::remove_dead, "DELETE FROM group_dead WHERE grp = ?1 AND seq = ?2"},
      {&S::set_floor, "UPDATE groups SET floor = ?2 WHERE name = ?1"},
      {&S::drop_acks, "DELETE FROM group_acks WHERE grp = ?1 AND seq <= ?2"},
  };

  std::unique_ptr<SqliteGroupStore> store(new SqliteGroupStore(path));
  std::lock_guard lock(store->mu_);
  ASSIGN_OR_RETURN(store->db_, OpenConnection(path, SQLITE_OPEN_READWRITE |
                                                        SQLITE_OPEN_CREATE));
  sqlite3* db = store->db_.get();
  RETURN_IF_ERROR(ExecSql(db, kSchema, "open", path));
  // Groups written before snapshot starts lack the column.
  ASSIGN_OR_RETURN(StmtPtr has_column,
                   Prepare(db,
                           "SELECT count(*) FROM pragma_table_info('groups') "
                           "WHERE name = 'snapshot_through'",
                           path));
  {
    Query query(has_column.get());
    ASSIGN_OR_RETURN(int64_t present, QueryInt(query, 0, "open", path));
    if (present == 0) {
      RETURN_IF_ERROR(ExecSql(
          db, "ALTER TABLE groups ADD COLUMN snapshot_through INTEGER NOT NULL DEFAULT 0",
          "open", path));
    }
  }
  store->stmts_ = std::make_unique<Statements>();
  for (const auto& [member, sql] : kStatements) {
    ASSIGN_OR_RETURN(store->stmts_.get()->*member, Prepare(db, sql, path));
  }
  return store;
}

absl::StatusOr<std::vector<GroupStore::GroupRecord>>
SqliteGroupStore::LoadGroups() {
  std::lock_guard lock(mu_);
  std::vector<GroupRecord> records;
  Query groups(stmts_->list_groups.get());
  RETURN_IF_ERROR(ForEachRow(groups, path_, [&records](sqlite3_stmt* row) {
    GroupRecord& record = records.emplace_back();
    record.name = ColumnBytes(row, 0);
    record.config = ColumnBytes(row, 1);
    record.floor = ColumnUint(row, 2);
    record.snapshot_through = ColumnUint(row, 3);
  }));
  for (GroupRecord& record : records) RETURN_IF_ERROR(LoadGroupState(record));
  return records;
}

absl::Status SqliteGroupStore::LoadGroupState(GroupRecord& record) {
  const std::string& name = record.name;
  Query acked(stmts_->acked.get());
  acked.BindText(1, name);
  RETURN_IF_ERROR(ForEachRow(acked, path_, [&record](sqlite3_stmt* row) {
    record.acked_above_floor.push_back(ColumnUint(row, 0));
  }));
  Query attempts(stmts_->attempts.get());
  attempts.BindText(1, name);
  RETURN_IF_ERROR(ForEachRow(attempts, path_, [&record](sqlite3_stmt* row) {
    record.attempts.emplace_back(
        ColumnUint(row, 0),
        static_cast<uint32_t>(sqlite3_column_int64(row, 1)));
  }));
  Query dead(stmts_->dead_above.get());
  dead.BindText(1, name).Bind(2, ToSql(record.floor));
  RETURN_IF_ERROR(ForEachRow(dead, path_, [&record](sqlite3_stmt* row) {
    record.dead_above_floor.push_back(ColumnUint(row, 0));
  }));
  Query dead_count(stmts_->dead_count.get());
  dead_count.BindText(1, name);
  ASSIGN_OR_RETURN(record.dead_letters, QueryInt(dead_count, 0, kRead, path_));
  return absl::OkStatus();
}

absl::Status SqliteGroupStore::CreateGroup(const std::string& name,
                                           const std::string& config,
                                           uint64_t floor, uint64_t snapshot_through) {
  std::lock_guard lock(mu_);
  Query insert(stmts_->insert_group.get());
  insert.BindText(1, name).BindBlob(2, config).Bind(3, ToSql(floor)).Bind(
      4, ToSql(snapshot_through));
  int rc = insert.Step();
  if (rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
    return absl::AlreadyExistsError(
        absl::StrCat("consumer group \"", name, "\" already exists"));
  }
  if (rc != SQLITE_DONE) return SqliteError(rc, db_.get(), kWrite, path_);
  return absl::OkStatus();
}

absl::Status SqliteGroupStore::DeleteGroup(const std::string& name) {
  std::lock_guard lock(mu_);
  return InWriteTransaction(db_.get(), kWrite, path_, [&]() -> absl::Status {
    RETURN_IF_ERROR(
        RunWrite(Query(stmts_->delete_group.get()).BindText(1, name), path_));
    if (sqlite3_changes(db_.get()) == 0) return NoSuchGroup(name);
    for (const StmtPtr* stmt : {&stmts_->delete_acks, &stmts_->delete_attempts,
                                &stmts_->delete_dead}) {
      RETURN_IF_ERROR(RunWrite(Query(stmt->get()).BindText(1, name), path_));
    }
    return absl::OkStatus();
  });
}

absl::Status SqliteGroupStore::Apply(const std::string& name,
                                     const Changes& changes) {
  std::lock_guard lock(mu_);
  return InWriteTransaction(db_.get(), kWrite, path_,
                            [&] { return ApplyInTransaction(name, changes); });
}

absl::Status SqliteGroupStore::ApplyInTransaction(const std::string& name,
                                                  const Changes& changes) {
  ASSIGN_OR_RETURN(uint64_t floor, FloorOf(name));
  Statements& s = *stmts_;
  // Writes one row change keyed by (name, seq).
  auto write = [&](const StmtPtr& stmt, uint64_t seq) {
    return RunWrite(Query(stmt.get()).BindText(1, name).Bind(2, ToSql(seq)),
                    path_);
  };
  for (const auto& [seq, attempts] : changes.set_attempts) {
    RETURN_IF_ERROR(RunWrite(Query(s.set_attempts.get())
                                 .BindText(1, name)
                                 .Bind(2, ToSql(seq))
                                 .Bind(3, attempts),
                             path_));
  }
  for (uint64_t seq : changes.clear_attempts) {
    RETURN_IF_ERROR(write(s.clear_attempts, seq));
  }
  for (uint64_t seq : changes.acked) {
    if (seq > floor) RETURN_IF_ERROR(write(s.add_ack, seq));
  }
  for (const DeadLetterRecord& dead : changes.dead) {
    RETURN_IF_ERROR(RunWrite(Query(s.add_dead.get())
                                 .BindText(1, name)
                                 .Bind(2, ToSql(dead.sequence))
                                 .Bind(3, dead.attempts)
                                 .Bind(4, absl::ToUnixMicros(dead.time)),
                             path_));
  }
  for (uint64_t seq : changes.redriven) {
    RETURN_IF_ERROR(write(s.remove_dead, seq));
  }
  if (changes.floor.has_value() && *changes.floor > floor) {
    RETURN_IF_ERROR(write(s.set_floor, *changes.floor));
    RETURN_IF_ERROR(write(s.drop_acks, *changes.floor));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<GroupStore::DeadLetterRecord>>
SqliteGroupStore::ListDeadLetters(const std::string& name, uint64_t after,
                                  size_t limit) {
  std::lock_guard lock(mu_);
  RETURN_IF_ERROR(FloorOf(name).status());
  Query page(stmts_->dead_page.get());
  page.BindText(1, name).Bind(2, ToSql(after)).Bind(3, ToSql(limit));
  std::vector<DeadLetterRecord> records;
  RETURN_IF_ERROR(ForEachRow(page, path_, [&records](sqlite3_stmt* row) {
    records.push_back(
        {.sequence = ColumnUint(row, 0),
         .attempts = static_cast<uint32_t>(sqlite3_column_int64(row, 1)),
         .time = absl::FromUnixMicros(sqlite3_column_int64(row, 2))});
  }));
  return records;
}

absl::StatusOr<uint64_t> SqliteGroupStore::FloorOf(const std::string& name) {
  Query query(stmts_->floor_of.get());
  query.BindText(1, name);
  int rc = query.Step();
  if (rc == SQLITE_ROW) return ColumnUint(query.stmt(), 0);
  if (rc == SQLITE_DONE) return NoSuchGroup(name);
  return SqliteError(rc, db_.get(), kRead, path_);
}

}  // namespace hookfan::broker
