#include "clients/tail/options.h"

#include <algorithm>
#include <cctype>
#include <functional>
#include <utility>

#include "CLI/CLI.hpp"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace hookfan::tail {

const char kUsage[] =
    "Usage: hookfan-tail [--server HOST:PORT] [--type PATTERN]... [--action PATTERN]...\n"
    "                    [--platform NAME]... [--organization ID]...\n"
    "                    [--serial SERIAL]... [--udid UDID]... [--device PROVIDER:ID]...\n"
    "                    [--from earliest|latest|snapshot|SEQUENCE] [--group NAME]\n"
    "                    [--max N]\n"
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
    "  --serial, --udid, --device\n"
    "                     one device, by serial number, UDID or provider:id (e.g.\n"
    "                     applivery:5f63...): events whose device matches any of them\n"
    "  --from             earliest, latest (default), snapshot (the newest event of\n"
    "                     each device and type first, then every change), or a\n"
    "                     sequence to start at\n"
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
  // The first value a flag refused, with our message: CLI11 is told only
  // that it failed, so that it stops.
  absl::Status refused;
  CLI::App app;
  // A flag whose every value goes through `apply`, in the order given (so a
  // repeated flag accumulates, or the last one wins); `apply` stores the
  // value or returns why it refuses it.
  auto add = [&app, &refused](const std::string& names,
                              std::function<absl::Status(const std::string&)> apply) {
    CLI::Validator store(
        [apply, &refused](std::string& value) -> std::string {
          absl::Status status = apply(value);
          if (status.ok()) return "";
          refused = status;
          return std::string(status.message());
        },
        "");
    return app.add_option(names)->type_name("VALUE")->check(store);
  };
  auto text = [](std::string& field) {
    return [&field](const std::string& value) {
      field = value;
      return absl::OkStatus();
    };
  };
  // Applies the setter `choices` pairs with the value, or refuses a value
  // not among them: "--output: expected json or pretty, got \"x\"".
  auto choice = [](const char* flag, const char* expected,
                   std::vector<std::pair<std::string, std::function<void()>>> choices) {
    return [=](const std::string& value) {
      for (const auto& [name, set] : choices) {
        if (value == name) {
          set();
          return absl::OkStatus();
        }
      }
      return absl::InvalidArgumentError(
          absl::StrCat(flag, ": expected ", expected, ", got \"", value, "\""));
    };
  };

  // Help is an ordinary flag: main prints kUsage, and a bad flag beside it
  // is still an error. Unknown flags are reported below, as before.
  app.set_help_flag();
  app.add_flag("-h,--help", o.help);
  app.allow_extras();
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  add("--server", text(o.server));
  add("--token", text(o.token));
  add("--group", text(o.group));
  add("--type", [filter](const std::string& v) {
    filter->add_types(v);
    return absl::OkStatus();
  });
  add("--action", [filter](const std::string& v) {
    filter->add_actions(v);
    return absl::OkStatus();
  });
  add("--organization", [filter](const std::string& v) {
    filter->add_organization_ids(v);
    return absl::OkStatus();
  });
  add("--serial", [filter](const std::string& v) {
    filter->add_serial_numbers(v);
    return absl::OkStatus();
  });
  add("--udid", [filter](const std::string& v) {
    filter->add_udids(v);
    return absl::OkStatus();
  });
  add("--device", [filter](const std::string& v) {
    filter->add_device_ids(v);
    return absl::OkStatus();
  });
  add("--platform", [filter](const std::string& v) {
    absl::StatusOr<v1::Platform> p = ParsePlatform(v);
    if (p.ok()) filter->add_platforms(*p);
    return p.status();
  });
  add("--output", choice("--output", "json or pretty",
                         {{"json", [&o] { o.output = Output::kJson; }},
                          {"pretty", [&o] { o.output = Output::kPretty; }}}));
  add("--body", choice("--body", "json or base64",
                       {{"json", [&o] { o.body = Body::kJson; }},
                        {"base64", [&o] { o.body = Body::kBase64; }}}));
  add("--color,--colour", choice("--color", "auto, always or never",
                                 {{"auto", [&o] { o.color = Color::kAuto; }},
                                  {"always", [&o] { o.color = Color::kAlways; }},
                                  {"never", [&o] { o.color = Color::kNever; }}}));
  add("--from", [&o](const std::string& v) {
    v1::StartPosition* start = o.request.mutable_start();
    uint64_t seq;
    if (v == "earliest") {
      start->set_earliest(true);
    } else if (v == "latest") {
      start->set_latest(true);
    } else if (v == "snapshot") {
      start->set_snapshot(true);
    } else if (absl::SimpleAtoi(v, &seq) && seq > 0) {
      start->set_after_sequence(seq - 1);
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "--from: expected earliest, latest, snapshot or a sequence >= 1, got \"", v, "\""));
    }
    return absl::OkStatus();
  });
  add("--max", [&o](const std::string& v) {
    uint64_t n;
    if (!absl::SimpleAtoi(v, &n) || n == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--max: expected a positive count, got \"", v, "\""));
    }
    o.max_events = n;
    return absl::OkStatus();
  });
  add("--connect-timeout", [&o](const std::string& v) {
    if (!absl::SimpleAtoi(v, &o.connect_timeout_seconds) || o.connect_timeout_seconds <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--connect-timeout: expected seconds > 0, got \"", v, "\""));
    }
    return absl::OkStatus();
  });

  // CLI11 takes the arguments without argv[0], last first.
  std::vector<std::string> reversed(args.rbegin(), args.rend());
  try {
    app.parse(reversed);
  } catch (const CLI::ParseError& e) {
    if (!refused.ok()) return refused;
    return absl::InvalidArgumentError(e.what());
  }
  if (!app.remaining().empty()) {
    std::string flag = app.remaining().front();
    return absl::InvalidArgumentError(
        absl::StrCat("unknown flag ", flag.substr(0, flag.find('='))));
  }
  return o;
}

}  // namespace hookfan::tail
