#pragma once

#include <string>

#include "hookfan/v1/event.pb.h"

namespace hookfan::tail {

// One event as a protobuf-JSON object on one line (no trailing newline).
std::string FormatJson(const v1::Event& event);

// One event as an aligned, human-readable line (no trailing newline):
//   #12  2026-11-27T03:05:26Z  applivery.device.enrolled  apple  Acme  device 1a2b  (adm_device_enrolled)
// With `color`, ANSI colours set the sequence, type and platform apart.
std::string FormatPretty(const v1::Event& event, bool color);

}  // namespace hookfan::tail
