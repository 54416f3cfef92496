#include "ingress/sender_auth.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace hookfan::ingress {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Ne;
using ::testing::Not;

// HMAC-SHA256 computed with OpenSSL's one-shot HMAC(), apart from the code
// under test.
std::string HmacSha256(const std::string& key, const std::string& message) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(),
       mac, &size);
  return std::string(reinterpret_cast<const char*>(mac), size);
}

struct Request {
  std::string path_token = {};
  std::map<std::string, std::string> headers = {};  // lowercase names
  std::string body = R"({"type":"invoice.paid","amount":4200})";
};

class SenderAuthTest : public ::testing::Test {
 protected:
  std::unique_ptr<SenderAuth> Make(const AuthConfig& config) {
    absl::StatusOr<std::unique_ptr<SenderAuth>> auth =
        SenderAuth::Create(config, &clock_);
    EXPECT_TRUE(auth.ok()) << auth.status();
    return auth.ok() ? *std::move(auth) : nullptr;
  }

  // The decision on `request` as text: "allowed", "not found: <reason>" or
  // "unauthorized: <reason>".
  static std::string Verify(const SenderAuth& auth, const Request& request) {
    const AuthDecision decision = auth.Verify(AuthRequest{
        .path_token = request.path_token,
        .header =
            [&](std::string_view name) -> std::optional<std::string_view> {
          auto it = request.headers.find(std::string(name));
          if (it == request.headers.end()) return std::nullopt;
          return it->second;
        },
        .body = request.body,
    });
    switch (decision.outcome) {
      case AuthDecision::Outcome::kAllowed:
        EXPECT_TRUE(decision.allowed());
        EXPECT_EQ(decision.reason, "");
        return "allowed";
      case AuthDecision::Outcome::kNotFound:
        return "not found: " + decision.reason;
      case AuthDecision::Outcome::kUnauthorized:
        return "unauthorized: " + decision.reason;
    }
    return "?";
  }

  FakeClock clock_;  // 2026-01-01T00:00:00Z = 1767225600
};

// --- Create ---------------------------------------------------------------

TEST_F(SenderAuthTest, CreateRefusesConfigsThatCannotWork) {
  // Each message names the mode and the problem, never a secret's value.
  auto error = [&](const AuthConfig& config) {
    return SenderAuth::Create(config, &clock_).status();
  };
  EXPECT_EQ(
      error({.mode = AuthMode::kPathToken}),
      absl::InvalidArgumentError("path_token auth needs at least one secret"));
  EXPECT_EQ(error({.mode = AuthMode::kPathToken, .secrets = {"a/b"}}),
            absl::InvalidArgumentError("path_token auth secret #1 contains "
                                       "\"/\": a path token is one path "
                                       "segment"));
  EXPECT_EQ(error({.mode = AuthMode::kNone, .secrets = {"s"}}),
            absl::InvalidArgumentError("none auth takes no secrets"));
  EXPECT_EQ(error({.mode = AuthMode::kBearer, .secrets = {"s", ""}}),
            absl::InvalidArgumentError("bearer auth secret #2 is empty"));
  EXPECT_EQ(error({.mode = AuthMode::kBasic, .secrets = {"s"}}),
            absl::InvalidArgumentError("basic auth needs a username"));
  EXPECT_EQ(
      error({.mode = AuthMode::kBasic, .secrets = {"s"}, .username = "a:b"}),
      absl::InvalidArgumentError("basic auth username may not contain \":\""));
  EXPECT_EQ(error({.mode = AuthMode::kHmac, .secrets = {"s"}}),
            absl::InvalidArgumentError("hmac auth needs a header"));
  EXPECT_EQ(error({.mode = AuthMode::kHmac, .secrets = {"s"}, .header = "X Sig"}),
            absl::InvalidArgumentError("hmac auth header \"X Sig\" is not an HTTP field name"));
  EXPECT_EQ(error({.mode = AuthMode::kStandardWebhooks,
                   .secrets = {"whsec_c2VjcmV0", "whsec_not base64!"}}),
            absl::InvalidArgumentError(
                "standard_webhooks auth secret #2 is not base64 after the "
                "optional \"whsec_\" prefix"));
  EXPECT_EQ(error({.mode = AuthMode::kStandardWebhooks, .secrets = {"whsec_"}}),
            absl::InvalidArgumentError(
                "standard_webhooks auth secret #1 is not base64 after the "
                "optional \"whsec_\" prefix"));
  EXPECT_EQ(error({.mode = AuthMode::kStandardWebhooks,
                   .secrets = {"c2VjcmV0"},
                   .tolerance = absl::ZeroDuration()}),
            absl::InvalidArgumentError(
                "standard_webhooks auth needs a positive tolerance"));
}

