#include "ingress/json_normalizer.h"

#include <algorithm>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/status_macros.h"
#include "core/event_rules.h"
#include "ingress/json_body.h"
#include "nlohmann/json.hpp"

namespace hookfan::ingress {
namespace {

using ::hookfan::v1::Event;
using ::nlohmann::json;

// Debian's abseil has its own string_view type.
absl::string_view ToAbsl(std::string_view s) { return {s.data(), s.size()}; }

// A parsed JSON pointer, or why `text` is none. nlohmann reports bad syntax
// only by throwing; the exception stays in here.
absl::StatusOr<json::json_pointer> ParsePointer(std::string_view what,
                                                const std::string& text) {
  try {
    return json::json_pointer(text);
  } catch (const json::exception& e) {
    // "[json.exception.parse_error.107] parse error at byte 1: <why>"
    std::string_view why = e.what();
    if (const size_t tag_end = why.find("] "); tag_end != why.npos) {
      why.remove_prefix(tag_end + 2);
    }
    if (why.starts_with("parse error")) {
      if (const size_t colon = why.find(": "); colon != why.npos) {
        why.remove_prefix(colon + 2);
      }
    }
    return absl::InvalidArgumentError(
        absl::StrCat(ToAbsl(what), " \"", PrintableForError(text),
                     "\" is not a JSON pointer: ", PrintableForError(why)));
  }
}

// The value at `pointer` in `root`, or nullptr when there is none. Never
// throws: contains() only throws for an array index too large for size_t,
// which no array has.
const json* Resolve(const json& root, const json::json_pointer& pointer) {
  try {
    return root.contains(pointer) ? &root.at(pointer) : nullptr;
  } catch (const json::exception&) {
    return nullptr;
  }
}

// Reads the value at config pointer `pointer_text` (named `name` in
// messages, e.g. "type pointer"). A pointer that does not parse is a config
// the caller should have refused: kInternal.
absl::StatusOr<const json*> Lookup(const json& root, std::string_view name,
                                   std::string_view config_field,
                                   const std::string& pointer_text) {
  absl::StatusOr<json::json_pointer> pointer =
      ParsePointer(config_field, pointer_text);
  if (!pointer.ok()) return absl::InternalError(pointer.status().message());
  const json* value = Resolve(root, *pointer);
  if (value == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(ToAbsl(name), " ", PrintableForError(pointer_text),
                     ": not found in the body"));
  }
  return value;
}

// An event type and where it came from ("type pointer /event/type").
struct NamedType {
  std::string type;
  std::string origin;
};

// The type the body or the request names, with the prefix.
absl::StatusOr<NamedType> ReadType(
    const JsonNormalizerConfig& config, const json& root,
    const std::function<std::optional<std::string_view>(std::string_view)>&
        header) {
  if (!config.type_pointer.empty()) {
    const std::string origin =
        absl::StrCat("type pointer ", PrintableForError(config.type_pointer));
    ASSIGN_OR_RETURN(
        const json* value,
        Lookup(root, "type pointer", "type_pointer", config.type_pointer));
    if (!value->is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat(origin, ": must be a string, got ", value->type_name()));
    }
    return NamedType{
        absl::StrCat(config.type_prefix, value->get_ref<const std::string&>()),
        origin};
  }
  if (!config.type_header.empty()) {
    const std::string name = absl::AsciiStrToLower(config.type_header);
    const std::string origin =
        absl::StrCat("type header ", PrintableForError(name));
    const std::optional<std::string_view> value = header(name);
    if (!value.has_value()) {
      return absl::InvalidArgumentError(
          absl::StrCat(origin, ": missing from the request"));
    }
    return NamedType{absl::StrCat(config.type_prefix, ToAbsl(*value)), origin};
  }
  return absl::InternalError("set exactly one of type_pointer and type_header");
}

}  // namespace

absl::Status CheckJsonPointer(const std::string& pointer) {
  absl::StatusOr<json::json_pointer> parsed = ParsePointer("", pointer);
  if (parsed.ok()) return absl::OkStatus();
  // ParsePointer's message starts with its (empty) name and a space.
  return absl::InvalidArgumentError(parsed.status().message().substr(1));
}

absl::Status CheckTypeHeader(std::string_view header) {
  if (IsHttpFieldName(header)) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("\"", PrintableForError(header), "\" is not an HTTP field name"));
}

