#include "server/config_file.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <initializer_list>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/status_macros.h"
#include "core/filter.h"
#include "ingress/cidr.h"
#include "ingress/json_normalizer.h"
#include "ingress/sender_auth.h"
#include "server/yaml_reader.h"

namespace hookfan::server {
namespace {

using ingress::AuthConfig;
using ingress::AuthMode;
using ingress::DedupKey;
using ingress::SourceConfig;

// Paths the server answers itself; no source may take them.
constexpr absl::string_view kReservedPaths[] = {"/healthz", "/readyz",
                                                "/metrics"};


constexpr EnumName<AuthMode> kAuthModes[] = {
    {"none", AuthMode::kNone},
    {"path_token", AuthMode::kPathToken},
    {"basic", AuthMode::kBasic},
    {"bearer", AuthMode::kBearer},
    {"hmac", AuthMode::kHmac},
    {"standard_webhooks", AuthMode::kStandardWebhooks},
    {"header", AuthMode::kHeader},
};
constexpr EnumName<AuthConfig::Encoding> kEncodings[] = {
    {"hex", AuthConfig::Encoding::kHex},
    {"base64", AuthConfig::Encoding::kBase64},
};
constexpr EnumName<DedupKey> kDedupKeys[] = {
    {"none", DedupKey::kNone},
    {"idempotency_key", DedupKey::kIdempotencyKey},
    {"webhook_id", DedupKey::kWebhookId},
    {"body_hash", DedupKey::kBodyHash},
    {"event_id", DedupKey::kEventId},
    {"event_id_or_body_hash", DedupKey::kEventIdOrBodyHash},
};

// Names of sources and subscribers: [a-z0-9_-]+.
bool IsValidName(absl::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    if (!absl::ascii_islower(c) && !absl::ascii_isdigit(c) && c != '_' &&
        c != '-') {
      return false;
    }
  }
  return true;
}

// "/a/b": non-empty segments of URL-unreserved characters, not "." or "..".
bool IsValidPath(absl::string_view path) {
  if (path.size() < 2 || path[0] != '/' || path.back() == '/') return false;
  size_t segment_start = 1;
  for (size_t i = 1; i <= path.size(); ++i) {
    if (i == path.size() || path[i] == '/') {
      const absl::string_view segment =
          path.substr(segment_start, i - segment_start);
      if (segment.empty() || segment == "." || segment == "..") return false;
      segment_start = i + 1;
    } else if (!absl::ascii_isalnum(path[i]) &&
               !absl::StrContains("-._~", path[i])) {
      return false;
    }
  }
  return true;
}

absl::string_view ModeName(AuthMode mode) {
  const std::string_view name = ingress::AuthModeName(mode);
  return {name.data(), name.size()};
}



// Parser reads one config file: the rules of sources and subscribers over
// YamlReader's generic field reading. Every method checking a node takes
// the node's field path ("sources[0].auth") for its messages.
class Parser : public YamlReader {
 public:
  using YamlReader::YamlReader;

  absl::StatusOr<ConfigFile> Parse(absl::string_view yaml) {
    YAML::Node root;
    try {
      root = YAML::Load(std::string(yaml));
    } catch (const YAML::Exception& e) {
      return At(e.mark, "", absl::StrCat("invalid YAML: ", e.msg));
    }
    try {
      return ParseRoot(root);
    } catch (const YAML::Exception& e) {  // not expected: every node is checked
      return At(e.mark, "", e.msg);
    }
  }

 private:
  absl::StatusOr<std::string> Name(const YAML::Node& node,
                                   absl::string_view path) const {
    ASSIGN_OR_RETURN(std::string name, String(node, path));
    if (!IsValidName(name)) {
      return Error(
          node, path,
          absl::StrCat("invalid name ", Quote(name), " (want [a-z0-9_-]+)"));
    }
    return name;
  }

