// The client's start-up spans, for finding where a `gpubox run` spends its
// time (docs/performance.md). Off unless GPUBOX_TRACE_SPANS is set to
// something other than "" or "0"; then each command's end writes one line
// to stderr:
//
//   gpubox spans @8123456789012: main +0.00 parsed +0.04 connected +0.09
//     sent +0.13 status +2.31 (ms)
//
// "@" is the first mark's CLOCK_MONOTONIC time in ns, the clock of the
// helper's --trace-spans lines too, so the two can be laid side by side.
// Marks are string literals; a process's marks are not shared between
// threads (libgpubox-client's Connection is used from one thread).
#pragma once

namespace gpubox::client::spans {

bool enabled();
// Records PHASE now (nothing when off). The first mark after an emit opens
// the next line.
void mark(const char* phase);
// Writes the current line to stderr (one write) and starts over.
void emit();

}  // namespace gpubox::client::spans
