// What the helper needs from the kernel, checked once at start-up so an old
// kernel gets a clear refusal instead of half-working sandboxes.
#pragma once

#include <string>
#include <vector>

namespace gpubox {

// Throws gpubox::Error naming the missing interface and the kernel version
// that brings it. Linux 5.12 is the floor (mount_setattr).
void checkKernelSupport();

// Human-readable list of the kernel interfaces gpubox uses on this host.
std::vector<std::string> kernelFeaturesInUse();

// "v1", "v2" or "hybrid".
std::string cgroupModeName();

}  // namespace gpubox