// --- none -----------------------------------------------------------------

TEST_F(SenderAuthTest, NoneAllowsAnyRequest) {
  auto auth = Make({.mode = AuthMode::kNone});
  EXPECT_EQ(Verify(*auth, {}), "allowed");
}

TEST_F(SenderAuthTest, PathSegmentIsUnknownPathWithoutPathTokenAuth) {
  // Only path_token sources take a segment after their path.
  auto auth = Make({.mode = AuthMode::kNone});
  EXPECT_EQ(Verify(*auth, {.path_token = "extra"}),
            "not found: unexpected path segment after the source path");
  auto bearer = Make({.mode = AuthMode::kBearer, .secrets = {"t0ken"}});
  EXPECT_EQ(Verify(*bearer, {.path_token = "extra",
                             .headers = {{"authorization", "Bearer t0ken"}}}),
            "not found: unexpected path segment after the source path");
}

// --- path token -----------------------------------------------------------

TEST_F(SenderAuthTest, PathTokenAcceptsTheSecret) {
  auto auth = Make({.mode = AuthMode::kPathToken, .secrets = {"p4th-t0ken"}});
  EXPECT_EQ(Verify(*auth, {.path_token = "p4th-t0ken"}), "allowed");
}

TEST_F(SenderAuthTest, WrongOrMissingPathTokenIsNotFound) {
  // 404, so a prober cannot tell a source path from any unknown path.
  auto auth = Make({.mode = AuthMode::kPathToken, .secrets = {"p4th-t0ken"}});
  EXPECT_EQ(Verify(*auth, {.path_token = "p4th-t0keN"}),
            "not found: path token mismatch");
  EXPECT_EQ(Verify(*auth, {.path_token = "p4th-t0ken-and-more"}),
            "not found: path token mismatch");
  EXPECT_EQ(Verify(*auth, {}), "not found: missing path token");
}

TEST_F(SenderAuthTest, PathTokenRotationAcceptsEitherSecret) {
  auto auth = Make({.mode = AuthMode::kPathToken, .secrets = {"new", "old"}});
  EXPECT_EQ(Verify(*auth, {.path_token = "new"}), "allowed");
  EXPECT_EQ(Verify(*auth, {.path_token = "old"}), "allowed");
  EXPECT_EQ(Verify(*auth, {.path_token = "older"}),
            "not found: path token mismatch");
}

// --- basic ----------------------------------------------------------------

std::string BasicHeader(const std::string& user, const std::string& password) {
  return "Basic " + absl::Base64Escape(user + ":" + password);
}

TEST_F(SenderAuthTest, BasicAcceptsUsernameAndSecret) {
  auto auth = Make(
      {.mode = AuthMode::kBasic, .secrets = {"pa:ss"}, .username = "acme"});
  EXPECT_EQ(
      Verify(*auth,
             {.headers = {{"authorization", BasicHeader("acme", "pa:ss")}}}),
      "allowed");
  // The scheme is case-insensitive.
  EXPECT_EQ(
      Verify(*auth,
             {.headers = {{"authorization",
                           "basic " + absl::Base64Escape("acme:pa:ss")}}}),
      "allowed");
}

TEST_F(SenderAuthTest, BasicRefusesWrongCredentials) {
  auto auth =
      Make({.mode = AuthMode::kBasic, .secrets = {"pass"}, .username = "acme"});
  EXPECT_EQ(
      Verify(*auth,
             {.headers = {{"authorization", BasicHeader("acme", "pasS")}}}),
      "unauthorized: wrong password");
  EXPECT_EQ(
      Verify(*auth,
             {.headers = {{"authorization", BasicHeader("acm", "pass")}}}),
      "unauthorized: wrong username");
  EXPECT_EQ(Verify(*auth, {}), "unauthorized: missing Authorization header");
  EXPECT_EQ(Verify(*auth, {.headers = {{"authorization", "Bearer pass"}}}),
            "unauthorized: Authorization scheme is not Basic");
  EXPECT_EQ(Verify(*auth, {.headers = {{"authorization", "Basic"}}}),
            "unauthorized: no credentials after Basic");
  EXPECT_EQ(Verify(*auth, {.headers = {{"authorization", "Basic !!!"}}}),
            "unauthorized: Basic credentials are not base64");
  EXPECT_EQ(
      Verify(*auth, {.headers = {{"authorization",
                                  "Basic " + absl::Base64Escape("acmepass")}}}),
      "unauthorized: Basic credentials lack the \":\" after the user");
}

