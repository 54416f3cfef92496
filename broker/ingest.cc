#include "broker/ingest.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "broker/event_rules.h"

namespace hookfan::broker {
namespace {

// `s` quoted for an error message, cut short if long.
std::string Quote(std::string_view text) {
  const absl::string_view s(text.data(), text.size());
  constexpr size_t kMax = 64;
  if (s.size() <= kMax) return absl::StrCat("\"", s, "\"");
  return absl::StrCat("\"", s.substr(0, kMax), "...\" (", s.size(), " bytes)");
}

}  // namespace

absl::Status ValidateType(std::string_view type) {
  if (absl::Status s = CheckEventType(type); !s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("type ", Quote(type), " is not a valid event type: ", s.message()));
  }
  return absl::OkStatus();
}

absl::Status CheckEvent(const v1::Event& event, const IngestRules& rules) {
  if (absl::Status s = ValidateType(event.type()); !s.ok()) return s;
  if (size_t bytes = event.ByteSizeLong(); bytes > rules.max_event_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat("the event is ", bytes,
                                                     " bytes; the limit is ",
                                                     rules.max_event_bytes, " (--max-event-bytes)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<AppendOnceResult> Ingest(EventLog* log, v1::Event event,
                                        std::string_view dedup_key, absl::Duration window,
                                        const IngestRules& rules) {
  if (absl::Status s = CheckEvent(event, rules); !s.ok()) return s;
  if (!dedup_key.empty()) return log->AppendOnce(std::move(event), dedup_key, window);
  if (absl::Status s = log->Append(absl::MakeSpan(&event, 1)); !s.ok()) return s;
  return AppendOnceResult{.id = event.id(), .sequence = event.sequence()};
}

}  // namespace hookfan::broker
