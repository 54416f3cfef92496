// Fuzzes ParseCloudEvent (ingress/cloudevents.h), structured and binary
// mode. The input reads like an HTTP request without its request line:
//
//   Content-Type: text/plain
//   ce-specversion: 1.0
//   ce-id: 1
//
//   <body>
//
// Header lines end with "\n" and split at the first ":" (blanks after it
// dropped); the first empty line ends them, and the rest is the body. A
// header is looked up in any letter case, as HTTP servers do; Content-Type
// is the content type ("" when absent). Checks the contract:
// - an error is kInvalidArgument or kFailedPrecondition with a non-empty
//   printable-ASCII message; in structured mode it is the documented one
//   for a body that is no JSON and for JSON nested deeper than 32 levels
//   (counted here on the text), whichever comes first in the text
//   (fuzz_check.h, CheckJsonVerdict);
// - an event has a valid type (core/event_rules.h), non-empty source and
//   id, extension names of 1 to 20 [a-z0-9] that are no attribute of the
//   mode, a source_time in years 0001 to 9999, the documented key, no id,
//   sequence or time, and survives serialization (valid UTF-8 only);
// - binary mode keeps content type and body verbatim and reads header names
//   in any letter case; structured mode ignores every header but
//   Content-Type.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "fuzz/fuzz_check.h"
#include "google/protobuf/util/message_differencer.h"
#include "hookfan/v1/event.pb.h"
#include "ingress/cloudevents.h"
#include "core/event_rules.h"
#include "ingress/json_body.h"
#include "nlohmann/json.hpp"

namespace {

using ::hookfan::fuzz::Check;
using ::hookfan::fuzz::CheckJsonVerdict;
using ::hookfan::fuzz::IsPrintableAscii;
using ::hookfan::v1::Event;

std::string Lower(std::string_view s) {
  return absl::AsciiStrToLower(absl::string_view(s.data(), s.size()));
}

std::string Upper(std::string_view s) {
  return absl::AsciiStrToUpper(absl::string_view(s.data(), s.size()));
}

// The media type of a Content-Type value: lowercase, without parameters or
// surrounding whitespace.
std::string MediaType(std::string_view content_type) {
  const std::string_view type = content_type.substr(0, content_type.find(';'));
  return absl::AsciiStrToLower(
      absl::StripAsciiWhitespace(absl::string_view(type.data(), type.size())));
}

struct Request {
  std::vector<std::pair<std::string_view, std::string_view>> headers;
  std::string_view body;