TEST_F(SenderAuthTest, BasicRotationAcceptsEitherSecret) {
  auto auth = Make({.mode = AuthMode::kBasic,
                    .secrets = {"new-pass", "old-pass"},
                    .username = "acme"});
  EXPECT_EQ(
      Verify(*auth,
             {.headers = {{"authorization", BasicHeader("acme", "new-pass")}}}),
      "allowed");
  EXPECT_EQ(
      Verify(*auth,
             {.headers = {{"authorization", BasicHeader("acme", "old-pass")}}}),
      "allowed");
}

// --- bearer ---------------------------------------------------------------

TEST_F(SenderAuthTest, BearerAcceptsTheSecret) {
  auto auth = Make({.mode = AuthMode::kBearer, .secrets = {"t0ken"}});
  EXPECT_EQ(Verify(*auth, {.headers = {{"authorization", "Bearer t0ken"}}}),
            "allowed");
  EXPECT_EQ(Verify(*auth, {.headers = {{"authorization", "bearer  t0ken "}}}),
            "allowed");
}

TEST_F(SenderAuthTest, BearerRefusesWrongOrMissingToken) {
  auto auth = Make({.mode = AuthMode::kBearer, .secrets = {"t0ken"}});
  EXPECT_EQ(Verify(*auth, {.headers = {{"authorization", "Bearer t0ke"}}}),
            "unauthorized: bearer token mismatch");
  EXPECT_EQ(Verify(*auth, {}), "unauthorized: missing Authorization header");
  EXPECT_EQ(Verify(*auth, {.headers = {{"authorization", "Bearer"}}}),
            "unauthorized: no credentials after Bearer");
  EXPECT_EQ(Verify(*auth, {.headers = {{"authorization", "t0ken"}}}),
            "unauthorized: Authorization scheme is not Bearer");
}

TEST_F(SenderAuthTest, BearerRotationAcceptsEitherSecret) {
  auto auth = Make({.mode = AuthMode::kBearer, .secrets = {"new", "old"}});
  EXPECT_EQ(Verify(*auth, {.headers = {{"authorization", "Bearer new"}}}),
            "allowed");
  EXPECT_EQ(Verify(*auth, {.headers = {{"authorization", "Bearer old"}}}),
            "allowed");
}

// --- header ---------------------------------------------------------------

// Jamf Pro's header authentication: a header name the admin chose, its
// value one of the secrets, whole.
TEST_F(SenderAuthTest, HeaderAcceptsTheSecretInTheConfiguredHeader) {
  auto auth = Make({.mode = AuthMode::kHeader, .secrets = {"new-t0ken", "old-t0ken"},
                    .header = "X-Jamf-Token"});
  EXPECT_EQ(Verify(*auth, {.headers = {{"x-jamf-token", "new-t0ken"}}}), "allowed");
  EXPECT_EQ(Verify(*auth, {.headers = {{"x-jamf-token", " old-t0ken "}}}), "allowed");
  EXPECT_EQ(Verify(*auth, {.headers = {{"x-jamf-token", "new-t0ke"}}}),
            "unauthorized: X-Jamf-Token header mismatch");
  EXPECT_EQ(Verify(*auth, {.headers = {{"authorization", "new-t0ken"}}}),
            "unauthorized: missing X-Jamf-Token header");
  EXPECT_EQ(Verify(*auth, {.path_token = "new-t0ken", .headers = {{"x-jamf-token", "new-t0ken"}}}),
            "not found: unexpected path segment after the source path");
}

TEST_F(SenderAuthTest, HeaderNeedsAHeaderName) {
  EXPECT_EQ(SenderAuth::Create({.mode = AuthMode::kHeader, .secrets = {"s"}}, &clock_).status(),
            absl::InvalidArgumentError("header auth needs a header"));
  EXPECT_EQ(SenderAuth::Create({.mode = AuthMode::kHeader, .secrets = {"s"}, .header = "X Token"},
                               &clock_)
                .status(),
            absl::InvalidArgumentError("header auth header \"X Token\" is not an HTTP field name"));
}

