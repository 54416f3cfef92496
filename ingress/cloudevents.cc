#include "ingress/cloudevents.h"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/status_macros.h"
#include "google/protobuf/timestamp.pb.h"
#include "core/event_rules.h"
#include "ingress/json_normalizer.h"
#include "nlohmann/json.hpp"

namespace hookfan::ingress {
namespace {

using ::hookfan::v1::Event;
using ::nlohmann::json;

using HeaderLookup =
    std::function<std::optional<std::string_view>(std::string_view)>;

constexpr std::string_view kStructuredJson = "application/cloudevents+json";

// Debian's abseil has its own string_view type.
absl::string_view ToAbsl(std::string_view s) { return {s.data(), s.size()}; }

// ---------------------------------------------------------------------------
// Text helpers.

// The media type of a Content-Type value: lowercase, without parameters or
// surrounding whitespace.
std::string MediaType(std::string_view content_type) {
  return absl::AsciiStrToLower(absl::StripAsciiWhitespace(
      ToAbsl(content_type.substr(0, content_type.find(';')))));
}

// Whether `content_type` declares JSON: subtype "json" or a "+json" suffix.
bool IsJsonMediaType(std::string_view content_type) {
  const std::string media_type = MediaType(content_type);
  const size_t slash = media_type.find('/');
  if (slash == media_type.npos) return false;
  const std::string_view subtype =
      std::string_view(media_type).substr(slash + 1);
  return subtype == "json" || subtype.ends_with("+json");
}

// Whether `text` is well-formed UTF-8 (no overlong forms, no surrogates,
// nothing above U+10FFFF), as protobuf string fields must be.
bool IsValidUtf8(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    const auto byte = [&](size_t k) {
      return static_cast<unsigned char>(text[k]);
    };
    const unsigned char lead = byte(i);
    size_t length;
    uint32_t code_point;
    if (lead < 0x80) {
      ++i;
      continue;
    } else if ((lead & 0xE0) == 0xC0) {
      length = 2;
      code_point = lead & 0x1F;
    } else if ((lead & 0xF0) == 0xE0) {
      length = 3;
      code_point = lead & 0x0F;
    } else if ((lead & 0xF8) == 0xF0) {
      length = 4;
      code_point = lead & 0x07;
    } else {
      return false;
    }
    if (text.size() - i < length) return false;
    for (size_t k = 1; k < length; ++k) {
      if ((byte(i + k) & 0xC0) != 0x80) return false;
      code_point = (code_point << 6) | (byte(i + k) & 0x3F);
    }
    constexpr uint32_t kMinForLength[] = {0, 0, 0x80, 0x800, 0x10000};
    if (code_point < kMinForLength[length] || code_point > 0x10FFFF ||
        (code_point >= 0xD800 && code_point <= 0xDFFF)) {
      return false;
    }
    i += length;
  }
  return true;
}

int HexValue(char c) {
  if (absl::ascii_isdigit(c)) return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// `value` with each %XX replaced by its byte, as the binding encodes header
// values; `where` names the header in errors.
absl::StatusOr<std::string> PercentDecode(std::string_view where,
                                          std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (size_t i = 0; i < value.size(); ++i) {
    if (value[i] != '%') {
      out += value[i];
      continue;
    }
    const int high = i + 1 < value.size() ? HexValue(value[i + 1]) : -1;
    const int low = i + 2 < value.size() ? HexValue(value[i + 2]) : -1;
    if (high < 0 || low < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          ToAbsl(where), " has a malformed percent-encoding at byte ", i,
          " (expected %XX)"));
    }
    out += static_cast<char>(high * 16 + low);
    i += 2;
  }
  if (!IsValidUtf8(out)) {
    return absl::InvalidArgumentError(absl::StrCat(
        ToAbsl(where), " is not valid UTF-8 after percent-decoding"));
  }
  return out;
}

std::string AttributeName(std::string_view name) {
  return absl::StrCat("attribute \"", ToAbsl(name), "\"");
}

std::string HeaderName(std::string_view attribute) {
  return absl::StrCat("header ce-", ToAbsl(attribute));
}

// How the attribute `name` is called in messages: `attribute "id"` in
// structured mode, `header ce-id` in binary mode.
using NameInMessages = std::string (*)(std::string_view name);

