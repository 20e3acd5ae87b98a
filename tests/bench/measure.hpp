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
  // The whole machine over the level: its CPUs' busy time per sandbox
  // (ms; every process's, the harness's fork, exec and wait included) and
  // the share of all CPUs' time that was busy. With both, a level says
  // whether its side was held back by the CPUs or by something else.
  double machineCpuMs = 0, machineBusy = 0;
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

// One spans line: its start (CLOCK_MONOTONIC ns) and each phase, in ms
// after it.
struct SpanLine {
  uint64_t originNs = 0;
  std::vector<std::pair<std::string, double>> marks;
};

// Every line of TEXT holding TAG followed by " @NS:" and "PHASE +MS" pairs:
// the helper's --trace-spans lines (TAG "spans run-"), the client's
// GPUBOX_TRACE_SPANS lines (TAG "gpubox spans").
std::vector<SpanLine> parseSpanLines(const std::string& text, const std::string& tag);

struct SpanTable {
  std::string what;
  // Each phase's times in ms from the client's fork: the client's own
  // (client:PHASE) and the helper's and its init's, on the one clock.
  std::vector<std::pair<std::string, std::vector<double>>> phases;
  std::vector<double> whole;  // the client's fork to reap, same runs
  unsigned unmatched = 0;     // runs with no helper line in their time
};

// Runs `run` (a command against `traced`, a helper started with
// --trace-spans) o.runs times in a row with GPUBOX_TRACE_SPANS=1 and lays
// the client's and the helper's phases of each run on one timeline.
SpanTable traceRuns(const std::string& what, const Helper& traced, const Command& run,
                    const Rounds& o);

// Each phase's median, p90 and p99 and the step from the phase before, in
// the order of their medians, then the client's whole time.
void printSpans(const SpanTable& t, unsigned runs);

}  // namespace gpubox::bench
