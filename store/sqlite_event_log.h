#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "store/event_log.h"
#include "store/sqlite_util.h"
#include "common/clock.h"

namespace hookfan::broker {

namespace sqlite_internal {
struct ReadConnection;
}  // namespace sqlite_internal

struct SqliteEventLogOptions {
  // Read-only connections; at most this many reads run at once, the others
  // wait for a free one. At least 1.
  int read_connections = 4;
  // Events one transaction takes from the append queue. A batch larger than
  // this still commits whole (alone).
  size_t max_group_commit_events = 1024;
  // Retention: once any limit is passed the oldest events are deleted, in
  // batches between group commits (never stalling appends), and their pages
  // returned to the file system. 0: no limit.
  uint64_t retention_max_events = 0;
  absl::Duration retention_max_age = absl::ZeroDuration();  // by event time
  int64_t retention_max_bytes = 0;  // pages in use in the database file
  // Keep the latest view (EventLog::ReadLatest): one row per (key, type).
  // Turned on for a store kept without it, it is rebuilt from the events at
  // open.
  bool latest_view = true;
  // The view's changes are held in memory and written to its table in the
  // transaction of the append that brings them past this many entries (and
  // at retention and close), so that a fleet's scattered keys cost a page
  // write per checkpoint instead of two per event. Reads merge both; after
  // a crash, Open replays the events since the last checkpoint.
  size_t latest_checkpoint_entries = 4096;
  // Compacted retention: retention never deletes an event that is the
  // newest of its (key, type), so snapshots stay complete. The events
  // retention passes over are no longer contiguous: FirstSequence() is the
  // oldest sequence from which every event is still held. Needs latest_view.
  bool retention_keep_latest = false;
  Clock* clock = Clock::Real();     // for retention_max_age
};

// SqliteEventLog is the embedded default EventLog: one SQLite database file
// in WAL mode with synchronous=FULL, so an Append that returned OK survives
// kill -9 and power loss.
//
// Writes go through one writer thread doing group commit: concurrent Appends
// queue their batches and block; the writer takes what is queued into one
// transaction (one fsync), assigns the sequences, commits, tells the
// CommitListener (on the writer thread, before the appenders wake) and then
// wakes the appenders. A batch with a duplicate id fails alone; an I/O
// failure fails every batch of its transaction and none of it is visible.
//
// Reads use a pool of read-only connections and return only published
// events: sequence <= LastSequence(), which the writer advances after the
// commit and right before telling the listener. So a reader never sees an
// event that could still roll back or that the listener will not be told of.
//
// Event times are stored with microsecond precision; SequenceAtTime compares
// at that precision and costs O(events at or after t).
//
// Thread-safe. SetCommitListener waits for a running OnCommit to return, so
// a listener must not call it. One process at a time may open a file: the
// writer assumes it alone assigns sequences.
class SqliteEventLog final : public EventLog {
 public:
  using Options = SqliteEventLogOptions;

  // Opens the log in the database file at `path`, creating the file and the
  // schema if missing (the directory must exist).
  //
  // Errors: kUnavailable if the file cannot be opened or created (message
  // names the path); kDataLoss if it is not a database or is corrupt;
  // kFailedPrecondition if its schema version is not this build's;
  // kInvalidArgument for bad options.
  static absl::StatusOr<std::unique_ptr<SqliteEventLog>> Open(
      const std::string& path, Options options = {});

  // Close()s.
  ~SqliteEventLog() override;

  SqliteEventLog(const SqliteEventLog&) = delete;
  SqliteEventLog& operator=(const SqliteEventLog&) = delete;

  // Commits the batches already queued, then stops the writer: Appends not
  // yet queued fail with kUnavailable ("event log is closed"). Reads keep
  // working. Idempotent.
  void Close();

  absl::Status Append(absl::Span<v1::Event> events) override;
  absl::StatusOr<AppendOnceResult> AppendOnce(v1::Event event, std::string_view dedup_key,
                                              absl::Duration window) override;
  absl::StatusOr<std::vector<EventPtr>> Read(
      uint64_t from, size_t max_events,
      size_t max_bytes = std::numeric_limits<size_t>::max()) override;
  absl::StatusOr<EventPtr> GetById(std::string_view id) override;
  absl::StatusOr<uint64_t> FirstSequence() override;
  uint64_t LastSequence() const override;
  absl::StatusOr<uint64_t> SequenceAtTime(absl::Time t) override;
  absl::StatusOr<std::string> DeviceSerialNumber(std::string_view udid) override;
  absl::Status LatestView() const override;
  absl::StatusOr<std::vector<EventPtr>> ReadLatest(uint64_t from, uint64_t through,
                                                   size_t max_events) override;
  absl::StatusOr<std::vector<EventPtr>> GetLatest(std::string_view key) override;
  absl::StatusOr<std::vector<KeyLatest>> ListLatest(std::string_view after_key,
                                                    size_t max_keys) override;
  void SetCommitListener(CommitListener* listener) override;
  // kUnavailable from a failed append (disk full, read-only, I/O error)
  // until a write succeeds again: the writer probes once a second.
  absl::Status Ready() const override;

  // Events deleted by retention since open.
  uint64_t retention_deleted() const { return retention_deleted_.load(std::memory_order_relaxed); }

 private:
  struct Request;     // one Append waiting for the writer
  class ReaderLease;  // borrows a read connection from the pool

  SqliteEventLog(std::string path, Options options);

