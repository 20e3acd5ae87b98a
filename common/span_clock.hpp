// The clock and the text of every start-up span line (the helper's, with
// its inits' steps, and the client's): CLOCK_MONOTONIC in nanoseconds, so
// that a benchmark can lay the lines on one timeline, and one format for
// "PHASE +MS", so that one parser reads them all (tests/bench/measure.cpp).
#pragma once

#include <time.h>

#include <cstdint>
#include <cstdio>
#include <string>

namespace gpubox {

inline uint64_t monotonicNs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000 + static_cast<uint64_t>(ts.tv_nsec);
}

// Appends " PHASE +MS" to LINE: PHASE reached at NS, in ms after ORIGIN.
inline void appendSpan(std::string& line, const char* phase, uint64_t ns, uint64_t origin) {
  char buf[96];
  std::snprintf(buf, sizeof buf, " %s +%.2f", phase, static_cast<double>(ns - origin) / 1e6);
  line += buf;
}

}  // namespace gpubox
