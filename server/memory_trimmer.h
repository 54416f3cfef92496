#pragma once

#include <cstddef>
#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

namespace hookfan::server {

// MemoryTrimmer gives freed heap memory back to the OS. glibc's malloc keeps
// what a burst freed (gRPC calls, subscriber batches) in its arenas, so RSS
// stayed at the peak of the worst burst seen (issue #23: +2.2 GB after a
// rapid reset, all of it free). Every `interval` it checks how much the
// heap holds free and, past `min_free_bytes`, calls malloc_trim. A check is
// a walk of malloc's arenas (microseconds); a trim costs milliseconds per
// hundred MB returned.
//
// Starts on construction; the destructor stops and joins its thread.
class MemoryTrimmer {
 public:
  struct Options {
    absl::Duration interval = absl::Seconds(1);
    size_t min_free_bytes = size_t{16} << 20;
  };
  explicit MemoryTrimmer(Options options);
  ~MemoryTrimmer();
  MemoryTrimmer(const MemoryTrimmer&) = delete;
  MemoryTrimmer& operator=(const MemoryTrimmer&) = delete;

  // Bytes the heap holds free, as malloc counts them.
  static size_t FreeHeapBytes();

 private:
  void Run();

  const Options options_;
  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace hookfan::server
