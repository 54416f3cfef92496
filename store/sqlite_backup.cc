#include "store/sqlite_backup.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <ostream>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "store/sqlite_util.h"
#include "common/status_macros.h"

namespace hookfan::broker {
namespace {

namespace fs = std::filesystem;

using broker::sqlite_internal::DbPtr;
using broker::sqlite_internal::ExecSql;
using broker::sqlite_internal::OpenConnection;
using broker::sqlite_internal::Prepare;
using broker::sqlite_internal::Query;
using broker::sqlite_internal::QueryInt;
using broker::sqlite_internal::SqliteError;
using broker::sqlite_internal::StmtPtr;

absl::Status ErrnoError(absl::string_view action, const std::string& path) {
  return absl::UnavailableError(
      absl::StrCat(action, " ", path, ": ", std::strerror(errno)));
}

// Runs `sql` (one integer column) once; `if_null` without a row or on NULL.
absl::StatusOr<int64_t> QueryOnce(sqlite3* db, const char* sql, int64_t if_null,
                                  absl::string_view action,
                                  absl::string_view path) {
  ASSIGN_OR_RETURN(StmtPtr stmt, Prepare(db, sql, path));
  Query query(stmt.get());
  return QueryInt(query, if_null, action, path);
}

// In an open read transaction: kFailedPrecondition unless `db` holds the
// tables of a hookfan store.
absl::Status CheckIsStore(sqlite3* db, const std::string& path) {
  ASSIGN_OR_RETURN(int64_t tables,
                   QueryOnce(db,
                             "SELECT count(*) FROM sqlite_master WHERE type = "
                             "'table' AND name IN ('meta', 'events')",
                             0, "read", path));
  if (tables != 2) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, " is not a hookfan store (no events table)"));
  }
  return absl::OkStatus();
}

// The first row of PRAGMA integrity_check: "ok", or the first problem.
absl::Status CheckIntegrity(sqlite3* db, const std::string& path) {
  ASSIGN_OR_RETURN(StmtPtr stmt, Prepare(db, "PRAGMA integrity_check", path));
  Query query(stmt.get());
  int rc = query.Step();
  if (rc != SQLITE_ROW) return SqliteError(rc, db, "verify", path);
  const char* text =
      reinterpret_cast<const char*>(sqlite3_column_text(stmt.get(), 0));
  std::string result = text != nullptr ? text : "";
  if (result != "ok") {
    return absl::DataLossError(absl::StrCat(
        "the copy ", path, " fails its integrity check: ", result));
  }
  return absl::OkStatus();
}

// fsyncs a file or directory.
absl::Status Sync(const std::string& path, int flags) {
  int fd = open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return ErrnoError("open", path);
  int rc = fsync(fd);
  int saved = errno;
  close(fd);
  errno = saved;
  if (rc != 0) return ErrnoError("sync", path);
  return absl::OkStatus();
}

// Renames `from` to `to`; without `overwrite`, atomically refuses an
// existing `to` (kAlreadyExists).
absl::Status Publish(const std::string& from, const std::string& to,
                     bool overwrite) {
  if (overwrite) {
    if (std::rename(from.c_str(), to.c_str()) != 0) {
      return ErrnoError(absl::StrCat("rename ", from, " to"), to);
    }
    return absl::OkStatus();
  }
  if (renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(),
                RENAME_NOREPLACE) == 0) {
    return absl::OkStatus();
  }
  if (errno == EINVAL || errno == ENOSYS) {  // file system without it
    if (link(from.c_str(), to.c_str()) == 0) {
      unlink(from.c_str());
      return absl::OkStatus();
    }
  }
  if (errno == EEXIST) {
    return absl::AlreadyExistsError(absl::StrCat(to, " exists"));
  }
  return ErrnoError(absl::StrCat("rename ", from, " to"), to);
}

// kInvalidArgument when `out` is the store's file or one of its companions.
absl::Status CheckNotTheStore(const std::string& db_path,
                              const std::string& out) {
  std::error_code ec;
  fs::path db = fs::weakly_canonical(db_path, ec);
  fs::path target = fs::weakly_canonical(out, ec);
  bool same = fs::equivalent(db_path, out, ec) && !ec;
  for (const char* suffix : {"", "-wal", "-shm", "-journal"}) {
    if (target.string() == db.string() + suffix) same = true;
  }
  if (same) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--out ", out, " is the store ", db_path, " (or one of its files)"));
  }
  return absl::OkStatus();
}

