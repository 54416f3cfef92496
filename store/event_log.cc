#include "store/event_log.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace hookfan::broker {

EventPtr MakeStoredEvent(v1::Event event) {
  auto stored = std::make_shared<StoredEvent>();
  stored->event = std::move(event);
  stored->wire = stored->event.SerializeAsString();
  return stored;
}

namespace {
constexpr absl::string_view kShuttingDown = "hookfan is shutting down";
}  // namespace

absl::Status ShuttingDownError() { return absl::UnavailableError(kShuttingDown); }

bool IsShuttingDown(const absl::Status& status) {
  return absl::IsUnavailable(status) && status.message() == kShuttingDown;
}

std::optional<DeviceRecord> DeviceRecordOf(const v1::Event& event) {
  const v1::DeviceIdentity& device = event.device();
  if (device.udid().empty() || device.serial_number().empty()) return std::nullopt;
  return DeviceRecord{.udid = device.udid(), .serial_number = device.serial_number()};
}

absl::Status NoLatestViewError(std::string_view why) {
  return absl::FailedPreconditionError(
      absl::StrCat("this hookfan keeps no latest event per key (",
                   absl::string_view(why.data(), why.size()),
                   "); snapshots, GetLatest and ListKeys need it"));
}

absl::Status EventLog::LatestView() const {
  return NoLatestViewError("its store does not support it");
}

absl::StatusOr<uint64_t> EventLog::LatestThrough() {
  RETURN_IF_ERROR(LatestView());
  return LastSequence();
}

absl::StatusOr<std::vector<EventPtr>> EventLog::ReadLatest(uint64_t, uint64_t, size_t) {
  return LatestView();
}

absl::StatusOr<std::vector<EventPtr>> EventLog::GetLatest(std::string_view) {
  return LatestView();
}

absl::StatusOr<std::vector<KeyLatest>> EventLog::ListLatest(std::string_view, size_t) {
  return LatestView();
}

absl::Status ValidateBatch(absl::Span<const v1::Event> events) {
  for (size_t i = 0; i < events.size(); ++i) {
    if (events[i].id().empty() || events[i].type().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("event ", i, " of the batch lacks an id or a type"));
    }
  }
  return absl::OkStatus();
}

}  // namespace hookfan::broker
