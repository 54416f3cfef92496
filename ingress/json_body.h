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
// levels. nlohmann's parser is iterative: no depth exhausts the stack. The
// text is read once without building anything, stopping at the first
// problem, and the tree is built only for a body that passed: memory does
// not grow with the depth a sender tries. Errors, kInvalidArgument, naming
// the problem that comes first in the text:
//   "body is not valid JSON: at byte N: <parser detail>"
//   "JSON nested too deeply (more than 32 levels)"
// (so a million unclosed '[' are refused as too deep at byte 33).
absl::StatusOr<nlohmann::json> ParseJsonBody(std::string_view body);

// `text` made safe to echo in an error message: printable ASCII only (other
// bytes as \xNN), at most 160 bytes of it, then "...".
std::string PrintableForError(std::string_view text);

}  // namespace hookfan::ingress
