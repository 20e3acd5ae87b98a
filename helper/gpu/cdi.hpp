// CDI (Container Device Interface) specs for kind "nvidia.com/gpu", as
// written by `nvidia-ctk cdi generate`. Specs are read from <root>/etc/cdi
// then <root>/var/run/cdi (*.json with nlohmann-json, *.yaml with yaml-cpp);
// a later directory (and, within one, a later file name) wins for the same
// device name, as the CDI spec orders them.
//
// Only the data edits are taken: deviceNodes (checked like every other node),
// bind mounts (made read-only) and env. Hooks are NEVER run: they are
// arbitrary programs the privileged helper would execute; each spec that has
// some gets a warning saying they were ignored. Host paths in a spec are
// taken relative to the driver root (equal to the host's in production).
// A malformed spec is skipped with a warning: one bad file must not take
// away the GPUs the driver itself describes.
#pragma once

#include <string>
#include <vector>

#include "gpu.hpp"

namespace gpubox::gpu {

inline constexpr size_t kMaxCdiFile = 1024 * 1024;

// Parses one spec's text (`yaml`: YAML, else JSON). Devices get the
// spec-level edits merged in. Throws gpubox::Error naming `where` for a
// malformed spec; skips (with a warning) single unusable entries.
std::vector<CdiDevice> parseCdiSpec(const std::string& text, bool yaml, const std::string& where,
                                    const std::string& root, std::vector<std::string>& warnings);

// All nvidia.com/gpu devices under the root, later wins, sorted by name.
std::vector<CdiDevice> discoverCdi(const std::string& root, std::vector<std::string>& warnings);

inline constexpr const char* kCdiKind = "nvidia.com/gpu";

}  // namespace gpubox::gpu
