// SpanTrace: where one sandbox's start-up time goes, for
// `gpubox-helper --trace-spans` (docs/performance.md). Each phase is marked
// with CLOCK_MONOTONIC as the event loop reaches it; when the first command
// ends the helper logs one line:
//
//   spans run-7 @8123456789012: checked +0.05 planned +0.06 cgroup +0.41
//     cloned +1.32 init:config +1.40 ... init:dropped +3.60 placed +2.90
//     ready +3.70 exec +3.76 started +4.12 exited +4.60 (ms)
//
// "@" is the start in CLOCK_MONOTONIC ns, the clock of the client's
// GPUBOX_TRACE_SPANS lines too. The init:* marks are the init's own setup
// steps, timed in the init and sent with its Ready (setup_spans.hpp).
// Off by default: then startIfEnabled() returns null and nothing is timed.
// Later commands of a session get a line each, from their exec on.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace gpubox {

// When a request's first steps happened, before its trace existed: the
// accept of its connection (for the connection's first request only) and
// the call's arrival on the thread that serves the connection. 0: unknown.
struct SpanOrigin {
  uint64_t acceptedNs = 0;
  uint64_t receivedNs = 0;
};

class SpanTrace {
 public:
  // Turns tracing on for the helper's lifetime (main, at start).
  static void enable();
  static bool enabled();
  // A trace started now, with ORIGIN's times marked as "accepted" and
  // "received", or null when tracing is off. A line's times count from its
  // earliest mark.
  static std::shared_ptr<SpanTrace> startIfEnabled(const SpanOrigin& origin = {});

  void setName(std::string name) { name_ = std::move(name); }
  // Records `phase` at the current time.
  void mark(std::string phase);
  // Records `phase` at `ns` (CLOCK_MONOTONIC), a time taken by the init.
  void markAt(std::string phase, uint64_t ns);
  // Logs the marks so far in time order, relative to the start, then starts
  // over: the next mark opens a new line (a session's next command).
  void emit();

 private:
  std::string name_;
  uint64_t startNs_ = 0;
  std::vector<std::pair<std::string, uint64_t>> marks_;
};

}  // namespace gpubox