// --- hmac -----------------------------------------------------------------

AuthConfig GithubStyle(std::vector<std::string> secrets) {
  return {.mode = AuthMode::kHmac,
          .secrets = std::move(secrets),
          .header = "X-Hub-Signature-256",
          .prefix = "sha256="};
}

std::string HexSignature(const std::string& secret, const std::string& body) {
  return "sha256=" + absl::BytesToHexString(HmacSha256(secret, body));
}

TEST_F(SenderAuthTest, HmacKnownAnswer) {
  // From: printf '%s' "$body" | openssl dgst -sha256 -hmac gh-secret
  auto auth = Make(GithubStyle({"gh-secret"}));
  EXPECT_EQ(
      Verify(*auth,
             {.headers = {{"x-hub-signature-256",
                           "sha256=69aba04c57941556d52dc5a5589a3367a4cff4b1725"
                           "20e7f454fa809727da373"}},
              .body = R"({"type":"invoice.paid","amount":4200})"}),
      "allowed");
}

TEST_F(SenderAuthTest, HmacAcceptsHexInAnyCaseAndBase64) {
  const Request request;
  auto hex = Make(GithubStyle({"gh-secret"}));
  EXPECT_EQ(Verify(*hex, {.headers = {{"x-hub-signature-256",
                                       absl::AsciiStrToUpper(HexSignature(
                                           "gh-secret", request.body))}}}),
            "allowed");
  auto base64 = Make({.mode = AuthMode::kHmac,
                      .secrets = {"gh-secret"},
                      .header = "X-Signature",
                      .encoding = AuthConfig::Encoding::kBase64});
  EXPECT_EQ(
      Verify(*base64,
             {.headers = {{"x-signature", absl::Base64Escape(HmacSha256(
                                              "gh-secret", request.body))}}}),
      "allowed");
}

TEST_F(SenderAuthTest, HmacRefusesTamperedBodyAndWrongSecret) {
  auto auth = Make(GithubStyle({"gh-secret"}));
  const Request request;
  Request tampered{.headers = {{"x-hub-signature-256",
                                HexSignature("gh-secret", request.body)}},
                   .body = R"({"type":"invoice.paid","amount":4201})"};
  EXPECT_EQ(Verify(*auth, tampered), "unauthorized: signature mismatch");
  EXPECT_EQ(Verify(*auth, {.headers = {{"x-hub-signature-256",
                                        HexSignature("other", request.body)}}}),
            "unauthorized: signature mismatch");
}

TEST_F(SenderAuthTest, HmacRefusesMissingOrMalformedHeader) {
  auto auth = Make(GithubStyle({"gh-secret"}));
  const std::string mac = absl::BytesToHexString(HmacSha256("gh-secret", ""));
  EXPECT_EQ(Verify(*auth, {}),
            "unauthorized: missing X-Hub-Signature-256 header");
  EXPECT_EQ(Verify(*auth, {.headers = {{"x-hub-signature-256", mac}}}),
            "unauthorized: X-Hub-Signature-256 header lacks the prefix "
            "\"sha256=\"");
  EXPECT_EQ(
      Verify(*auth, {.headers = {{"x-hub-signature-256", "sha256=abc123"}}}),
      "unauthorized: malformed signature in X-Hub-Signature-256 header (want "
      "64 hex digits)");
  EXPECT_EQ(Verify(*auth, {.headers = {{"x-hub-signature-256",
                                        "sha256=" + mac.substr(1) + "g"}}}),
            "unauthorized: malformed signature in X-Hub-Signature-256 header "
            "(want 64 hex digits)");
}

TEST_F(SenderAuthTest, HmacRotationAcceptsEitherSecret) {
  auto auth = Make(GithubStyle({"new-secret", "old-secret"}));
  const Request request;
  for (const std::string secret : {"new-secret", "old-secret"}) {
    EXPECT_EQ(
        Verify(*auth, {.headers = {{"x-hub-signature-256",
                                    HexSignature(secret, request.body)}}}),
        "allowed")
        << secret;
  }
}

// --- Standard Webhooks ----------------------------------------------------

