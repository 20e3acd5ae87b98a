// The driver's user-space libraries. libcuda and friends talk to the kernel
// module through ioctls whose layout changes between releases, so only the
// libraries of exactly the kernel driver's version
// (proc/driver/nvidia/version) are taken: lib<name>.so.<driverVersion>.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace gpubox::gpu {

// A driver library by base name and the soname the loader asks for. An
// empty soname means the versioned file name is itself the soname (no link
// needed).
struct DriverLibrary {
  std::string_view base;    // "libcuda"
  std::string_view soname;  // "libcuda.so.1"
};

// The compute/management set CUDA and NVML need, in binding order.
const std::vector<DriverLibrary>& driverLibraries();

// The soname for a versioned library file name ("libcuda.so.550.54.14" ->
// "libcuda.so.1"); nullopt when unknown or when the file is its own soname.
std::optional<std::string> sonameFor(std::string_view fileName);

// Directories searched, in order: those <root>/etc/ld.so.cache lists for
// libcuda.so.1 (rooted), then <root>/usr/lib/x86_64-linux-gnu,
// <root>/usr/lib64, <root>/usr/lib. No duplicates.
std::vector<std::string> libraryDirs(const std::string& root);

// Host paths of <dir>/<base>.so.<version> regular files, first directory
// wins per library. `version` must be digits and dots (checked).
std::vector<std::string> findDriverLibraries(const std::string& root, const std::string& version);

// <root>/usr/bin/nvidia-smi or <root>/usr/sbin/nvidia-smi when a regular file.
std::optional<std::string> findNvidiaSmi(const std::string& root);

}  // namespace gpubox::gpu
