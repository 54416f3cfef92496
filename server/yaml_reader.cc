#include "server/yaml_reader.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "absl/strings/match.h"

namespace hookfan::server {
namespace {

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

}  // namespace

const SecretEnv& SecretEnv::Real() {
  static const RealSecretEnv* const env = new RealSecretEnv();
  return *env;
}

}  // namespace hookfan::server
