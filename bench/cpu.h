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

}  // namespace hookfan::bench
