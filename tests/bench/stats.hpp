// Order statistics of timing samples for the start-up benchmark.
#pragma once

#include <cstdint>
#include <vector>

namespace gpubox::bench {

// Nearest-rank percentile (p in [0, 100]) of `samples`; 0 when empty.
double percentile(std::vector<double> samples, double p);
double median(const std::vector<double>& samples);

// The median of a[i] / b[i] over the pairs (runs that were interleaved, so
// that a slow moment of the machine hits both sides of a pair).
double medianRatio(const std::vector<double>& a, const std::vector<double>& b);

}  // namespace gpubox::bench
