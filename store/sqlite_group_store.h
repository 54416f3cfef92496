#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "store/group_store.h"
#include "store/sqlite_util.h"

namespace hookfan::broker {

// SqliteGroupStore keeps consumer-group state in tables of the event log's
// SQLite database file (groups, group_acks, group_attempts, group_dead),
// through a read-write connection of its own.
//
// Writes use synchronous=NORMAL: each Apply is one WAL transaction without
// an fsync, so a crash of the process loses nothing, while a power loss may
// roll back the last few writes, which only causes redelivery (see
// GroupStore). Dead-letter times are stored with microsecond precision.
//
// The event log's writer holds write transactions; a write here waits for
// it up to a busy timeout of several seconds before failing kUnavailable.
//
// Thread-safe: one mutex serializes use of the connection. Assumes it is
// the only writer of the group tables (one process per file, as for
// SqliteEventLog).
class SqliteGroupStore final : public GroupStore {
 public:
  // Opens the database file at `path`, creating it and the group tables if
  // missing (the directory must exist), and switches it to WAL mode if the
  // event log has not already.
  //
  // Errors: kUnavailable if the file cannot be opened or written (message
  // names the path); kDataLoss if it is not a database or is corrupt.
  static absl::StatusOr<std::unique_ptr<SqliteGroupStore>> Open(
      const std::string& path);

  ~SqliteGroupStore() override;

  SqliteGroupStore(const SqliteGroupStore&) = delete;
  SqliteGroupStore& operator=(const SqliteGroupStore&) = delete;

  absl::StatusOr<std::vector<GroupRecord>> LoadGroups() override;
  absl::Status CreateGroup(const std::string& name, const std::string& config,
                           uint64_t floor, uint64_t snapshot_through = 0) override;
  absl::Status DeleteGroup(const std::string& name) override;
  absl::Status Apply(const std::string& name, const Changes& changes) override;
  absl::StatusOr<std::vector<DeadLetterRecord>> ListDeadLetters(
      const std::string& name, uint64_t after, size_t limit) override;

 private:
  struct Statements;  // prepared once, at Open

  explicit SqliteGroupStore(std::string path);

  // The group's floor, or kNotFound.
  absl::StatusOr<uint64_t> FloorOf(const std::string& name)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Fills what LoadGroups returns beyond the groups row.
  absl::Status LoadGroupState(GroupRecord& record)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status ApplyInTransaction(const std::string& name,
                                  const Changes& changes)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string path_;

  std::mutex mu_;
  // Statements are finalized before the connection closes.
  sqlite_internal::DbPtr db_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<Statements> stmts_ ABSL_GUARDED_BY(mu_);
};

}  // namespace hookfan::broker
