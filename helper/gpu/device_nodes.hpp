// Checks of the driver's device nodes. A node is only ever bound after
// lstat() shows a character device with exactly the expected major:minor:
// a regular file, symlink or a node with another number in its place (a
// stale node, a mistake, or an attack on the tree) must never reach a
// sandbox under a trusted name.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "gpu.hpp"

namespace gpubox::gpu {

inline constexpr unsigned kNvidiaMajor = 195;   // fixed by the driver
inline constexpr unsigned kCtlMinor = 255;      // /dev/nvidiactl
inline constexpr unsigned kModesetMinor = 254;  // /dev/nvidia-modeset

// (major, minor) of a character device at `path` (lstat, no symlinks);
// nullopt when it does not exist or is not a character device.
std::optional<std::pair<unsigned, unsigned>> charDeviceNumber(const std::string& path);

// The node at <root>/<rel> (sandbox path "/<rel>") when it is a character
// device major:minor. Absent: nullopt, no warning. Present but anything
// else: nullopt and a warning naming the node and what was found.
std::optional<DeviceNode> checkNode(const std::string& root, const std::string& rel, unsigned major,
                                    unsigned minor, std::vector<std::string>& warnings);

}  // namespace gpubox::gpu
