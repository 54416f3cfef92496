#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "store/group_store.h"

namespace hookfan::broker {

// MemoryGroupStore is a GroupStore held in memory, for unit tests only:
// nothing survives the object. It follows the GroupStore contract otherwise
// (ordering of Changes, floor never lowering, dead letters listable until
// redriven), so tests of consumer groups can use it in place of
// SqliteGroupStore. Dead-letter times are kept exactly (SQLite keeps
// microseconds).
//
// Thread-safe: every method holds one mutex throughout. Never fails with
// kUnavailable or kDataLoss.
class MemoryGroupStore final : public GroupStore {
 public:
  MemoryGroupStore() = default;
  MemoryGroupStore(const MemoryGroupStore&) = delete;
  MemoryGroupStore& operator=(const MemoryGroupStore&) = delete;

  absl::StatusOr<std::vector<GroupRecord>> LoadGroups() override;
  absl::Status CreateGroup(const std::string& name, const std::string& config,
                           uint64_t floor, uint64_t snapshot_through = 0) override;
  absl::Status DeleteGroup(const std::string& name) override;
  absl::Status Apply(const std::string& name, const Changes& changes) override;
  absl::StatusOr<std::vector<DeadLetterRecord>> ListDeadLetters(
      const std::string& name, uint64_t after, size_t limit) override;

 private:
  struct Group {
    std::string config;
    uint64_t floor = 0;
    uint64_t snapshot_through = 0;
    std::set<uint64_t> acked = {};                   // all above floor
    std::map<uint64_t, uint32_t> attempts = {};      // seq → attempts
    std::map<uint64_t, DeadLetterRecord> dead = {};  // seq → record
  };

  std::mutex mu_;
  std::map<std::string, Group> groups_ ABSL_GUARDED_BY(mu_);
};

}  // namespace hookfan::broker
