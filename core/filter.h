#pragma once

#include <cstddef>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "hookfan/v1/broker.pb.h"
#include "hookfan/v1/event.pb.h"

namespace hookfan::broker {

// Limits on one filter, so a subscriber cannot make matching expensive.
inline constexpr size_t kMaxFilterEntries = 256;   // per list
inline constexpr size_t kMaxPatternLength = 256;   // bytes per pattern

// Checks a type pattern: non-empty dot-separated tokens of printable ASCII
// characters other than space; "*" is a whole token matching exactly one token;
// ">" is a whole last token matching one or more. Errors: kInvalidArgument
// naming the pattern and the problem.
absl::Status ValidateTypePattern(absl::string_view pattern);

// True if the valid `pattern` matches the event type `type`. `type` is an
// event's type: a valid pattern with no "*" or ">" token (for other input
// the answer means nothing).
bool TypePatternMatches(absl::string_view pattern, absl::string_view type);

// True if `pattern` (where "*" matches any run of characters) matches
// `action` entirely.
bool ActionPatternMatches(absl::string_view pattern, absl::string_view action);

// Filter is a validated, immutable v1::Filter: AND across its lists, OR
// within one; an empty list matches everything. The three device lists
// (serial_numbers, udids, device_ids) are one criterion: an event matches
// when its device matches an entry of any of them, so a subscriber that
// names one device by each identifier it has sees that device's events from
// every provider, whichever identifiers each provider sends.
// Thread-compatible.
class Filter {
 public:
  // Errors: kInvalidArgument naming the offending entry (bad pattern, more
  // than kMaxFilterEntries entries, unknown platform value, an empty device
  // identifier or a device id not written "<provider>:<id>").
  static absl::StatusOr<Filter> Create(const v1::Filter& proto);

  bool Matches(const v1::Event& event) const;

  // The type patterns; empty means every type.
  const std::vector<std::string>& types() const { return types_; }

 private:
  Filter() = default;
  // Whether `device` matches an entry of the device lists.
  bool MatchesDevice(const v1::DeviceIdentity& device) const;

  std::vector<std::string> types_;
  std::vector<std::string> actions_;
  absl::flat_hash_set<int> platforms_;
  absl::flat_hash_set<std::string> organization_ids_;
  bool has_device_ = false;  // any of the three device lists is non-empty
  absl::flat_hash_set<std::string> serial_numbers_;
  absl::flat_hash_set<std::string> udids_;
  absl::flat_hash_set<std::string> device_ids_;  // "<provider>:<id>"
};

// TypeIndex maps type patterns to values so that finding the values whose
// pattern matches a type costs O(tokens in the type), not O(patterns): a
// token tree like NATS' sublist, with "*" and ">" children per node.
// Values are raw pointers the caller owns; a value may be added under
// several patterns. Not thread-safe: the caller locks.
template <typename T>
class TypeIndex {
 public:
  // `pattern` must be valid (ValidateTypePattern).
  void Add(absl::string_view pattern, T* value) {
    Node* node = &root_;
    for (absl::string_view token : Tokens(pattern)) {
      auto& child = node->children[std::string(token)];
      if (!child) child = std::make_unique<Node>();
      node = child.get();
    }
    node->values.insert(value);
  }

  // Removes one (pattern, value) added before. Empty branches are pruned.
  void Remove(absl::string_view pattern, T* value) {
    RemoveFrom(&root_, Tokens(pattern), 0, value);
  }

  // Calls fn(T*) for each (pattern, value) whose pattern matches `type`; a
  // value added under several matching patterns is visited once per match.
  // `type` is an event's type, as for TypePatternMatches.
  template <typename Fn>
  void ForEachMatch(absl::string_view type, Fn&& fn) const {
    std::vector<absl::string_view> tokens = Tokens(type);
    Visit(&root_, tokens, 0, fn);
  }

  bool empty() const { return root_.children.empty(); }

 private:
  struct Node {
    std::map<std::string, std::unique_ptr<Node>, std::less<>> children;
    absl::flat_hash_set<T*> values;
  };

  static std::vector<absl::string_view> Tokens(absl::string_view s) {
    std::vector<absl::string_view> out;
    size_t start = 0;
    while (true) {
      size_t dot = s.find('.', start);
      out.push_back(s.substr(start, dot - start));
      if (dot == absl::string_view::npos) break;
      start = dot + 1;
    }
    return out;
  }

  template <typename Fn>
  static void Visit(const Node* node, const std::vector<absl::string_view>& tokens,
                    size_t i, Fn& fn) {
    if (i == tokens.size()) {
      for (T* v : node->values) fn(v);
      return;
    }
    if (auto it = node->children.find(tokens[i]); it != node->children.end()) {
      Visit(it->second.get(), tokens, i + 1, fn);
    }
    if (auto it = node->children.find("*"); it != node->children.end()) {
      Visit(it->second.get(), tokens, i + 1, fn);
    }
    if (auto it = node->children.find(">"); it != node->children.end()) {
      for (T* v : it->second->values) fn(v);
    }
  }

  static bool RemoveFrom(Node* node, const std::vector<absl::string_view>& tokens,
                         size_t i, T* value) {
    if (i == tokens.size()) {
      node->values.erase(value);
    } else if (auto it = node->children.find(tokens[i]);
               it != node->children.end() &&
               RemoveFrom(it->second.get(), tokens, i + 1, value)) {
      node->children.erase(it);
    }
    return node->values.empty() && node->children.empty();
  }

  Node root_;
};

}  // namespace hookfan::broker
