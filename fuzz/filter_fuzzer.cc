// Fuzzes the subscription filter (core/filter.h): type patterns, action
// patterns and Filter::Create on a v1::Filter built from the input. The
// input is read with FuzzedDataProvider: four strings, each ended by a
// backslash and one more byte ("\\" is a literal backslash) -- a type
// pattern, a type, an action pattern, an action -- then filter entries.
// Checks each function against a plain reference written from the header's
// contract:
// - ValidateTypePattern accepts exactly the documented patterns, and its
//   errors are kInvalidArgument naming the pattern;
// - a valid pattern matches a type exactly when the reference matcher says
//   so and (for types without wildcard tokens, as event types are) when
//   TypeIndex finds it under that pattern, and it matches every type built
//   from it by replacing "*" with one token and ">" with one or more;
// - ActionPatternMatches agrees with a dynamic-programming glob;
// - Filter::Create succeeds exactly for filters within the documented
//   limits, keeps the type patterns, and Matches ANDs across lists and ORs
//   within one.

#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "core/filter.h"
#include "fuzz/fuzz_check.h"
#include "hookfan/v1/broker.pb.h"
#include "hookfan/v1/event.pb.h"

namespace {

using ::hookfan::broker::ActionPatternMatches;
using ::hookfan::broker::Filter;
using ::hookfan::broker::kMaxFilterEntries;
using ::hookfan::broker::kMaxPatternLength;
using ::hookfan::broker::TypeIndex;
using ::hookfan::broker::TypePatternMatches;
using ::hookfan::broker::ValidateTypePattern;
using ::hookfan::fuzz::Check;

std::vector<std::string> Tokens(const std::string& s) {
  return absl::StrSplit(s, '.');
}

// The documented pattern syntax: 1 to kMaxPatternLength bytes of non-empty
// dot-separated tokens of printable ASCII other than space; "*" and ">"
// only as whole tokens, ">" only last.
bool ReferenceValid(const std::string& pattern) {
  if (pattern.empty() || pattern.size() > kMaxPatternLength) return false;
  const std::vector<std::string> tokens = Tokens(pattern);
  for (size_t i = 0; i < tokens.size(); ++i) {
    const std::string& t = tokens[i];
    if (t.empty()) return false;
    if (t == ">" && i + 1 != tokens.size()) return false;
    for (const char c : t) {
      if (c < 0x21 || c > 0x7e) return false;
      if ((c == '*' || c == '>') && t.size() != 1) return false;
    }
  }
  return true;
}

// Whether pattern tokens p[i..] match type tokens t[j..].
bool ReferenceMatch(const std::vector<std::string>& p, size_t i,
                    const std::vector<std::string>& t, size_t j) {
  if (i == p.size()) return j == t.size();
  if (p[i] == ">") return j < t.size();
  if (j == t.size()) return false;
  return (p[i] == "*" || p[i] == t[j]) && ReferenceMatch(p, i + 1, t, j + 1);
}

// Whether `pattern` ("*" any run) matches all of `text`, by dynamic
// programming over prefixes.
bool ReferenceGlob(std::string_view pattern, std::string_view text) {
  // matches[j]: pattern[0, i) matches text[0, j).
  std::vector<bool> matches(text.size() + 1, false);
  matches[0] = true;
  for (const char p : pattern) {
    std::vector<bool> next(text.size() + 1, false);
    for (size_t j = 0; j <= text.size(); ++j) {
      if (p == '*') {
        next[j] = matches[j] || (j > 0 && next[j - 1]);
      } else {
        next[j] = j > 0 && matches[j - 1] && text[j - 1] == p;
      }
    }
    matches = std::move(next);
  }
  return matches[text.size()];
}

bool IsWildcard(const std::string& token) {
  return token == "*" || token == ">";
}

// Event types never hold a wildcard token (CheckEventType in
// core/event_rules.h, ValidatePublishType in rpc/event_broker_service.cc), and
// TypeIndex counts on it: a type token "*" would reach a "*" child both as
// itself and as a wildcard.
bool CouldBeEventType(const std::string& type) {
  const std::vector<std::string> tokens = Tokens(type);
  return std::none_of(tokens.begin(), tokens.end(), IsWildcard);
}

// A type `pattern` matches: each "*" replaced by one token and ">" by one
// or more, taken from `fill` (tokens of the input).
std::string Instantiate(const std::string& pattern,
                        const std::vector<std::string>& fill) {
  std::vector<std::string> out;
  size_t next = 0;
  const auto token = [&] {
    for (size_t tries = 0; tries < fill.size(); ++tries) {
      const std::string& t = fill[next++ % fill.size()];
      if (!t.empty() && !IsWildcard(t)) return t;
    }
    return std::string("x");
  };
  for (const std::string& t : Tokens(pattern)) {
    if (t == "*") {
      out.push_back(token());
    } else if (t == ">") {
      const size_t n = 1 + fill.size() % 3;
      for (size_t k = 0; k < n; ++k) out.push_back(token());
    } else {
      out.push_back(t);
    }
  }
  return absl::StrJoin(out, ".");
}

bool IndexMatches(const std::string& pattern, const std::string& type) {
  TypeIndex<int> index;
  int value = 0;
  index.Add(pattern, &value);
  int found = 0;
  index.ForEachMatch(type, [&](int* v) { found += v == &value; });
  Check(found <= 1, "TypeIndex visits one pattern twice", pattern);
  index.Remove(pattern, &value);
  Check(index.empty(), "TypeIndex not empty after Remove", pattern);
  return found == 1;
}

void CheckTypePattern(const std::string& pattern, const std::string& type) {
  const absl::Status status = ValidateTypePattern(pattern);
  Check(status.ok() == ReferenceValid(pattern),
        "ValidateTypePattern disagrees with the syntax",
        pattern + " / " + status.ToString());
  if (!status.ok()) {
    Check(status.code() == absl::StatusCode::kInvalidArgument &&
              absl::StartsWith(status.message(), "invalid type pattern \""),
          "ValidateTypePattern error", status.ToString());
    return;
  }
  const bool matches = TypePatternMatches(pattern, type);
  Check(matches == ReferenceMatch(Tokens(pattern), 0, Tokens(type), 0),
        "TypePatternMatches disagrees with the reference",
        pattern + " / " + type);
  if (CouldBeEventType(type)) {
    Check(matches == IndexMatches(pattern, type),
          "TypeIndex disagrees with TypePatternMatches",
          pattern + " / " + type);
  }
  const std::string instance = Instantiate(pattern, Tokens(type));
  Check(TypePatternMatches(pattern, instance),
        "a pattern does not match its instance", pattern + " / " + instance);
  Check(IndexMatches(pattern, instance),
        "TypeIndex does not find a pattern's instance",
        pattern + " / " + instance);
}

// Reads filter entries until the input ends.
hookfan::v1::Filter ReadFilter(FuzzedDataProvider& in) {
  hookfan::v1::Filter filter;
  while (in.remaining_bytes() > 0) {
    switch (in.ConsumeIntegralInRange<int>(0, 7)) {
      case 0:
        filter.add_types(in.ConsumeRandomLengthString(kMaxPatternLength + 2));
        break;
      case 1:
        filter.add_actions(in.ConsumeRandomLengthString(kMaxPatternLength + 2));
        break;
      case 2:
        filter.add_platforms(static_cast<hookfan::v1::Platform>(
            in.ConsumeIntegralInRange<int>(-1, 7)));
        break;
      case 3:
        filter.add_organization_ids(in.ConsumeRandomLengthString(16));
        break;
      case 4: {  // Many copies, to reach kMaxFilterEntries.
        const int copies = in.ConsumeIntegralInRange<int>(0, 300);
        const std::string entry = in.ConsumeRandomLengthString(8);
        for (int k = 0; k < copies; ++k) filter.add_organization_ids(entry);
        if (!entry.empty()) {
          for (int k = 0; k < copies; ++k) filter.add_types(entry);
        }
        for (int k = 0; k < copies; ++k) filter.add_udids(entry);
        break;
      }
      case 5:
        filter.add_serial_numbers(in.ConsumeRandomLengthString(8));
        break;
      case 6:
        filter.add_udids(in.ConsumeRandomLengthString(8));
        break;
      case 7:
        filter.add_device_ids(in.ConsumeRandomLengthString(12));
        break;
    }
  }
  return filter;
}

bool ReferenceCreates(const hookfan::v1::Filter& filter) {
  const int max = static_cast<int>(kMaxFilterEntries);
  if (filter.types_size() > max || filter.actions_size() > max ||
      filter.platforms_size() > max || filter.organization_ids_size() > max ||
      filter.serial_numbers_size() > max || filter.udids_size() > max ||
      filter.device_ids_size() > max) {
    return false;
  }
  for (const std::string& s : filter.serial_numbers()) {
    if (s.empty()) return false;
  }
  for (const std::string& u : filter.udids()) {
    if (u.empty()) return false;
  }
  for (const std::string& d : filter.device_ids()) {  // "<provider>:<id>"
    const size_t colon = d.find(':');
    if (colon == std::string::npos || colon == 0 || colon == d.size() - 1) return false;
  }
  for (const std::string& t : filter.types()) {
    if (!ReferenceValid(t)) return false;
  }
  for (const std::string& a : filter.actions()) {
    if (a.empty() || a.size() > kMaxPatternLength) return false;
  }
  for (const int p : filter.platforms()) {
    if (!hookfan::v1::Platform_IsValid(p)) return false;
  }
  return true;
}

// The three device lists are one criterion: any entry naming one of the
// device's non-empty identifiers.
bool ReferenceDeviceMatches(const hookfan::v1::Filter& filter,
                            const hookfan::v1::DeviceIdentity& device) {
  if (filter.serial_numbers().empty() && filter.udids().empty() &&
      filter.device_ids().empty()) {
    return true;
  }
  const auto has = [](const auto& list, const std::string& value) {
    return !value.empty() && std::find(list.begin(), list.end(), value) != list.end();
  };
  return has(filter.serial_numbers(), device.serial_number()) ||
         has(filter.udids(), device.udid()) ||
         (!device.provider().empty() && !device.id().empty() &&
          has(filter.device_ids(), device.provider() + ":" + device.id()));
}

bool ReferenceMatches(const hookfan::v1::Filter& filter,
                      const hookfan::v1::Event& event) {
  const auto any = [](const auto& list, auto matches) {
    return list.empty() || std::any_of(list.begin(), list.end(), matches);
  };
  return any(filter.types(),
             [&](const std::string& p) {
               return ReferenceMatch(Tokens(p), 0, Tokens(event.type()), 0);
             }) &&
         any(filter.actions(),
             [&](const std::string& p) {
               return ReferenceGlob(p, event.action());
             }) &&
         any(filter.platforms(),
             [&](int p) { return p == event.platform(); }) &&
         any(filter.organization_ids(), [&](const std::string& o) {
           return o == event.organization().id();
         }) &&
         ReferenceDeviceMatches(filter, event.device());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  const std::string pattern =
      in.ConsumeRandomLengthString(kMaxPatternLength + 2);
  const std::string type = in.ConsumeRandomLengthString(kMaxPatternLength + 2);
  const std::string action_pattern =
      in.ConsumeRandomLengthString(kMaxPatternLength);
  const std::string action = in.ConsumeRandomLengthString(kMaxPatternLength);

  CheckTypePattern(pattern, type);
  Check(ActionPatternMatches(action_pattern, action) ==
            ReferenceGlob(action_pattern, action),
        "ActionPatternMatches disagrees with the reference",
        action_pattern + " / " + action);

  hookfan::v1::Event event;
  event.set_type(type);
  event.set_action(action);
  event.set_platform(
      static_cast<hookfan::v1::Platform>(in.ConsumeIntegralInRange<int>(0, 5)));
  event.mutable_organization()->set_id(in.ConsumeRandomLengthString(16));
  hookfan::v1::DeviceIdentity* device = event.mutable_device();
  device->set_provider(in.ConsumeRandomLengthString(4));
  device->set_id(in.ConsumeRandomLengthString(6));
  device->set_serial_number(in.ConsumeRandomLengthString(8));
  device->set_udid(in.ConsumeRandomLengthString(8));

  const hookfan::v1::Filter proto = ReadFilter(in);
  const absl::StatusOr<Filter> filter = Filter::Create(proto);
  Check(filter.ok() == ReferenceCreates(proto),
        "Filter::Create disagrees with the limits",
        proto.ShortDebugString() + " / " + filter.status().ToString());
  if (!filter.ok()) {
    Check(filter.status().code() == absl::StatusCode::kInvalidArgument,
          "Filter::Create error code", filter.status().ToString());
    return 0;
  }
  Check(std::equal(filter->types().begin(), filter->types().end(),
                   proto.types().begin(), proto.types().end()),
        "Filter::types() differs from the proto", proto.ShortDebugString());
  Check(filter->Matches(event) == ReferenceMatches(proto, event),
        "Filter::Matches disagrees with the reference",
        proto.ShortDebugString() + " / " + event.ShortDebugString());
  return 0;
}