// Copies the open source snapshot to `dst` step by step.
absl::Status Copy(sqlite3* src, sqlite3* dst, const std::string& tmp,
                  const BackupOptions& options) {
  sqlite3_backup* backup = sqlite3_backup_init(dst, "main", src, "main");
  if (backup == nullptr) {
    return SqliteError(sqlite3_extended_errcode(dst), dst, "write", tmp);
  }
  absl::Time busy_since = absl::InfiniteFuture();
  int rc;
  while (true) {
    rc = sqlite3_backup_step(backup, options.pages_per_step);
    if (rc == SQLITE_DONE) break;
    int primary = rc & 0xff;
    if (primary != SQLITE_OK && primary != SQLITE_BUSY &&
        primary != SQLITE_LOCKED) {
      break;
    }
    if (primary == SQLITE_OK) {
      busy_since = absl::InfiniteFuture();
    } else if (busy_since == absl::InfiniteFuture()) {
      busy_since = absl::Now();
    } else if (absl::Now() - busy_since > options.busy_timeout) {
      break;
    }
    absl::SleepFor(primary == SQLITE_OK
                       ? options.pause
                       : std::max(options.pause, absl::Milliseconds(10)));
  }
  // finish leaves the step's error on `dst`, for the message.
  int finish = sqlite3_backup_finish(backup);
  if (rc != SQLITE_DONE) return SqliteError(rc, dst, "copy the store to", tmp);
  if (finish != SQLITE_OK) {
    return SqliteError(finish, dst, "copy the store to", tmp);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<BackupResult> BackupSqlite(const std::string& db_path,
                                          const std::string& out_path,
                                          const BackupOptions& options) {
  absl::Time start = absl::Now();
  if (options.pages_per_step < 1) {
    return absl::InvalidArgumentError("pages_per_step must be at least 1");
  }
  std::error_code ec;
  if (!fs::exists(db_path, ec)) {
    return absl::NotFoundError(absl::StrCat("no hookfan store at ", db_path));
  }
  RETURN_IF_ERROR(CheckNotTheStore(db_path, out_path));
  if (fs::is_directory(out_path, ec)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--out ", out_path, " is a directory"));
  }
  if (!options.overwrite && fs::exists(out_path, ec)) {
    return absl::AlreadyExistsError(absl::StrCat(out_path, " exists"));
  }

  // The snapshot: a read transaction held across every step, so the
  // service's commits during the copy neither show in it nor restart it.
  // Read-write only so that closing, when last, cleans up -wal and -shm (a
  // read-only connection leaves them); nothing is written. No CREATE.
  ASSIGN_OR_RETURN(DbPtr src, OpenConnection(db_path, SQLITE_OPEN_READWRITE));
  RETURN_IF_ERROR(ExecSql(src.get(), "BEGIN", "read", db_path));
  RETURN_IF_ERROR(CheckIsStore(src.get(), db_path));

  std::string tmp = out_path + ".tmp-XXXXXX";
  int fd = mkstemp(tmp.data());
  if (fd < 0) return ErrnoError("create", tmp);
  close(fd);
  bool published = false;
  absl::Cleanup remove_tmp = [&] {
    if (published) return;
    for (const char* suffix : {"", "-journal", "-wal", "-shm"}) {
      unlink((tmp + suffix).c_str());
    }
  };

  ASSIGN_OR_RETURN(DbPtr dst, OpenConnection(tmp, SQLITE_OPEN_READWRITE));
  // A failed copy is thrown away, so the temporary file needs neither a
  // journal nor syncs until the one at the end.
  RETURN_IF_ERROR(ExecSql(dst.get(),
                          "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF",
                          "write", tmp));
  RETURN_IF_ERROR(Copy(src.get(), dst.get(), tmp, options));
  src.reset();  // ends the snapshot: the store's WAL may be checkpointed again

  // The copy keeps the store's WAL mode in its header: back to a plain
  // journal, so the file is complete on its own.
  RETURN_IF_ERROR(
      ExecSql(dst.get(), "PRAGMA journal_mode = DELETE", "write", tmp));
  RETURN_IF_ERROR(CheckIntegrity(dst.get(), tmp));
  BackupResult result;
  result.path = out_path;
  ASSIGN_OR_RETURN(
      int64_t first,
      QueryOnce(dst.get(), "SELECT min(seq) FROM events", 0, "verify", tmp));
  ASSIGN_OR_RETURN(int64_t last,
                   QueryOnce(dst.get(),
                             "SELECT seq FROM sqlite_sequence WHERE name = "
                             "'events'",
                             0, "verify", tmp));
  result.first_sequence = static_cast<uint64_t>(first);
  result.last_sequence = static_cast<uint64_t>(last);
  if (int rc = sqlite3_close(dst.release()); rc != SQLITE_OK) {
    return SqliteError(rc, nullptr, "close", tmp);
  }

  RETURN_IF_ERROR(Sync(tmp, O_RDONLY));
  result.bytes = static_cast<int64_t>(fs::file_size(tmp, ec));
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("stat ", tmp, ": ", ec.message()));
  }
  RETURN_IF_ERROR(Publish(tmp, out_path, options.overwrite));
  published = true;
  std::string dir = fs::path(out_path).parent_path().string();
  RETURN_IF_ERROR(Sync(dir.empty() ? "." : dir, O_RDONLY | O_DIRECTORY));
  result.elapsed = absl::Now() - start;
  return result;
}

}  // namespace hookfan::broker
