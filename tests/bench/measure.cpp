#include "measure.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <exception>
#include <sstream>
#include <stdexcept>
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
  const MachineCpu cpu0 = MachineCpu::now();
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
  const MachineCpu cpu1 = MachineCpu::now();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
  Throughput t;
  for (auto& s : samples) t.latencies.insert(t.latencies.end(), s.begin(), s.end());
  t.perSecond = static_cast<double>(t.latencies.size()) / seconds;
  if (!t.latencies.empty())
    t.machineCpuMs = (cpu1.busy - cpu0.busy) / static_cast<double>(t.latencies.size());
  if (cpu1.all > cpu0.all) t.machineBusy = (cpu1.busy - cpu0.busy) / (cpu1.all - cpu0.all);
  return t;
}

std::vector<SpanLine> parseSpanLines(const std::string& text, const std::string& tag) {
  std::vector<SpanLine> out;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    size_t at = line.find(tag);
    if (at == std::string::npos) continue;
    size_t origin = line.find(" @", at);
    size_t colon = line.find(':', at + tag.size());
    if (origin == std::string::npos || colon == std::string::npos || origin > colon) continue;
    SpanLine l;
    l.originNs = std::stoull(line.substr(origin + 2, colon - origin - 2));
    std::istringstream words(line.substr(colon + 1));
    std::string phase, value;
    while (words >> phase >> value && value.size() > 1 && value[0] == '+')
      l.marks.emplace_back(phase, std::stod(value.substr(1)));
    out.push_back(std::move(l));
  }
  return out;
}

namespace {

void addPhase(SpanTable& t, const std::string& phase, double ms) {
  auto it = std::find_if(t.phases.begin(), t.phases.end(),
                         [&](const auto& p) { return p.first == phase; });
  if (it == t.phases.end()) it = t.phases.insert(t.phases.end(), {phase, {}});
  it->second.push_back(ms);
}

// ORIGIN_NS's line, laid from FORK_NS on.
void addLine(SpanTable& t, const SpanLine& l, uint64_t forkNs, const std::string& prefix) {
  const double offset = (static_cast<double>(l.originNs) - static_cast<double>(forkNs)) / 1e6;
  for (const auto& [phase, ms] : l.marks) addPhase(t, prefix + phase, offset + ms);
}

}  // namespace

SpanTable traceRuns(const std::string& what, const Helper& traced, const Command& run,
                    const Rounds& o) {
  SpanTable t{what, {}, {}, 0};
  const Command spanned = run.withEnv("GPUBOX_TRACE_SPANS=1");
  Runner runner;
  for (unsigned i = 0; i < o.warmup; ++i) runner.timed(spanned);
  std::string before = traced.log();
  std::vector<uint64_t> forks;
  std::vector<std::vector<SpanLine>> client;
  for (unsigned i = 0; i < o.runs; ++i) {
    t.whole.push_back(runner.timed(spanned));
    forks.push_back(runner.lastForkNs());
    client.push_back(parseSpanLines(runner.lastStderr(), "gpubox spans"));
    if (client.back().empty())
      throw std::runtime_error(
          spanned.describe() +
          "wrote no spans line with GPUBOX_TRACE_SPANS=1: " + runner.lastStderr());
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the last lines
  const std::vector<SpanLine> helper =
      parseSpanLines(traced.log().substr(before.size()), "spans run-");
  for (size_t i = 0; i < forks.size(); ++i) {
    for (const SpanLine& l : client[i]) addLine(t, l, forks[i], "client:");
    // The helper's line of this run: the one that starts between its fork
    // and its reap (the runs are one after another).
    const uint64_t reap = forks[i] + static_cast<uint64_t>(t.whole[i] * 1e6);
    auto h = std::find_if(helper.begin(), helper.end(), [&](const SpanLine& l) {
      return l.originNs >= forks[i] && l.originNs <= reap;
    });
    if (h == helper.end())
      ++t.unmatched;
    else
      addLine(t, *h, forks[i], "");
  }
  if (t.unmatched == forks.size())
    throw std::runtime_error("the helper logged no spans line within any of the runs of " +
                             spanned.describe() + "(is it started with --trace-spans?)");
  std::fprintf(stderr, "  done: spans, %s\n", what.c_str());
  return t;
}

void printSpans(const SpanTable& t, unsigned runs) {
  std::printf(
      "where `%s` spends its time: %u runs, the client's spans (GPUBOX_TRACE_SPANS) and the "
      "helper's (--trace-spans) on one clock; ms from the client's fork\n",
      t.what.c_str(), runs);
  std::vector<std::pair<std::string, double>> order;
  for (const auto& [phase, times] : t.phases) order.emplace_back(phase, median(times));
  std::stable_sort(order.begin(), order.end(),
                   [](const auto& a, const auto& b) { return a.second < b.second; });
  std::printf("%-16s %8s %8s %8s %8s\n", "phase", "median", "p90", "p99", "step");
  double last = 0;
  for (const auto& [phase, med] : order) {
    const auto& times = std::find_if(t.phases.begin(), t.phases.end(), [&](const auto& p) {
                          return p.first == phase;
                        })->second;
    std::printf("%-16s %8.2f %8.2f %8.2f", phase.c_str(), med, percentile(times, 90),
                percentile(times, 99));
    // A phase not every run has (a cgroup v1 placement the init waited
    // for) is no step of the common path.
    if (times.size() < t.whole.size()) {
      std::printf("%9s   (%zu of the %zu runs)\n", "", times.size(), t.whole.size());
      continue;
    }
    std::printf(" %8.2f\n", med - last);
    last = med;
  }
  std::printf("%-16s %8.2f %8.2f %8.2f %8.2f   (the client reaped)\n", "whole", median(t.whole),
              percentile(t.whole, 90), percentile(t.whole, 99), median(t.whole) - last);
  if (t.unmatched)
    std::printf("(%u of the runs had no helper line in their time: left out of its phases)\n",
                t.unmatched);
  std::printf("\n");
}

}  // namespace gpubox::bench
