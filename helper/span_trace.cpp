#include "span_trace.hpp"

#include <algorithm>
#include <atomic>

#include "log.hpp"
#include "span_clock.hpp"

namespace gpubox {

namespace {
std::atomic<bool> tracing{false};
}  // namespace

void SpanTrace::enable() {
  tracing = true;
}

bool SpanTrace::enabled() {
  return tracing;
}

std::shared_ptr<SpanTrace> SpanTrace::startIfEnabled(const SpanOrigin& origin) {
  if (!tracing) return nullptr;
  auto trace = std::make_shared<SpanTrace>();
  trace->startNs_ = monotonicNs();
  if (origin.acceptedNs) trace->markAt("accepted", origin.acceptedNs);
  if (origin.receivedNs) trace->markAt("received", origin.receivedNs);
  return trace;
}

void SpanTrace::mark(std::string phase) {
  markAt(std::move(phase), monotonicNs());
}

void SpanTrace::markAt(std::string phase, uint64_t ns) {
  // After an emit, the first mark starts the next line; one from before
  // the start (the accept, the call's arrival) moves the start back.
  if (startNs_ == 0 || ns < startNs_) startNs_ = ns;
  marks_.emplace_back(std::move(phase), ns);
}

void SpanTrace::emit() {
  if (marks_.empty()) return;
  // The init's marks arrive with its Ready, after marks of the helper's
  // that came later (a v1 placement): put each where its time says.
  std::stable_sort(marks_.begin(), marks_.end(),
                   [](const auto& a, const auto& b) { return a.second < b.second; });
  std::string line = "spans " + name_ + " @" + std::to_string(startNs_) + ":";
  for (const auto& [phase, ns] : marks_) appendSpan(line, phase.c_str(), ns, startNs_);
  logInfo(line + " (ms)");
  marks_.clear();
  startNs_ = 0;
}

}  // namespace gpubox