  absl::StatusOr<ConfigFile> ParseRoot(const YAML::Node& root) {
    if (root.IsNull()) {
      return At(YAML::Mark::null_mark(), "",
                "the file is empty (want sources and/or subscribers)");
    }
    ASSIGN_OR_RETURN(const Fields fields,
                     ReadFields(root, "", {"sources", "subscribers"}));
    ConfigFile config;
    if (const Field* f = fields.Find("sources")) {
      ASSIGN_OR_RETURN(config.sources, Sources(f->value));
    }
    if (const Field* f = fields.Find("subscribers")) {
      ASSIGN_OR_RETURN(config.subscribers, Subscribers(f->value));
    }
    return config;
  }

  absl::StatusOr<std::vector<SourceConfig>> Sources(const YAML::Node& node) {
    ASSIGN_OR_RETURN(const std::vector<YAML::Node> items,
                     List(node, "sources"));
    std::vector<SourceConfig> sources;
    for (size_t i = 0; i < items.size(); ++i) {
      const std::string path = absl::StrCat("sources[", i, "]");
      YAML::Node path_node = items[i];
      ASSIGN_OR_RETURN(SourceConfig source, Source(items[i], path, &path_node));
      for (size_t j = 0; j < sources.size(); ++j) {
        const std::string other = absl::StrCat("sources[", j, "]");
        if (sources[j].name == source.name) {
          return Error(items[i]["name"], path + ".name",
                       absl::StrCat("duplicate name ", Quote(source.name),
                                    " (also ", other, ")"));
        }
        if (sources[j].path == source.path) {
          return Error(path_node, path + ".path",
                       absl::StrCat("duplicate path ", Quote(source.path),
                                    " (also ", other, ")"));
        }
        const auto under = [](absl::string_view a, absl::string_view b) {
          return absl::StartsWith(a, b) && a[b.size()] == '/';
        };
        if (under(source.path, sources[j].path) ||
            under(sources[j].path, source.path)) {
          return Error(path_node, path + ".path",
                       absl::StrCat("path ", Quote(source.path),
                                    " overlaps the path of ", other, " (",
                                    Quote(sources[j].path), ")"));
        }
      }
      sources.push_back(std::move(source));
    }
    return sources;
  }

