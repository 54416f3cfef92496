#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "hookfan/v1/broker.pb.h"

namespace hookfan::tail {

// How events are printed.
enum class Output {
  kAuto,    // pretty on a terminal, JSON otherwise
  kJson,    // one protobuf-JSON object per line
  kPretty,  // one aligned, human-readable line per event
};

// How JSON output prints an event's data (the original request body).
enum class Body {
  kJson,    // as a JSON value in "body" when it is JSON, else as kBase64
  kBase64,  // base64 in "data": the exact protobuf JSON mapping
};

// Whether pretty output is coloured.
enum class Color { kAuto, kAlways, kNever };  // auto: on a terminal, unless NO_COLOR

// Options is a parsed hookfan-tail command line.
struct Options {
  std::string server = "127.0.0.1:9090";
  std::string token;  // bearer token for subscriber grants
  v1::SubscribeRequest request;
  std::string group;  // non-empty: consume as a member of this group, acking after printing
  std::optional<uint64_t> max_events;  // exit after this many
  int connect_timeout_seconds = 5;
  Output output = Output::kAuto;
  Body body = Body::kJson;
  Color color = Color::kAuto;
  bool help = false;
};

// Usage text for --help and errors.
extern const char kUsage[];

// Parses argv (without argv[0]). Repeated flags accumulate (--type A --type
// B). --from takes earliest, latest, or a sequence N (start *at* N).
// Errors: kInvalidArgument naming the flag and the problem.
absl::StatusOr<Options> ParseOptions(const std::vector<std::string>& args);

// Parses a platform name: android|apple|windows|aosp|other|unspecified, the
// Applivery prefix (emm, adm, win, aos) or the enum name (PLATFORM_APPLE).
absl::StatusOr<v1::Platform> ParsePlatform(const std::string& name);

}  // namespace hookfan::tail
