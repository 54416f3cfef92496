#pragma once

// W3C Trace Context (https://www.w3.org/TR/trace-context/) on events. A
// stored event carries its trace where the CloudEvents distributed-tracing
// extension puts it, in extensions["traceparent"] and
// extensions["tracestate"]: taken from what brought the event (a webhook's
// W3C headers, a CloudEvent's attributes, a Publish call's extensions) or,
// when that brought none, started by hookfan, so that every event can be
// followed from its sender to its subscribers.

#include <string>
#include <string_view>

#include "hookfan/v1/event.pb.h"

namespace hookfan::broker {

inline constexpr char kTraceparent[] = "traceparent";
inline constexpr char kTracestate[] = "tracestate";

// Whether `value` is a traceparent hookfan keeps (Trace Context level 1,
// section 3.2): version "00", then "-", 32 lowercase hex digits (the trace
// id, not all zero), "-", 16 (the parent id, not all zero), "-", 2 (the
// flags), and nothing more. A later version (01 to fe) is read by the same
// first 55 characters, followed by nothing or by "-" and more; version ff
// is invalid.
bool IsValidTraceparent(std::string_view value);

// Whether `value` is a tracestate hookfan keeps (section 3.3): at most 512
// characters; at most 32 comma-separated list members, each key=value in
// the spec's grammar, no key twice; blanks around members and empty members
// are allowed.
bool IsValidTracestate(std::string_view value);

// A traceparent that starts a new trace: version 00, random trace and
// parent ids from the OS CSPRNG, flags 01 (sampled: whoever continues the
// trace records its spans).
std::string NewTraceparent();

// The trace id (32 hex digits) of a valid traceparent.
std::string_view TraceIdOf(std::string_view traceparent);

// What CompleteTraceContext changed.
struct TraceContextChange {
  int dropped = 0;       // invalid values removed (traceparent, tracestate)
  bool started = false;  // a new trace was started
};

// Makes `event` carry a valid trace: an invalid traceparent is removed with
// its tracestate, an invalid tracestate alone, a tracestate without a
// traceparent too; with no traceparent left a new trace is started.
// Idempotent: a second call changes nothing.
TraceContextChange CompleteTraceContext(v1::Event* event);

}  // namespace hookfan::broker
