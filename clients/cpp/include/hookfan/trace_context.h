#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "hookfan/v1/event.pb.h"

namespace hookfan {

// The W3C trace context (https://www.w3.org/TR/trace-context/) of an event.
// hookfan stores one on every event, in the CloudEvents distributed-tracing
// extension (extensions["traceparent"], ["tracestate"]): the sender's when
// it sent a valid one, else one hookfan started. To continue the trace,
// hand both strings to your tracer's W3C propagator as if they were the
// headers of an incoming request (OpenTelemetry: the TextMapPropagator's
// Extract with a carrier holding "traceparent" and "tracestate"), and start
// the span that handles the event as its child.
struct TraceContext {
  std::string traceparent;  // "<version>-<trace id>-<parent id>-<flags>"
  std::string tracestate;   // vendors' entries; empty when none

  // The 32 lowercase hex digits naming the trace (what tracers show).
  std::string_view trace_id() const;
  // The 16 hex digits naming the span the event came from.
  std::string_view parent_id() const;
  // Whether the sender (or hookfan) asked for the trace to be recorded
  // (the flags' sampled bit).
  bool sampled() const;
};

// The event's trace context, or nullopt when it carries no traceparent of
// the W3C layout (an event built by hand, not one received from hookfan).
std::optional<TraceContext> TraceContextOf(const v1::Event& event);

}  // namespace hookfan
