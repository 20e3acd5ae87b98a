#include "measure.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <exception>
#include <sstream>
#include <thread>

#include "stats.hpp"

namespace gpubox::bench {

// Interleaved A/B: run i does A then B, run i+1 B then A.
// MEASURE is what is timed of one run (Runner::timed: fork to reap).
Pair interleave(const std::string& name, const std::string& aLabel, const Command& a,
                const std::string& bLabel, const Command& b, const Rounds& o,
                double (Runner::*measure)(const Command&)) {
  Runner runner;
  for (unsigned i = 0; i < o.warmup; ++i) {
    (runner.*measure)(a);
    (runner.*measure)(b);
  }
  Pair p{name, aLabel, bLabel, {}, {}};
  for (unsigned i = 0; i < o.runs; ++i) {
    if (i % 2 == 0) {
      p.a.push_back((runner.*measure)(a));
      p.b.push_back((runner.*measure)(b));
    } else {
      p.b.push_back((runner.*measure)(b));
      p.a.push_back((runner.*measure)(a));
    }
  }
  std::fprintf(stderr, "  done: %s\n", name.c_str());
  return p;
}

void printPair(const Pair& p) {
  std::printf("%-26s %-24s %7.2f %7.2f %7.2f | %-24s %7.2f %7.2f %7.2f | %6.2f\n", p.name.c_str(),
              p.aLabel.c_str(), median(p.a), percentile(p.a, 90), percentile(p.a, 99),
              p.bLabel.c_str(), median(p.b), percentile(p.b, 90), percentile(p.b, 99),
              medianRatio(p.a, p.b));
}

// `clients` threads, each running `command` `perClient` times back to back.
Throughput concurrent(const Command& command, unsigned clients, unsigned perClient) {
  std::vector<std::vector<double>> samples(clients);
  std::vector<std::exception_ptr> errors(clients);
  auto t0 = std::chrono::steady_clock::now();
  {
    std::vector<std::jthread> threads;
    for (unsigned c = 0; c < clients; ++c)
      threads.emplace_back([&, c] {
        try {
          Runner runner;
          for (unsigned i = 0; i < perClient; ++i) samples[c].push_back(runner.timed(command));
        } catch (...) {
          errors[c] = std::current_exception();
        }
      });
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
  Throughput t;
  for (auto& s : samples) t.latencies.insert(t.latencies.end(), s.begin(), s.end());
  t.perSecond = static_cast<double>(t.latencies.size()) / seconds;
  return t;
}

// The helper's --trace-spans lines ("spans run-7: checked +0.01 ... (ms)"):
// for each phase, the times at which the sandboxes reached it.
std::vector<std::pair<std::string, std::vector<double>>> parseSpans(const std::string& log) {
  std::vector<std::pair<std::string, std::vector<double>>> phases;
  std::istringstream lines(log);
  std::string line;
  while (std::getline(lines, line)) {
    size_t at = line.find("spans run-");
    if (at == std::string::npos) continue;
    std::istringstream words(line.substr(line.find(':', at) + 1));
    std::string phase, value;
    while (words >> phase >> value && value.size() > 1 && value[0] == '+') {
      auto it = std::find_if(phases.begin(), phases.end(),
                             [&](const auto& p) { return p.first == phase; });
      if (it == phases.end()) it = phases.insert(phases.end(), {phase, {}});
      it->second.push_back(std::stod(value.substr(1)));
    }
  }
  return phases;
}

// Runs `run` (a command against `traced`, a helper started with
// --trace-spans) o.runs times in a row and collects the phases it logged.
SpanTable traceRuns(const std::string& what, const Helper& traced, const Command& run,
                    const Rounds& o) {
  SpanTable t{what, {}, {}};
  Runner runner;
  for (unsigned i = 0; i < o.warmup; ++i) runner.timed(run);
  std::string before = traced.log();
  for (unsigned i = 0; i < o.runs; ++i) t.whole.push_back(runner.timed(run));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the last lines
  t.phases = parseSpans(traced.log().substr(before.size()));
  std::fprintf(stderr, "  done: spans, %s\n", what.c_str());
  return t;
}

void printSpans(const SpanTable& t, unsigned runs) {
  std::printf(
      "where `%s` spends its time: helper --trace-spans, %u runs; ms from the request "
      "reaching the helper\n",
      t.what.c_str(), runs);
  std::printf("%-10s %8s %8s %8s\n", "phase", "median", "p90", "p99");
  for (const auto& [phase, times] : t.phases)
    std::printf("%-10s %8.2f %8.2f %8.2f\n", phase.c_str(), median(times), percentile(times, 90),
                percentile(times, 99));
  std::printf("%-10s %8.2f %8.2f %8.2f   (client fork to reap, same runs)\n\n", "whole",
              median(t.whole), percentile(t.whole, 90), percentile(t.whole, 99));
}

}  // namespace gpubox::bench
