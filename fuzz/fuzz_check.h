#pragma once

// What every fuzz target of fuzz/ shares: the check that turns a broken
// contract into a crash libFuzzer reports, and the JSON facts the
// normalizer and CloudEvents targets check against.

#include <errno.h>  // program_invocation_short_name (glibc)

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace hookfan::fuzz {

// Aborts (a crash for libFuzzer) when `ok` is false, saying which target
// and what broke.
inline void Check(bool ok, const char* what, const std::string& context = "") {
  if (ok) return;
  std::fprintf(stderr, "%s: broken: %s\n%s\n", program_invocation_short_name, what,
               context.c_str());
  std::abort();
}

inline bool IsPrintableAscii(absl::string_view text) {
  for (const char c : text) {
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

// Whether `text` is JSON. nlohmann alone reads a NUL byte as the end of
// the input, where JSON allows none.
inline bool IsJson(std::string_view text) {
  return text.find('\0') == text.npos && nlohmann::json::accept(text);
}

// The nesting depth of JSON text: 0 for a scalar, 1 for an object or array
// of scalars, and so on.
inline int JsonDepth(std::string_view json) {
  int depth = 0;
  int max_depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < json.size(); ++i) {
    const char c = json[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      max_depth = std::max(max_depth, ++depth);
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return max_depth;
}

}  // namespace hookfan::fuzz
