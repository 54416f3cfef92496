#pragma once

#include <functional>
#include <optional>
#include <string_view>

namespace hookfan::ingress {

// Looks up a request header by its lowercase name; nullopt if absent.
using HeaderLookup =
    std::function<std::optional<std::string_view>(std::string_view lowercase_name)>;

// Whether `name` is an HTTP field name (RFC 9110 token): what a configured
// header (an HMAC signature's, a JSON source's type header) must be.
inline bool IsHttpFieldName(std::string_view name) {
  if (name.empty()) return false;
  for (const char c : name) {
    const bool alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    if (!alnum && std::string_view("!#$%&'*+-.^_`|~").find(c) == std::string_view::npos) {
      return false;
    }
  }
  return true;
}

}  // namespace hookfan::ingress
