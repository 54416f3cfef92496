#pragma once

#include <cstdint>

namespace hookfan::bench {

// CPU time (user + system, seconds) that process `pid` has used so far, from
// /proc/PID/stat (clock-tick resolution); 0 when it cannot be read.
double ProcessCpuSeconds(int64_t pid);

// CPU time (user + system, seconds) this process, and the calling thread,
// have used so far.
double SelfCpuSeconds();
double ThreadCpuSeconds();

// The CPU this process spends, from construction on, on every thread but
// the constructing one: what a scenario's subscribers cost while that
// thread publishes and waits. Seconds() must be called on that thread.
class OtherThreadsCpu {
 public:
  OtherThreadsCpu() : self_start_(SelfCpuSeconds()), thread_start_(ThreadCpuSeconds()) {}
  double Seconds() const {
    return SelfCpuSeconds() - self_start_ - (ThreadCpuSeconds() - thread_start_);
  }

 private:
  const double self_start_;
  const double thread_start_;
};

}  // namespace hookfan::bench
