#pragma once

// An EventLog for tests that inject a fault into one call: every call goes
// to an inner log (a MemoryEventLog of its own unless one is given), and a
// test derives from it and overrides only the calls it changes.

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "store/event_log.h"
#include "store/memory_event_log.h"

namespace hookfan::broker {

class ForwardingEventLog : public EventLog {
 public:
  ForwardingEventLog() : inner_(&own_) {}
  // `inner` must outlive this log.
  explicit ForwardingEventLog(EventLog* inner) : inner_(inner) {}

  absl::Status Append(absl::Span<v1::Event> events) override { return inner_->Append(events); }
  absl::StatusOr<AppendOnceResult> AppendOnce(v1::Event event, std::string_view key,
                                              absl::Duration window) override {
    return inner_->AppendOnce(std::move(event), key, window);
  }
  absl::StatusOr<std::vector<EventPtr>> Read(uint64_t from, size_t max_events,
                                             size_t max_bytes) override {
    return inner_->Read(from, max_events, max_bytes);
  }
  absl::StatusOr<EventPtr> GetById(std::string_view id) override { return inner_->GetById(id); }
  absl::StatusOr<uint64_t> FirstSequence() override { return inner_->FirstSequence(); }
  uint64_t LastSequence() const override { return inner_->LastSequence(); }
  absl::StatusOr<uint64_t> SequenceAtTime(absl::Time t) override {
    return inner_->SequenceAtTime(t);
  }
  absl::StatusOr<std::string> DeviceSerialNumber(std::string_view udid) override {
    return inner_->DeviceSerialNumber(udid);
  }
  void SetCommitListener(CommitListener* l) override { inner_->SetCommitListener(l); }

 private:
  MemoryEventLog own_;
  EventLog* const inner_;
};

}  // namespace hookfan::broker
