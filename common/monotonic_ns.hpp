// CLOCK_MONOTONIC in nanoseconds: the one clock of every start-up span
// (the helper's, its inits' and the client's), so that a benchmark can lay
// the three on one timeline.
#pragma once

#include <time.h>

#include <cstdint>

namespace gpubox {

inline uint64_t monotonicNs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000 + static_cast<uint64_t>(ts.tv_nsec);
}

}  // namespace gpubox
