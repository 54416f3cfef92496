#pragma once

// What every fuzz target of fuzz/ shares: the check that turns a broken
// contract into a crash libFuzzer reports, and the JSON facts the
// normalizer and CloudEvents targets check against.

#include <errno.h>  // program_invocation_short_name (glibc)

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/util/message_differencer.h"
#include "hookfan/v1/event.pb.h"
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

// The nesting depth `text` reaches up to and including its first error: the
// first NUL byte or the byte where nlohmann's parser fails (the whole text
// when it is JSON). A parser that stops at the first problem has seen no
// more than this.
inline int JsonDepthBeforeError(std::string_view text) {
  struct ErrorPosition : nlohmann::json_sax<nlohmann::json> {
    size_t position = std::string_view::npos;
    bool null() override { return true; }
    bool boolean(bool) override { return true; }
    bool number_integer(number_integer_t) override { return true; }
    bool number_unsigned(number_unsigned_t) override { return true; }
    bool number_float(number_float_t, const string_t&) override { return true; }
    bool string(string_t&) override { return true; }
    bool binary(binary_t&) override { return true; }
    bool start_object(std::size_t) override { return true; }
    bool key(string_t&) override { return true; }
    bool end_object() override { return true; }
    bool start_array(std::size_t) override { return true; }
    bool end_array() override { return true; }
    bool parse_error(std::size_t at, const std::string&,
                     const nlohmann::json::exception&) override {
      position = at;
      return false;
    }
  } sax;
  nlohmann::json::sax_parse(text, &sax);
  const size_t end = std::min(text.find('\0'), sax.position);
  return JsonDepth(text.substr(0, std::min(end, text.size())));
}

// Checks the JSON verdicts every JSON source owes (ingress/json_body.h):
// JSON nested deeper than `max_depth` is refused as too deep and other JSON
// not as invalid; text that is no JSON is refused as invalid, or as too deep
// when it nests deeper than `max_depth` before its first error.
inline void CheckJsonVerdict(std::string_view body, const absl::Status& status,
                             int max_depth) {
  const absl::string_view message = status.message();
  const bool not_json =
      absl::StartsWith(message, "body is not valid JSON: at byte ");
  const bool too_deep =
      message == "JSON nested too deeply (more than 32 levels)";
  if (!IsJson(body)) {
    Check(not_json || too_deep, "text that is no JSON is not refused as such",
          status.ToString());
    Check(!too_deep || JsonDepthBeforeError(body) > max_depth,
          "refused as too deep, but nests no deeper before its first error",
          status.ToString());
  } else {
    Check(!not_json, "JSON refused as invalid", status.ToString());
    Check(too_deep == (JsonDepth(body) > max_depth), "depth limit",
          status.ToString());
  }
}

// Checks a normalizer's refusal: kInvalidArgument with a printable-ASCII
// message, fit to return to the sender.
inline void CheckRefusal(const absl::Status& status) {
  Check(status.code() == absl::StatusCode::kInvalidArgument, "error code is not kInvalidArgument",
        status.ToString());
  Check(!status.message().empty() && IsPrintableAscii(status.message()),
        "error message is not printable ASCII", status.ToString());
}

// Checks that `event` serializes and parses back equal inside three
// enclosing messages (kMaxJsonDepth's promise; so it holds valid UTF-8
// only).
inline void CheckSurvivesNesting(const hookfan::v1::Event& event) {
  const std::string shown = event.ShortDebugString();
  std::string bytes;
  Check(event.SerializeToString(&bytes), "serialize", shown);
  google::protobuf::io::CodedInputStream input(reinterpret_cast<const uint8_t*>(bytes.data()),
                                               static_cast<int>(bytes.size()));
  input.SetRecursionLimit(100 - 3);
  hookfan::v1::Event parsed;
  Check(parsed.ParseFromCodedStream(&input), "does not parse back inside three enclosing messages",
        shown);
  Check(google::protobuf::util::MessageDifferencer::Equals(parsed, event), "parses back different",
        shown);
}

// Checks an MDM event's key: its device's UDID, else the device's serial
// number, else its subject (ingress::DeviceKey's contract).
inline void CheckDeviceKey(const hookfan::v1::Event& event) {
  const hookfan::v1::DeviceIdentity& d = event.device();
  const std::string& expected = !d.udid().empty()            ? d.udid()
                                : !d.serial_number().empty() ? d.serial_number()
                                                             : event.subject();
  Check(event.key() == expected, "key is not the UDID, else serial number, else subject",
        event.ShortDebugString());
}

// The body of a JSON normalizer's fuzz target: `normalize` the input; a
// refusal must be the JSON verdict JSON owes (CheckJsonVerdict, against
// `max_depth`) and a proper refusal (CheckRefusal); an event must pass
// `check_event(body, event)`.
template <typename Normalize, typename CheckEvent>
int FuzzJsonNormalizer(const uint8_t* data, size_t size, Normalize normalize, int max_depth,
                       CheckEvent check_event) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  const auto event = normalize(body);
  CheckJsonVerdict(body, event.status(), max_depth);
  if (!event.ok()) {
    CheckRefusal(event.status());
    return 0;
  }
  check_event(body, *event);
  return 0;
}

}  // namespace hookfan::fuzz
