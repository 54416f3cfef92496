#include "core/filter.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace hookfan::broker {

absl::Status ValidateTypePattern(absl::string_view pattern) {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid type pattern \"", pattern.substr(0, kMaxPatternLength),
                     "\": ", why));
  };
  if (pattern.empty()) return bad("empty");
  if (pattern.size() > kMaxPatternLength) {
    return bad(absl::StrCat("longer than ", kMaxPatternLength, " bytes"));
  }
  std::vector<absl::string_view> tokens = absl::StrSplit(pattern, '.');
  for (size_t i = 0; i < tokens.size(); ++i) {
    absl::string_view t = tokens[i];
    if (t.empty()) return bad("empty token");
    if (t == ">" && i + 1 != tokens.size()) return bad("\">\" must be the last token");
    for (unsigned char c : t) {
      if (c <= ' ' || c >= 0x7f) return bad("tokens may hold only printable ASCII other than space");
      if ((c == '*' || c == '>') && t.size() != 1) {
        return bad(absl::StrCat("\"", std::string(1, c), "\" must be a whole token"));
      }
    }
  }
  return absl::OkStatus();
}

bool TypePatternMatches(absl::string_view pattern, absl::string_view type) {
  std::vector<absl::string_view> p = absl::StrSplit(pattern, '.');
  std::vector<absl::string_view> t = absl::StrSplit(type, '.');
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] == ">") return t.size() > i;
    if (i >= t.size()) return false;
    if (p[i] != "*" && p[i] != t[i]) return false;
  }
  return p.size() == t.size();
}

bool ActionPatternMatches(absl::string_view pattern, absl::string_view action) {
  // Greedy glob with single-star backtracking: O(len(pattern) * len(action)).
  size_t p = 0, a = 0, star = absl::string_view::npos, mark = 0;
  while (a < action.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = a;
    } else if (p < pattern.size() && pattern[p] == action[a]) {
      ++p;
      ++a;
    } else if (star != absl::string_view::npos) {
      p = star + 1;
      a = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

absl::StatusOr<Filter> Filter::Create(const v1::Filter& proto) {
  auto too_many = [](absl::string_view list) {
    return absl::InvalidArgumentError(absl::StrCat(
        "filter.", list, " has more than ", kMaxFilterEntries, " entries"));
  };
  if (proto.types_size() > static_cast<int>(kMaxFilterEntries)) return too_many("types");
  if (proto.actions_size() > static_cast<int>(kMaxFilterEntries)) return too_many("actions");
  if (proto.platforms_size() > static_cast<int>(kMaxFilterEntries)) return too_many("platforms");
  if (proto.organization_ids_size() > static_cast<int>(kMaxFilterEntries)) {
    return too_many("organization_ids");
  }
  if (proto.serial_numbers_size() > static_cast<int>(kMaxFilterEntries)) {
    return too_many("serial_numbers");
  }
  if (proto.udids_size() > static_cast<int>(kMaxFilterEntries)) return too_many("udids");
  if (proto.device_ids_size() > static_cast<int>(kMaxFilterEntries)) {
    return too_many("device_ids");
  }
  Filter f;
  for (const std::string& t : proto.types()) {
    if (absl::Status s = ValidateTypePattern(t); !s.ok()) return s;
    f.types_.push_back(t);
  }
  for (const std::string& a : proto.actions()) {
    if (a.empty() || a.size() > kMaxPatternLength) {
      return absl::InvalidArgumentError(absl::StrCat(
          "invalid action pattern \"", a.substr(0, kMaxPatternLength),
          "\": must be 1 to ", kMaxPatternLength, " bytes"));
    }
    f.actions_.push_back(a);
  }
  for (int p : proto.platforms()) {
    if (!v1::Platform_IsValid(p)) {
      return absl::InvalidArgumentError(absl::StrCat("unknown platform value ", p));
    }
    f.platforms_.insert(p);
  }
  for (const std::string& o : proto.organization_ids()) f.organization_ids_.insert(o);
  // An empty identifier would match every event that lacks one.
  auto add_identifiers = [](absl::string_view list, const auto& from,
                            absl::flat_hash_set<std::string>* to) -> absl::Status {
    for (const std::string& id : from) {
      if (id.empty()) {
        return absl::InvalidArgumentError(absl::StrCat("filter.", list, " has an empty entry"));
      }
      to->insert(id);
    }
    return absl::OkStatus();
  };
  if (absl::Status s = add_identifiers("serial_numbers", proto.serial_numbers(), &f.serial_numbers_);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = add_identifiers("udids", proto.udids(), &f.udids_); !s.ok()) return s;
  for (const std::string& id : proto.device_ids()) {
    const size_t colon = id.find(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == id.size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "filter.device_ids entry \"", id.substr(0, kMaxPatternLength),
          "\" must be written <provider>:<id>, e.g. \"applivery:5f634c11\""));
    }
    f.device_ids_.insert(id);
  }
  f.has_device_ = !f.serial_numbers_.empty() || !f.udids_.empty() || !f.device_ids_.empty();
  return f;
}

bool Filter::MatchesDevice(const v1::DeviceIdentity& device) const {
  if (!device.serial_number().empty() && serial_numbers_.contains(device.serial_number())) {
    return true;
  }
  if (!device.udid().empty() && udids_.contains(device.udid())) return true;
  return !device.provider().empty() && !device.id().empty() &&
         device_ids_.contains(absl::StrCat(device.provider(), ":", device.id()));
}

bool Filter::Matches(const v1::Event& event) const {
  if (!types_.empty() &&
      std::none_of(types_.begin(), types_.end(), [&](const std::string& p) {
        return TypePatternMatches(p, event.type());
      })) {
    return false;
  }
  if (!actions_.empty() &&
      std::none_of(actions_.begin(), actions_.end(), [&](const std::string& p) {
        return ActionPatternMatches(p, event.action());
      })) {
    return false;
  }
  if (!platforms_.empty() && !platforms_.contains(event.platform())) return false;
  if (!organization_ids_.empty() &&
      !organization_ids_.contains(event.organization().id())) {
    return false;
  }
  if (has_device_ && !MatchesDevice(event.device())) return false;
  return true;
}

}  // namespace hookfan::broker
