#include "clients/tail/options.h"

#include <algorithm>
#include <cctype>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace hookfan::tail {

const char kUsage[] =
    "Usage: hookfan-tail [--server HOST:PORT] [--type PATTERN]... [--action PATTERN]...\n"
    "                    [--platform NAME]... [--organization ID]...\n"
    "                    [--from earliest|latest|SEQUENCE] [--group NAME] [--max N]\n"
    "                    [--output json|pretty] [--body json|base64]\n"
    "                    [--color auto|always|never]\n"
    "                    [--token TOKEN] [--connect-timeout SECONDS]\n"
    "\n"
    "Streams hookfan events matching the filter and prints them: one JSON object\n"
    "per line (protobuf JSON mapping) when piped, one aligned line per event on a\n"
    "terminal. Reconnects and resumes without gaps when the server restarts.\n"
    "  --server           gRPC address of hookfan (default 127.0.0.1:9090)\n"
    "  --token            bearer token, when hookfan has subscriber grants\n"
    "  --type             type pattern, NATS wildcards: applivery.device.*, applivery.>\n"
    "  --action           provider action, '*' matches any run: emm_*\n"
    "  --platform         android|apple|windows|aosp|other (or emm, adm, win, aos)\n"
    "  --organization     organization id\n"
    "  --from             earliest, latest (default), or a sequence to start at\n"
    "  --group            consume as a member of this consumer group (created on\n"
    "                     first use with the filter and --from), acking each event\n"
    "                     after printing it\n"
    "  --max              exit after N events\n"
    "  --output           json or pretty (default: pretty on a terminal, else json)\n"
    "  --body             json output shows a JSON request body as a JSON value in\n"
    "                     \"body\" (json, the default) or, as protobuf's JSON\n"
    "                     mapping has it, base64 in \"data\" (base64)\n"
    "  --color            colour pretty output: auto (terminal, no NO_COLOR), always, never\n"
    "  --connect-timeout  seconds to wait for the server at start (default 5)\n"
    "\n"
    "Exit status: 0 after --max events; 1 when the server refuses the stream\n"
    "(bad filter, no permission); 2 for a bad flag or an unreachable server.\n";

absl::StatusOr<v1::Platform> ParsePlatform(const std::string& name) {
  std::string n = name;
  std::transform(n.begin(), n.end(), n.begin(), [](unsigned char c) { return std::tolower(c); });
  if (n.starts_with("platform_")) n = n.substr(9);
  static const std::pair<const char*, v1::Platform> kNames[] = {
      {"android", v1::PLATFORM_ANDROID}, {"emm", v1::PLATFORM_ANDROID},
      {"apple", v1::PLATFORM_APPLE},     {"adm", v1::PLATFORM_APPLE},
      {"windows", v1::PLATFORM_WINDOWS}, {"win", v1::PLATFORM_WINDOWS},
      {"aosp", v1::PLATFORM_AOSP},       {"aos", v1::PLATFORM_AOSP},
      {"other", v1::PLATFORM_OTHER},     {"unspecified", v1::PLATFORM_UNSPECIFIED},
  };
  for (const auto& [key, value] : kNames) {
    if (n == key) return value;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "--platform: unknown platform \"", name, "\" (android, apple, windows, aosp, other)"));
}

absl::StatusOr<Options> ParseOptions(const std::vector<std::string>& args) {
  Options o;
  v1::Filter* filter = o.request.mutable_filter();
  for (size_t i = 0; i < args.size(); ++i) {
    std::string flag = args[i];
    std::string value;
    bool has_value = false;
    if (size_t eq = flag.find('='); flag.starts_with("--") && eq != std::string::npos) {
      value = flag.substr(eq + 1);
      flag = flag.substr(0, eq);
      has_value = true;
    }
    if (flag == "--help" || flag == "-h") {
      o.help = true;
      continue;
    }
    if (!has_value) {
      if (i + 1 >= args.size()) {
        return absl::InvalidArgumentError(absl::StrCat(flag, ": missing value"));
      }
      value = args[++i];
    }
    if (flag == "--server") {
      o.server = value;
    } else if (flag == "--token") {
      o.token = value;
    } else if (flag == "--output") {
      if (value == "json") {
        o.output = Output::kJson;
      } else if (value == "pretty") {
        o.output = Output::kPretty;
      } else {
        return absl::InvalidArgumentError(
            absl::StrCat("--output: expected json or pretty, got \"", value, "\""));
      }
    } else if (flag == "--body") {
      if (value == "json") {
        o.body = Body::kJson;
      } else if (value == "base64") {
        o.body = Body::kBase64;
      } else {
        return absl::InvalidArgumentError(
            absl::StrCat("--body: expected json or base64, got \"", value, "\""));
      }
    } else if (flag == "--color" || flag == "--colour") {
      if (value == "auto") {
        o.color = Color::kAuto;
      } else if (value == "always") {
        o.color = Color::kAlways;
      } else if (value == "never") {
        o.color = Color::kNever;
      } else {
        return absl::InvalidArgumentError(absl::StrCat(
            "--color: expected auto, always or never, got \"", value, "\""));
      }
    } else if (flag == "--group") {
      o.group = value;
    } else if (flag == "--type") {
      filter->add_types(value);
    } else if (flag == "--action") {
      filter->add_actions(value);
    } else if (flag == "--organization") {
      filter->add_organization_ids(value);
    } else if (flag == "--platform") {
      absl::StatusOr<v1::Platform> p = ParsePlatform(value);
      if (!p.ok()) return p.status();
      filter->add_platforms(*p);
    } else if (flag == "--from") {
      v1::StartPosition* start = o.request.mutable_start();
      uint64_t seq;
      if (value == "earliest") {
        start->set_earliest(true);
      } else if (value == "latest") {
        start->set_latest(true);
      } else if (absl::SimpleAtoi(value, &seq) && seq > 0) {
        start->set_after_sequence(seq - 1);
      } else {
        return absl::InvalidArgumentError(absl::StrCat(
            "--from: expected earliest, latest or a sequence >= 1, got \"", value, "\""));
      }
    } else if (flag == "--max") {
      uint64_t n;
      if (!absl::SimpleAtoi(value, &n) || n == 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("--max: expected a positive count, got \"", value, "\""));
      }
      o.max_events = n;
    } else if (flag == "--connect-timeout") {
      if (!absl::SimpleAtoi(value, &o.connect_timeout_seconds) ||
          o.connect_timeout_seconds <= 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("--connect-timeout: expected seconds > 0, got \"", value, "\""));
      }
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag ", flag));
    }
  }
  return o;
}

}  // namespace hookfan::tail