absl::Status CheckTypePrefix(std::string_view prefix) {
  // Any type with this prefix ends in a token the body supplies.
  if (const absl::Status status = broker::CheckEventType(absl::StrCat(ToAbsl(prefix), "x"));
      !status.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("\"", PrintableForError(prefix),
                                                   "\" is not the start of a valid event type: ",
                                                   status.message()));
  }
  return absl::OkStatus();
}

absl::Status CheckJsonNormalizerConfig(const JsonNormalizerConfig& config) {
  if (config.type_pointer.empty() == config.type_header.empty()) {
    return absl::InvalidArgumentError(
        "set exactly one of type_pointer and type_header");
  }
  const auto field = [](std::string_view name, absl::Status status) {
    if (status.ok()) return status;
    return absl::InvalidArgumentError(absl::StrCat(ToAbsl(name), " ", status.message()));
  };
  if (!config.type_pointer.empty()) {
    RETURN_IF_ERROR(field("type_pointer", CheckJsonPointer(config.type_pointer)));
  }
  if (!config.type_header.empty()) {
    RETURN_IF_ERROR(field("type_header", CheckTypeHeader(config.type_header)));
  }
  if (!config.id_pointer.empty()) {
    RETURN_IF_ERROR(field("id_pointer", CheckJsonPointer(config.id_pointer)));
  }
  if (!config.type_prefix.empty()) {
    RETURN_IF_ERROR(field("type_prefix", CheckTypePrefix(config.type_prefix)));
  }
  return absl::OkStatus();
}

absl::StatusOr<Event> NormalizeJson(
    const JsonNormalizerConfig& config, std::string_view source,
    const std::function<std::optional<std::string_view>(
        std::string_view lowercase_name)>& header,
    std::string_view body) {
  ASSIGN_OR_RETURN(const json root, ParseJsonBody(body));
  if (!root.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("body must be a JSON object, got ", root.type_name()));
  }
  ASSIGN_OR_RETURN(NamedType type, ReadType(config, root, header));
  type.type = broker::LowercaseEventType(type.type);
  if (const absl::Status status = broker::CheckEventType(type.type); !status.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("event type \"", PrintableForError(type.type), "\" (from ",
                     type.origin, ") is not valid: ", status.message()));
  }

  Event event;
  event.set_source(std::string(source));
  event.set_type(std::move(type.type));
  if (!config.id_pointer.empty()) {
    const std::string origin =
        absl::StrCat("id pointer ", PrintableForError(config.id_pointer));
    ASSIGN_OR_RETURN(const json* id, Lookup(root, "id pointer", "id_pointer",
                                            config.id_pointer));
    if (id->is_string()) {
      event.set_source_event_id(id->get_ref<const std::string&>());
    } else if (id->is_number()) {
      event.set_source_event_id(id->dump());
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          origin, ": must be a string or a number, got ", id->type_name()));
    }
    if (event.source_event_id().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(origin, ": must not be empty"));
    }
  }
  event.set_data_content_type("application/json");
  event.set_data(body.data(), body.size());
  return event;
}

namespace {

class JsonNormalizer final : public Normalizer {
 public:
  JsonNormalizer(JsonNormalizerConfig config, std::string source)
      : config_(std::move(config)), source_(std::move(source)) {}

  absl::StatusOr<v1::Event> Normalize(const NormalizerInput& input) const override {
    RETURN_IF_ERROR(RequireJsonContentType(input.content_type));
    return NormalizeJson(config_, source_, input.header, input.body);
  }

 private:
  const JsonNormalizerConfig config_;
  const std::string source_;
};

}  // namespace

const NormalizerKind kJsonNormalizer = {
    .name = "json",
    .create = [](const SourceConfig& source) -> std::unique_ptr<Normalizer> {
      return std::make_unique<JsonNormalizer>(source.json, source.path);
    },
    .default_dedup = [](const SourceConfig& source) {
      return source.json.id_pointer.empty() ? DedupConfig{DedupKey::kNone, absl::Hours(24)}
                                            : DedupConfig{DedupKey::kEventId, absl::Hours(24)};
    },
    .has_event_id = [](const SourceConfig& source) { return !source.json.id_pointer.empty(); },
};

}  // namespace hookfan::ingress
