// MIG (Multi-Instance GPU) discovery. With MIG enabled, CUDA opens a GPU
// instance and a compute instance through capability device nodes
// /dev/nvidia-caps/nvidia-capN (major "nvidia-caps" from proc/devices); the
// driver publishes N for each instance in
//   proc/driver/nvidia/capabilities/gpu<minor>/mig/gi<G>/access
//   proc/driver/nvidia/capabilities/gpu<minor>/mig/gi<G>/ci<C>/access
// as a "DeviceFileMinor: N" line. (The host-wide capabilities/mig/config and
// mig/monitor caps are deliberately never discovered: they let a process
// reconfigure or watch every instance.)
#pragma once

#include <string>
#include <vector>

#include "gpu.hpp"

namespace gpubox::gpu {

// "DeviceFileMinor: N" from an access file's text; throws gpubox::Error
// naming `where` when absent or not a number.
unsigned parseDeviceFileMinor(const std::string& text, const std::string& where);

// The compute instances of the GPU with this minor, sorted by (gi, ci). An
// instance is kept only when both its cap nodes exist with the right number
// (otherwise a warning). capsMajor 0 (no "nvidia-caps" in proc/devices)
// with capability files present gives a warning and no instances.
std::vector<MigInstance> discoverMig(const std::string& root, unsigned gpuMinor, unsigned capsMajor,
                                     std::vector<std::string>& warnings);

// proc/driver/nvidia/capabilities/gpu<minor>, relative to the root.
std::string migCapsRel(unsigned gpuMinor);

}  // namespace gpubox::gpu
