#include "store/memory_group_store.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace hookfan::broker {
namespace {

absl::Status NoSuchGroup(const std::string& name) {
  return absl::NotFoundError(absl::StrCat("no consumer group \"", name, "\""));
}

}  // namespace

absl::StatusOr<std::vector<GroupStore::GroupRecord>>
MemoryGroupStore::LoadGroups() {
  std::lock_guard lock(mu_);
  std::vector<GroupRecord> records;
  for (const auto& [name, group] : groups_) {
    GroupRecord& record = records.emplace_back();
    record.name = name;
    record.config = group.config;
    record.floor = group.floor;
    record.snapshot_through = group.snapshot_through;
    record.acked_above_floor.assign(group.acked.begin(), group.acked.end());
    record.attempts.assign(group.attempts.begin(), group.attempts.end());
    for (auto it = group.dead.upper_bound(group.floor); it != group.dead.end();
         ++it) {
      record.dead_above_floor.push_back(it->first);
    }
    record.dead_letters = group.dead.size();
  }
  return records;
}

absl::Status MemoryGroupStore::CreateGroup(const std::string& name,
                                           const std::string& config,
                                           uint64_t floor, uint64_t snapshot_through) {
  std::lock_guard lock(mu_);
  auto [it, inserted] = groups_.try_emplace(
      name, Group{.config = config, .floor = floor, .snapshot_through = snapshot_through});
  if (!inserted) {
    return absl::AlreadyExistsError(
        absl::StrCat("consumer group \"", name, "\" already exists"));
  }
  return absl::OkStatus();
}

absl::Status MemoryGroupStore::DeleteGroup(const std::string& name) {
  std::lock_guard lock(mu_);
  if (groups_.erase(name) == 0) return NoSuchGroup(name);
  return absl::OkStatus();
}

absl::Status MemoryGroupStore::Apply(const std::string& name,
                                     const Changes& changes) {
  std::lock_guard lock(mu_);
  auto it = groups_.find(name);
  if (it == groups_.end()) return NoSuchGroup(name);
  Group& group = it->second;
  for (const auto& [seq, attempts] : changes.set_attempts) {
    group.attempts[seq] = attempts;
  }
  for (uint64_t seq : changes.clear_attempts) group.attempts.erase(seq);
  for (uint64_t seq : changes.acked) {
    if (seq > group.floor) group.acked.insert(seq);
  }
  for (const DeadLetterRecord& record : changes.dead) {
    group.dead[record.sequence] = record;
  }
  for (uint64_t seq : changes.redriven) group.dead.erase(seq);
  if (changes.floor.has_value() && *changes.floor > group.floor) {
    group.floor = *changes.floor;
    group.acked.erase(group.acked.begin(),
                      group.acked.upper_bound(group.floor));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<GroupStore::DeadLetterRecord>>
MemoryGroupStore::ListDeadLetters(const std::string& name, uint64_t after,
                                  size_t limit) {
  std::lock_guard lock(mu_);
  auto it = groups_.find(name);
  if (it == groups_.end()) return NoSuchGroup(name);
  const std::map<uint64_t, DeadLetterRecord>& dead = it->second.dead;
  std::vector<DeadLetterRecord> records;
  for (auto d = dead.upper_bound(after);
       d != dead.end() && records.size() < limit; ++d) {
    records.push_back(d->second);
  }
  return records;
}

}  // namespace hookfan::broker