  absl::StatusOr<SourceConfig> Source(const YAML::Node& node,
                                      absl::string_view path,
                                      YAML::Node* path_node) const {
    ASSIGN_OR_RETURN(
        const Fields fields,
        ReadFields(node, path,
                   {"name", "path", "normalizer", "json", "auth",
                    "allowed_cidrs", "max_body_bytes", "rate_limit", "dedup",
                    "success_status"}));
    const auto sub = [&](absl::string_view name) {
      return absl::StrCat(path, ".", name);
    };
    SourceConfig source;

    const Field* name = fields.Find("name");
    if (name == nullptr) return Error(node, sub("name"), "missing");
    ASSIGN_OR_RETURN(source.name, Name(name->value, sub("name")));

    if (const Field* f = fields.Find("path")) {
      ASSIGN_OR_RETURN(source.path, String(f->value, sub("path")));
      if (!IsValidPath(source.path)) {
        return Error(f->value, sub("path"),
                     absl::StrCat("invalid path ", Quote(source.path),
                                  " (want /segment/...; letters, digits, "
                                  "\"-\", \".\", \"_\", \"~\")"));
      }
      *path_node = f->value;
    } else {
      source.path = absl::StrCat("/webhooks/", source.name);
    }
    for (absl::string_view reserved : kReservedPaths) {
      if (source.path == reserved ||
          absl::StartsWith(source.path, absl::StrCat(reserved, "/"))) {
        return Error(*path_node, sub("path"),
                     absl::StrCat("path ", Quote(source.path),
                                  " is reserved by the server"));
      }
    }

    const Field* normalizer = fields.Find("normalizer");
    if (normalizer == nullptr) {
      return Error(node, sub("normalizer"),
                   absl::StrCat("missing (want ", ingress::NormalizerKindNames(), ")"));
    }
    ASSIGN_OR_RETURN(source.normalizer, String(normalizer->value, sub("normalizer")));
    if (ingress::FindNormalizerKind(source.normalizer) == nullptr) {
      return Error(normalizer->value, sub("normalizer"),
                   absl::StrCat("unknown normalizer ", Quote(source.normalizer), " (want ",
                                ingress::NormalizerKindNames(), ")"));
    }

    const Field* json = fields.Find("json");
    if (source.normalizer == ingress::kJsonNormalizer.name) {
      if (json == nullptr) {
        return Error(node, sub("json"),
                     "missing (normalizer json needs type_pointer or "
                     "type_header)");
      }
      ASSIGN_OR_RETURN(source.json, Json(json->value, sub("json")));
      if (absl::Status s = ingress::CheckJsonNormalizerConfig(source.json); !s.ok()) {
        return Error(json->value, sub("json"), s.message());
      }
    } else {
      RETURN_IF_ERROR(Unused(fields, path, "json", "only for normalizer json"));
    }

    const Field* auth = fields.Find("auth");
    if (auth == nullptr) {
      return Error(node, sub("auth"),
                   "missing (write {type: none} for no authentication)");
    }
    ASSIGN_OR_RETURN(source.auth, Auth(auth->value, sub("auth")));

    if (const Field* f = fields.Find("allowed_cidrs")) {
      ASSIGN_OR_RETURN(const std::vector<YAML::Node> items,
                       List(f->value, sub("allowed_cidrs")));
      for (size_t i = 0; i < items.size(); ++i) {
        const std::string item_path =
            absl::StrCat(path, ".allowed_cidrs[", i, "]");
        ASSIGN_OR_RETURN(const std::string text, String(items[i], item_path));
        absl::StatusOr<ingress::Cidr> cidr = ingress::Cidr::Parse(text);
        if (!cidr.ok()) {
          return Error(items[i], item_path, cidr.status().message());
        }
        source.allowed_cidrs.push_back(*cidr);
      }
    }

    if (const Field* f = fields.Find("max_body_bytes")) {
      ASSIGN_OR_RETURN(source.max_body_bytes,
                       PositiveInteger(f->value, sub("max_body_bytes")));
    }
    if (const Field* f = fields.Find("rate_limit")) {
      ASSIGN_OR_RETURN(source.rate_limit,
                       RateLimit(f->value, sub("rate_limit")));
    }
    source.dedup = DefaultDedup(source);
    if (const Field* f = fields.Find("dedup")) {
      RETURN_IF_ERROR(Dedup(f->value, sub("dedup"), &source.dedup));
      if (source.dedup.key == DedupKey::kEventId && !ingress::HasEventId(source)) {
        return Error(f->value, sub("dedup.key"),
                     "event_id needs an event id: normalizer cloudevents, nanomdm "
                     "(MicroMDM's event_id), or json with id_pointer");
      }
    }
    if (const Field* f = fields.Find("success_status")) {
      ASSIGN_OR_RETURN(const uint64_t status,
                       PositiveInteger(f->value, sub("success_status")));
      if (status != 200 && status != 202) {
        return Error(f->value, sub("success_status"),
                     absl::StrCat("must be 200 or 202, got ", status));
      }
      source.success_status = static_cast<int>(status);
    }
    return source;
  }

  absl::StatusOr<ingress::JsonNormalizerConfig> Json(
      const YAML::Node& node, absl::string_view path) const {
    ASSIGN_OR_RETURN(const Fields fields,
                     ReadFields(node, path,
                                {"type_pointer", "type_header", "type_prefix",
                                 "id_pointer"}));
    ingress::JsonNormalizerConfig json;
    // Reads field `name` into *out if present; `check` is the normalizer's
    // own rule for it (ingress/json_normalizer.h), its error put at the
    // field. That exactly one of the type fields is set, and the rest,
    // CheckJsonNormalizerConfig says (Source).
    const auto read = [&](absl::string_view name, const auto& check,
                          std::string* out) -> absl::Status {
      const Field* f = fields.Find(name);
      if (f == nullptr) return absl::OkStatus();
      const std::string field_path = absl::StrCat(path, ".", name);
      ASSIGN_OR_RETURN(*out, String(f->value, field_path));
      if (absl::Status s = check(*out); !s.ok()) return Error(f->value, field_path, s.message());
      return absl::OkStatus();
    };
    RETURN_IF_ERROR(read("type_pointer", ingress::CheckJsonPointer, &json.type_pointer));
    RETURN_IF_ERROR(read("type_header", ingress::CheckTypeHeader, &json.type_header));
    RETURN_IF_ERROR(read("type_prefix", ingress::CheckTypePrefix, &json.type_prefix));
    RETURN_IF_ERROR(read("id_pointer", ingress::CheckJsonPointer, &json.id_pointer));
    return json;
  }

