#include "rpc/publish_request.h"

#include <map>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/status_macros.h"
#include "core/event_rules.h"
#include "core/ingest.h"

namespace hookfan::broker {
namespace {

constexpr size_t kMaxAttributeLength = 1024;
constexpr size_t kMaxContentTypeLength = 255;
constexpr size_t kMaxExtensions = 64;


absl::Status CheckLength(absl::string_view field, absl::string_view value,
                         size_t max) {
  if (value.size() <= max) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      field, " is ", value.size(), " characters; the limit is ", max));
}

absl::Status ValidateExtension(absl::string_view name,
                               absl::string_view value) {
  const std::string field = absl::StrCat("extensions[", QuoteForError(std::string_view(name.data(), name.size())), "]");
  // Debian's abseil has its own string_view type.
  const std::string_view std_name(name.data(), name.size());
  if (!IsExtensionName(std_name)) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": a name must be 1 to ", kMaxExtensionNameLength,
                     " lowercase letters and digits"));
  }
  if (IsCloudEventsAttribute(std_name)) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": a CloudEvents attribute, not an extension; use the field"));
  }
  return CheckLength(field, value, kMaxAttributeLength);
}

}  // namespace

absl::StatusOr<v1::Event> EventFromPublishRequest(
    const v1::PublishRequest& request) {
  if (request.type().empty()) return absl::InvalidArgumentError("type is required");
  RETURN_IF_ERROR(ValidateType(request.type()));
  RETURN_IF_ERROR(CheckLength("source", request.source(), kMaxAttributeLength));
  RETURN_IF_ERROR(CheckLength("id", request.id(), kMaxAttributeLength));
  RETURN_IF_ERROR(
      CheckLength("subject", request.subject(), kMaxAttributeLength));
  RETURN_IF_ERROR(CheckLength("key", request.key(), kMaxKeyLength));
  RETURN_IF_ERROR(
      CheckLength("data_schema", request.data_schema(), kMaxAttributeLength));
  RETURN_IF_ERROR(CheckLength("data_content_type", request.data_content_type(),
                              kMaxContentTypeLength));
  if (request.has_time()) {
    if (!IsValidTimestamp(request.time())) {
      return absl::InvalidArgumentError("time is not a valid timestamp");
    }
  }
  if (request.extensions_size() > static_cast<int>(kMaxExtensions)) {
    return absl::InvalidArgumentError(
        absl::StrCat("extensions has ", request.extensions_size(),
                     " entries; the limit is ", kMaxExtensions));
  }
  // Checked in name order, so the error named is the same on every call.
  std::map<absl::string_view, absl::string_view> extensions(
      request.extensions().begin(), request.extensions().end());
  for (const auto& [name, value] : extensions)
    RETURN_IF_ERROR(ValidateExtension(name, value));

  v1::Event event;
  event.set_source(request.source().empty() ? kDefaultPublishSource
                                            : request.source());
  event.set_type(request.type());
  event.set_subject(request.subject());
  if (!request.key().empty()) {
    event.set_key(request.key());
  } else if (auto it = request.extensions().find("partitionkey");
             it != request.extensions().end()) {
    event.set_key(it->second);
  } else {
    event.set_key(request.subject());
  }
  event.set_data_content_type(request.data_content_type());
  event.set_data(request.data());
  event.set_data_schema(request.data_schema());
  *event.mutable_extensions() = request.extensions();
  event.set_source_event_id(request.id());
  if (request.has_time()) *event.mutable_source_time() = request.time();
  return event;
}

}  // namespace hookfan::broker
