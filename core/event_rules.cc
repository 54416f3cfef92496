#include "core/event_rules.h"

#include <cstddef>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace hookfan::broker {
namespace {

bool IsTokenByte(unsigned char c) {
  return absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '_' || c == '-';
}

}  // namespace

absl::Status CheckEventType(std::string_view type) {
  if (type.empty()) return absl::InvalidArgumentError("it is empty");
  if (type.size() > kMaxEventTypeLength) {
    return absl::InvalidArgumentError(
        absl::StrCat("it is longer than ", kMaxEventTypeLength, " bytes"));
  }
  if (type.find_first_of("*>") != type.npos) {
    return absl::InvalidArgumentError(
        "\"*\" and \">\" are subscription wildcards, not allowed in a type");
  }
  bool token_empty = true;
  for (size_t i = 0; i < type.size(); ++i) {
    const unsigned char c = type[i];
    if (c == '.') {
      if (token_empty) break;
      token_empty = true;
    } else if (IsTokenByte(c)) {
      token_empty = false;
    } else {
      const std::string shown =
          absl::ascii_isprint(c)
              ? std::string(1, static_cast<char>(c))
              : absl::StrCat("\\x", absl::Hex(c, absl::kZeroPad2));
      return absl::InvalidArgumentError(
          absl::StrCat("'", shown, "' at byte ", i, " is not allowed: tokens are a-z 0-9 _ -",
                       absl::ascii_isupper(c) ? " (types are lowercase)" : ""));
    }
  }
  if (token_empty) {
    return absl::InvalidArgumentError(
        "it has an empty token (a leading, trailing or doubled \".\")");
  }
  return absl::OkStatus();
}

bool IsValidEventType(std::string_view type) {
  return CheckEventType(type).ok();
}

std::string LowercaseEventType(std::string_view type) {
  return absl::AsciiStrToLower(absl::string_view(type.data(), type.size()));
}

std::string QuoteForError(std::string_view value) {
  const absl::string_view s(value.data(), value.size());
  constexpr size_t kMax = 64;
  if (s.size() <= kMax) return absl::StrCat("\"", s, "\"");
  return absl::StrCat("\"", s.substr(0, kMax), "...\" (", s.size(), " bytes)");
}

bool IsExtensionName(std::string_view name) {
  if (name.empty() || name.size() > kMaxExtensionNameLength) return false;
  for (const char c : name) {
    if (!absl::ascii_islower(c) && !absl::ascii_isdigit(c)) return false;
  }
  return true;
}

bool IsCloudEventsAttribute(std::string_view name) {
  for (std::string_view attribute : {"id", "source", "specversion", "type", "datacontenttype",
                                     "dataschema", "subject", "time", "data"}) {
    if (name == attribute) return true;
  }
  return false;
}

bool IsValidTimestamp(const google::protobuf::Timestamp& ts) {
  return ts.seconds() >= kMinTimestampSeconds && ts.seconds() <= kMaxTimestampSeconds &&
         ts.nanos() >= 0 && ts.nanos() <= 999999999;
}

}  // namespace hookfan::broker