// The only CloudEvents version hookfan reads.
absl::Status CheckSpecVersion(NameInMessages name,
                              std::string_view specversion) {
  if (specversion == "1.0") return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(name("specversion"), " must be \"1.0\", got \"",
                   PrintableForError(specversion), "\""));
}

// Checks the type (lowercased, as every stored type) and moves the required
// attributes (present and non-empty by now) into `event`.
absl::Status SetRequired(NameInMessages name, std::string id,
                         std::string source, std::string type, Event* event) {
  type = broker::LowercaseEventType(type);
  if (const absl::Status status = broker::CheckEventType(type); !status.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        name("type"), " is not a valid event type: ", status.message()));
  }
  event->set_source_event_id(std::move(id));
  event->set_source(std::move(source));
  event->set_type(std::move(type));
  return absl::OkStatus();
}

// The ordering key: partitionkey (the CloudEvents partitioning extension)
// when set, else the subject.
void SetKey(Event* event) {
  const auto it = event->extensions().find("partitionkey");
  event->set_key(it != event->extensions().end() && !it->second.empty()
                     ? it->second
                     : event->subject());
}

// ---------------------------------------------------------------------------
// Structured mode.

// The string value of the member `name`, or nullopt when it is absent or
// null (which the JSON format reads as absent).
absl::StatusOr<std::optional<std::string>> OptionalString(
    const json& object, std::string_view name) {
  const auto it = object.find(name);
  if (it == object.end() || it->is_null()) return std::nullopt;
  if (!it->is_string()) {
    return absl::InvalidArgumentError(absl::StrCat(
        AttributeName(name), " must be a string, got ", it->type_name()));
  }
  return it->get<std::string>();
}

absl::StatusOr<std::string> RequiredString(const json& object,
                                           std::string_view name) {
  ASSIGN_OR_RETURN(std::optional<std::string> value,
                   OptionalString(object, name));
  if (!value.has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat("missing required attribute \"", ToAbsl(name), "\""));
  }
  if (value->empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(AttributeName(name), " must not be empty"));
  }
  return *std::move(value);
}

// An extension attribute's value as its string form.
absl::StatusOr<std::optional<std::string>> ExtensionValue(std::string_view name,
                                                          const json& value) {
  switch (value.type()) {
    case json::value_t::null:
      return std::nullopt;
    case json::value_t::string:
      return value.get<std::string>();
    case json::value_t::boolean:
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
      return value.dump();
    default:
      break;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "extension attribute \"", ToAbsl(name),
      "\" must be a string, an integer or a boolean, got ",
      value.is_number() ? "non-integer number" : value.type_name()));
}

bool IsReservedStructuredMember(std::string_view name) {
  for (const std::string_view reserved :
       {"specversion", "id", "source", "type", "subject", "time",
        "datacontenttype", "dataschema", "data", "data_base64"}) {
    if (name == reserved) return true;
  }
  return false;
}

// Sets data and data_content_type from the data or data_base64 member.
absl::Status SetStructuredData(const json& root,
                               std::optional<std::string> content_type,
                               Event* event) {
  const auto data = root.find("data");
  const auto base64 = root.find("data_base64");
  const bool has_base64 = base64 != root.end() && !base64->is_null();
  if (data != root.end() && has_base64) {
    return absl::InvalidArgumentError(
        "attributes \"data\" and \"data_base64\" are mutually exclusive");
  }
  if (has_base64) {
    if (!base64->is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat(AttributeName("data_base64"), " must be a string, got ",
                       base64->type_name()));
    }
    std::string bytes;
    if (!absl::Base64Unescape(base64->get_ref<const std::string&>(), &bytes)) {
      return absl::InvalidArgumentError(
          absl::StrCat(AttributeName("data_base64"), " is not valid base64"));
    }
    event->set_data(std::move(bytes));
  } else if (data != root.end()) {
    if (!content_type.has_value()) content_type = "application/json";
    if (IsJsonMediaType(*content_type)) {
      // Parsed JSON holds valid UTF-8 only, so dump() cannot throw.
      event->set_data(data->dump());
    } else if (data->is_string()) {
      event->set_data(data->get_ref<const std::string&>());
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          AttributeName("data"), " must be a string when datacontenttype \"",
          PrintableForError(*content_type), "\" is not JSON, got ",
          data->type_name()));
    }
  }
  if (content_type.has_value()) {
    event->set_data_content_type(*std::move(content_type));
  }
  return absl::OkStatus();
}

