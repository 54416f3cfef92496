#include "server/config_file.h"

#include <cstdio>
#include <fstream>
#include <map>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ingress/normalizer.h"

namespace hookfan::server {
namespace {

using ::hookfan::ingress::AuthConfig;
using ::hookfan::ingress::AuthMode;
using ::hookfan::ingress::DedupKey;
using ::hookfan::ingress::SourceConfig;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

// An environment and file system held in maps.
class FakeSecretEnv : public SecretEnv {
 public:
  std::optional<std::string> GetEnv(const std::string& name) const override {
    auto it = env.find(name);
    if (it == env.end()) return std::nullopt;
    return it->second;
  }
  absl::StatusOr<std::string> ReadFile(const std::string& path) const override {
    auto it = files.find(path);
    if (it == files.end())
      return absl::NotFoundError("No such file or directory");
    return it->second;
  }

  std::map<std::string, std::string> env;
  std::map<std::string, std::string> files;
};

class ConfigFileTest : public ::testing::Test {
 protected:
  ConfigFileTest() {
    env_.env = {{"APPLIVERY_TOKEN", "t0ken-from-env"},
                {"INVENTORY_TOKEN", "inv-t0ken"},
                {"BILLING_TOKEN", "bill-t0ken"},
                {"ACME_SECRET", "acme-s3cret"},
                {"WHSEC", "whsec_c2VjcmV0LWtleQ=="}};
    env_.files = {{"/etc/hookfan/old-token", "old-t0ken\n"}};
  }

  absl::StatusOr<ConfigFile> Parse(const std::string& yaml) {
    return ParseConfigFile(yaml, "sources.yaml", env_);
  }

  // The error parsing `yaml`: kInvalidArgument, its message returned.
  std::string ErrorOf(const std::string& yaml) {
    absl::StatusOr<ConfigFile> config = Parse(yaml);
    EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument)
        << config.status();
    return std::string(config.status().message());
  }

  // Parses `yaml`, failing the test on error.
  ConfigFile MustParse(const std::string& yaml) {
    absl::StatusOr<ConfigFile> config = Parse(yaml);
    EXPECT_TRUE(config.ok()) << config.status();
    return config.ok() ? *std::move(config) : ConfigFile();
  }