  std::optional<std::string_view> Header(std::string_view lowercase) const {
    for (const auto& [name, value] : headers) {
      if (Lower(name) == lowercase) return value;
    }
    return std::nullopt;
  }
};

Request Split(std::string_view input) {
  Request request;
  while (!input.empty()) {
    const size_t end = input.find('\n');
    const std::string_view line = input.substr(0, end);
    input.remove_prefix(end == input.npos ? input.size() : end + 1);
    if (line.empty()) break;
    const size_t colon = line.find(':');
    std::string_view value =
        colon == line.npos ? std::string_view() : line.substr(colon + 1);
    while (value.starts_with(' ') || value.starts_with('\t')) {
      value.remove_prefix(1);
    }
    request.headers.emplace_back(line.substr(0, colon), value);
  }
  request.body = input;
  return request;
}

// What ParseCloudEvent makes of `request`, its header names given as
// `names` and only headers `visible` accepts seen by the lookup.
template <typename Visible>
absl::StatusOr<Event> Parse(const Request& request,
                            const std::vector<std::string_view>& names,
                            Visible visible) {
  const std::string_view content_type =
      request.Header("content-type").value_or("");
  return hookfan::ingress::ParseCloudEvent(
      content_type,
      [&](std::string_view name) -> std::optional<std::string_view> {
        if (!visible(name)) return std::nullopt;
        return request.Header(name);
      },
      request.body, names);
}

bool Same(const absl::StatusOr<Event>& a, const absl::StatusOr<Event>& b) {
  if (a.ok() != b.ok()) return false;
  if (!a.ok()) return a.status() == b.status();
  return google::protobuf::util::MessageDifferencer::Equals(*a, *b);
}

bool IsValidExtensionName(std::string_view name) {
  if (name.empty() || name.size() > 20) return false;
  for (const char c : name) {
    if (!(c >= 'a' && c <= 'z') && !(c >= '0' && c <= '9')) return false;
  }
  return true;
}

bool IsAttribute(std::string_view name, bool structured) {
  for (const std::string_view attribute :
       {"specversion", "id", "source", "type", "subject", "time",
        "datacontenttype", "dataschema"}) {
    if (name == attribute) return true;
  }
  return structured ? name == "data" || name == "data_base64" : name == "data";
}

void CheckEvent(const Request& request, bool structured, const Event& event) {
  const std::string shown = event.ShortDebugString();
  Check(hookfan::broker::IsValidEventType(event.type()), "invalid type",
        shown);
  Check(!event.source().empty() && !event.source_event_id().empty(),
        "empty source or id", shown);
  Check(event.id().empty() && event.sequence() == 0 && !event.has_time(),
        "id, sequence or time set", shown);
  for (const auto& [name, value] : event.extensions()) {
    Check(IsValidExtensionName(name) && !IsAttribute(name, structured),
          "extension name", shown);
  }
  const auto partition_key = event.extensions().find("partitionkey");
  const std::string& key = partition_key != event.extensions().end() &&
                                   !partition_key->second.empty()
                               ? partition_key->second
                               : event.subject();
  Check(event.key() == key, "key is not partitionkey, else subject", shown);
  if (event.has_source_time()) {
    const auto& t = event.source_time();
    Check(t.seconds() >= -62135596800 && t.seconds() <= 253402300799 &&
              t.nanos() >= 0 && t.nanos() <= 999999999,
          "source_time out of range", shown);
  }
  if (!structured) {
    Check(event.data() == request.body, "binary data is not the body", shown);
    Check(event.data_content_type() ==
              request.Header("content-type").value_or(""),
          "binary data_content_type is not Content-Type", shown);
  }

  std::string bytes;
  Check(event.SerializeToString(&bytes), "serialize", shown);
  Event parsed;
  Check(parsed.ParseFromString(bytes), "does not parse back", shown);
  Check(google::protobuf::util::MessageDifferencer::Equals(parsed, event),
        "parses back different", shown);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const Request request =
      Split(std::string_view(reinterpret_cast<const char*>(data), size));
  std::vector<std::string_view> names;
  for (const auto& header : request.headers) names.push_back(header.first);
  const auto all = [](std::string_view) { return true; };
  const absl::StatusOr<Event> event = Parse(request, names, all);

  if (!event.ok()) {
    const std::string shown = event.status().ToString();
    Check(event.status().code() == absl::StatusCode::kInvalidArgument ||
              event.status().code() == absl::StatusCode::kFailedPrecondition,
          "error code", shown);
    Check(!event.status().message().empty() &&
              IsPrintableAscii(event.status().message()),
          "error message is not printable ASCII", shown);
  }

  const bool structured =
      MediaType(request.Header("content-type").value_or("")) ==
      "application/cloudevents+json";
  if (structured) {
    // The body gets the JSON checks of every JSON source.
    CheckJsonVerdict(request.body, event.status(),
                     hookfan::ingress::kMaxJsonDepth);
    // Structured mode reads Content-Type only: hiding every other header
    // changes nothing.
    const absl::StatusOr<Event> alone =
        Parse(request, {},
              [](std::string_view name) { return name == "content-type"; });
    Check(Same(event, alone), "structured mode reads headers",
          event.status().ToString() + " / " + alone.status().ToString());
  } else {
    // Binary mode takes header names in any letter case.
    std::vector<std::string> upper;
    for (const std::string_view name : names) upper.push_back(Upper(name));
    const std::vector<std::string_view> upper_names(upper.begin(), upper.end());
    Check(Same(event, Parse(request, upper_names, all)),
          "binary mode depends on header name case", event.status().ToString());
  }
  if (event.ok()) CheckEvent(request, structured, *event);
  return 0;
}