  absl::StatusOr<AuthConfig> Auth(const YAML::Node& node,
                                  absl::string_view path) const {
    ASSIGN_OR_RETURN(const Fields fields,
                     ReadFields(node, path,
                                {"type", "secret", "secrets", "username",
                                 "header", "encoding", "prefix", "tolerance"}));
    const auto sub = [&](absl::string_view name) {
      return absl::StrCat(path, ".", name);
    };
    AuthConfig auth;
    const Field* type = fields.Find("type");
    if (type == nullptr) {
      return Error(
          node, sub("type"),
          absl::StrCat("missing (want ", EnumChoices(kAuthModes), ")"));
    }
    ASSIGN_OR_RETURN(auth.mode,
                     Enum(type->value, sub("type"), "auth type", kAuthModes));
    const std::string unused =
        absl::StrCat("not used by auth type ", ModeName(auth.mode));
    // Which fields each mode takes besides type.
    const auto takes = [&](absl::string_view field) {
      switch (auth.mode) {
        case AuthMode::kNone:
          return false;
        case AuthMode::kPathToken:
        case AuthMode::kBearer:
          return field == "secret" || field == "secrets";
        case AuthMode::kBasic:
          return field == "secret" || field == "secrets" || field == "username";
        case AuthMode::kHmac:
          return field == "secret" || field == "secrets" || field == "header" ||
                 field == "encoding" || field == "prefix";
        case AuthMode::kStandardWebhooks:
          return field == "secret" || field == "secrets" ||
                 field == "tolerance";
        case AuthMode::kHeader:
          return field == "secret" || field == "secrets" || field == "header";
      }
      return false;
    };
    for (absl::string_view field : {"secret", "secrets", "username", "header",
                                    "encoding", "prefix", "tolerance"}) {
      if (!takes(field)) RETURN_IF_ERROR(Unused(fields, path, field, unused));
    }

    const Field* secret = fields.Find("secret");
    const Field* secrets = fields.Find("secrets");
    if (secret != nullptr && secrets != nullptr) {
      return Error(secret->key, sub("secret"),
                   "give secret or secrets, not both");
    }
    if (secret != nullptr) {
      ASSIGN_OR_RETURN(std::string value, Secret(secret->value, sub("secret")));
      auth.secrets.push_back(std::move(value));
    } else if (secrets != nullptr) {
      ASSIGN_OR_RETURN(auth.secrets,
                       SecretList(secrets->value, sub("secrets")));
    } else if (auth.mode != AuthMode::kNone) {
      return Error(node, sub("secrets"),
                   absl::StrCat("missing (auth type ", ModeName(auth.mode),
                                " needs secret or secrets)"));
    }

    if (auth.mode == AuthMode::kBasic) {
      const Field* f = fields.Find("username");
      if (f == nullptr) {
        return Error(node, sub("username"),
                     "missing (auth type basic needs it)");
      }
      ASSIGN_OR_RETURN(auth.username, String(f->value, sub("username")));
    }
    if (auth.mode == AuthMode::kHmac || auth.mode == AuthMode::kHeader) {
      const Field* f = fields.Find("header");
      if (f == nullptr) {
        return Error(node, sub("header"),
                     absl::StrCat("missing (auth type ", ModeName(auth.mode), " needs it)"));
      }
      ASSIGN_OR_RETURN(auth.header, String(f->value, sub("header")));
      if (!ingress::IsHttpFieldName(auth.header)) {
        return Error(f->value, sub("header"),
                     absl::StrCat(Quote(auth.header), " is not an HTTP field name"));
      }
    }
    if (auth.mode == AuthMode::kHmac) {
      if (const Field* e = fields.Find("encoding")) {
        ASSIGN_OR_RETURN(auth.encoding, Enum(e->value, sub("encoding"),
                                             "encoding", kEncodings));
      }
      if (const Field* p = fields.Find("prefix")) {
        ASSIGN_OR_RETURN(auth.prefix, String(p->value, sub("prefix")));
      }
    }
    if (const Field* f = fields.Find("tolerance")) {
      ASSIGN_OR_RETURN(auth.tolerance,
                       PositiveDuration(f->value, sub("tolerance")));
    }
    // What the parser does not check itself (a username with ":", a
    // Standard Webhooks secret that is not base64) SenderAuth refuses.
    if (absl::Status s =
            ingress::SenderAuth::Create(auth, Clock::Real()).status();
        !s.ok()) {
      return Error(node, path, s.message());
    }
    return auth;
  }

