#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace hookfan::ingress {

// The deepest JSON nesting a webhook body may have, counting the body as
// level 1. Every stored event's payload must stay parseable by protobuf
// clients, whose own nesting limits are not much higher, and the
// normalizers recurse over what they parse.
inline constexpr int kMaxJsonDepth = 32;

// ParseJsonBody parses `body` as one JSON value nested at most kMaxJsonDepth
// levels. nlohmann's parser is iterative: no depth exhausts the stack.
// Errors, kInvalidArgument:
//   "body is not valid JSON: at byte N: <parser detail>"
//   "JSON nested too deeply (more than 32 levels)"
absl::StatusOr<nlohmann::json> ParseJsonBody(std::string_view body);

// `text` made safe to echo in an error message: printable ASCII only (other
// bytes as \xNN), at most 160 bytes of it, then "...".
std::string PrintableForError(std::string_view text);

}  // namespace hookfan::ingress
