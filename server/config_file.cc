#include "server/config_file.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <map>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "core/filter.h"
#include "common/clock.h"
#include "common/status_macros.h"
#include "ingress/cidr.h"
#include "ingress/json_normalizer.h"
#include "ingress/sender_auth.h"

namespace hookfan::server {
namespace {

using ingress::AuthConfig;
using ingress::AuthMode;
using ingress::DedupKey;
using ingress::SourceConfig;

// Paths the server answers itself; no source may take them.
constexpr absl::string_view kReservedPaths[] = {"/healthz", "/readyz",
                                                "/metrics"};

template <typename E>
struct EnumName {
  absl::string_view name;
  E value;
};

constexpr EnumName<AuthMode> kAuthModes[] = {
    {"none", AuthMode::kNone},
    {"path_token", AuthMode::kPathToken},
    {"basic", AuthMode::kBasic},
    {"bearer", AuthMode::kBearer},
    {"hmac", AuthMode::kHmac},
    {"standard_webhooks", AuthMode::kStandardWebhooks},
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

// Removes one trailing line ending ("\n" or "\r\n").
void TrimTrailingNewline(std::string* s) {
  if (absl::EndsWith(*s, "\n")) s->pop_back();
  if (absl::EndsWith(*s, "\r")) s->pop_back();
}

absl::string_view ModeName(AuthMode mode) {
  const std::string_view name = ingress::AuthModeName(mode);
  return {name.data(), name.size()};
}

std::string Quote(absl::string_view s) { return absl::StrCat("\"", s, "\""); }

// An error whose message is the reason only, e.g. "Permission denied".
absl::Status ErrnoStatus(int error) {
  return absl::Status(absl::ErrnoToStatusCode(error), std::strerror(error));
}

class RealSecretEnv final : public SecretEnv {
 public:
  std::optional<std::string> GetEnv(const std::string& name) const override {
    const char* value = std::getenv(name.c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  }

  absl::StatusOr<std::string> ReadFile(const std::string& path) const override {
    std::FILE* file = std::fopen(path.c_str(), "rb");
    if (file == nullptr) return ErrnoStatus(errno);
    std::string content;
    char buffer[4096];
    size_t n;
    while ((n = std::fread(buffer, 1, sizeof(buffer), file)) > 0) {
      content.append(buffer, n);
    }
    const int error = std::ferror(file) ? errno : 0;
    std::fclose(file);
    if (error != 0) return ErrnoStatus(error);
    return content;
  }
};

// One field of a mapping: the key (where to point at) and the value.
struct Field {
  YAML::Node key;
  YAML::Node value;
};

// The fields of one mapping by name.
class Fields {
 public:
  // False if a field of that name is there already.
  bool Add(const std::string& name, Field field) {
    return fields_.emplace(name, std::move(field)).second;
  }
  const Field* Find(absl::string_view name) const {
    auto it = fields_.find(std::string(name));
    return it == fields_.end() ? nullptr : &it->second;
  }

 private:
  std::map<std::string, Field> fields_;
};

// Parser reads one config file. Every method checking a node takes the
// node's field path ("sources[0].auth") for its messages.
class Parser {
 public:
  Parser(absl::string_view file_name, const SecretEnv& env)
      : file_name_(file_name), env_(env) {}

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
  absl::Status At(const YAML::Mark& mark, absl::string_view path,
                  absl::string_view message) const {
    std::string where(file_name_);
    if (!mark.is_null()) {
      absl::StrAppend(&where, ":", mark.line + 1, ":", mark.column + 1);
    }
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": ", path, path.empty() ? "" : ": ", message));
  }
  absl::Status Error(const YAML::Node& at, absl::string_view path,
                     absl::string_view message) const {
    return At(at.Mark(), path, message);
  }

  absl::StatusOr<Fields> ReadFields(
      const YAML::Node& node, absl::string_view path,
      std::initializer_list<absl::string_view> known) const {
    if (!node.IsMap()) return Error(node, path, "want a mapping");
    Fields fields;
    for (auto it = node.begin(); it != node.end(); ++it) {
      // Copies: it->first/second live in a proxy that dies with the
      // full expression, so references to them would dangle.
      const YAML::Node key = it->first;
      const YAML::Node value = it->second;
      if (!key.IsScalar()) return Error(key, path, "field names are strings");
      const std::string& name = key.Scalar();
      const std::string field_path =
          path.empty() ? name : absl::StrCat(path, ".", name);
      if (std::find(known.begin(), known.end(), name) == known.end()) {
        return Error(key, path,
                     absl::StrCat("unknown field ", Quote(name), " (want ",
                                  absl::StrJoin(known, "|"), ")"));
      }
      if (!fields.Add(name, Field{key, value})) {
        return Error(key, field_path, "given twice");
      }
      // No field takes null; and a missing value's position is the next line.
      if (value.IsNull()) return Error(key, field_path, "no value");
    }
    return fields;
  }

  // A field that is not used in this configuration.
  absl::Status Unused(const Fields& fields, absl::string_view path,
                      absl::string_view name, absl::string_view why) const {
    if (const Field* f = fields.Find(name)) {
      return Error(f->key, absl::StrCat(path, ".", name), why);
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::string> String(const YAML::Node& node,
                                     absl::string_view path) const {
    if (!node.IsScalar()) return Error(node, path, "want a string");
    return node.Scalar();
  }

  template <typename E, size_t N>
  absl::StatusOr<E> Enum(const YAML::Node& node, absl::string_view path,
                         absl::string_view what,
                         const EnumName<E> (&names)[N]) const {
    ASSIGN_OR_RETURN(const std::string name, String(node, path));
    for (const EnumName<E>& e : names) {
      if (e.name == name) return e.value;
    }
    return Error(node, path,
                 absl::StrCat("unknown ", what, " ", Quote(name), " (want ",
                              EnumChoices(names), ")"));
  }

  template <typename E, size_t N>
  static std::string EnumChoices(const EnumName<E> (&names)[N]) {
    return absl::StrJoin(names, "|",
                         [](std::string* out, const EnumName<E>& e) {
                           out->append(e.name.data(), e.name.size());
                         });
  }

  absl::StatusOr<uint64_t> PositiveInteger(const YAML::Node& node,
                                           absl::string_view path) const {
    uint64_t value = 0;
    if (!node.IsScalar() || node.Scalar().empty() ||
        !std::all_of(node.Scalar().begin(), node.Scalar().end(),
                     absl::ascii_isdigit) ||
        !absl::SimpleAtoi(node.Scalar(), &value) || value == 0) {
      return Error(node, path, "want a positive integer");
    }
    return value;
  }

  absl::StatusOr<double> NonNegativeNumber(const YAML::Node& node,
                                           absl::string_view path) const {
    double value = 0;
    if (!node.IsScalar() || !absl::SimpleAtod(node.Scalar(), &value) ||
        !std::isfinite(value) || value < 0) {
      return Error(node, path, "want a number, 0 or more");
    }
    return value;
  }

  absl::StatusOr<absl::Duration> PositiveDuration(
      const YAML::Node& node, absl::string_view path) const {
    ASSIGN_OR_RETURN(const std::string text, String(node, path));
    absl::Duration d;
    if (!absl::ParseDuration(text, &d) || d == absl::InfiniteDuration()) {
      return Error(node, path,
                   absl::StrCat("invalid duration ", Quote(text),
                                " (want e.g. 30s, 5m or 24h)"));
    }
    if (d <= absl::ZeroDuration()) {
      return Error(node, path,
                   absl::StrCat("want a positive duration, got ", Quote(text)));
    }
    return d;
  }

  absl::StatusOr<std::vector<YAML::Node>> List(const YAML::Node& node,
                                               absl::string_view path) const {
    if (!node.IsSequence()) return Error(node, path, "want a list");
    return std::vector<YAML::Node>(node.begin(), node.end());
  }

  // A secret reference, {env: NAME} or {file: PATH}, resolved.
  absl::StatusOr<std::string> Secret(const YAML::Node& node,
                                     absl::string_view path) const {
    if (node.IsScalar()) {  // the value is not repeated: it may be a secret
      return Error(node, path,
                   "a literal secret is not allowed; write {env: NAME} or "
                   "{file: PATH}");
    }
    ASSIGN_OR_RETURN(const Fields fields,
                     ReadFields(node, path, {"env", "file"}));
    const Field* env = fields.Find("env");
    const Field* file = fields.Find("file");
    if ((env == nullptr) == (file == nullptr)) {
      return Error(node, path, "want exactly one of env or file");
    }
    if (env != nullptr) {
      const std::string env_path = absl::StrCat(path, ".env");
      ASSIGN_OR_RETURN(const std::string name, String(env->value, env_path));
      std::optional<std::string> value = env_.GetEnv(name);
      if (!value) {
        return Error(
            env->value, env_path,
            absl::StrCat("environment variable ", name, " is not set"));
      }
      if (value->empty()) {
        return Error(env->value, env_path,
                     absl::StrCat("environment variable ", name, " is empty"));
      }
      return *std::move(value);
    }
    const std::string file_path = absl::StrCat(path, ".file");
    ASSIGN_OR_RETURN(const std::string name, String(file->value, file_path));
    absl::StatusOr<std::string> value = env_.ReadFile(name);
    if (!value.ok()) {
      return Error(file->value, file_path,
                   absl::StrCat("cannot read secret file ", Quote(name), ": ",
                                value.status().message()));
    }
    TrimTrailingNewline(&*value);
    if (value->empty()) {
      return Error(file->value, file_path,
                   absl::StrCat("secret file ", Quote(name), " is empty"));
    }
    return *std::move(value);
  }

  // A non-empty list of secret references, resolved.
  absl::StatusOr<std::vector<std::string>> SecretList(
      const YAML::Node& node, absl::string_view path) const {
    ASSIGN_OR_RETURN(const std::vector<YAML::Node> items, List(node, path));
    if (items.empty()) return Error(node, path, "want at least one secret");
    std::vector<std::string> secrets;
    for (size_t i = 0; i < items.size(); ++i) {
      ASSIGN_OR_RETURN(std::string secret,
                       Secret(items[i], absl::StrCat(path, "[", i, "]")));
      secrets.push_back(std::move(secret));
    }
    return secrets;
  }

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
                    "allowed_cidrs", "max_body_bytes", "rate_limit", "dedup"}));
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
      if (source.dedup.key == DedupKey::kEventId &&
          DefaultDedup(source).key != DedupKey::kEventId) {
        return Error(f->value, sub("dedup.key"),
                     "event_id needs an event id: normalizer cloudevents, or json "
                     "with id_pointer");
      }
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
    if (auth.mode == AuthMode::kHmac) {
      const Field* f = fields.Find("header");
      if (f == nullptr) {
        return Error(node, sub("header"), "missing (auth type hmac needs it)");
      }
      ASSIGN_OR_RETURN(auth.header, String(f->value, sub("header")));
      if (!ingress::IsHttpFieldName(auth.header)) {
        return Error(f->value, sub("header"),
                     absl::StrCat(Quote(auth.header), " is not an HTTP field name"));
      }
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
      // A token or identity names one subscriber only.
      for (size_t j = 0; j < grants.size(); ++j) {
        const std::string other = absl::StrCat("subscribers[", j, "]");
        if (grants[j].name == grant.name) {
          return Error(items[i]["name"], path + ".name",
                       absl::StrCat("duplicate name ", Quote(grant.name),
                                    " (also ", other, ")"));
        }
        for (size_t t = 0; t < grant.tokens.size(); ++t) {
          for (const std::string& token : grants[j].tokens) {
            if (token == grant.tokens[t]) {
              return Error(items[i]["tokens"][t],
                           absl::StrCat(path, ".tokens[", t, "]"),
                           absl::StrCat("same token as ", other));
            }
          }
        }
        for (size_t k = 0; k < grant.identities.size(); ++k) {
          for (const std::string& identity : grants[j].identities) {
            if (identity == grant.identities[k]) {
              return Error(items[i]["identities"][k],
                           absl::StrCat(path, ".identities[", k, "]"),
                           absl::StrCat("identity ", Quote(identity),
                                        " also belongs to ", other));
            }
          }
        }
      }
      grants.push_back(std::move(grant));
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

  const std::string file_name_;
  const SecretEnv& env_;
};

}  // namespace

const SecretEnv& SecretEnv::Real() {
  static const RealSecretEnv* const env = new RealSecretEnv();
  return *env;
}

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
