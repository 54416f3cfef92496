#include "clients/tail/printer.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "google/protobuf/util/json_util.h"

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

}  // namespace

std::string FormatJson(const v1::Event& event) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = false;
  std::string line;
  google::protobuf::util::MessageToJsonString(event, &line, options);
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
  return line;
}

}  // namespace hookfan::tail