// A secret in the "whsec_" form and the raw key it stands for.
constexpr char kWhsecKey[] = "hookfan known-answer key, 32 by!";
constexpr char kWhsecSecret[] =
    "whsec_aG9va2ZhbiBrbm93bi1hbnN3ZXIga2V5LCAzMiBieSE=";

// The webhook-signature entry for `id`, `timestamp` and `body` under `key`.
std::string V1Signature(const std::string& key, const std::string& id,
                        const std::string& timestamp, const std::string& body) {
  return "v1," + absl::Base64Escape(HmacSha256(
                     key, absl::StrCat(id, ".", timestamp, ".", body)));
}

Request SignedRequest(const std::string& key, const std::string& timestamp) {
  Request request;
  request.headers = {
      {"webhook-id", "msg_hookfan_1"},
      {"webhook-timestamp", timestamp},
      {"webhook-signature",
       V1Signature(key, "msg_hookfan_1", timestamp, request.body)}};
  return request;
}

TEST_F(SenderAuthTest, StandardWebhooksKnownAnswer) {
  // Derived with Python:
  //   base64(hmac.new(key, b"msg_hookfan_kat_1.1767225600." + body,
  //                   hashlib.sha256).digest())
  // and checked against `openssl dgst -sha256 -mac HMAC -macopt hexkey:...`.
  auto auth =
      Make({.mode = AuthMode::kStandardWebhooks, .secrets = {kWhsecSecret}});
  EXPECT_EQ(
      Verify(*auth,
             {.headers = {{"webhook-id", "msg_hookfan_kat_1"},
                          {"webhook-timestamp", "1767225600"},
                          {"webhook-signature",
                           "v1,keSgX8zKn1S/11PsD+Fe16p55/hrokeUZJYXLaIbeW4="}},
              .body = R"({"type":"invoice.paid","amount":4200})"}),
      "allowed");
}

TEST_F(SenderAuthTest, StandardWebhooksSecretNeedNotHaveThePrefix) {
  auto auth = Make({.mode = AuthMode::kStandardWebhooks,
                    .secrets = {absl::Base64Escape(kWhsecKey)}});
  EXPECT_EQ(Verify(*auth, SignedRequest(kWhsecKey, "1767225600")), "allowed");
}

TEST_F(SenderAuthTest, StandardWebhooksRefusesTamperedBodyIdOrWrongSecret) {
  auto auth =
      Make({.mode = AuthMode::kStandardWebhooks, .secrets = {kWhsecSecret}});
  Request tampered = SignedRequest(kWhsecKey, "1767225600");
  tampered.body += " ";
  EXPECT_EQ(Verify(*auth, tampered), "unauthorized: signature mismatch");

  Request other_id = SignedRequest(kWhsecKey, "1767225600");
  other_id.headers["webhook-id"] = "msg_hookfan_2";
  EXPECT_EQ(Verify(*auth, other_id), "unauthorized: signature mismatch");

  EXPECT_EQ(Verify(*auth, SignedRequest("another key", "1767225600")),
            "unauthorized: signature mismatch");
}

TEST_F(SenderAuthTest, StandardWebhooksRefusesMissingHeaders) {
  auto auth =
      Make({.mode = AuthMode::kStandardWebhooks, .secrets = {kWhsecSecret}});
  for (const std::string header :
       {"webhook-id", "webhook-timestamp", "webhook-signature"}) {
    Request request = SignedRequest(kWhsecKey, "1767225600");
    request.headers.erase(header);
    EXPECT_EQ(Verify(*auth, request),
              absl::StrCat("unauthorized: missing ", header, " header"));
  }
}

TEST_F(SenderAuthTest, StandardWebhooksRefusesStaleAndFutureTimestamps) {
  // Tolerance 5 minutes either way: 300 s is in, 301 s is out.
  auto auth =
      Make({.mode = AuthMode::kStandardWebhooks, .secrets = {kWhsecSecret}});
  EXPECT_EQ(Verify(*auth, SignedRequest(kWhsecKey, "1767225300")), "allowed");
  EXPECT_EQ(Verify(*auth, SignedRequest(kWhsecKey, "1767225900")), "allowed");
  EXPECT_EQ(Verify(*auth, SignedRequest(kWhsecKey, "1767225299")),
            "unauthorized: timestamp outside tolerance (301s in the past)");
  EXPECT_EQ(Verify(*auth, SignedRequest(kWhsecKey, "1767225901")),
            "unauthorized: timestamp outside tolerance (301s in the future)");
  // A replay of a once-valid message, 412 s later.
  const Request request = SignedRequest(kWhsecKey, "1767225600");
  clock_.Advance(absl::Seconds(412));
  EXPECT_EQ(Verify(*auth, request),
            "unauthorized: timestamp outside tolerance (412s in the past)");
}

