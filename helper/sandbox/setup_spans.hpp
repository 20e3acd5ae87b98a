// The init's setup steps for `gpubox-helper --trace-spans`: each step's end
// is timed in the init (CLOCK_MONOTONIC) and sent to the helper with Ready
// as FromInit::Span records, which the helper logs among its own spans as
// init:STEP (span_trace.hpp, docs/performance.md).
//
// The init is cloned from the helper after main() turned tracing on, so it
// inherits SpanTrace::enabled(); when tracing is off mark() does nothing.
// One init is one single-threaded process: a process-wide list is its own.
#pragma once

#include <vector>

#include "init_messages.hpp"

namespace gpubox::setupspans {

// Records that the step STEP (a string literal) ended now.
void mark(const char* step);
// The steps so far as records to send before Ready; the list is emptied.
std::vector<initmsg::FromInitRecord> take();

}  // namespace gpubox::setupspans
