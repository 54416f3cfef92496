#pragma once

// Internal helpers shared by the SQLite stores (SqliteEventLog,
// SqliteGroupStore): handle owners, the one mapping of SQLite result codes to
// absl::Status, and prepared-statement execution.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

struct sqlite3;
struct sqlite3_stmt;

namespace hookfan::broker::sqlite_internal {

// Owners of SQLite handles.
struct CloseDb {
  void operator()(sqlite3* db) const;
};
struct FinalizeStmt {
  void operator()(sqlite3_stmt* stmt) const;
};
using DbPtr = std::unique_ptr<sqlite3, CloseDb>;
using StmtPtr = std::unique_ptr<sqlite3_stmt, FinalizeStmt>;

// Maps a SQLite result code: corruption or "not a database" → kDataLoss;
// busy, locked, I/O, full, read-only, out of memory, cannot open →
// kUnavailable; anything else (SQL or usage errors: bugs) → kInternal.
// The message reads "<action> <path>: <sqlite message>".
absl::Status SqliteError(int rc, sqlite3* db, absl::string_view action,
                         absl::string_view path);

// Sequences and limits fit SQLite's signed integers; larger values mean
// "unbounded".
int64_t ToSql(uint64_t value);

// Opens a connection with `flags` (plus NOMUTEX: callers serialize use),
// extended result codes and a busy timeout long enough to wait out another
// connection's write transaction.
absl::StatusOr<DbPtr> OpenConnection(const std::string& path, int flags);

// Prepares a statement meant to be kept for the connection's lifetime.
absl::StatusOr<StmtPtr> Prepare(sqlite3* db, std::string_view sql,
                                absl::string_view path);

absl::Status ExecSql(sqlite3* db, const char* sql, absl::string_view action,
                     absl::string_view path);

// Runs `body` between BEGIN IMMEDIATE and COMMIT; if either fails, rolls
// back, so nothing of `body` stays applied. Returns the first error.
absl::Status InWriteTransaction(sqlite3* db, absl::string_view action,
                                absl::string_view path,
                                absl::FunctionRef<absl::Status()> body);

// One execution of a prepared statement. Resets it when done, which ends
// its read snapshot.
class Query {
 public:
  explicit Query(sqlite3_stmt* stmt) : stmt_(stmt) {}
  ~Query();
  Query(const Query&) = delete;
  Query& operator=(const Query&) = delete;

  // Strings and blobs must outlive the step: they are not copied.
  Query& Bind(int index, int64_t value);
  Query& BindText(int index, std::string_view value);
  Query& BindBlob(int index, std::string_view value);
  int Step();
  sqlite3_stmt* stmt() const { return stmt_; }
  sqlite3* db() const;

 private:
  sqlite3_stmt* const stmt_;
};

// Steps a query whose one row holds one nullable integer: returns it, or
// `if_null` (also when there is no row).
absl::StatusOr<int64_t> QueryInt(Query& query, int64_t if_null,
                                 absl::string_view action,
                                 absl::string_view path);

}  // namespace hookfan::broker::sqlite_internal
