#include "core/authz.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <cstdlib>
#include <optional>

#include "absl/algorithm/container.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "core/filter.h"
#include "common/log.h"

namespace hookfan::broker {
namespace {

constexpr char kUnauthenticated[] = "missing or unknown bearer token";

std::array<uint8_t, 32> Sha256(absl::string_view s) {
  std::array<uint8_t, 32> digest;
  static_assert(SHA256_DIGEST_LENGTH == 32);
  SHA256(reinterpret_cast<const unsigned char*>(s.data()), s.size(),
         digest.data());
  return digest;
}

// Start-up config that breaks a documented precondition: a bug upstream.
[[noreturn]] void BadGrants(absl::string_view what) {
  log::Error("invalid subscriber grants", {{"error", what}});
  std::abort();
}

std::string Granted(const std::vector<std::string>& patterns) {
  return patterns.empty() ? "none" : absl::StrJoin(patterns, ", ");
}

bool CoveredByAny(const std::vector<std::string>& granted,
                  absl::string_view requested) {
  for (const std::string& g : granted) {
    if (PatternCovers(g, requested)) return true;
  }
  return false;
}

// Says what of `filter` `granted` does not cover: nullopt when it covers it
// all; ">" when the filter names no type pattern (every type) and ">" is not
// granted; else the first uncovered pattern. kInvalidArgument for an
// invalid pattern.
absl::StatusOr<std::optional<std::string>> FirstUncovered(
    const std::vector<std::string>& granted, const v1::Filter& filter) {
  if (filter.types().empty()) {
    if (CoveredByAny(granted, ">")) return std::nullopt;
    return std::optional<std::string>(">");
  }
  for (const std::string& pattern : filter.types()) {
    if (absl::Status s = ValidateTypePattern(pattern); !s.ok()) return s;
  }
  for (const std::string& pattern : filter.types()) {
    if (!CoveredByAny(granted, pattern)) return std::optional(pattern);
  }
  return std::nullopt;
}

}  // namespace

bool PatternCovers(absl::string_view granted, absl::string_view requested) {
  std::vector<absl::string_view> g = absl::StrSplit(granted, '.');
  std::vector<absl::string_view> r = absl::StrSplit(requested, '.');
  for (size_t i = 0; i < g.size(); ++i) {
    // ">" takes one or more tokens: anything left in `requested`, whatever
    // wildcards it holds.
    if (g[i] == ">") return i < r.size();
    if (i >= r.size()) return false;  // `granted` needs more tokens
    // A requested ">" spans a varying number of tokens; only a granted ">"
    // (handled above) covers that.
    if (r[i] == ">") return false;
    // A granted "*" covers any one token, literal or "*"; a granted literal
    // only the same literal.
    if (g[i] != "*" && g[i] != r[i]) return false;
  }
  return g.size() == r.size();
}

std::optional<GrantClash> FindGrantClash(absl::Span<const SubscriberGrant> grants) {
  using What = GrantClash::What;
  for (size_t i = 0; i < grants.size(); ++i) {
    const SubscriberGrant& grant = grants[i];
    for (size_t j = 0; j < i; ++j) {
      const SubscriberGrant& other = grants[j];
      if (other.name == grant.name) return GrantClash{What::kName, i, j, 0};
      for (size_t t = 0; t < grant.tokens.size(); ++t) {
        if (absl::c_linear_search(other.tokens, grant.tokens[t])) {
          return GrantClash{What::kToken, i, j, t};
        }
      }
      for (size_t k = 0; k < grant.identities.size(); ++k) {
        if (absl::c_linear_search(other.identities, grant.identities[k])) {
          return GrantClash{What::kIdentity, i, j, k};
        }
      }
    }
  }
  return std::nullopt;
}

Authorizer::Authorizer(std::vector<SubscriberGrant> grants)
    : grants_(std::move(grants)) {
  if (std::optional<GrantClash> clash = FindGrantClash(grants_)) {
    const std::string& a = grants_[clash->other].name;
    const std::string& b = grants_[clash->grant].name;
    switch (clash->what) {
      case GrantClash::What::kName:
        BadGrants(absl::StrCat("duplicate subscriber name \"", b, "\""));
      case GrantClash::What::kToken:  // never log the token itself
        BadGrants(absl::StrCat("subscribers \"", a, "\" and \"", b, "\" share a token"));
      case GrantClash::What::kIdentity:
        BadGrants(absl::StrCat("subscribers \"", a, "\" and \"", b, "\" share the identity \"",
                               grants_[clash->grant].identities[clash->item], "\""));
    }
  }
  for (size_t i = 0; i < grants_.size(); ++i) {
    const SubscriberGrant& grant = grants_[i];
    for (const std::vector<std::string>* list :
         {&grant.types, &grant.publish}) {
      for (const std::string& pattern : *list) {
        if (absl::Status s = ValidateTypePattern(pattern); !s.ok()) {
          BadGrants(
              absl::StrCat("subscriber \"", grant.name, "\": ", s.message()));
        }
      }
    }
    for (const std::string& token : grant.tokens) {
      const Digest digest = Sha256(token);
      token_digests_.emplace_back(digest, i);
    }
  }
}

absl::StatusOr<const SubscriberGrant*> Authorizer::Authenticate(
    absl::string_view bearer_token,
    absl::Span<const std::string> identities) const {
  if (open()) return kAnyone;
  if (!bearer_token.empty()) {
    // Compare with every token, without stopping at a match: the time taken
    // says nothing about which token (if any) matched.
    const Digest presented = Sha256(bearer_token);
    const SubscriberGrant* found = nullptr;
    for (const auto& [digest, index] : token_digests_) {
      if (CRYPTO_memcmp(presented.data(), digest.data(), digest.size()) == 0) {
        found = &grants_[index];
      }
    }
    if (found == nullptr) return absl::UnauthenticatedError(kUnauthenticated);
    return found;
  }
  for (const SubscriberGrant& grant : grants_) {
    for (const std::string& identity : identities) {
      for (const std::string& granted : grant.identities) {
        if (identity == granted) return &grant;
      }
    }
  }
  return absl::UnauthenticatedError(kUnauthenticated);
}

absl::Status Authorizer::CheckReceive(const SubscriberGrant* caller,
                                      const v1::Filter& filter) const {
  if (caller == kAnyone) return absl::OkStatus();
  absl::StatusOr<std::optional<std::string>> uncovered =
      FirstUncovered(caller->types, filter);
  if (!uncovered.ok()) return uncovered.status();
  if (!uncovered->has_value()) return absl::OkStatus();
  if (filter.types().empty()) {
    return absl::PermissionDeniedError(
        absl::StrCat("client \"", caller->name,
                     "\" may not receive every type (the filter names no type "
                     "pattern; granted: ",
                     Granted(caller->types), ")"));
  }
  return absl::PermissionDeniedError(
      absl::StrCat("client \"", caller->name, "\" may not receive \"",
                   **uncovered, "\" (granted: ", Granted(caller->types), ")"));
}

absl::Status Authorizer::CheckReceiveEvent(const SubscriberGrant* caller,
                                           absl::string_view type) const {
  if (caller == kAnyone || CoveredByAny(caller->types, type))
    return absl::OkStatus();
  return absl::PermissionDeniedError(absl::StrCat(
      "client \"", caller->name,
      "\" may not receive this event (granted: ", Granted(caller->types), ")"));
}

absl::Status Authorizer::CheckPublish(const SubscriberGrant* caller,
                                      absl::string_view type) const {
  if (caller == kAnyone || CoveredByAny(caller->publish, type))
    return absl::OkStatus();
  return absl::PermissionDeniedError(
      absl::StrCat("client \"", caller->name, "\" may not publish \"", type,
                   "\" (granted: ", Granted(caller->publish), ")"));
}

absl::Status Authorizer::CheckManageGroup(const SubscriberGrant* caller,
                                          absl::string_view group,
                                          const v1::Filter& filter) const {
  if (caller == kAnyone) return absl::OkStatus();
  absl::StatusOr<std::optional<std::string>> uncovered =
      FirstUncovered(caller->types, filter);
  if (uncovered.ok() && !uncovered->has_value()) return absl::OkStatus();
  return absl::PermissionDeniedError(absl::StrCat(
      "client \"", caller->name, "\" may not manage consumer group \"", group,
      "\": it receives more than granted (granted: ", Granted(caller->types),
      ")"));
}

}  // namespace hookfan::broker
