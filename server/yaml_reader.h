#pragma once

// Reading YAML config by field, with messages that point at the place
// ("sources.yaml:4:34: sources[0].auth.secret: want exactly one of env or
// file"): the generic half of the sources file parser (config_file.h has
// the rules of sources and subscribers). Secrets are references, {env: NAME}
// or {file: PATH}, never literal values.

#include <yaml-cpp/yaml.h>

#include <cstddef>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/status_macros.h"

namespace hookfan::server {

// SecretEnv is where the secrets a config file refers to come from: the
// environment and files. Tests substitute a fake. Implementations are
// thread-safe.
class SecretEnv {
 public:
  virtual ~SecretEnv() = default;

  // The value of environment variable `name`; nullopt if it is not set.
  virtual std::optional<std::string> GetEnv(const std::string& name) const = 0;

  // The content of the file at `path`. Errors: any code, with the reason
  // ("No such file or directory") as the message; never the content.
  virtual absl::StatusOr<std::string> ReadFile(
      const std::string& path) const = 0;

  // The process environment and file system. Never destroyed.
  static const SecretEnv& Real();
};

// `s` in double quotes, for messages.
inline std::string Quote(absl::string_view s) { return absl::StrCat("\"", s, "\""); }

// An enum value by its name in the file.
template <typename E>
struct EnumName {
  absl::string_view name;
  E value;
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

// Removes one trailing line ending ("\n" or "\r\n").
inline void TrimTrailingNewline(std::string* s) {
  if (absl::EndsWith(*s, "\n")) s->pop_back();
  if (absl::EndsWith(*s, "\r")) s->pop_back();
}

// YamlReader reads the nodes of one file. Every method checking a node
// takes the node's field path ("sources[0].auth") for its messages; errors
// are kInvalidArgument "<file>:<line>:<column>: <path>: <problem>".
class YamlReader {
 public:
  YamlReader(absl::string_view file_name, const SecretEnv& env)
      : file_name_(file_name), env_(env) {}

 protected:
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

  const std::string file_name_;
  const SecretEnv& env_;
};

}  // namespace hookfan::server
