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

// The driver's nvidia-smi. Looked for in bin/ beside the directories of
// `libraries` (findDriverLibraries: /usr/local/nvidia/lib64 ->
// /usr/local/nvidia/bin, as GPU cloud images install the driver), then in
// <root>/usr/bin and <root>/usr/sbin. The first ELF program wins: a
// distribution or image may put a shell wrapper in /usr/bin that execs the
// real one, and a foreign root may have no shell to run it. A script is
// taken only when no candidate is a program (it still works in a root that
// has its interpreter). nullopt when there is no regular file.
std::optional<std::string> findNvidiaSmi(const std::string& root,
                                         const std::vector<std::string>& libraries);

}  // namespace gpubox::gpu
