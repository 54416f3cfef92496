#include "ingress/sender_auth.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/sha.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdlib>
#include <initializer_list>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"

namespace hookfan::ingress {

bool SecretEquals(std::string_view a, std::string_view b) {
  unsigned char da[SHA256_DIGEST_LENGTH], db[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(a.data()), a.size(), da);
  SHA256(reinterpret_cast<const unsigned char*>(b.data()), b.size(), db);
  return CRYPTO_memcmp(da, db, sizeof(da)) == 0;
}

namespace {

using Outcome = AuthDecision::Outcome;
using Mac = std::array<unsigned char, 32>;  // HMAC-SHA256

constexpr absl::string_view kWhsecPrefix = "whsec_";

// Debian's abseil has its own string_view; this crosses over.
absl::string_view ToAbsl(std::string_view s) { return {s.data(), s.size()}; }

AuthDecision Allowed() { return {Outcome::kAllowed, ""}; }
AuthDecision NotFound(std::string reason) {
  return {Outcome::kNotFound, std::move(reason)};
}
AuthDecision Unauthorized(std::string reason) {
  return {Outcome::kUnauthorized, std::move(reason)};
}

// HMAC-SHA256 of the concatenated `parts` under `key`.
Mac HmacSha256(absl::string_view key,
               std::initializer_list<absl::string_view> parts) {
  // Fetched once: an EVP_MAC may be shared by threads.
  static EVP_MAC* const mac =
      EVP_MAC_fetch(nullptr, OSSL_MAC_NAME_HMAC, nullptr);
  EVP_MAC_CTX* ctx = mac ? EVP_MAC_CTX_new(mac) : nullptr;
  char digest[] = "SHA256";
  const OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_end()};
  bool ok =
      ctx != nullptr &&
      EVP_MAC_init(ctx, reinterpret_cast<const unsigned char*>(key.data()),
                   key.size(), params) == 1;
  for (absl::string_view part : parts) {
    ok = ok && EVP_MAC_update(
                   ctx, reinterpret_cast<const unsigned char*>(part.data()),
                   part.size()) == 1;
  }
  Mac out;
  size_t out_size = 0;
  ok = ok && EVP_MAC_final(ctx, out.data(), &out_size, out.size()) == 1 &&
       out_size == out.size();
  EVP_MAC_CTX_free(ctx);
  if (!ok) std::abort();  // OpenSSL cannot compute HMAC-SHA256: broken build
  return out;
}

bool MacEquals(const Mac& a, const Mac& b) {
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

// Whether `candidate` equals any of `secrets`; every one is compared.
bool AnySecretEquals(const std::vector<std::string>& secrets,
                     absl::string_view candidate) {
  bool match = false;
  for (const std::string& secret : secrets) {
    match |= SecretEquals(secret, {candidate.data(), candidate.size()});
  }
  return match;
}

// The value of a header, without surrounding whitespace.
std::optional<absl::string_view> Header(const AuthRequest& request,
                                        std::string_view lowercase_name) {
  if (!request.header) return std::nullopt;
  std::optional<std::string_view> value = request.header(lowercase_name);
  if (!value) return std::nullopt;
  return absl::StripAsciiWhitespace(ToAbsl(*value));
}

std::optional<Mac> DecodeHexMac(absl::string_view text) {
  if (text.size() != 2 * sizeof(Mac)) return std::nullopt;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    c = absl::ascii_tolower(c);
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  Mac mac;
  for (size_t i = 0; i < mac.size(); ++i) {
    const int hi = nibble(text[2 * i]), lo = nibble(text[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    mac[i] = static_cast<unsigned char>(hi << 4 | lo);
  }
  return mac;
}

std::optional<Mac> DecodeBase64Mac(absl::string_view text) {
  std::string bytes;
  if (!absl::Base64Unescape(text, &bytes) || bytes.size() != sizeof(Mac)) {
    return std::nullopt;
  }
  Mac mac;
  std::copy(bytes.begin(), bytes.end(), mac.begin());
  return mac;
}

// Refuses a path segment after the path of a source that takes none.
std::optional<AuthDecision> RejectPathToken(const AuthRequest& request) {
  if (request.path_token.empty()) return std::nullopt;
  return NotFound("unexpected path segment after the source path");
}

// Reads "Authorization: <scheme> <credentials>" into *credentials, or
// returns why it can't.
std::optional<AuthDecision> ReadAuthorization(const AuthRequest& request,
                                              absl::string_view scheme,
                                              absl::string_view* credentials) {
  const std::optional<absl::string_view> value =
      Header(request, "authorization");
  if (!value) return Unauthorized("missing Authorization header");
  const size_t space = value->find(' ');
  if (!absl::EqualsIgnoreCase(value->substr(0, space), scheme)) {
    return Unauthorized(absl::StrCat("Authorization scheme is not ", scheme));
  }
  *credentials = space == absl::string_view::npos
                     ? absl::string_view()
                     : absl::StripLeadingAsciiWhitespace(value->substr(space));
  if (credentials->empty()) {
    return Unauthorized(absl::StrCat("no credentials after ", scheme));
  }
  return std::nullopt;
}

class NoAuth final : public SenderAuth {
 public:
  AuthDecision Verify(const AuthRequest& request) const override {
    return RejectPathToken(request).value_or(Allowed());
  }
};

class PathTokenAuth final : public SenderAuth {
 public:
  explicit PathTokenAuth(std::vector<std::string> secrets)
      : secrets_(std::move(secrets)) {}

  AuthDecision Verify(const AuthRequest& request) const override {
    if (request.path_token.empty()) return NotFound("missing path token");
    if (!AnySecretEquals(secrets_, ToAbsl(request.path_token))) {
      return NotFound("path token mismatch");
    }
    return Allowed();
  }

 private:
  const std::vector<std::string> secrets_;
};

class BasicAuth final : public SenderAuth {
 public:
  BasicAuth(std::string username, std::vector<std::string> secrets)
      : username_(std::move(username)), secrets_(std::move(secrets)) {}

  AuthDecision Verify(const AuthRequest& request) const override {
    if (auto rejected = RejectPathToken(request)) return *rejected;
    absl::string_view credentials;
    if (auto rejected = ReadAuthorization(request, "Basic", &credentials)) {
      return *rejected;
    }
    std::string decoded;
    if (!absl::Base64Unescape(credentials, &decoded)) {
      return Unauthorized("Basic credentials are not base64");
    }
    const size_t colon = decoded.find(':');
    if (colon == std::string::npos) {
      return Unauthorized("Basic credentials lack the \":\" after the user");
    }
    const absl::string_view user = absl::string_view(decoded).substr(0, colon);
    const absl::string_view password =
        absl::string_view(decoded).substr(colon + 1);
    // Both compared before either result is used.
    const bool user_ok = SecretEquals({user.data(), user.size()}, username_);
    const bool password_ok = AnySecretEquals(secrets_, password);
    if (!user_ok) return Unauthorized("wrong username");
    if (!password_ok) return Unauthorized("wrong password");
    return Allowed();
  }

 private:
  const std::string username_;
  const std::vector<std::string> secrets_;
};

class BearerAuth final : public SenderAuth {
 public:
  explicit BearerAuth(std::vector<std::string> secrets)
      : secrets_(std::move(secrets)) {}

  AuthDecision Verify(const AuthRequest& request) const override {
    if (auto rejected = RejectPathToken(request)) return *rejected;
    absl::string_view token;
    if (auto rejected = ReadAuthorization(request, "Bearer", &token)) {
      return *rejected;
    }
    if (!AnySecretEquals(secrets_, token)) {
      return Unauthorized("bearer token mismatch");
    }
    return Allowed();
  }

 private:
  const std::vector<std::string> secrets_;
};

class HeaderAuth final : public SenderAuth {
 public:
  explicit HeaderAuth(const AuthConfig& config)
      : secrets_(config.secrets),
        header_(config.header),
        lowercase_header_(absl::AsciiStrToLower(config.header)) {}

  AuthDecision Verify(const AuthRequest& request) const override {
    if (auto rejected = RejectPathToken(request)) return *rejected;
    const std::optional<absl::string_view> value = Header(request, lowercase_header_);
    if (!value.has_value()) return Unauthorized(absl::StrCat("missing ", header_, " header"));
    if (!AnySecretEquals(secrets_, *value)) {
      return Unauthorized(absl::StrCat(header_, " header mismatch"));
    }
    return Allowed();
  }

 private:
  const std::vector<std::string> secrets_;
  const std::string header_;  // as configured, for reasons
  const std::string lowercase_header_;
};

class HmacAuth final : public SenderAuth {
 public:
  explicit HmacAuth(const AuthConfig& config)
      : secrets_(config.secrets),
        header_(config.header),
        lowercase_header_(absl::AsciiStrToLower(config.header)),
        encoding_(config.encoding),
        prefix_(config.prefix) {}

  AuthDecision Verify(const AuthRequest& request) const override {
    if (auto rejected = RejectPathToken(request)) return *rejected;
    const std::optional<absl::string_view> value =
        Header(request, lowercase_header_);
    if (!value)
      return Unauthorized(absl::StrCat("missing ", header_, " header"));
    if (!absl::StartsWithIgnoreCase(*value, prefix_)) {
      return Unauthorized(
          absl::StrCat(header_, " header lacks the prefix \"", prefix_, "\""));
    }
    const absl::string_view text = value->substr(prefix_.size());
    const bool hex = encoding_ == AuthConfig::Encoding::kHex;
    const std::optional<Mac> received =
        hex ? DecodeHexMac(text) : DecodeBase64Mac(text);
    if (!received) {
      return Unauthorized(
          absl::StrCat("malformed signature in ", header_, " header (want ",
                       hex ? "64 hex digits" : "base64 of 32 bytes", ")"));
    }
    bool match = false;
    for (const std::string& secret : secrets_) {
      match |= MacEquals(HmacSha256(secret, {ToAbsl(request.body)}), *received);
    }
    if (!match) return Unauthorized("signature mismatch");
    return Allowed();
  }

 private:
  const std::vector<std::string> secrets_;
  const std::string header_;  // as configured, for reasons
  const std::string lowercase_header_;
  const AuthConfig::Encoding encoding_;
  const std::string prefix_;
};

class StandardWebhooksAuth final : public SenderAuth {
 public:
  StandardWebhooksAuth(std::vector<std::string> keys, absl::Duration tolerance,
                       Clock* clock)
      : keys_(std::move(keys)), tolerance_(tolerance), clock_(clock) {}

  AuthDecision Verify(const AuthRequest& request) const override {
    if (auto rejected = RejectPathToken(request)) return *rejected;
    const std::optional<absl::string_view> id = Header(request, "webhook-id");
    const std::optional<absl::string_view> timestamp =
        Header(request, "webhook-timestamp");
    const std::optional<absl::string_view> signatures =
        Header(request, "webhook-signature");
    if (!id) return Unauthorized("missing webhook-id header");
    if (!timestamp) return Unauthorized("missing webhook-timestamp header");
    if (!signatures) return Unauthorized("missing webhook-signature header");

    if (auto rejected = CheckTimestamp(*timestamp)) return *rejected;

    std::vector<Mac> received;
    bool any_v1 = false;
    for (absl::string_view entry :
         absl::StrSplit(*signatures, ' ', absl::SkipEmpty())) {
      if (!absl::ConsumePrefix(&entry, "v1,")) continue;
      any_v1 = true;
      if (std::optional<Mac> mac = DecodeBase64Mac(entry)) {
        received.push_back(*mac);
      }
    }
    if (!any_v1) {
      return Unauthorized("no v1 signature in webhook-signature header");
    }
    bool match = false;
    for (const std::string& key : keys_) {
      const Mac expected =
          HmacSha256(key, {*id, ".", *timestamp, ".", ToAbsl(request.body)});
      for (const Mac& mac : received) match |= MacEquals(expected, mac);
    }
    if (!match) return Unauthorized("signature mismatch");
    return Allowed();
  }

 private:
  std::optional<AuthDecision> CheckTimestamp(absl::string_view text) const {
    // Unix seconds; 12 digits reach the year 33658.
    if (text.empty() || text.size() > 12 ||
        !std::all_of(text.begin(), text.end(), absl::ascii_isdigit)) {
      return Unauthorized(
          "malformed webhook-timestamp header (want unix seconds)");
    }
    int64_t seconds = 0;
    for (char c : text) seconds = seconds * 10 + (c - '0');
    const absl::Duration age = clock_->Now() - absl::FromUnixSeconds(seconds);
    if (absl::AbsDuration(age) <= tolerance_) return std::nullopt;
    return Unauthorized(
        absl::StrCat("timestamp outside tolerance (",
                     absl::ToInt64Seconds(absl::AbsDuration(age)), "s in the ",
                     age > absl::ZeroDuration() ? "past" : "future", ")"));
  }

  const std::vector<std::string> keys_;  // decoded
  const absl::Duration tolerance_;
  Clock* const clock_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<SenderAuth>> SenderAuth::Create(
    const AuthConfig& config, Clock* clock) {
  const std::string_view mode = AuthModeName(config.mode);
  auto invalid = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat(ToAbsl(mode), " auth ", why));
  };
  if (config.mode == AuthMode::kNone) {
    if (!config.secrets.empty()) return invalid("takes no secrets");
    return std::make_unique<NoAuth>();
  }
  if (config.secrets.empty()) return invalid("needs at least one secret");
  for (size_t i = 0; i < config.secrets.size(); ++i) {
    if (config.secrets[i].empty()) {
      return invalid(absl::StrCat("secret #", i + 1, " is empty"));
    }
  }
  switch (config.mode) {
    case AuthMode::kNone:
      break;
    case AuthMode::kPathToken:
      for (size_t i = 0; i < config.secrets.size(); ++i) {
        if (absl::StrContains(config.secrets[i], '/')) {
          return invalid(absl::StrCat("secret #", i + 1,
                                      " contains \"/\": a path token is "
                                      "one path segment"));
        }
      }
      return std::make_unique<PathTokenAuth>(config.secrets);
    case AuthMode::kBasic:
      if (config.username.empty()) return invalid("needs a username");
      if (absl::StrContains(config.username, ':')) {
        return invalid("username may not contain \":\"");
      }
      return std::make_unique<BasicAuth>(config.username, config.secrets);
    case AuthMode::kBearer:
      return std::make_unique<BearerAuth>(config.secrets);
    case AuthMode::kHmac:
    case AuthMode::kHeader:
      if (config.header.empty()) return invalid("needs a header");
      if (!IsHttpFieldName(config.header)) {
        return invalid(absl::StrCat("header \"", config.header, "\" is not an HTTP field name"));
      }
      if (config.mode == AuthMode::kHeader) return std::make_unique<HeaderAuth>(config);
      return std::make_unique<HmacAuth>(config);
    case AuthMode::kStandardWebhooks: {
      if (config.tolerance <= absl::ZeroDuration()) {
        return invalid("needs a positive tolerance");
      }
      std::vector<std::string> keys;
      for (size_t i = 0; i < config.secrets.size(); ++i) {
        absl::string_view secret = config.secrets[i];
        absl::ConsumePrefix(&secret, kWhsecPrefix);
        std::string key;
        if (!absl::Base64Unescape(secret, &key) || key.empty()) {
          return invalid(absl::StrCat("secret #", i + 1,
                                      " is not base64 after the optional \"",
                                      kWhsecPrefix, "\" prefix"));
        }
        keys.push_back(std::move(key));
      }
      return std::make_unique<StandardWebhooksAuth>(std::move(keys),
                                                    config.tolerance, clock);
    }
  }
  return invalid("mode is unknown");
}

}  // namespace hookfan::ingress
