#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "common/clock.h"
#include "common/sync.h"

namespace hookfan {

// UuidV7Generator mints RFC 9562 version 7 UUIDs: 48 bits of Unix
// milliseconds, then randomness. Ids from one generator are strictly
// increasing even within one millisecond or if the clock steps back (the
// 12-bit rand_a field counts up, borrowing the next millisecond when it
// overflows). Randomness comes from the OS CSPRNG, so ids minted by separate
// replicas do not collide. Thread-safe.
class UuidV7Generator {
 public:
  explicit UuidV7Generator(Clock* clock = Clock::Real()) : clock_(clock) {}
  UuidV7Generator(const UuidV7Generator&) = delete;
  UuidV7Generator& operator=(const UuidV7Generator&) = delete;

  // Returns the canonical 36-character lowercase form.
  std::string Next();

 private:
  Clock* const clock_;
  Mutex mu_;
  uint64_t last_ms_ ABSL_GUARDED_BY(mu_) = 0;
  uint32_t counter_ ABSL_GUARDED_BY(mu_) = 0;
};

// True if `id` is spelled as UuidV7Generator spells ids: a UUID in its
// canonical 36-character form with lowercase hex digits
// ("01a21a5a-5965-7000-9a6a-c7b991c35543"). Any version.
bool IsCanonicalUuid(std::string_view id);

// Returns `n` bytes from the OS CSPRNG, hex-encoded (2n characters).
std::string RandomHex(size_t n);

}  // namespace hookfan
