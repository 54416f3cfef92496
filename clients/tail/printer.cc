#include "clients/tail/printer.h"

#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "google/protobuf/util/json_util.h"
#include "hookfan/trace_context.h"
#include "nlohmann/json.hpp"

namespace hookfan::tail {
namespace {

constexpr char kReset[] = "\x1b[0m";
constexpr char kDim[] = "\x1b[2m";
constexpr char kBoldCyan[] = "\x1b[1;36m";
constexpr char kYellow[] = "\x1b[33m";

std::string Paint(const std::string& text, const char* code, bool color) {
  return color ? absl::StrCat(code, text, kReset) : text;
}

// "apple" for PLATFORM_APPLE; the raw prefix for a platform hookfan does
// not know; "-" for none.
std::string PlatformName(const v1::Event& event) {
  if (event.platform() == v1::PLATFORM_UNSPECIFIED) {
    return event.platform_prefix().empty() ? "-" : event.platform_prefix();
  }
  std::string name = v1::Platform_Name(event.platform());
  constexpr absl::string_view kPrefix = "PLATFORM_";
  if (absl::string_view(name).substr(0, kPrefix.size()) == kPrefix) name.erase(0, kPrefix.size());
  for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return name;
}

// Whether a media type ("application/json; charset=utf-8") names JSON.
bool IsJsonMediaType(absl::string_view content_type) {
  std::string media(absl::StripAsciiWhitespace(content_type.substr(0, content_type.find(';'))));
  absl::AsciiStrToLower(&media);
  return media == "application/json" || media == "text/json" || absl::EndsWith(media, "+json");
}

// `data` on one line when the event says it is JSON and it is: the whitespace
// between tokens dropped, nothing else changed. JSON strings hold no raw
// line breaks, so the result has none.
std::optional<std::string> CompactJson(const v1::Event& event) {
  const std::string& data = event.data();
  // nlohmann reads a NUL byte as the end of the text; JSON has none.
  if (!IsJsonMediaType(event.data_content_type()) || data.find('\0') != data.npos ||
      !nlohmann::json::accept(data)) {  // checks without building a tree
    return std::nullopt;
  }
  std::string out;
  out.reserve(data.size());
  bool in_string = false;
  for (size_t i = 0; i < data.size(); ++i) {
    const char c = data[i];
    if (in_string) {
      out += c;
      if (c == '\\' && i + 1 < data.size()) {
        out += data[++i];
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
      out += c;
    } else if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
      out += c;
    }
  }
  return out;
}

std::string ProtoJson(const v1::Event& event) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = false;
  std::string line;
  google::protobuf::util::MessageToJsonString(event, &line, options);
  return line;
}

}  // namespace

std::string FormatJson(const v1::Event& event, Body body) {
  std::optional<std::string> json;
  if (body == Body::kJson) json = CompactJson(event);
  if (!json.has_value()) return ProtoJson(event);
  v1::Event without_data = event;
  without_data.clear_data();
  std::string line = ProtoJson(without_data);  // "{...}", "{}" at least
  line.pop_back();
  absl::StrAppend(&line, line.size() > 1 ? "," : "", "\"body\":", *json, "}");
  return line;
}

std::string FormatPretty(const v1::Event& event, bool color) {
  absl::Time time = absl::FromUnixSeconds(event.time().seconds());
  std::string organization = event.organization().name().empty() ? event.organization().id()
                                                                 : event.organization().name();
  std::string line = absl::StrCat(
      Paint(absl::StrFormat("#%-6d", event.sequence()), kDim, color), " ",
      absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", time, absl::UTCTimeZone()), "  ",
      Paint(absl::StrFormat("%-42s", event.type()), kBoldCyan, color), " ",
      Paint(absl::StrFormat("%-8s", PlatformName(event)), kYellow, color));
  if (!organization.empty()) absl::StrAppend(&line, "  ", organization);
  if (!event.subject().empty()) absl::StrAppend(&line, "  ", event.subject());
  if (!event.action().empty()) {
    absl::StrAppend(&line, "  ", Paint(absl::StrCat("(", event.action(), ")"), kDim, color));
  }
  // The trace id, to find the event in a tracer.
  if (std::optional<TraceContext> trace = TraceContextOf(event)) {
    absl::StrAppend(&line, "  ", Paint("trace " + std::string(trace->trace_id()), kDim, color));
  }
  return line;
}

}  // namespace hookfan::tail
