#pragma once

// Online backup of the embedded SQLite store (what `hookfan backup` runs):
// the store's files and schema are this folder's to know.

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace hookfan::broker {

struct BackupOptions {
  // Replace an existing output file. Without it an existing file is never
  // touched: kAlreadyExists, checked again atomically at the final rename.
  bool overwrite = false;
  // The copy goes this many database pages at a time, pausing after each
  // step: bounds the disk bandwidth taken from the running service. At
  // least 1.
  int pages_per_step = 256;
  absl::Duration pause = absl::Milliseconds(1);
  // How long a step may keep finding the store busy or locked before the
  // backup gives up with kUnavailable.
  absl::Duration busy_timeout = absl::Seconds(30);
};

struct BackupResult {
  std::string path;             // the output file
  int64_t bytes = 0;            // its size
  uint64_t first_sequence = 0;  // lowest event sequence in it; 0: no events
  uint64_t last_sequence = 0;   // highest sequence it ever assigned; 0: none
  absl::Duration elapsed;
};

// Copies the hookfan SQLite store at `db_path` (events, dedup keys and
// consumer-group state: one file) to `out_path` with SQLite's online backup
// API, while a hookfan process may keep writing to it.
//
// Consistency: the copy is one read snapshot of the store, taken when the
// backup starts, so it holds every event whose append had been
// acknowledged by then (and perhaps later ones), with contiguous
// sequences. Holding the snapshot never blocks the service's writer (WAL
// mode), but the store's -wal file cannot be checkpointed past it, so it
// grows by what is written during the backup and shrinks afterwards.
//
// Never leaves a partial `out_path`: the copy is written to a temporary
// file beside it ("<out_path>.tmp-XXXXXX", removed on failure), verified
// with PRAGMA integrity_check, synced, then renamed over `out_path` and the
// directory synced. The copy is a single file in rollback-journal mode (no
// -wal to carry along); hookfan turns WAL back on when it opens it.
// The backup only reads the store (as one more SQLite connection, so when
// no hookfan has it open, closing checkpoints its -wal, as hookfan does on
// exit, and the directory is left as it was).
//
// Errors: kNotFound if there is no file at `db_path`; kFailedPrecondition
// if it is a SQLite database but not a hookfan store; kDataLoss if it is
// not a database, is corrupt, or the copy fails its integrity check;
// kAlreadyExists if `out_path` exists and !overwrite; kInvalidArgument if
// `out_path` names the store itself (or its -wal, -shm or -journal), a
// directory, or the options are bad; kUnavailable for I/O errors (disk
// full, unwritable directory) or a store busy for longer than
// busy_timeout. Messages name the file.
absl::StatusOr<BackupResult> BackupSqlite(const std::string& db_path,
                                          const std::string& out_path,
                                          const BackupOptions& options = {});

}  // namespace hookfan::broker
