#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "ingress/header_lookup.h"
#include "ingress/source_config.h"

namespace hookfan::ingress {

// The parts of a webhook request that authentication looks at. Views into
// the caller's request, valid for the duration of Verify.
struct AuthRequest {
  // The path segment after the source's path, "" if none.
  std::string_view path_token;
  // Looks up a header by its lowercase name; nullopt if absent. May be
  // empty: the request has no headers.
  std::function<std::optional<std::string_view>(
      std::string_view lowercase_name)>
      header;
  std::string_view body;  // raw, exactly as received
};

// Compares two secrets in time that does not depend on where they differ
// (nor on their lengths beyond a SHA-256 of each).
bool SecretEquals(std::string_view a, std::string_view b);

// What to do with a request.
struct AuthDecision {
  enum class Outcome {
    kAllowed,
    // Answer 404, like any unknown path: a wrong or missing path token, or
    // a path segment the source does not take.
    kNotFound,
    // Answer 401.
    kUnauthorized,
  };
  Outcome outcome = Outcome::kAllowed;
  // Why it was refused, for the operator's log and metrics only: never
  // sent to the client, never contains a secret. E.g. "missing
  // webhook-signature header", "signature mismatch", "timestamp outside
  // tolerance (412s in the past)". Empty when allowed.
  std::string reason;

  bool allowed() const { return outcome == Outcome::kAllowed; }
};

// SenderAuth verifies that a webhook comes from the configured sender, as
// one source's AuthConfig says. Every comparison involving a secret takes
// time independent of where the values differ; a request passes if it
// proves any one of the secrets (rotation).
//
// Modes:
//   kNone              every request passes.
//   kPathToken         path_token equals a secret; else kNotFound.
//   kBasic             "Authorization: Basic base64(user:password)" with the
//                      configured username and a secret as the password.
//   kBearer            "Authorization: Bearer <secret>".
//   kHmac              the configured header holds prefix + HMAC-SHA256
//                      (key: secret, message: body), hex (any case) or
//                      base64; the prefix is matched ignoring case.
//   kStandardWebhooks  webhook-id, webhook-timestamp (unix seconds, within
//                      `tolerance` of the clock either way) and
//                      webhook-signature: space-separated "v1,<base64 of
//                      HMAC-SHA256(key, id.timestamp.body)>" entries, any of
//                      which may match; the key is the secret base64-decoded
//                      after an optional "whsec_" prefix. Entries of other
//                      versions are ignored.
//   kHeader            the configured header's value equals a secret (Jamf
//                      Pro's header authentication, whose header names and
//                      values the admin chooses).
// Modes other than kPathToken answer kNotFound to a non-empty path_token.
// Authorization schemes are matched ignoring case. Everything else is
// kUnauthorized.
//
// Thread-safe (Verify is const and keeps no state).
class SenderAuth {
 public:
  virtual ~SenderAuth() = default;

  // `clock` (kStandardWebhooks) must outlive the result. Errors:
  // kInvalidArgument for a configuration that cannot work: no secrets for
  // a mode other than kNone, or secrets for kNone; an empty secret; for
  // kPathToken a secret containing "/" (a token is one segment); kBasic
  // without a username or with ":" in it; kHmac or kHeader without a header
// (or one that is no HTTP field name); for
  // kStandardWebhooks a secret that is not base64 after the optional
  // "whsec_" prefix, or a tolerance that is not positive. Messages name
  // secrets by position, never by value.
  static absl::StatusOr<std::unique_ptr<SenderAuth>> Create(
      const AuthConfig& config, Clock* clock);

  virtual AuthDecision Verify(const AuthRequest& request) const = 0;
};

}  // namespace hookfan::ingress
