#include "ingress/json_body.h"

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "core/event_rules.h"

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

// Debian's abseil has its own string_view type.
absl::string_view ToAbsl(std::string_view s) { return {s.data(), s.size()}; }

// Whether `text` has the shape of an RFC 3339 date-time:
// YYYY-MM-DDThh:mm:ss[.fraction](Z|+hh:mm|-hh:mm), "T" and "Z" in either
// case. absl::ParseTime alone would also take surrounding whitespace,
// other year widths and offsets without a colon.
bool HasRfc3339Shape(std::string_view text) {
  constexpr std::string_view kShape = "dddd-dd-ddTdd:dd:dd";
  if (text.size() < kShape.size()) return false;
  for (size_t i = 0; i < kShape.size(); ++i) {
    const char c = text[i];
    const bool ok = kShape[i] == 'd'   ? absl::ascii_isdigit(c)
                    : kShape[i] == 'T' ? (c == 'T' || c == 't')
                                       : c == kShape[i];
    if (!ok) return false;
  }
  std::string_view rest = text.substr(kShape.size());
  if (rest.starts_with('.')) {
    size_t digits = 1;
    while (digits < rest.size() && absl::ascii_isdigit(rest[digits])) ++digits;
    if (digits == 1) return false;
    rest.remove_prefix(digits);
  }
  if (rest == "Z" || rest == "z") return true;
  return rest.size() == 6 && (rest[0] == '+' || rest[0] == '-') &&
         absl::ascii_isdigit(rest[1]) && absl::ascii_isdigit(rest[2]) &&
         rest[3] == ':' && absl::ascii_isdigit(rest[4]) &&
         absl::ascii_isdigit(rest[5]);
}

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

namespace {

void JsonToValue(const json& j, google::protobuf::Value* out) {
  switch (j.type()) {
    case json::value_t::boolean:
      out->set_bool_value(j.get<bool>());
      break;
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
    case json::value_t::number_float:
      out->set_number_value(j.get<double>());
      break;
    case json::value_t::string:
      out->set_string_value(j.get_ref<const std::string&>());
      break;
    case json::value_t::array: {
      google::protobuf::ListValue* list = out->mutable_list_value();
      for (const json& element : j) JsonToValue(element, list->add_values());
      break;
    }
    case json::value_t::object:
      JsonToStruct(j, out->mutable_struct_value());
      break;
    case json::value_t::null:
    case json::value_t::binary:     // Never produced by text JSON.
    case json::value_t::discarded:  // Never produced by a successful parse.
      out->set_null_value(google::protobuf::NULL_VALUE);
      break;
  }
}

}  // namespace

void JsonToStruct(const json& object, google::protobuf::Struct* out) {
  for (const auto& [key, value] : object.items()) {
    JsonToValue(value, &(*out->mutable_fields())[key]);
  }
}

absl::StatusOr<json> ParseJsonObjectWith(std::string_view body, std::string_view name) {
  absl::StatusOr<json> root = ParseJsonBody(body);
  if (!root.ok()) return root.status();
  if (!root->is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("body must be a JSON object, got ", root->type_name()));
  }
  const json* field = JsonMember(&*root, name);
  if (field == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("missing required field \"", ToAbsl(name), "\""));
  }
  if (!field->is_string()) {
    return absl::InvalidArgumentError(absl::StrCat("field \"", ToAbsl(name),
                                                   "\" must be a string, got ", field->type_name()));
  }
  if (field->get_ref<const std::string&>().empty()) {
    return absl::InvalidArgumentError(absl::StrCat("field \"", ToAbsl(name), "\" must not be empty"));
  }
  return root;
}

const json* JsonMember(const json* j, std::string_view key) {
  if (j == nullptr || !j->is_object()) return nullptr;
  const auto it = j->find(key);
  return it == j->end() ? nullptr : &*it;
}

const json* JsonObjectMember(const json* j, std::string_view key) {
  const json* found = JsonMember(j, key);
  return found != nullptr && found->is_object() ? found : nullptr;
}

std::string JsonString(const json* j) {
  return j != nullptr && j->is_string() ? j->get_ref<const std::string&>() : std::string();
}

int64_t JsonInt64(const json* j) {
  if (j == nullptr) return 0;
  if (j->is_number_integer()) return j->get<int64_t>();
  int64_t value = 0;
  return j->is_string() && absl::SimpleAtoi(j->get_ref<const std::string&>(), &value) ? value : 0;
}

absl::StatusOr<google::protobuf::Timestamp> ParseRfc3339Timestamp(
    std::string_view where, std::string_view text) {
  absl::Time time;
  std::string why;
  if (!HasRfc3339Shape(text) ||
      !absl::ParseTime(absl::RFC3339_full, ToAbsl(text), &time, &why)) {
    return absl::InvalidArgumentError(absl::StrCat(
        ToAbsl(where),
        " must be an RFC 3339 timestamp like \"2018-04-05T17:31:00Z\", ",
        "got \"", PrintableForError(text), "\""));
  }
  const int64_t seconds = absl::ToUnixSeconds(time);
  if (seconds < broker::kMinTimestampSeconds || seconds > broker::kMaxTimestampSeconds) {
    return absl::InvalidArgumentError(
        absl::StrCat(ToAbsl(where), " is outside years 0001 to 9999 in UTC"));
  }
  google::protobuf::Timestamp out;
  out.set_seconds(seconds);
  out.set_nanos(static_cast<int32_t>((time - absl::FromUnixSeconds(seconds)) /
                                     absl::Nanoseconds(1)));
  return out;
}

std::optional<google::protobuf::Timestamp> TimestampFromUnixMillis(int64_t ms) {
  int64_t seconds = ms / 1000;
  int64_t rest = ms % 1000;
  if (rest < 0) {  // nanos stay in [0, 1e9)
    --seconds;
    rest += 1000;
  }
  google::protobuf::Timestamp out;
  out.set_seconds(seconds);
  out.set_nanos(static_cast<int32_t>(rest) * 1'000'000);
  if (!broker::IsValidTimestamp(out)) return std::nullopt;
  return out;
}

}  // namespace hookfan::ingress