  // Writer thread.
  // Queues `request` for the writer and waits for its outcome.
  absl::Status Submit(Request& request);
  void WriterLoop();
  void CommitGroup(absl::Span<Request* const> group);
  absl::Status WriteGroup(absl::Span<Request* const> group,
                          std::vector<EventPtr>* committed);
  absl::Status InsertBatch(absl::Span<const v1::Event> events,
                           uint64_t first_sequence,
                           std::vector<EventPtr>* committed);
  absl::Status Exec(const char* sql);
  // Between commits: probes a failed store, applies retention. Writer only.
  void Maintain();
  // Deletes one batch of events past the retention limits.
  absl::Status RetentionStep();
  void SetWriteHealth(const absl::Status& status);
  // Where the newest event stored under a dedup key is.
  struct RememberedKey {
    uint64_t sequence = 0;
    int64_t time_us = 0;     // its event time
    int64_t expires_us = 0;  // plus its window: forgotten after
  };
  // At open: moves the keys of an older store's dedup table to dedup_log,
  // and fills dedup_index_ from it.
  absl::Status LoadDedupIndex();
  void Remember(absl::string_view key, const RememberedKey& remembered);
  // AppendOnce, in the writer's transaction: true (and the original in
  // request.once) when the key was seen within the window.
  absl::StatusOr<bool> FindDuplicate(const Request& request);
  // Records the key of a stored AppendOnce event; now and then forgets
  // expired keys.
  absl::Status RememberKey(const Request& request, uint64_t sequence);
  // At open: rebuilds the latest view when the store was kept without it
  // (or drops it when latest_view is off), and replays into it the events
  // appended after its last checkpoint.
  absl::Status PrepareLatestView();

  // The latest view's entries not yet in its table: (key, type) -> newest
  // sequence, all above the table's checkpoint.
  using LatestOverlay = absl::flat_hash_map<std::pair<std::string, std::string>, uint64_t>;
  struct LatestEntry {
    std::string key;
    std::string type;
    uint64_t sequence;
  };
  // For readers: a copy of the overlay's entries whose key `keep` accepts
  // (all when null) and its generation (which changes when a checkpoint
  // empties it).
  LatestOverlay CopyOverlay(const std::string_view* keep, uint64_t* generation) const;
  uint64_t OverlayGeneration() const;
  // Calls read(overlay copy, read connection) until no checkpoint moved the
  // overlay meanwhile; returns its result (or its first error). With `key`,
  // the copy holds that key's entries only.
  template <typename ReadFn>
  auto ReadView(ReadFn read, const std::string_view* key = nullptr);
  // Writes the overlay and the pending entries to the view's table and
  // marks it current through `through`. In the writer's transaction.
  absl::Status CheckpointLatest(uint64_t through);
  // After the writer's transaction: on commit, the pending entries join the
  // overlay (or a checkpoint empties it). Writer only.
  void FinishLatest(bool committed);

  const std::string path_;
  const Options options_;

  // The write connection; used by Open, then by the writer thread only.
  sqlite_internal::DbPtr db_;
  sqlite_internal::StmtPtr insert_;
  sqlite_internal::StmtPtr dedup_find_;
  sqlite_internal::StmtPtr dedup_put_;
  sqlite_internal::StmtPtr dedup_purge_;
  sqlite_internal::StmtPtr device_put_;
  sqlite_internal::StmtPtr latest_put_;
  // The latest view's entries of the transaction being written; whether it
  // checkpointed the view. Writer thread only.
  std::vector<LatestEntry> pending_latest_;
  bool latest_checkpointed_ = false;
  mutable std::mutex overlay_mu_;
  LatestOverlay overlay_ ABSL_GUARDED_BY(overlay_mu_);
  uint64_t overlay_generation_ ABSL_GUARDED_BY(overlay_mu_) = 0;
  int64_t last_dedup_purge_us_ = 0;  // writer thread only
  // The dedup keys of dedup_log by hash, to find a key without a random read
  // or write of a key-ordered table: a hit is confirmed by its row (two
  // keys with one 64-bit hash: the older is forgotten, so a repeat of it
  // would be stored again). 40 to 80 bytes per key held; keys live for
  // their window (--applivery-dedup-window=10m at 1,000 webhooks/s:
  // 600,000 keys, 24 to 48 MB). Writer thread only (and Open).
  absl::flat_hash_map<size_t, RememberedKey> dedup_index_;
  absl::Time last_probe_;      // writer thread only
  absl::Time last_retention_;  // writer thread only
  std::atomic<uint64_t> retention_deleted_{0};
  mutable std::mutex health_mu_;
  absl::Status write_health_ ABSL_GUARDED_BY(health_mu_);  // of the last write
  // Every event from this sequence on is held (retention has passed below
  // it); events below it are gone, or kept by compacted retention and read
  // only through the latest view and GetById. Stored by the writer only.
  std::atomic<uint64_t> contiguous_from_{0};
  // Highest committed and published sequence; stored by the writer only.
  std::atomic<uint64_t> last_sequence_{0};

  // Fixed after Open; destroyed before db_, which closes last.
  std::vector<std::unique_ptr<sqlite_internal::ReadConnection>> readers_;
  std::mutex pool_mu_;
  std::condition_variable reader_idle_;
  std::vector<sqlite_internal::ReadConnection*> idle_readers_
      ABSL_GUARDED_BY(pool_mu_);

  // Held while the listener runs, so clearing it waits out a running call.
  std::mutex listener_mu_;
  CommitListener* listener_ ABSL_GUARDED_BY(listener_mu_) = nullptr;

  // Guards the append queue and each queued Request's `done`.
  std::mutex mu_;
  std::condition_variable work_;  // queue_ non-empty or closed_
  std::deque<Request*> queue_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;

  std::mutex close_mu_;  // serializes Close()
  std::thread writer_ ABSL_GUARDED_BY(close_mu_);
};

}  // namespace hookfan::broker
