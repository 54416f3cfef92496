#pragma once

#include <string>

#include "clients/tail/options.h"
#include "hookfan/v1/event.pb.h"

namespace hookfan::tail {

// One event as a protobuf-JSON object on one line (no trailing newline).
// With Body::kJson, data that is JSON (data_content_type application/json,
// text/json or any +json type, parameters ignored, and the bytes parse) is
// printed as a JSON value in a last field "body" instead of base64 in
// "data": the sender's text with the whitespace between tokens dropped, so
// keys keep their order and numbers their digits. Other data, and all data
// with Body::kBase64, is base64 in "data", the exact protobuf JSON mapping.
std::string FormatJson(const v1::Event& event, Body body = Body::kJson);

// One event as an aligned, human-readable line (no trailing newline):
//   #12  2026-11-27T03:05:26Z  applivery.device.enrolled  apple  Acme  device 1a2b  (adm_device_enrolled)  trace 4bf9…4736
// (the trace id of its traceparent in full). With `color`, ANSI colours set
// the sequence, type and platform apart.
std::string FormatPretty(const v1::Event& event, bool color);

}  // namespace hookfan::tail
