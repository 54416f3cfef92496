#include "store/memory_event_log.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/clock.h"

namespace hookfan::broker {
absl::Status MemoryEventLog::Append(absl::Span<v1::Event> events) {
  if (absl::Status s = ValidateBatch(events); !s.ok()) return s;
  std::lock_guard append_lock(append_mu_);
  return AppendLocked(events);
}

absl::StatusOr<AppendOnceResult> MemoryEventLog::AppendOnce(v1::Event event,
                                                            std::string_view dedup_key,
                                                            absl::Duration window) {
  if (absl::Status s = ValidateBatch({event}); !s.ok()) return s;
  std::lock_guard append_lock(append_mu_);
  absl::Time time = ToTime(event.time());
  auto it = dedup_.find(std::string(dedup_key));
  if (it != dedup_.end() && time - it->second.time < window) {
    AppendOnceResult duplicate = it->second.original;
    duplicate.duplicate = true;
    return duplicate;
  }
  if (absl::Status s = AppendLocked(absl::MakeSpan(&event, 1)); !s.ok()) return s;
  AppendOnceResult stored{.id = event.id(), .sequence = event.sequence()};
  dedup_[std::string(dedup_key)] = {time, stored};
  return stored;
}

absl::Status MemoryEventLog::AppendLocked(absl::Span<v1::Event> events) {
  std::vector<EventPtr> committed;
  {
    std::lock_guard lock(mu_);
    for (size_t i = 0; i < events.size(); ++i) {
      const v1::Event& event = events[i];
      auto same_id = [&](const v1::Event& e) { return e.id() == event.id(); };
      if (by_id_.contains(event.id()) ||
          std::any_of(events.begin(), events.begin() + i, same_id)) {
        return absl::InvalidArgumentError(
            absl::StrCat("event id ", event.id(), " already stored"));
      }
    }
    for (v1::Event& event : events) {
      event.set_sequence(events_.size() + 1);
      EventPtr stored = MakeStoredEvent(event);
      events_.push_back(stored);
      by_id_.emplace(event.id(), stored);
      if (std::optional<DeviceRecord> device = DeviceRecordOf(event)) {
        serial_numbers_[std::string(device->udid)] = std::string(device->serial_number);
      }
      committed.push_back(std::move(stored));
    }
  }
  if (listener_ != nullptr && !committed.empty()) {
    listener_->OnCommit(committed);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<EventPtr>> MemoryEventLog::Read(uint64_t from,
                                                           size_t max_events,
                                                           size_t max_bytes) {
  std::lock_guard lock(mu_);
  std::vector<EventPtr> out;
  size_t bytes = 0;
  for (uint64_t seq = std::max<uint64_t>(from, 1);
       seq <= events_.size() && out.size() < max_events; ++seq) {
    const EventPtr& event = events_[seq - 1];
    if (!out.empty() && bytes + event->wire.size() > max_bytes) break;
    bytes += event->wire.size();
    out.push_back(event);
  }
  return out;
}

absl::StatusOr<EventPtr> MemoryEventLog::GetById(std::string_view id) {
  std::lock_guard lock(mu_);
  auto it = by_id_.find(std::string(id));
  if (it == by_id_.end()) {
    return absl::NotFoundError(
        absl::StrCat("event id ", std::string(id), " not found"));
  }
  return it->second;
}

absl::StatusOr<uint64_t> MemoryEventLog::FirstSequence() {
  return 1;  // Nothing is ever deleted.
}

uint64_t MemoryEventLog::LastSequence() const {
  std::lock_guard lock(mu_);
  return events_.size();
}

absl::StatusOr<uint64_t> MemoryEventLog::SequenceAtTime(absl::Time t) {
  std::lock_guard lock(mu_);
  auto it =
      std::find_if(events_.begin(), events_.end(),
                   [t](const EventPtr& e) { return ToTime(e->event.time()) >= t; });
  return static_cast<uint64_t>(it - events_.begin()) + 1;
}

absl::StatusOr<std::string> MemoryEventLog::DeviceSerialNumber(std::string_view udid) {
  std::lock_guard lock(mu_);
  auto it = serial_numbers_.find(std::string(udid));
  return it == serial_numbers_.end() ? std::string() : it->second;
}

void MemoryEventLog::SetCommitListener(CommitListener* listener) {
  std::lock_guard lock(append_mu_);
  listener_ = listener;
}

}  // namespace hookfan::broker
