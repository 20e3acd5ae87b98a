// How one row of bench_startup is measured and printed: interleaved A/B
// pairs, concurrent clients' throughput, the helper's CPU, and the phases
// a --trace-spans helper logs. It measures; it never judges a time.
#pragma once

#include <sys/types.h>

#include <string>
#include <utility>
#include <vector>

#include "process.hpp"

namespace gpubox::bench {

// How many timed runs each side of a row gets, after how many untimed ones.
struct Rounds {
  unsigned runs = 300;
  unsigned warmup = 5;
};

struct Pair {
  std::string name, aLabel, bLabel;
  std::vector<double> a, b;
};

// Interleaved A/B: run i does A then B, run i+1 B then A.
// MEASURE is what is timed of one run (Runner::timed: fork to reap).
Pair interleave(const std::string& name, const std::string& aLabel, const Command& a,
                const std::string& bLabel, const Command& b, const Rounds& o,
                double (Runner::*measure)(const Command&) = &Runner::timed);

// One table row: each side's median, p90, p99, and the median of the
// per-pair ratios.
void printPair(const Pair& p);

struct Throughput {
  double perSecond = 0;
  std::vector<double> latencies;
};

// The helper's CPU time so far (ms): its home loop (the main thread), its
// RPC threads, and the whole process with every thread.
struct HelperCpu {
  double home = 0, rpc = 0, whole = 0;
  static HelperCpu of(pid_t pid) {
    return {threadCpuMs(pid, pid), threadsCpuMs(pid, "gpubox-rpc"), processCpuMs(pid)};
  }
  // Per sandbox, from BEFORE to this reading over N sandboxes.
  HelperCpu perSandboxSince(const HelperCpu& before, size_t n) const {
    double d = n ? static_cast<double>(n) : 1.0;
    return {(home - before.home) / d, (rpc - before.rpc) / d, (whole - before.whole) / d};
  }
};

// `clients` threads, each running `command` `perClient` times back to back.
Throughput concurrent(const Command& command, unsigned clients, unsigned perClient);

struct SpanTable {
  std::string what;
  std::vector<std::pair<std::string, std::vector<double>>> phases;
  std::vector<double> whole;  // the client's fork to reap, same runs
};

// The helper's --trace-spans lines ("spans run-7: checked +0.01 ... (ms)"):
// for each phase, the times at which the sandboxes reached it.
std::vector<std::pair<std::string, std::vector<double>>> parseSpans(const std::string& log);

// Runs `run` (a command against `traced`, a helper started with
// --trace-spans) o.runs times in a row and collects the phases it logged.
SpanTable traceRuns(const std::string& what, const Helper& traced, const Command& run,
                    const Rounds& o);

// Each phase's median, p90 and p99, and the client's whole time.
void printSpans(const SpanTable& t, unsigned runs);

}  // namespace gpubox::bench