  FakeSecretEnv env_;
};

TEST_F(ConfigFileTest, FullFileIsReadIntoSourcesAndGrants) {
  // Every field of the documented format, each source a different auth.
  const ConfigFile config = MustParse(R"(
sources:
  - name: applivery
    path: /webhooks/applivery
    normalizer: applivery
    auth:
      type: path_token
      secrets: [{env: APPLIVERY_TOKEN}, {file: /etc/hookfan/old-token}]
    allowed_cidrs: [10.0.0.0/8, "::1/128"]
    max_body_bytes: 65536
    rate_limit: {per_second: 50, burst: 100}
    dedup: {key: body_hash, window: 12h}
  - name: acme
    normalizer: json
    json: {type_pointer: /event/type, type_prefix: acme., id_pointer: /id}
    auth:
      type: hmac
      secret: {env: ACME_SECRET}
      header: X-Hub-Signature-256
      encoding: base64
      prefix: "sha256="
    dedup: {key: idempotency_key}
  - name: billing
    path: /hooks/billing-v2
    normalizer: cloudevents
    auth: {type: standard_webhooks, secret: {env: WHSEC}, tolerance: 90s}
  - name: legacy
    normalizer: json
    json: {type_header: X-Event-Type}
    auth: {type: basic, username: legacy, secret: {env: ACME_SECRET}}
  - name: internal
    normalizer: cloudevents
    auth: {type: bearer, secrets: [{env: BILLING_TOKEN}]}
  - name: open
    normalizer: cloudevents
    auth: {type: none}
subscribers:
  - name: inventory-service
    tokens: [{env: INVENTORY_TOKEN}]
    identities: ["spiffe://cluster.local/ns/inv/sa/inventory"]
    types: ["applivery.device.*", "applivery.inventory_item.>"]
  - name: audit
    identities: [audit.internal]
    types: [">"]
)");
  ASSERT_EQ(config.sources.size(), 6);

  const SourceConfig& applivery = config.sources[0];
  EXPECT_EQ(applivery.name, "applivery");
  EXPECT_EQ(applivery.path, "/webhooks/applivery");
  EXPECT_EQ(applivery.normalizer, "applivery");
  EXPECT_EQ(applivery.auth.mode, AuthMode::kPathToken);
  // The file secret lost its trailing newline.
  EXPECT_THAT(applivery.auth.secrets,
              ElementsAre("t0ken-from-env", "old-t0ken"));
  ASSERT_EQ(applivery.allowed_cidrs.size(), 2);
  EXPECT_EQ(applivery.allowed_cidrs[0].ToString(), "10.0.0.0/8");
  EXPECT_EQ(applivery.allowed_cidrs[1].ToString(), "::1/128");
  EXPECT_EQ(applivery.max_body_bytes, 65536);
  EXPECT_EQ(applivery.rate_limit.per_second, 50);
  EXPECT_EQ(applivery.rate_limit.burst, 100);
  EXPECT_EQ(applivery.dedup.key, DedupKey::kBodyHash);
  EXPECT_EQ(applivery.dedup.window, absl::Hours(12));

  const SourceConfig& acme = config.sources[1];
  EXPECT_EQ(acme.path, "/webhooks/acme");
  EXPECT_EQ(acme.normalizer, "json");
  EXPECT_EQ(acme.json.type_pointer, "/event/type");
  EXPECT_EQ(acme.json.type_header, "");
  EXPECT_EQ(acme.json.type_prefix, "acme.");
  EXPECT_EQ(acme.json.id_pointer, "/id");
  EXPECT_EQ(acme.auth.mode, AuthMode::kHmac);
  EXPECT_THAT(acme.auth.secrets, ElementsAre("acme-s3cret"));
  EXPECT_EQ(acme.auth.header, "X-Hub-Signature-256");
  EXPECT_EQ(acme.auth.encoding, AuthConfig::Encoding::kBase64);
  EXPECT_EQ(acme.auth.prefix, "sha256=");
  EXPECT_EQ(acme.dedup.key, DedupKey::kIdempotencyKey);
  EXPECT_EQ(acme.dedup.window, absl::Hours(24));
  EXPECT_TRUE(acme.allowed_cidrs.empty());
  EXPECT_EQ(acme.max_body_bytes, 1 << 20);
  EXPECT_EQ(acme.rate_limit.per_second, 0);

  const SourceConfig& billing = config.sources[2];
  EXPECT_EQ(billing.path, "/hooks/billing-v2");
  EXPECT_EQ(billing.normalizer, "cloudevents");
  EXPECT_EQ(billing.auth.mode, AuthMode::kStandardWebhooks);
  EXPECT_THAT(billing.auth.secrets, ElementsAre("whsec_c2VjcmV0LWtleQ=="));
  EXPECT_EQ(billing.auth.tolerance, absl::Seconds(90));
  EXPECT_EQ(billing.dedup.key, DedupKey::kEventId);  // the cloudevents default

  const SourceConfig& legacy = config.sources[3];
  EXPECT_EQ(legacy.json.type_header, "X-Event-Type");
  EXPECT_EQ(legacy.auth.mode, AuthMode::kBasic);
  EXPECT_EQ(legacy.auth.username, "legacy");

  EXPECT_EQ(config.sources[4].auth.mode, AuthMode::kBearer);
  EXPECT_THAT(config.sources[4].auth.secrets, ElementsAre("bill-t0ken"));
  EXPECT_EQ(config.sources[5].auth.mode, AuthMode::kNone);
  EXPECT_TRUE(config.sources[5].auth.secrets.empty());

  ASSERT_EQ(config.subscribers.size(), 2);
  EXPECT_EQ(config.subscribers[0].name, "inventory-service");
  EXPECT_THAT(config.subscribers[0].tokens, ElementsAre("inv-t0ken"));
  EXPECT_THAT(config.subscribers[0].identities,
              ElementsAre("spiffe://cluster.local/ns/inv/sa/inventory"));
  EXPECT_THAT(config.subscribers[0].types,
              ElementsAre("applivery.device.*", "applivery.inventory_item.>"));
  EXPECT_TRUE(config.subscribers[1].tokens.empty());
  EXPECT_THAT(config.subscribers[1].identities, ElementsAre("audit.internal"));
  EXPECT_THAT(config.subscribers[1].types, ElementsAre(">"));
}

TEST_F(ConfigFileTest, MinimalAppliverySourceGetsDefaults) {
  // Path from the name; Applivery sends no id, so dedup is on the body.
  const ConfigFile config = MustParse(R"(
sources:
  - name: applivery
    normalizer: applivery
    auth: {type: path_token, secret: {env: APPLIVERY_TOKEN}}
  - name: partner
    normalizer: applivery
    auth: {type: path_token, secret: {env: APPLIVERY_TOKEN}}
    dedup: {key: none}
)");
  ASSERT_EQ(config.sources.size(), 2);
  const SourceConfig& source = config.sources[0];
  EXPECT_EQ(source.path, "/webhooks/applivery");
  EXPECT_EQ(source.dedup.key, DedupKey::kBodyHash);
  EXPECT_EQ(source.dedup.window, absl::Minutes(10));
  EXPECT_EQ(source.max_body_bytes, 1 << 20);
  EXPECT_EQ(source.rate_limit.per_second, 0);
  EXPECT_TRUE(source.allowed_cidrs.empty());
  EXPECT_EQ(config.sources[1].dedup.key, DedupKey::kNone);
  EXPECT_TRUE(config.subscribers.empty());
}

TEST_F(ConfigFileTest, NanoMdmSourceAndSuccessStatus) {
  // nanomdm answers 200 unless told otherwise (SuccessStatus), dedups on
  // MicroMDM's event_id or else the body by default, may dedup on the
  // event_id alone, and any source may choose 200 or 202, nothing else.
  const ConfigFile config = MustParse(R"(
sources:
  - name: mdm
    normalizer: nanomdm
    auth: {type: none}
    dedup: {key: event_id}
  - name: relaxed
    normalizer: nanomdm
    auth: {type: none}
    success_status: 202
  - name: applivery
    normalizer: applivery
    auth: {type: none}
    success_status: 200
)");
  ASSERT_EQ(config.sources.size(), 3u);
  EXPECT_EQ(config.sources[0].dedup.key, DedupKey::kEventId);
  EXPECT_FALSE(config.sources[0].success_status.has_value());
  EXPECT_EQ(ingress::SuccessStatus(config.sources[0]), 200);
  EXPECT_EQ(config.sources[1].dedup.key, DedupKey::kEventIdOrBodyHash);
  EXPECT_EQ(config.sources[1].dedup.window, absl::Minutes(10));
  EXPECT_EQ(ingress::SuccessStatus(config.sources[1]), 202);
  EXPECT_EQ(ingress::SuccessStatus(config.sources[2]), 200);
  EXPECT_EQ(ErrorOf(R"(sources:
  - name: a
    normalizer: applivery
    auth: {type: none}
    success_status: 204
)"),
            "sources.yaml:5:21: sources[0].success_status: must be 200 or 202, got 204");
}

TEST_F(ConfigFileTest, JamfProSourceWithHeaderAuth) {
  const ConfigFile config = MustParse(R"(
sources:
  - name: jamf
    normalizer: jamf_pro
    auth: {type: header, header: X-Jamf-Token, secrets: [{env: ACME_SECRET}]}
)");
  ASSERT_EQ(config.sources.size(), 1u);
  EXPECT_EQ(config.sources[0].auth.mode, AuthMode::kHeader);
  EXPECT_EQ(config.sources[0].auth.header, "X-Jamf-Token");
  EXPECT_EQ(config.sources[0].dedup.key, DedupKey::kBodyHash);
  EXPECT_EQ(config.sources[0].dedup.window, absl::Hours(24));
  EXPECT_EQ(ingress::SuccessStatus(config.sources[0]), 200);
  EXPECT_EQ(ErrorOf(R"(sources:
  - name: jamf
    normalizer: jamf_pro
    auth: {type: header, secrets: [{env: ACME_SECRET}]}
)"),
            "sources.yaml:4:11: sources[0].auth.header: missing (auth type header needs it)");
  EXPECT_EQ(ErrorOf(R"(sources:
  - name: jamf
    normalizer: jamf_pro
    auth: {type: header, header: X-T, prefix: "t=", secrets: [{env: ACME_SECRET}]}
)"),
            "sources.yaml:4:39: sources[0].auth.prefix: not used by auth type header");
}

TEST_F(ConfigFileTest, FileSecretLosesOneTrailingNewlineOnly) {
  env_.files["/s/crlf"] = "crlf-t0ken\r\n";
  env_.files["/s/two"] = "two-t0ken\n\n";
  const ConfigFile config = MustParse(R"(
sources:
  - name: a
    normalizer: cloudevents
    auth: {type: bearer, secrets: [{file: /s/crlf}, {file: /s/two}]}
)");
  ASSERT_EQ(config.sources.size(), 1);
  EXPECT_THAT(config.sources[0].auth.secrets,
              ElementsAre("crlf-t0ken", "two-t0ken\n"));
}

TEST_F(ConfigFileTest, UnknownAuthTypeNamesTheChoices) {
  EXPECT_EQ(ErrorOf(R"(sources:
  - name: applivery
    normalizer: applivery
    path: /webhooks/applivery
    allowed_cidrs: [10.0.0.0/8]
    auth:
      type: token
)"),
            "sources.yaml:7:13: sources[0].auth.type: unknown auth type "
            "\"token\" (want none|path_token|basic|bearer|hmac|"
            "standard_webhooks|header)");
}

TEST_F(ConfigFileTest, UnknownEnumValuesNameTheChoices) {
  EXPECT_EQ(ErrorOf(R"(sources:
  - {name: a, normalizer: xml, auth: {type: none}}
)"),
            "sources.yaml:2:27: sources[0].normalizer: unknown normalizer "
            "\"xml\" (want applivery|cloudevents|jamf_pro|json|nanomdm|workspace_one)");
  EXPECT_EQ(ErrorOf(R"(sources:
  - name: a
    normalizer: applivery
    auth: {type: none}
    dedup: {key: event_ids}
)"),
            "sources.yaml:5:18: sources[0].dedup.key: unknown dedup key "
            "\"event_ids\" (want none|idempotency_key|webhook_id|body_hash|"
            "event_id|event_id_or_body_hash)");
  EXPECT_EQ(ErrorOf(R"(sources:
  - name: a
    normalizer: applivery
    auth: {type: none}
    dedup: {key: event_id}
)"),
            "sources.yaml:5:12: sources[0].dedup.key: event_id needs an event "
            "id: normalizer cloudevents, nanomdm (MicroMDM's event_id), or json "
            "with id_pointer");
  EXPECT_EQ(ErrorOf(R"(sources:
  - name: a
    normalizer: applivery
    auth: {type: hmac, secret: {env: ACME_SECRET}, header: X-Sig, encoding: b64}
)"),
            "sources.yaml:4:77: sources[0].auth.encoding: unknown encoding "
            "\"b64\" (want hex|base64)");
}

TEST_F(ConfigFileTest, UnknownFieldsAreErrors) {
  EXPECT_EQ(ErrorOf("source: []\n"),
            "sources.yaml:1:1: unknown field \"source\" (want "
            "sources|subscribers)");
  EXPECT_EQ(ErrorOf(R"(sources:
  - name: a
    normalizer: applivery
    auth: {type: none}
    max_body: 100
)"),
            "sources.yaml:5:5: sources[0]: unknown field \"max_body\" (want "
            "name|path|normalizer|json|auth|allowed_cidrs|max_body_bytes|"
            "rate_limit|dedup|success_status)");
  EXPECT_EQ(ErrorOf(R"(subscribers:
  - name: a
    identities: [a]
    types: [">"]
    type: [x]
)"),
            "sources.yaml:5:5: subscribers[0]: unknown field \"type\" (want "
            "name|tokens|identities|types|publish)");
}

TEST_F(ConfigFileTest, FieldGivenTwiceIsAnError) {
  EXPECT_EQ(ErrorOf(R"(sources:
  - name: a
    normalizer: applivery
    name: b
    auth: {type: none}
)"),
            "sources.yaml:4:5: sources[0].name: given twice");
}

TEST_F(ConfigFileTest, MissingRequiredFieldsAreNamed) {
  EXPECT_EQ(ErrorOf(R"(sources:
  - normalizer: applivery
    auth: {type: none}
)"),
            "sources.yaml:2:5: sources[0].name: missing");
  EXPECT_EQ(ErrorOf(R"(sources:
  - name: a
    auth: {type: none}
)"),
            "sources.yaml:2:5: sources[0].normalizer: missing (want "
            "applivery|cloudevents|jamf_pro|json|nanomdm|workspace_one)");
  EXPECT_EQ(ErrorOf(R"(sources:
  - name: a
    normalizer: applivery
)"),
            "sources.yaml:2:5: sources[0].auth: missing (write {type: none} "
            "for no authentication)");
  EXPECT_EQ(ErrorOf(R"(sources:
  - name: a
    normalizer: applivery
    auth: {secret: {env: APPLIVERY_TOKEN}}
)"),
            "sources.yaml:4:11: sources[0].auth.type: missing (want "
            "none|path_token|basic|bearer|hmac|standard_webhooks|header)");
  EXPECT_EQ(ErrorOf(R"(sources:
  - name: a
    normalizer: applivery
    auth: {type: path_token}
)"),
            "sources.yaml:4:11: sources[0].auth.secrets: missing (auth type "
            "path_token needs secret or secrets)");
  EXPECT_EQ(ErrorOf(R"(sources:
  - name: a
    normalizer: applivery
    auth: {type: basic, secret: {env: ACME_SECRET}}
)"),
            "sources.yaml:4:11: sources[0].auth.username: missing (auth type "
            "basic needs it)");
  EXPECT_EQ(ErrorOf(R"(sources:
  - name: a
    normalizer: applivery
    auth: {type: hmac, secret: {env: ACME_SECRET}}
)"),
            "sources.yaml:4:11: sources[0].auth.header: missing (auth type "
            "hmac needs it)");
}

TEST_F(ConfigFileTest, FieldsTheAuthTypeDoesNotUseAreErrors) {
  EXPECT_EQ(ErrorOf(R"(sources:
  - name: a
    normalizer: applivery
    auth:
      type: bearer
      secret: {env: ACME_SECRET}
      username: someone
)"),
            "sources.yaml:7:7: sources[0].auth.username: not used by auth "
            "type bearer");
  EXPECT_EQ(ErrorOf(R"(sources:
  - name: a
    normalizer: applivery
    auth: {type: none, secret: {env: ACME_SECRET}}
)"),
            "sources.yaml:4:24: sources[0].auth.secret: not used by auth type "
            "none");
  EXPECT_EQ(ErrorOf(R"(sources:
  - name: a
    normalizer: applivery
    auth:
      type: path_token
      secret: {env: ACME_SECRET}
      secrets: [{env: APPLIVERY_TOKEN}]
)"),
            "sources.yaml:6:7: sources[0].auth.secret: give secret or "
            "secrets, not both");
}

TEST_F(ConfigFileTest, LiteralSecretIsRefusedWithoutEchoingIt) {
  // Secrets belong in the environment or a mounted file, never in a ConfigMap.
  const std::string message = ErrorOf(R"(sources:
  - name: a
    normalizer: applivery
    auth:
      type: path_token
      secrets: [{env: APPLIVERY_TOKEN}, "hunter2"]
)");
  EXPECT_EQ(message,
            "sources.yaml:6:41: sources[0].auth.secrets[1]: a literal secret "
            "is not allowed; write {env: NAME} or {file: PATH}");
  EXPECT_THAT(ErrorOf(R"(subscribers:
  - name: a
    tokens: hunter2
    types: [">"]
)"),
              AllOf(HasSubstr("subscribers[0].tokens: want a list"),
                    Not(HasSubstr("hunter2"))));
  EXPECT_EQ(ErrorOf(R"(sources:
  - name: a
    normalizer: applivery
    auth: {type: bearer, secret: {value: hunter2}}
)"),
            "sources.yaml:4:35: sources[0].auth.secret: unknown field "
            "\"value\" (want env|file)");
  EXPECT_EQ(ErrorOf(R"(sources:
  - name: a
    normalizer: applivery
    auth: {type: bearer, secret: {env: A, file: /b}}
)"),
            "sources.yaml:4:34: sources[0].auth.secret: want exactly one of "
            "env or file");
}

TEST_F(ConfigFileTest, UnresolvableSecretNamesItsSourceNotAValue) {
  EXPECT_EQ(ErrorOf(R"(sources:
  - name: a
    normalizer: applivery
    auth: {type: path_token, secret: {env: MISSING_TOKEN}}
)"),
            "sources.yaml:4:44: sources[0].auth.secret.env: environment "
            "variable MISSING_TOKEN is not set");
  env_.env["EMPTY_TOKEN"] = "";
  EXPECT_EQ(ErrorOf(R"(sources:
  - name: a
    normalizer: applivery
    auth: {type: path_token, secret: {env: EMPTY_TOKEN}}
)"),
            "sources.yaml:4:44: sources[0].auth.secret.env: environment "
            "variable EMPTY_TOKEN is empty");
  EXPECT_EQ(ErrorOf(R"(sources:
  - name: a
    normalizer: applivery
    auth:
      type: path_token
      secrets: [{file: /etc/hookfan/old-token}, {file: /etc/hookfan/gone}]
)"),
            "sources.yaml:6:56: sources[0].auth.secrets[1].file: cannot read "
            "secret file \"/etc/hookfan/gone\": No such file or directory");
  env_.files["/etc/hookfan/blank"] = "\n";
  EXPECT_EQ(ErrorOf(R"(subscribers:
  - name: a
    tokens: [{file: /etc/hookfan/blank}]
    types: [">"]
)"),
            "sources.yaml:3:21: subscribers[0].tokens[0].file: secret file "
            "\"/etc/hookfan/blank\" is empty");
}

TEST_F(ConfigFileTest, AuthThatCannotWorkIsRefusedAtItsPlace) {
  // SenderAuth::Create's own checks, located.
  env_.env["BAD_WHSEC"] = "whsec_not*base64";
  EXPECT_EQ(ErrorOf(R"(sources:
  - name: a
    normalizer: cloudevents
    auth: {type: standard_webhooks, secret: {env: BAD_WHSEC}}
)"),
            "sources.yaml:4:11: sources[0].auth: standard_webhooks auth "
            "secret #1 is not base64 after the optional \"whsec_\" prefix");
  EXPECT_EQ(ErrorOf(R"(sources:
  - name: a
    normalizer: applivery
    auth: {type: basic, username: "a:b", secret: {env: ACME_SECRET}}
)"),
            "sources.yaml:4:11: sources[0].auth: basic auth username may not "
            "contain \":\"");
}

TEST_F(ConfigFileTest, MalformedValuesAreRefused) {
  auto source_with = [](const std::string& line) {
    return "sources:\n  - name: a\n    normalizer: applivery\n"
           "    auth: {type: none}\n    " +
           line + "\n";
  };
  EXPECT_EQ(ErrorOf(source_with("allowed_cidrs: [10.0.0.0/8, 10.0.0.1/8]")),
            "sources.yaml:5:33: sources[0].allowed_cidrs[1]: invalid CIDR "
            "\"10.0.0.1/8\": address has bits set beyond the prefix; did you "
            "mean 10.0.0.0/8?");
  EXPECT_EQ(ErrorOf(source_with("allowed_cidrs: 10.0.0.0/8")),
            "sources.yaml:5:20: sources[0].allowed_cidrs: want a list");
  EXPECT_EQ(ErrorOf(source_with("max_body_bytes: 1MB")),
            "sources.yaml:5:21: sources[0].max_body_bytes: want a positive "
            "integer");
  EXPECT_EQ(ErrorOf(source_with("max_body_bytes: 0")),
            "sources.yaml:5:21: sources[0].max_body_bytes: want a positive "
            "integer");
  EXPECT_EQ(ErrorOf(source_with("rate_limit: {per_second: -1}")),
            "sources.yaml:5:30: sources[0].rate_limit.per_second: want a "
            "number, 0 or more");
  EXPECT_EQ(ErrorOf(source_with("rate_limit: {burst: 10}")),
            "sources.yaml:5:18: sources[0].rate_limit.burst: needs per_second");
  EXPECT_EQ(ErrorOf(source_with("rate_limit: {per_second: 5, burst: 0.5}")),
            "sources.yaml:5:40: sources[0].rate_limit.burst: want 0 (default) "
            "or at least 1");
  EXPECT_EQ(ErrorOf(source_with("dedup: {window: 5 minutes}")),
            "sources.yaml:5:21: sources[0].dedup.window: invalid duration "
            "\"5 minutes\" (want e.g. 30s, 5m or 24h)");
  EXPECT_EQ(ErrorOf(source_with("dedup: {window: -1h}")),
            "sources.yaml:5:21: sources[0].dedup.window: want a positive "
            "duration, got \"-1h\"");
  EXPECT_EQ(ErrorOf(source_with("dedup: {key: none, window: 1h}")),
            "sources.yaml:5:24: sources[0].dedup.window: not used with dedup "
            "key none");
  EXPECT_EQ(ErrorOf(source_with("json: {type_pointer: /type}")),
            "sources.yaml:5:5: sources[0].json: only for normalizer json");
  EXPECT_EQ(ErrorOf(source_with("max_body_bytes:")),
            "sources.yaml:5:5: sources[0].max_body_bytes: no value");
  EXPECT_EQ(ErrorOf(source_with("rate_limit: {per_second: ~}")),
            "sources.yaml:5:18: sources[0].rate_limit.per_second: no value");
  EXPECT_EQ(ErrorOf("sources: {name: a}\n"),
            "sources.yaml:1:10: sources: want a list");
}

TEST_F(ConfigFileTest, JsonNormalizerNeedsExactlyOneTypeSource) {
  auto json_source = [](const std::string& json) {
    return "sources:\n  - name: a\n    normalizer: json\n"
           "    auth: {type: none}\n    json: " +
           json + "\n";
  };
  EXPECT_EQ(
      ErrorOf(
          "sources:\n  - {name: a, normalizer: json, auth: {type: none}}\n"),
      "sources.yaml:2:5: sources[0].json: missing (normalizer json "
      "needs type_pointer or type_header)");
  // The rules are the JSON normalizer's (CheckJsonNormalizerConfig and its
  // per-field checks); the parser only points at the field.
  EXPECT_EQ(ErrorOf(json_source("{type_pointer: /t, type_header: X-Type}")),
            "sources.yaml:5:11: sources[0].json: set exactly one of "
            "type_pointer and type_header");
  EXPECT_EQ(ErrorOf(json_source("{type_prefix: acme.}")),
            "sources.yaml:5:11: sources[0].json: set exactly one of "
            "type_pointer and type_header");
  EXPECT_EQ(ErrorOf(json_source("{type_pointer: event.type}")),
            "sources.yaml:5:26: sources[0].json.type_pointer: \"event.type\" is "
            "not a JSON pointer: JSON pointer must be empty or begin with '/' - "
            "was: 'event.type'");
  EXPECT_EQ(ErrorOf(json_source("{type_header: \"X Type\"}")),
            "sources.yaml:5:25: sources[0].json.type_header: \"X Type\" is not "
            "an HTTP field name");
  EXPECT_EQ(ErrorOf(json_source("{type_pointer: /t, type_prefix: \"a.*.\"}")),
            "sources.yaml:5:43: sources[0].json.type_prefix: \"a.*.\" is not the "
            "start of a valid event type: \"*\" and \">\" are subscription "
            "wildcards, not allowed in a type");
  EXPECT_EQ(ErrorOf(json_source("{type_pointer: /t, type_prefix: Acme.}")),
            "sources.yaml:5:43: sources[0].json.type_prefix: \"Acme.\" is not the "
            "start of a valid event type: 'A' at byte 0 is not allowed: tokens are "
            "a-z 0-9 _ - (types are lowercase)");
}

TEST_F(ConfigFileTest, NamesAndPathsAreValidAndUnique) {
  EXPECT_EQ(ErrorOf(R"(sources:
  - {name: Applivery, normalizer: applivery, auth: {type: none}}
)"),
            "sources.yaml:2:12: sources[0].name: invalid name \"Applivery\" "
            "(want [a-z0-9_-]+)");
  EXPECT_EQ(ErrorOf(R"(sources:
  - {name: a, normalizer: applivery, auth: {type: none}}
  - {name: a, normalizer: cloudevents, auth: {type: none}}
)"),
            "sources.yaml:3:12: sources[1].name: duplicate name \"a\" (also "
            "sources[0])");
  EXPECT_EQ(ErrorOf(R"(sources:
  - {name: a, normalizer: applivery, auth: {type: none}}
  - {name: b, path: /webhooks/a, normalizer: cloudevents, auth: {type: none}}
)"),
            "sources.yaml:3:21: sources[1].path: duplicate path "
            "\"/webhooks/a\" (also sources[0])");
  EXPECT_EQ(ErrorOf(R"(sources:
  - {name: a, normalizer: applivery, auth: {type: none}}
  - {name: b, path: /webhooks/a/b, normalizer: cloudevents, auth: {type: none}}
)"),
            "sources.yaml:3:21: sources[1].path: path \"/webhooks/a/b\" "
            "overlaps the path of sources[0] (\"/webhooks/a\")");
  EXPECT_EQ(ErrorOf(R"(sources:
  - {name: a, path: /hooks/a/, normalizer: applivery, auth: {type: none}}
)"),
            "sources.yaml:2:21: sources[0].path: invalid path \"/hooks/a/\" "
            "(want /segment/...; letters, digits, \"-\", \".\", \"_\", \"~\")");
  EXPECT_EQ(ErrorOf(R"(sources:
  - {name: a, path: /hooks/../metrics, normalizer: applivery, auth: {type: none}}
)"),
            "sources.yaml:2:21: sources[0].path: invalid path "
            "\"/hooks/../metrics\" (want /segment/...; letters, digits, \"-\", "
            "\".\", \"_\", \"~\")");
  EXPECT_EQ(ErrorOf(R"(sources:
  - {name: a, path: /metrics, normalizer: applivery, auth: {type: none}}
)"),
            "sources.yaml:2:21: sources[0].path: path \"/metrics\" is "
            "reserved by the server");
}

TEST_F(ConfigFileTest, SubscriberGrantsAreChecked) {
  EXPECT_EQ(ErrorOf(R"(subscribers:
  - name: inventory
    tokens: [{env: INVENTORY_TOKEN}]
    types: ["applivery.device*"]
)"),
            "sources.yaml:4:13: subscribers[0].types[0]: invalid type pattern "
            "\"applivery.device*\": \"*\" must be a whole token");
  EXPECT_EQ(ErrorOf(R"(subscribers:
  - name: inventory
    tokens: [{env: INVENTORY_TOKEN}]
)"),
            "sources.yaml:2:5: subscribers[0].types: missing (write [\">\"] "
            "for every type)");
  EXPECT_EQ(ErrorOf(R"(subscribers:
  - name: inventory
    tokens: [{env: INVENTORY_TOKEN}]
    types: []
)"),
            "sources.yaml:4:12: subscribers[0].types: empty (write [\">\"] "
            "for every type)");
  EXPECT_EQ(ErrorOf(R"(subscribers:
  - name: inventory
    types: [">"]
)"),
            "sources.yaml:2:5: subscribers[0]: needs tokens or identities");
  EXPECT_EQ(ErrorOf(R"(subscribers:
  - {name: inventory, tokens: [{env: INVENTORY_TOKEN}], types: [">"]}
  - {name: billing, tokens: [{env: BILLING_TOKEN}, {env: INVENTORY_TOKEN}], types: [">"]}
)"),
            "sources.yaml:3:52: subscribers[1].tokens[1]: same token as "
            "subscribers[0]");
  EXPECT_EQ(ErrorOf(R"(subscribers:
  - {name: inventory, identities: [spiffe://x/inv], types: [">"]}
  - {name: billing, identities: [spiffe://x/bill, spiffe://x/inv], types: [">"]}
)"),
            "sources.yaml:3:51: subscribers[1].identities[1]: identity "
            "\"spiffe://x/inv\" also belongs to subscribers[0]");
  EXPECT_EQ(ErrorOf(R"(subscribers:
  - {name: inventory, identities: [a], types: [">"]}
  - {name: inventory, identities: [b], types: [">"]}
)"),
            "sources.yaml:3:12: subscribers[1].name: duplicate name "
            "\"inventory\" (also subscribers[0])");
}

TEST_F(ConfigFileTest, InvalidYamlAndEmptyFileAreRefused) {
  EXPECT_EQ(ErrorOf("sources: [a, b\n"),
            "sources.yaml:2:1: invalid YAML: end of sequence flow not found");
  EXPECT_EQ(ErrorOf(""),
            "sources.yaml: the file is empty (want sources and/or "
            "subscribers)");
  EXPECT_EQ(ErrorOf("- a\n"), "sources.yaml:1:1: want a mapping");
}

TEST_F(ConfigFileTest, LoadReadsTheFileThroughTheEnv) {
  env_.files["/etc/hookfan/sources.yaml"] =
      "sources:\n  - {name: a, normalizer: cloudevents, auth: {type: none}}\n";
  absl::StatusOr<ConfigFile> config =
      LoadConfigFile("/etc/hookfan/sources.yaml", env_);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->sources.size(), 1);

  EXPECT_EQ(LoadConfigFile("/etc/hookfan/missing.yaml", env_).status(),
            absl::InvalidArgumentError(
                "cannot read config file \"/etc/hookfan/missing.yaml\": No "
                "such file or directory"));
}

TEST_F(ConfigFileTest, LoadWithTheRealFileSystem) {
  // The real SecretEnv reads the config and a secret file from disk.
  const std::string dir = ::testing::TempDir();
  const std::string secret_path = dir + "/hookfan_config_test_secret";
  const std::string config_path = dir + "/hookfan_config_test.yaml";
  std::ofstream(secret_path) << "disk-t0ken\n";
  std::ofstream(config_path)
      << "sources:\n  - name: a\n    normalizer: applivery\n"
      << "    auth: {type: path_token, secret: {file: " << secret_path
      << "}}\n";
  absl::StatusOr<ConfigFile> config = LoadConfigFile(config_path);
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_EQ(config->sources.size(), 1);
  EXPECT_THAT(config->sources[0].auth.secrets, ElementsAre("disk-t0ken"));

  EXPECT_EQ(LoadConfigFile(dir + "/hookfan_no_such_file.yaml").status(),
            absl::InvalidArgumentError(
                "cannot read config file \"" + dir +
                "/hookfan_no_such_file.yaml\": No such file or directory"));
  std::remove(secret_path.c_str());
  std::remove(config_path.c_str());
}

}  // namespace
}  // namespace hookfan::server
