#include "common/uuid.h"

#include <openssl/rand.h>

#include <array>
#include <cstdlib>

#include "absl/strings/escaping.h"
#include "absl/time/time.h"

namespace hookfan {
namespace {

void FillRandom(unsigned char* out, size_t n) {
  // RAND_bytes only fails if the OS entropy source is broken: nothing safe
  // can be minted then.
  if (RAND_bytes(out, static_cast<int>(n)) != 1) std::abort();
}

}  // namespace

std::string UuidV7Generator::Next() {
  std::array<unsigned char, 16> b;
  FillRandom(b.data(), b.size());
  uint64_t ms;
  uint32_t counter;
  {
    MutexLock lock(&mu_);
    uint64_t now_ms = static_cast<uint64_t>(absl::ToUnixMillis(clock_->Now()));
    if (now_ms > last_ms_) {
      last_ms_ = now_ms;
      counter_ = 0;
    } else if (++counter_ > 0xfff) {
      ++last_ms_;
      counter_ = 0;
    }
    ms = last_ms_;
    counter = counter_;
  }
  for (int i = 0; i < 6; ++i) b[i] = static_cast<unsigned char>(ms >> (40 - 8 * i));
  b[6] = static_cast<unsigned char>(0x70 | ((counter >> 8) & 0x0f));
  b[7] = static_cast<unsigned char>(counter & 0xff);
  b[8] = static_cast<unsigned char>(0x80 | (b[8] & 0x3f));
  std::string hex = absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(b.data()), b.size()));
  return hex.substr(0, 8) + "-" + hex.substr(8, 4) + "-" + hex.substr(12, 4) +
         "-" + hex.substr(16, 4) + "-" + hex.substr(20);
}

std::string RandomHex(size_t n) {
  std::string raw(n, '\0');
  FillRandom(reinterpret_cast<unsigned char*>(raw.data()), n);
  return absl::BytesToHexString(raw);
}

bool IsCanonicalUuid(std::string_view id) {
  if (id.size() != 36) return false;
  for (size_t i = 0; i < id.size(); ++i) {
    const char c = id[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return false;
    } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return false;
    }
  }
  return true;
}

}  // namespace hookfan
