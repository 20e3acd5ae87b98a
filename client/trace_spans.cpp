#include "trace_spans.hpp"

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "span_clock.hpp"

namespace gpubox::client::spans {

namespace {

// Read once: the environment does not change under a running client.
bool readEnabled() {
  const char* v = std::getenv("GPUBOX_TRACE_SPANS");
  return v && *v && std::strcmp(v, "0") != 0;
}

std::vector<std::pair<const char*, uint64_t>>& line() {
  static std::vector<std::pair<const char*, uint64_t>> marks;
  return marks;
}

}  // namespace

bool enabled() {
  static const bool on = readEnabled();
  return on;
}

void mark(const char* phase) {
  if (!enabled()) return;
  line().emplace_back(phase, monotonicNs());
}

void emit() {
  auto& marks = line();
  if (marks.empty()) return;
  const uint64_t origin = marks.front().second;
  std::string text = "gpubox spans @" + std::to_string(origin) + ":";
  for (const auto& [phase, ns] : marks) appendSpan(text, phase, ns, origin);
  text += " (ms)\n";
  marks.clear();
  // One write, so that the line is never interleaved with the command's own.
  [[maybe_unused]] ssize_t n = ::write(STDERR_FILENO, text.data(), text.size());
}

}  // namespace gpubox::client::spans