absl::StatusOr<Event> ParseStructured(std::string_view body) {
  ASSIGN_OR_RETURN(const json root, ParseJsonBody(body));
  if (!root.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("body must be a JSON object, got ", root.type_name()));
  }
  ASSIGN_OR_RETURN(const std::string specversion,
                   RequiredString(root, "specversion"));
  RETURN_IF_ERROR(CheckSpecVersion(AttributeName, specversion));
  ASSIGN_OR_RETURN(std::string id, RequiredString(root, "id"));
  ASSIGN_OR_RETURN(std::string source, RequiredString(root, "source"));
  ASSIGN_OR_RETURN(std::string type, RequiredString(root, "type"));
  Event event;
  RETURN_IF_ERROR(SetRequired(AttributeName, std::move(id), std::move(source),
                              std::move(type), &event));

  ASSIGN_OR_RETURN(const std::optional<std::string> subject,
                   OptionalString(root, "subject"));
  event.set_subject(subject.value_or(""));
  ASSIGN_OR_RETURN(const std::optional<std::string> time,
                   OptionalString(root, "time"));
  if (time.has_value() && !time->empty()) {
    ASSIGN_OR_RETURN(*event.mutable_source_time(),
                     ParseRfc3339Timestamp(AttributeName("time"), *time));
  }
  ASSIGN_OR_RETURN(const std::optional<std::string> data_schema,
                   OptionalString(root, "dataschema"));
  event.set_data_schema(data_schema.value_or(""));
  ASSIGN_OR_RETURN(std::optional<std::string> content_type,
                   OptionalString(root, "datacontenttype"));
  if (content_type.has_value() && content_type->empty()) content_type.reset();
  RETURN_IF_ERROR(SetStructuredData(root, std::move(content_type), &event));

  for (const auto& [name, value] : root.items()) {
    if (IsReservedStructuredMember(name)) continue;
    if (!broker::IsExtensionName(name)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "attribute name \"", PrintableForError(name),
          "\" is not allowed: extension attribute names are 1 to 20 "
          "lowercase letters or digits"));
    }
    ASSIGN_OR_RETURN(std::optional<std::string> text,
                     ExtensionValue(name, value));
    if (text.has_value())
      (*event.mutable_extensions())[name] = *std::move(text);
  }
  SetKey(&event);
  return event;
}

// ---------------------------------------------------------------------------
// Binary mode.

// The decoded value of header ce-<attribute>, or nullopt when absent.
absl::StatusOr<std::optional<std::string>> CeHeader(
    const HeaderLookup& header, std::string_view attribute) {
  const std::optional<std::string_view> raw =
      header(absl::StrCat("ce-", ToAbsl(attribute)));
  if (!raw.has_value()) return std::nullopt;
  return PercentDecode(HeaderName(attribute), *raw);
}

absl::StatusOr<std::string> RequiredCeHeader(const HeaderLookup& header,
                                             std::string_view attribute) {
  ASSIGN_OR_RETURN(std::optional<std::string> value,
                   CeHeader(header, attribute));
  if (!value.has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat("missing required header ce-", ToAbsl(attribute)));
  }
  if (value->empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(HeaderName(attribute), " must not be empty"));
  }
  return *std::move(value);
}

bool IsBinaryModeAttribute(std::string_view name) {
  for (const std::string_view known :
       {"specversion", "id", "source", "type", "subject", "time", "dataschema",
        "datacontenttype"}) {
    if (name == known) return true;
  }
  return false;
}

