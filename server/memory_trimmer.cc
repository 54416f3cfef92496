#include "server/memory_trimmer.h"

#include <malloc.h>


namespace hookfan::server {

MemoryTrimmer::MemoryTrimmer(Options options)
    : options_(options), thread_([this] { Run(); }) {}

MemoryTrimmer::~MemoryTrimmer() {
  stop_.Notify();
  thread_.join();
}

size_t MemoryTrimmer::FreeHeapBytes() {
  const struct mallinfo2 info = mallinfo2();
  return info.fordblks;
}

void MemoryTrimmer::Run() {
  while (!stop_.WaitForNotificationWithTimeout(options_.interval)) {
    if (FreeHeapBytes() >= options_.min_free_bytes) malloc_trim(0);
  }
}

}  // namespace hookfan::server