TEST_F(SenderAuthTest, StandardWebhooksToleranceIsConfigurable) {
  auto auth = Make({.mode = AuthMode::kStandardWebhooks,
                    .secrets = {kWhsecSecret},
                    .tolerance = absl::Seconds(30)});
  EXPECT_EQ(Verify(*auth, SignedRequest(kWhsecKey, "1767225570")), "allowed");
  EXPECT_EQ(Verify(*auth, SignedRequest(kWhsecKey, "1767225569")),
            "unauthorized: timestamp outside tolerance (31s in the past)");
}

TEST_F(SenderAuthTest, StandardWebhooksRefusesMalformedHeaders) {
  auto auth =
      Make({.mode = AuthMode::kStandardWebhooks, .secrets = {kWhsecSecret}});
  for (const std::string timestamp :
       {"", "-1767225600", "1767225600.5", "0x69556d00", "17672256000000"}) {
    Request request = SignedRequest(kWhsecKey, "1767225600");
    request.headers["webhook-timestamp"] = timestamp;
    EXPECT_EQ(Verify(*auth, request),
              "unauthorized: malformed webhook-timestamp header (want unix "
              "seconds)")
        << timestamp;
  }
  Request request = SignedRequest(kWhsecKey, "1767225600");
  request.headers["webhook-signature"] = "v1a,c2lnbmF0dXJl";
  EXPECT_EQ(Verify(*auth, request),
            "unauthorized: no v1 signature in webhook-signature header");
  request.headers["webhook-signature"] = "v1,not-base64!";
  EXPECT_EQ(Verify(*auth, request), "unauthorized: signature mismatch");
}

TEST_F(SenderAuthTest, StandardWebhooksAcceptsAnyMatchingSignatureEntry) {
  // Senders rotating their key sign with both; other versions are skipped.
  auto auth =
      Make({.mode = AuthMode::kStandardWebhooks, .secrets = {kWhsecSecret}});
  Request request = SignedRequest(kWhsecKey, "1767225600");
  const std::string good = request.headers["webhook-signature"];
  request.headers["webhook-signature"] = absl::StrCat(
      "v1a,c2lnbmF0dXJl ",
      V1Signature("old key", "msg_hookfan_1", "1767225600", request.body), "  ",
      good);
  EXPECT_EQ(Verify(*auth, request), "allowed");
}

TEST_F(SenderAuthTest, StandardWebhooksRotationAcceptsEitherSecret) {
  // We hold the new and the old secret while the sender switches over.
  const std::string new_key = "a brand new key";
  auto auth =
      Make({.mode = AuthMode::kStandardWebhooks,
            .secrets = {"whsec_" + absl::Base64Escape(new_key), kWhsecSecret}});
  EXPECT_EQ(Verify(*auth, SignedRequest(new_key, "1767225600")), "allowed");
  EXPECT_EQ(Verify(*auth, SignedRequest(kWhsecKey, "1767225600")), "allowed");
}

// --- reasons --------------------------------------------------------------

TEST_F(SenderAuthTest, ReasonsNeverContainASecret) {
  const std::string secret = "s3cr3t-value";
  const std::vector<std::pair<AuthConfig, Request>> cases = {
      {{.mode = AuthMode::kPathToken, .secrets = {secret}},
       {.path_token = secret + "x"}},
      {{.mode = AuthMode::kBearer, .secrets = {secret}},
       {.headers = {{"authorization", "Bearer " + secret + "x"}}}},
      {{.mode = AuthMode::kBasic, .secrets = {secret}, .username = "u"},
       {.headers = {{"authorization", BasicHeader("u", secret + "x")}}}},
      {GithubStyle({secret}),
       {.headers = {{"x-hub-signature-256", HexSignature(secret, "x")}}}},
  };
  for (const auto& [config, request] : cases) {
    auto auth = Make(config);
    EXPECT_THAT(Verify(*auth, request),
                AllOf(Ne("allowed"), Not(HasSubstr(secret))))
        << AuthModeName(config.mode);
  }
}

}  // namespace
}  // namespace hookfan::ingress
