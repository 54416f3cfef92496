#include "core/trace_context.h"

#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/uuid.h"

namespace hookfan::broker {
namespace {

constexpr size_t kTraceparentLength = 55;  // "00-" 32 "-" 16 "-" 2
constexpr size_t kMaxTracestateLength = 512;
constexpr size_t kMaxTracestateMembers = 32;

bool IsLowerHex(char c) { return absl::ascii_isdigit(c) || (c >= 'a' && c <= 'f'); }

// `n` lowercase hex digits at `pos`, not all zero when `nonzero`.
bool HexField(std::string_view s, size_t pos, size_t n, bool nonzero) {
  bool any = false;
  for (size_t i = pos; i < pos + n; ++i) {
    if (!IsLowerHex(s[i])) return false;
    any = any || s[i] != '0';
  }
  return any || !nonzero;
}

bool IsKeyChar(char c) {
  return absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '_' || c == '-' || c == '*' ||
         c == '/';
}

// simple-key = lcalpha 0*255(keychar); multi-tenant-key = tenant-id "@"
// system-id, tenant-id = (lcalpha / DIGIT) 0*240(keychar), system-id =
// lcalpha 0*13(keychar).
bool IsTracestateKey(std::string_view key) {
  auto part = [](std::string_view p, size_t max, bool digit_first) {
    if (p.empty() || p.size() > max) return false;
    if (!absl::ascii_islower(p[0]) && !(digit_first && absl::ascii_isdigit(p[0]))) return false;
    for (char c : p.substr(1)) {
      if (!IsKeyChar(c)) return false;
    }
    return true;
  };
  const size_t at = key.find('@');
  if (at == std::string_view::npos) return part(key, 256, false);
  return part(key.substr(0, at), 241, true) && part(key.substr(at + 1), 14, false);
}

// 1 to 256 printable ASCII characters but "," and "=", the last not a space.
bool IsTracestateValue(std::string_view value) {
  if (value.empty() || value.size() > 256 || value.back() == ' ') return false;
  for (char c : value) {
    if (c < 0x20 || c > 0x7e || c == ',' || c == '=') return false;
  }
  return true;
}

}  // namespace

bool IsValidTraceparent(std::string_view value) {
  if (value.size() < kTraceparentLength) return false;
  if (!HexField(value, 0, 2, false) || value.substr(0, 2) == "ff") return false;
  if (value[2] != '-' || value[35] != '-' || value[52] != '-') return false;
  if (!HexField(value, 3, 32, true) || !HexField(value, 36, 16, true) ||
      !HexField(value, 53, 2, false)) {
    return false;
  }
  if (value.substr(0, 2) == "00") return value.size() == kTraceparentLength;
  return value.size() == kTraceparentLength || value[kTraceparentLength] == '-';
}

bool IsValidTracestate(std::string_view value) {
  if (value.size() > kMaxTracestateLength) return false;
  std::set<std::string_view> keys;
  size_t members = 0;
  for (size_t start = 0; start <= value.size();) {
    size_t comma = value.find(',', start);
    if (comma == std::string_view::npos) comma = value.size();
    std::string_view member = value.substr(start, comma - start);
    start = comma + 1;
    // Blanks (OWS: spaces and tabs) may surround a member.
    while (!member.empty() && (member.front() == ' ' || member.front() == '\t')) {
      member.remove_prefix(1);
    }
    while (!member.empty() && (member.back() == ' ' || member.back() == '\t')) {
      member.remove_suffix(1);
    }
    if (member.empty()) continue;
    if (++members > kMaxTracestateMembers) return false;
    const size_t eq = member.find('=');
    if (eq == std::string_view::npos) return false;
    const std::string_view key = member.substr(0, eq);
    if (!IsTracestateKey(key) || !IsTracestateValue(member.substr(eq + 1))) return false;
    if (!keys.insert(key).second) return false;
  }
  return true;
}

std::string NewTraceparent() {
  // One draw from the CSPRNG for both ids: 16 bytes of trace id, 8 of parent id.
  const std::string ids = RandomHex(24);
  return absl::StrCat("00-", ids.substr(0, 32), "-", ids.substr(32), "-01");
}

std::string_view TraceIdOf(std::string_view traceparent) { return traceparent.substr(3, 32); }

TraceContextChange CompleteTraceContext(v1::Event* event) {
  TraceContextChange change;
  auto& extensions = *event->mutable_extensions();
  auto parent = extensions.find(kTraceparent);
  if (parent != extensions.end() && !IsValidTraceparent(parent->second)) {
    extensions.erase(parent);
    parent = extensions.end();
    ++change.dropped;
  }
  auto state = extensions.find(kTracestate);
  if (state != extensions.end() &&
      (parent == extensions.end() || !IsValidTracestate(state->second))) {
    extensions.erase(state);
    ++change.dropped;
  }
  if (parent == extensions.end()) {
    extensions[kTraceparent] = NewTraceparent();
    change.started = true;
  }
  return change;
}

}  // namespace hookfan::broker
