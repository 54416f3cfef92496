#include "ingress/json_body.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace hookfan::ingress {
namespace {

using ::nlohmann::json;

// A SAX handler that builds nothing: it counts open objects and arrays and
// stops the parse (by returning false) as soon as they pass kMaxJsonDepth,
// so a body of a million '[' costs a few bytes, not a tree of a million
// arrays. It keeps the first parse error as "at byte N: <why>".
class BoundedValidator final : public json::json_sax_t {
 public:
  bool too_deep() const { return too_deep_; }
  const std::string& error() const { return error_; }

  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override { return Open(); }
  bool key(string_t&) override { return true; }
  bool end_object() override { return Close(); }
  bool start_array(std::size_t) override { return Open(); }
  bool end_array() override { return Close(); }

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
    error_ = absl::StrCat("at byte ", position, ": ", PrintableForError(why));
    return false;
  }

 private:
  bool Open() {
    if (++depth_ > kMaxJsonDepth) too_deep_ = true;
    return !too_deep_;
  }
  bool Close() {
    --depth_;
    return true;
  }

  int depth_ = 0;
  bool too_deep_ = false;
  std::string error_;
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
  // Checked before anything is built, so a body that nests too deeply is
  // refused at the first level past the limit: memory stays flat whatever
  // the depth. Whichever problem comes first in the text is the one named.
  BoundedValidator validator;
  json::sax_parse(body, &validator);
  if (validator.too_deep()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "JSON nested too deeply (more than ", kMaxJsonDepth, " levels)"));
  }
  if (!validator.error().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("body is not valid JSON: ", validator.error()));
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
  // The same parser on the same text: it accepts what the validator did.
  json root = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded()) {
    return absl::InternalError("JSON accepted by validation failed to parse");
  }
  return root;
}

}  // namespace hookfan::ingress
