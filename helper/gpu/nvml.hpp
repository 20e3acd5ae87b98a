// Optional NVML enrichment. The driver's proc files are the source of truth;
// NVML only fills in what they left empty (a UUID the driver had not
// published yet, a model name). It is loaded with dlopen("libnvidia-ml.so.1")
// — no link-time dependency — and only when the driver root is "/" (NVML
// always talks to the real driver, so it must not mix into a fake tree).
// Without NVML everything works the same.
#pragma once

#include "gpu.hpp"

namespace gpubox::gpu {

// Returns true when NVML was loaded and initialised (inv.nvmlUsed is set).
bool enrichWithNvml(Inventory& inv);

}  // namespace gpubox::gpu
