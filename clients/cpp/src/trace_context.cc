#include "hookfan/trace_context.h"

namespace hookfan {
namespace {

// "vv-" then the trace id, "-", the parent id, "-", the flags: the layout
// of every traceparent version (later versions may append "-...").
constexpr size_t kTraceIdAt = 3;
constexpr size_t kTraceIdLength = 32;
constexpr size_t kParentIdAt = kTraceIdAt + kTraceIdLength + 1;
constexpr size_t kParentIdLength = 16;
constexpr size_t kFlagsAt = kParentIdAt + kParentIdLength + 1;
constexpr size_t kLength = kFlagsAt + 2;

bool IsHex(std::string_view digits) {
  for (char c : digits) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace

std::string_view TraceContext::trace_id() const {
  return std::string_view(traceparent).substr(kTraceIdAt, kTraceIdLength);
}

std::string_view TraceContext::parent_id() const {
  return std::string_view(traceparent).substr(kParentIdAt, kParentIdLength);
}

bool TraceContext::sampled() const {
  const char low = traceparent[kFlagsAt + 1];
  const int bits = low <= '9' ? low - '0' : low - 'a' + 10;
  return (bits & 1) != 0;
}

std::optional<TraceContext> TraceContextOf(const v1::Event& event) {
  const auto& extensions = event.extensions();
  const auto parent = extensions.find("traceparent");
  if (parent == extensions.end()) return std::nullopt;
  const std::string_view value = parent->second;
  if (value.size() < kLength || value[kTraceIdAt - 1] != '-' || value[kParentIdAt - 1] != '-' ||
      value[kFlagsAt - 1] != '-' || !IsHex(value.substr(0, 2)) ||
      !IsHex(value.substr(kTraceIdAt, kTraceIdLength)) ||
      !IsHex(value.substr(kParentIdAt, kParentIdLength)) || !IsHex(value.substr(kFlagsAt, 2))) {
    return std::nullopt;
  }
  TraceContext context;
  context.traceparent = parent->second;
  if (const auto state = extensions.find("tracestate"); state != extensions.end()) {
    context.tracestate = state->second;
  }
  return context;
}

}  // namespace hookfan
