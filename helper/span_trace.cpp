#include "span_trace.hpp"

#include <time.h>

#include <atomic>
#include <cstdio>

#include "log.hpp"

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

std::shared_ptr<SpanTrace> SpanTrace::startIfEnabled() {
  if (!tracing) return nullptr;
  auto trace = std::make_shared<SpanTrace>();
  trace->startNs_ = nowNs();
  return trace;
}

uint64_t SpanTrace::nowNs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000 + static_cast<uint64_t>(ts.tv_nsec);
}

void SpanTrace::mark(const char* phase) {
  // After an emit, the first mark starts the next line.
  if (startNs_ == 0) startNs_ = nowNs();
  marks_.emplace_back(phase, nowNs());
}

void SpanTrace::emit() {
  if (marks_.empty()) return;
  std::string line = "spans " + name_ + ":";
  char buf[64];
  for (const auto& [phase, ns] : marks_) {
    std::snprintf(buf, sizeof buf, " %s +%.2f", phase, static_cast<double>(ns - startNs_) / 1e6);
    line += buf;
  }
  logInfo(line + " (ms)");
  marks_.clear();
  startNs_ = 0;
}

}  // namespace gpubox
