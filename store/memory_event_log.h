#pragma once

#include <cstdint>
#include <limits>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "store/event_log.h"

namespace hookfan::broker {

// MemoryEventLog is an EventLog held in memory, for unit tests only: nothing
// survives the object. It follows the EventLog contract otherwise (sequences,
// validation, listener ordering), so tests of code above the store can use it
// in place of SqliteEventLog.
//
// Thread-safe. Appends are serialized; the CommitListener is called on the
// appending thread, after the events are readable and before Append returns
// (so it must not call Append or SetCommitListener).
class MemoryEventLog final : public EventLog {
 public:
  MemoryEventLog() = default;
  MemoryEventLog(const MemoryEventLog&) = delete;
  MemoryEventLog& operator=(const MemoryEventLog&) = delete;

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
  void SetCommitListener(CommitListener* listener) override;

 private:
  absl::Status AppendLocked(absl::Span<v1::Event> events) ABSL_EXCLUSIVE_LOCKS_REQUIRED(append_mu_);

  // Serializes appends and listener calls; taken before mu_, never while
  // holding it, so a listener may read the log.
  std::mutex append_mu_;
  CommitListener* listener_ ABSL_GUARDED_BY(append_mu_) = nullptr;
  struct Remembered {
    absl::Time time;  // event time of the original
    AppendOnceResult original;
  };
  std::unordered_map<std::string, Remembered> dedup_ ABSL_GUARDED_BY(append_mu_);

  mutable std::mutex mu_ ABSL_ACQUIRED_AFTER(append_mu_);
  std::vector<EventPtr> events_ ABSL_GUARDED_BY(mu_);  // events_[i]: seq i+1
  std::unordered_map<std::string, EventPtr> by_id_ ABSL_GUARDED_BY(mu_);
  std::unordered_map<std::string, std::string> serial_numbers_ ABSL_GUARDED_BY(mu_);  // by UDID
};

}  // namespace hookfan::broker