absl::StatusOr<Event> ParseBinary(std::string_view content_type,
                                  const HeaderLookup& header,
                                  std::string_view body,
                                  std::span<const std::string_view> names) {
  ASSIGN_OR_RETURN(const std::string specversion,
                   RequiredCeHeader(header, "specversion"));
  RETURN_IF_ERROR(CheckSpecVersion(HeaderName, specversion));
  ASSIGN_OR_RETURN(std::string id, RequiredCeHeader(header, "id"));
  ASSIGN_OR_RETURN(std::string source, RequiredCeHeader(header, "source"));
  ASSIGN_OR_RETURN(std::string type, RequiredCeHeader(header, "type"));
  Event event;
  RETURN_IF_ERROR(SetRequired(HeaderName, std::move(id), std::move(source),
                              std::move(type), &event));

  ASSIGN_OR_RETURN(const std::optional<std::string> subject,
                   CeHeader(header, "subject"));
  event.set_subject(subject.value_or(""));
  ASSIGN_OR_RETURN(const std::optional<std::string> time,
                   CeHeader(header, "time"));
  if (time.has_value() && !time->empty()) {
    ASSIGN_OR_RETURN(*event.mutable_source_time(),
                     ParseRfc3339Timestamp(HeaderName("time"), *time));
  }
  ASSIGN_OR_RETURN(const std::optional<std::string> data_schema,
                   CeHeader(header, "dataschema"));
  event.set_data_schema(data_schema.value_or(""));

  for (const std::string_view any_case : names) {
    const std::string lowercase = absl::AsciiStrToLower(ToAbsl(any_case));
    if (!lowercase.starts_with("ce-")) continue;
    const std::string_view name = std::string_view(lowercase).substr(3);
    if (IsBinaryModeAttribute(name)) continue;
    if (!broker::IsExtensionName(name)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "header ", PrintableForError(lowercase),
          ": extension attribute names are 1 to 20 lowercase letters or "
          "digits"));
    }
    if (name == "data") {
      return absl::InvalidArgumentError(
          "header ce-data: \"data\" is reserved for the event payload");
    }
    ASSIGN_OR_RETURN(std::optional<std::string> value, CeHeader(header, name));
    if (value.has_value()) {
      (*event.mutable_extensions())[std::string(name)] = *std::move(value);
    }
  }

  if (!IsValidUtf8(content_type)) {
    return absl::InvalidArgumentError("Content-Type is not valid UTF-8");
  }
  event.set_data_content_type(std::string(content_type));
  event.set_data(body.data(), body.size());
  SetKey(&event);
  return event;
}

}  // namespace

absl::StatusOr<Event> ParseCloudEvent(
    std::string_view content_type,
    const std::function<std::optional<std::string_view>(
        std::string_view lowercase_name)>& header,
    std::string_view body, std::span<const std::string_view> header_names) {
  const std::string media_type = MediaType(content_type);
  if (media_type.starts_with("application/cloudevents-batch")) {
    return absl::FailedPreconditionError(
        absl::StrCat("batch mode (", PrintableForError(media_type),
                     ") is not supported: send one event per request"));
  }
  if (media_type == kStructuredJson) return ParseStructured(body);
  if (media_type.starts_with("application/cloudevents")) {
    return absl::FailedPreconditionError(absl::StrCat(
        "structured mode format ", PrintableForError(media_type),
        " is not supported: use application/cloudevents+json or binary mode"));
  }
  if (header("ce-specversion").has_value()) {
    return ParseBinary(content_type, header, body, header_names);
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "not a CloudEvent: expected Content-Type ", ToAbsl(kStructuredJson),
      " (structured mode) or a ce-specversion header (binary mode), got ",
      content_type.empty()
          ? std::string("no Content-Type")
          : absl::StrCat("Content-Type \"", PrintableForError(content_type),
                         "\"")));
}

namespace {

class CloudEventsNormalizer final : public Normalizer {
 public:
  absl::StatusOr<v1::Event> Normalize(const NormalizerInput& input) const override {
    return ParseCloudEvent(input.content_type, input.header, input.body, input.header_names);
  }
};

}  // namespace

const NormalizerKind kCloudEventsNormalizer = {
    .name = "cloudevents",
    .create = [](const SourceConfig&) -> std::unique_ptr<Normalizer> {
      return std::make_unique<CloudEventsNormalizer>();
    },
    .default_dedup = [](const SourceConfig&) {
      return DedupConfig{DedupKey::kEventId, absl::Hours(24)};
    },
    .has_event_id = [](const SourceConfig&) { return true; },
};

}  // namespace hookfan::ingress
