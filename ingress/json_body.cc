#include "ingress/json_body.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace hookfan::ingress {
namespace {

using ::nlohmann::json;

// A SAX handler that accepts every value and keeps the first parse error as
// "at byte N: <why>".
class ParseErrorRecorder final : public json::json_sax_t {
 public:
  const std::string& detail() const { return detail_; }

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

  bool parse_error(std::size_t position, const std::string& /*last_token*/,
                   const json::exception& error) override {
    // nlohmann writes "[json.exception.parse_error.101] parse error at line
    // 1, column 2: <why>"; the byte offset replaces the tag and line/column.
    std::string_view why = error.what();
    if (const size_t tag_end = why.find("] "); tag_end != why.npos) {
      why.remove_prefix(tag_end + 2);
    }
    if (why.starts_with("parse error at line")) {
      if (const size_t colon = why.find(": "); colon != why.npos) {
        why.remove_prefix(colon + 2);
      }
    }
    detail_ = absl::StrCat("at byte ", position, ": ", PrintableForError(why));
    return false;
  }

 private:
  std::string detail_;
};

}  // namespace

std::string PrintableForError(std::string_view text) {
  constexpr size_t kMaxBytes = 160;
  std::string out;
  for (const unsigned char c : text.substr(0, kMaxBytes)) {
    if (absl::ascii_isprint(c)) {
      out += static_cast<char>(c);
    } else {
      absl::StrAppend(&out, "\\x", absl::Hex(c, absl::kZeroPad2));
    }
  }
  if (text.size() > kMaxBytes) out += "...";
  return out;
}

absl::StatusOr<json> ParseJsonBody(std::string_view body) {
  int depth = 0;
  json root = json::parse(
      body,
      [&depth](int level, json::parse_event_t event, json&) {
        if (event == json::parse_event_t::object_start ||
            event == json::parse_event_t::array_start) {
          depth = std::max(depth, level + 1);
        }
        return true;
      },
      /*allow_exceptions=*/false);
  if (root.is_discarded()) {
    // Rare path: parse again to learn why and where.
    ParseErrorRecorder recorder;
    json::sax_parse(body, &recorder);
    return absl::InvalidArgumentError(
        absl::StrCat("body is not valid JSON: ", recorder.detail()));
  }
  // nlohmann takes a NUL byte for the end of the input (as in a C string),
  // so "{}\0junk" parses as {}. JSON allows NUL only escaped in a string,
  // and a raw one in a string fails above: the first NUL ends the value.
  if (const size_t nul = body.find('\0'); nul != body.npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "body is not valid JSON: at byte ", nul + 1,
        ": syntax error while parsing value - unexpected NUL byte; expected "
        "end of input"));
  }
  if (depth > kMaxJsonDepth) {
    return absl::InvalidArgumentError(absl::StrCat(
        "JSON nested too deeply (more than ", kMaxJsonDepth, " levels)"));
  }
  return root;
}

}  // namespace hookfan::ingress
