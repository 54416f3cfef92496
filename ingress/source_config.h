#pragma once

// Plain descriptions of webhook sources, as read from the sources file
// (server/config_file.h). No parsing or validation here: the parser checks
// every field, SenderAuth::Create checks the auth settings again.
//
// Members without another default have "= {}" so that designated
// initializers may leave them out (GCC's -Wmissing-field-initializers).

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/time/time.h"
#include "ingress/cidr.h"

namespace hookfan::ingress {

// Settings of the generic JSON normalizer. Exactly one of type_pointer and
// type_header is set.
struct JsonNormalizerConfig {
  std::string type_pointer =
      {};                        // JSON pointer to the type, e.g. "/event/type"
  std::string type_header = {};  // or a header holding it (any letter case)
  std::string type_prefix =
      {};  // prepended to the type, e.g. "acme."; may be ""
  std::string id_pointer =
      {};  // JSON pointer to the sender's id (dedup); or ""
};

// How a sender proves it is the configured one.
enum class AuthMode {
  kNone,              // anyone who can reach the path (see allowed_cidrs)
  kPathToken,         // a secret path segment: POST <path>/<token>
  kBasic,             // Authorization: Basic base64(username:secret)
  kBearer,            // Authorization: Bearer <secret>
  kHmac,              // HMAC-SHA256(secret, body) in a header
  kStandardWebhooks,  // https://www.standardwebhooks.com
  kHeader,            // a configured header holds a secret (Jamf Pro's "header authentication")
};

// The name of a mode as written in the sources file: "none", "path_token",
// "basic", "bearer", "hmac", "standard_webhooks", "header".
constexpr std::string_view AuthModeName(AuthMode mode) {
  switch (mode) {
    case AuthMode::kNone:
      return "none";
    case AuthMode::kPathToken:
      return "path_token";
    case AuthMode::kBasic:
      return "basic";
    case AuthMode::kBearer:
      return "bearer";
    case AuthMode::kHmac:
      return "hmac";
    case AuthMode::kStandardWebhooks:
      return "standard_webhooks";
    case AuthMode::kHeader:
      return "header";
  }
  return "?";
}

struct AuthConfig {
  AuthMode mode = AuthMode::kNone;
  // The resolved secret values (never the references to them). Any one of
  // them is accepted, so several allow rotating without downtime. For
  // kStandardWebhooks each is "whsec_" (optional) + base64 of the key.
  std::vector<std::string> secrets = {};
  std::string username = {};  // kBasic
  std::string header = {};    // kHmac: e.g. "X-Hub-Signature-256"; kHeader: e.g. "X-Jamf-Token"; any case
  enum class Encoding { kHex, kBase64 };
  Encoding encoding = Encoding::kHex;  // kHmac: of the MAC in the header
  std::string prefix = {};             // kHmac: before the MAC, e.g. "sha256="
  // kStandardWebhooks: how far webhook-timestamp may be from now, either
  // way; older messages are refused as replays.
  absl::Duration tolerance = absl::Minutes(5);
};

struct RateLimitConfig {
  double per_second = 0;  // average admitted requests per second; 0: no limit
  double burst = 0;       // bucket size; 0: max(1, per_second)
};

// What identifies a redelivery of the same webhook.
enum class DedupKey {
  kNone,
  kIdempotencyKey,  // the Idempotency-Key header
  kWebhookId,       // the webhook-id header (Standard Webhooks)
  kBodyHash,        // SHA-256 of the body
  kEventId,         // the id the event carries (CloudEvents id, json id_pointer)
  kEventIdOrBodyHash,  // the event's id, else (a body carrying none) the body's hash
};

struct DedupConfig {
  DedupKey key = DedupKey::kNone;
  absl::Duration window = absl::Hours(24);  // how long a key is remembered
};

// One webhook source: where it posts, how it authenticates, what limits
// apply and how its payloads become events.
struct SourceConfig {
  std::string name = {};  // [a-z0-9_-]+, unique among sources
  // URL path, unique; "/webhooks/<name>" by default. With kPathToken the
  // token is the one path segment after it.
  std::string path = {};
  // The kind of normalizer (ingress/normalizer.h): "applivery",
  // "cloudevents", "jamf_pro", "json", "nanomdm", "workspace_one".
  std::string normalizer = "applivery";
  JsonNormalizerConfig json = {};  // "json" only
  AuthConfig auth = {};
  std::vector<Cidr> allowed_cidrs = {};  // peers allowed to post; empty: any
  size_t max_body_bytes = 1 << 20;
  RateLimitConfig rate_limit = {};
  DedupConfig dedup = {};
  // The status a newly stored webhook is answered with (200 or 202); unset:
  // the normalizer kind's (ingress/normalizer.h: SuccessStatus).
  std::optional<int> success_status = {};
};

}  // namespace hookfan::ingress
