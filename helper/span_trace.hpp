// SpanTrace: where one sandbox's start-up time goes, for
// `gpubox-helper --trace-spans` (docs/performance.md). Each phase is marked
// with CLOCK_MONOTONIC as the event loop reaches it; when the first command
// ends the helper logs one line:
//
//   spans run-7: checked +0.05 planned +0.06 cgroup +0.41 cloned +1.32
//     placed +2.90 ready +3.70 exec +3.76 started +4.12 exited +4.60 (ms)
//
// Off by default: then startIfEnabled() returns null and nothing is timed.
// Later commands of a session get a line each, from their exec on.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace gpubox {

class SpanTrace {
 public:
  // Turns tracing on for the helper's lifetime (main, at start).
  static void enable();
  static bool enabled();
  // A trace started now, or null when tracing is off.
  static std::shared_ptr<SpanTrace> startIfEnabled();

  void setName(std::string name) { name_ = std::move(name); }
  // Records `phase` (a string literal) at the current time.
  void mark(const char* phase);
  // Logs the marks so far relative to the start, then starts over: the next
  // mark opens a new line (a session's next command).
  void emit();

 private:
  static uint64_t nowNs();

  std::string name_;
  uint64_t startNs_ = 0;
  std::vector<std::pair<const char*, uint64_t>> marks_;
};

}  // namespace gpubox
