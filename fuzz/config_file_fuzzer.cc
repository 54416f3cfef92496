// Fuzzes ParseConfigFile (server/config_file.h): the input is the YAML of a
// sources file. Secrets resolve from a fake environment: every variable is
// set except names containing "MISSING", every file is readable except
// paths containing "missing", and variables named *WHSEC* and files named
// *whsec* hold a Standard Webhooks secret. Checks the contract:
// - an error is kInvalidArgument, its message starts with the file name and
//   never holds a secret's value;
// - a result is complete and valid: sources and subscribers named
//   [a-z0-9_-]+ without repeats, source paths unique and absolute, every
//   auth accepted by SenderAuth::Create, every json normalizer config
//   accepted, every secret and token a resolved value (never a reference),
//   every type pattern valid, every subscriber with tokens or identities.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "core/filter.h"
#include "common/clock.h"
#include "fuzz/fuzz_check.h"
#include "ingress/json_normalizer.h"
#include "ingress/sender_auth.h"
#include "server/config_file.h"

namespace {

using ::hookfan::fuzz::Check;
using ::hookfan::server::ConfigFile;

// Every secret value starts "S3CR3T-" and is different per variable or
// file (so that tokens of several subscribers can differ), except the
// Standard Webhooks secret kWhsec, "whsec_" + base64("S3CR3T" x 3). A
// message holding one of the two markers gives a secret away, unless the
// YAML itself holds the marker.
constexpr std::string_view kSecretMarker = "S3CR3T-";
constexpr std::string_view kWhsec = "whsec_UzNDUjNUUzNDUjNUUzNDUjNU";
constexpr std::string_view kWhsecMarker = "UzNDUjNU";

std::string SecretFor(const char* kind, const std::string& name) {
  return std::string(kSecretMarker) + kind + "-" +
         std::to_string(std::hash<std::string>()(name));
}

class FakeSecretEnv final : public hookfan::server::SecretEnv {
 public:
  std::optional<std::string> GetEnv(const std::string& name) const override {
    if (name.find("MISSING") != name.npos) return std::nullopt;
    if (name.find("WHSEC") != name.npos) return std::string(kWhsec);
    return SecretFor("env", name);
  }
  absl::StatusOr<std::string> ReadFile(const std::string& path) const override {
    if (path.find("missing") != path.npos) {
      return absl::NotFoundError("No such file or directory");
    }
    if (path.find("whsec") != path.npos) return std::string(kWhsec) + "\n";
    return SecretFor("file", path) + "\n";
  }
};

bool IsResolvedSecret(const std::string& secret) {
  return secret.starts_with(kSecretMarker) || secret == kWhsec;
}

// Whether `message` shows a secret that `yaml` does not hold itself.
bool ShowsSecret(absl::string_view message, std::string_view yaml) {
  for (const std::string_view marker : {kSecretMarker, kWhsecMarker}) {
    if (absl::StrContains(message, {marker.data(), marker.size()}) &&
        yaml.find(marker) == yaml.npos) {
      return true;
    }
  }
  return false;
}

bool IsValidName(std::string_view name) {
  if (name.empty()) return false;
  for (const char c : name) {
    if (!(c >= 'a' && c <= 'z') && !(c >= '0' && c <= '9') && c != '_' &&
        c != '-') {
      return false;
    }
  }
  return true;
}

void CheckConfig(const ConfigFile& config) {
  std::set<std::string> names;
  std::set<std::string> paths;
  for (const hookfan::ingress::SourceConfig& source : config.sources) {
    Check(IsValidName(source.name), "source name", source.name);
    Check(names.insert(source.name).second, "source name repeated",
          source.name);
    Check(source.path.size() > 1 && source.path[0] == '/' &&
              source.path.back() != '/',
          "source path", source.path);
    Check(paths.insert(source.path).second, "source path repeated",
          source.path);
    Check(hookfan::ingress::SenderAuth::Create(source.auth,
                                               hookfan::Clock::Real())
              .ok(),
          "SenderAuth::Create refuses the auth", source.name);
    for (const std::string& secret : source.auth.secrets) {
      Check(IsResolvedSecret(secret), "secret is not a resolved value", secret);
    }
    if (source.normalizer == hookfan::ingress::kJsonNormalizer.name) {
      Check(hookfan::ingress::CheckJsonNormalizerConfig(source.json).ok(),
            "json normalizer config", source.name);
    }
    Check(source.max_body_bytes > 0, "max_body_bytes", source.name);
  }
  names.clear();
  for (const hookfan::broker::SubscriberGrant& grant : config.subscribers) {
    Check(IsValidName(grant.name), "subscriber name", grant.name);
    Check(names.insert(grant.name).second, "subscriber name repeated",
          grant.name);
    Check(!grant.tokens.empty() || !grant.identities.empty(),
          "subscriber without tokens or identities", grant.name);
    for (const std::string& token : grant.tokens) {
      Check(IsResolvedSecret(token), "token is not a resolved value", token);
    }
    for (const std::string& identity : grant.identities) {
      Check(!identity.empty(), "empty identity", grant.name);
    }
    for (const auto* patterns : {&grant.types, &grant.publish}) {
      for (const std::string& pattern : *patterns) {
        Check(hookfan::broker::ValidateTypePattern(pattern).ok(),
              "invalid type pattern", pattern);
      }
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const FakeSecretEnv* const env = new FakeSecretEnv();
  const std::string_view yaml(reinterpret_cast<const char*>(data), size);
  const absl::StatusOr<ConfigFile> config =
      hookfan::server::ParseConfigFile(yaml, "sources.yaml", *env);
  if (!config.ok()) {
    const std::string shown = config.status().ToString();
    Check(config.status().code() == absl::StatusCode::kInvalidArgument,
          "error code is not kInvalidArgument", shown);
    Check(absl::StartsWith(config.status().message(), "sources.yaml:"),
          "error message does not start with the file name", shown);
    Check(!ShowsSecret(config.status().message(), yaml),
          "error message shows a secret", shown);
    return 0;
  }
  CheckConfig(*config);
  return 0;
}