  absl::StatusOr<ingress::RateLimitConfig> RateLimit(
      const YAML::Node& node, absl::string_view path) const {
    ASSIGN_OR_RETURN(const Fields fields,
                     ReadFields(node, path, {"per_second", "burst"}));
    ingress::RateLimitConfig limit;
    if (const Field* f = fields.Find("per_second")) {
      ASSIGN_OR_RETURN(
          limit.per_second,
          NonNegativeNumber(f->value, absl::StrCat(path, ".per_second")));
    }
    if (const Field* f = fields.Find("burst")) {
      const std::string burst_path = absl::StrCat(path, ".burst");
      ASSIGN_OR_RETURN(limit.burst, NonNegativeNumber(f->value, burst_path));
      if (limit.per_second == 0) {
        return Error(f->key, burst_path, "needs per_second");
      }
      if (limit.burst > 0 && limit.burst < 1) {
        return Error(f->value, burst_path, "want 0 (default) or at least 1");
      }
    }
    return limit;
  }

  absl::Status Dedup(const YAML::Node& node, absl::string_view path,
                     ingress::DedupConfig* dedup) const {
    ASSIGN_OR_RETURN(const Fields fields,
                     ReadFields(node, path, {"key", "window"}));
    if (const Field* f = fields.Find("key")) {
      ASSIGN_OR_RETURN(dedup->key, Enum(f->value, absl::StrCat(path, ".key"),
                                        "dedup key", kDedupKeys));
    }
    if (const Field* f = fields.Find("window")) {
      const std::string window_path = absl::StrCat(path, ".window");
      if (dedup->key == DedupKey::kNone) {
        return Error(f->key, window_path, "not used with dedup key none");
      }
      ASSIGN_OR_RETURN(dedup->window, PositiveDuration(f->value, window_path));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<broker::SubscriberGrant>> Subscribers(
      const YAML::Node& node) const {
    ASSIGN_OR_RETURN(const std::vector<YAML::Node> items,
                     List(node, "subscribers"));
    std::vector<broker::SubscriberGrant> grants;
    for (size_t i = 0; i < items.size(); ++i) {
      const std::string path = absl::StrCat("subscribers[", i, "]");
      ASSIGN_OR_RETURN(broker::SubscriberGrant grant,
                       Subscriber(items[i], path));
      grants.push_back(std::move(grant));
      // A name, token or identity names one subscriber only (the broker's
      // rule); the error points at the later one.
      if (std::optional<broker::GrantClash> clash = broker::FindGrantClash(grants)) {
        const std::string other = absl::StrCat("subscribers[", clash->other, "]");
        const broker::SubscriberGrant& later = grants[clash->grant];
        switch (clash->what) {
          case broker::GrantClash::What::kName:
            return Error(items[i]["name"], path + ".name",
                         absl::StrCat("duplicate name ", Quote(later.name), " (also ", other, ")"));
          case broker::GrantClash::What::kToken:
            return Error(items[i]["tokens"][clash->item],
                         absl::StrCat(path, ".tokens[", clash->item, "]"),
                         absl::StrCat("same token as ", other));
          case broker::GrantClash::What::kIdentity:
            return Error(items[i]["identities"][clash->item],
                         absl::StrCat(path, ".identities[", clash->item, "]"),
                         absl::StrCat("identity ", Quote(later.identities[clash->item]),
                                      " also belongs to ", other));
        }
      }
    }
    return grants;
  }

  absl::StatusOr<broker::SubscriberGrant> Subscriber(
      const YAML::Node& node, absl::string_view path) const {
    ASSIGN_OR_RETURN(
        const Fields fields,
        ReadFields(node, path,
                   {"name", "tokens", "identities", "types", "publish"}));
    const auto sub = [&](absl::string_view name) {
      return absl::StrCat(path, ".", name);
    };
    broker::SubscriberGrant grant;
    const Field* name = fields.Find("name");
    if (name == nullptr) return Error(node, sub("name"), "missing");
    ASSIGN_OR_RETURN(grant.name, Name(name->value, sub("name")));

    if (const Field* f = fields.Find("tokens")) {
      ASSIGN_OR_RETURN(grant.tokens, SecretList(f->value, sub("tokens")));
    }
    if (const Field* f = fields.Find("identities")) {
      ASSIGN_OR_RETURN(const std::vector<YAML::Node> items,
                       List(f->value, sub("identities")));
      for (size_t i = 0; i < items.size(); ++i) {
        const std::string item_path =
            absl::StrCat(path, ".identities[", i, "]");
        ASSIGN_OR_RETURN(std::string identity, String(items[i], item_path));
        if (identity.empty()) return Error(items[i], item_path, "empty");
        grant.identities.push_back(std::move(identity));
      }
    }
    if (grant.tokens.empty() && grant.identities.empty()) {
      return Error(node, path, "needs tokens or identities");
    }

    const Field* types = fields.Find("types");
    const Field* publish = fields.Find("publish");
    if (types == nullptr && publish == nullptr) {
      return Error(node, sub("types"),
                   "missing (write [\">\"] for every type)");
    }
    if (types != nullptr) {
      ASSIGN_OR_RETURN(grant.types, Patterns(types->value, sub("types")));
    }
    if (publish != nullptr) {
      ASSIGN_OR_RETURN(grant.publish, Patterns(publish->value, sub("publish")));
    }
    return grant;
  }

  // A non-empty list of type patterns.
  absl::StatusOr<std::vector<std::string>> Patterns(
      const YAML::Node& node, absl::string_view path) const {
    ASSIGN_OR_RETURN(const std::vector<YAML::Node> items, List(node, path));
    if (items.empty()) {
      return Error(node, path, "empty (write [\">\"] for every type)");
    }
    std::vector<std::string> patterns;
    for (size_t i = 0; i < items.size(); ++i) {
      const std::string item_path = absl::StrCat(path, "[", i, "]");
      ASSIGN_OR_RETURN(std::string pattern, String(items[i], item_path));
      if (absl::Status s = broker::ValidateTypePattern(pattern); !s.ok()) {
        return Error(items[i], item_path, s.message());
      }
      patterns.push_back(std::move(pattern));
    }
    return patterns;
  }

};

}  // namespace


absl::StatusOr<ConfigFile> ParseConfigFile(std::string_view yaml,
                                           std::string_view file_name,
                                           const SecretEnv& env) {
  return Parser({file_name.data(), file_name.size()}, env)
      .Parse({yaml.data(), yaml.size()});
}

absl::StatusOr<ConfigFile> LoadConfigFile(const std::string& path,
                                          const SecretEnv& env) {
  absl::StatusOr<std::string> yaml = env.ReadFile(path);
  if (!yaml.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("cannot read config file ",
                                                   Quote(path), ": ",
                                                   yaml.status().message()));
  }
  return ParseConfigFile(*yaml, path, env);
}

}  // namespace hookfan::server
