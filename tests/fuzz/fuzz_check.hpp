// What every fuzz target shares: a check that is never compiled out (a
// failed invariant is a finding, reported like a crash), and the exception
// types a parser is documented to throw.
#pragma once

#include <cstdio>
#include <cstdlib>

// Aborts with the failed condition; libFuzzer then saves the input as a
// crash-* file, exactly as for a sanitizer report.
#define FUZZ_CHECK(cond)                                                                \
  do {                                                                                  \
    if (!(cond)) {                                                                      \
      std::fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                     \
    }                                                                                   \
  } while (0)
