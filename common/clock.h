#pragma once

#include <cstdint>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "google/protobuf/duration.pb.h"
#include "google/protobuf/timestamp.pb.h"
#include "common/sync.h"

namespace hookfan {

// Clock tells the time. Logic that tests must control (deadlines, windows,
// retention, event timestamps) takes a Clock instead of calling absl::Now().
// Implementations are thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;

  // The process-wide real clock. Never null, never destroyed.
  static Clock* Real();
};

// FakeClock is a Clock that moves only when told to. Thread-safe.
class FakeClock : public Clock {
 public:
  explicit FakeClock(absl::Time start = absl::FromUnixSeconds(1767225600))
      : now_(start) {}

  absl::Time Now() const override {
    MutexLock lock(&mu_);
    return now_;
  }
  void Advance(absl::Duration d) {
    MutexLock lock(&mu_);
    now_ += d;
  }
  void Set(absl::Time t) {
    MutexLock lock(&mu_);
    now_ = t;
  }

 private:
  mutable Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
};

// Milliseconds on the steady clock: for deadlines about sockets and
// peers, which run in real time and never jump.
int64_t SteadyNowMs();

// A file's modification time and size as text ("" when it cannot be
// stat'ed): a cheap way to notice that a file was rewritten or replaced.
std::string FileStamp(const std::string& path);

// Converts between protobuf Timestamps and absl::Time.
absl::Time ToTime(const google::protobuf::Timestamp& ts);
void SetTimestamp(absl::Time t, google::protobuf::Timestamp* ts);
// Converts a protobuf Duration to absl::Duration.
absl::Duration ToDuration(const google::protobuf::Duration& d);

}  // namespace hookfan
