#include "store/sqlite_util.h"

#include <sqlite3.h>

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"
#include "common/log.h"

namespace hookfan::broker::sqlite_internal {
namespace {

constexpr int kBusyTimeoutMs = 5000;

}  // namespace

void CloseDb::operator()(sqlite3* db) const { sqlite3_close_v2(db); }
void FinalizeStmt::operator()(sqlite3_stmt* stmt) const {
  sqlite3_finalize(stmt);
}

absl::Status SqliteError(int rc, sqlite3* db, absl::string_view action,
                         absl::string_view path) {
  std::string message =
      absl::StrCat(action, " ", path, ": ",
                   db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
  switch (rc & 0xff) {
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return absl::DataLossError(message);
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_NOMEM:
    case SQLITE_READONLY:
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_CANTOPEN:
    case SQLITE_PROTOCOL:
    case SQLITE_PERM:
      return absl::UnavailableError(message);
    default:  // SQL or usage errors: bugs in the caller.
      return absl::InternalError(message);
  }
}

int64_t ToSql(uint64_t value) {
  return static_cast<int64_t>(
      std::min<uint64_t>(value, std::numeric_limits<int64_t>::max()));
}

absl::StatusOr<DbPtr> OpenConnection(const std::string& path, int flags) {
  sqlite3* raw = nullptr;
  int rc =
      sqlite3_open_v2(path.c_str(), &raw, flags | SQLITE_OPEN_NOMUTEX, nullptr);
  DbPtr db(raw);
  if (rc != SQLITE_OK) return SqliteError(rc, db.get(), "open", path);
  sqlite3_extended_result_codes(db.get(), 1);
  sqlite3_busy_timeout(db.get(), kBusyTimeoutMs);
  return db;
}

absl::StatusOr<StmtPtr> Prepare(sqlite3* db, std::string_view sql,
                                absl::string_view path) {
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v3(db, sql.data(), sql.size(),
                              SQLITE_PREPARE_PERSISTENT, &raw, nullptr);
  StmtPtr stmt(raw);
  if (rc != SQLITE_OK) return SqliteError(rc, db, "open", path);
  return stmt;
}

absl::Status ExecSql(sqlite3* db, const char* sql, absl::string_view action,
                     absl::string_view path) {
  int rc = sqlite3_exec(db, sql, nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return SqliteError(rc, db, action, path);
  return absl::OkStatus();
}

absl::Status InWriteTransaction(sqlite3* db, absl::string_view action,
                                absl::string_view path,
                                absl::FunctionRef<absl::Status()> body) {
  absl::Status status = ExecSql(db, "BEGIN IMMEDIATE", action, path);
  if (!status.ok()) return status;
  status = body();
  if (status.ok()) status = ExecSql(db, "COMMIT", action, path);
  if (!status.ok() && !sqlite3_get_autocommit(db)) {
    if (absl::Status rollback = ExecSql(db, "ROLLBACK", action, path);
        !rollback.ok()) {
      log::Error("rollback failed", {{"error", rollback.ToString()}});
    }
  }
  return status;
}

Query::~Query() { sqlite3_reset(stmt_); }

Query& Query::Bind(int index, int64_t value) {
  sqlite3_bind_int64(stmt_, index, value);
  return *this;
}

Query& Query::BindText(int index, std::string_view value) {
  sqlite3_bind_text(stmt_, index, value.data(), value.size(), SQLITE_STATIC);
  return *this;
}

Query& Query::BindBlob(int index, std::string_view value) {
  sqlite3_bind_blob(stmt_, index, value.data(), value.size(), SQLITE_STATIC);
  return *this;
}

int Query::Step() { return sqlite3_step(stmt_); }

sqlite3* Query::db() const { return sqlite3_db_handle(stmt_); }

absl::StatusOr<int64_t> QueryInt(Query& query, int64_t if_null,
                                 absl::string_view action,
                                 absl::string_view path) {
  int rc = query.Step();
  if (rc == SQLITE_ROW && sqlite3_column_type(query.stmt(), 0) != SQLITE_NULL) {
    return sqlite3_column_int64(query.stmt(), 0);
  }
  if (rc == SQLITE_ROW || rc == SQLITE_DONE) return if_null;
  return SqliteError(rc, query.db(), action, path);
}

}  // namespace hookfan::broker::sqlite_internal
