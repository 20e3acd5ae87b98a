#include "libraries.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "ld_cache.hpp"
#include "text_file.hpp"
#include "unique_fd.hpp"

namespace gpubox::gpu {

namespace {

bool isRegular(const std::string& path) {
  // stat, not lstat: distributions install some of these through symlinks
  // (alternatives); the bind mount follows them the same way.
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// A program the kernel runs itself, not a script that needs an interpreter
// (which a foreign root may lack).
bool isElf(const std::string& path) {
  static constexpr char kElfMagic[4] = {0x7f, 'E', 'L', 'F'};
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
  char magic[4] = {};
  return fd && ::read(fd.get(), magic, sizeof magic) == 4 &&
         std::memcmp(magic, kElfMagic, sizeof magic) == 0;
}

bool safeVersion(const std::string& v) {
  if (v.empty() || v.size() > 32) return false;
  return std::all_of(v.begin(), v.end(),
                     [](char c) { return (c >= '0' && c <= '9') || c == '.'; }) &&
         v.find("..") == std::string::npos && v.front() != '.';
}

}  // namespace

const std::vector<DriverLibrary>& driverLibraries() {
  static const std::vector<DriverLibrary> libs = {
      {"libcuda", "libcuda.so.1"},                                    // the CUDA driver API
      {"libnvidia-ml", "libnvidia-ml.so.1"},                          // NVML (nvidia-smi, PyTorch)
      {"libnvidia-ptxjitcompiler", "libnvidia-ptxjitcompiler.so.1"},  // PTX JIT
      {"libnvidia-nvvm", "libnvidia-nvvm.so.4"},                      // NVVM JIT (LTO, numba)
      {"libnvidia-gpucomp", ""},                                      // used by the JITs (R535+)
      {"libcudadebugger", "libcudadebugger.so.1"},                    // cuda-gdb backend
      {"libnvidia-cfg", "libnvidia-cfg.so.1"},                        // config queries
      {"libnvidia-allocator", "libnvidia-allocator.so.1"},            // shared allocations
      {"libnvidia-opencl", "libnvidia-opencl.so.1"},                  // OpenCL ICD
      {"libnvidia-pkcs11", ""},                                       // confidential computing
      {"libnvidia-pkcs11-openssl3", ""},
  };
  return libs;
}

std::optional<std::string> sonameFor(std::string_view fileName) {
  for (const DriverLibrary& lib : driverLibraries()) {
    std::string prefix = std::string(lib.base) + ".so.";
    if (fileName.substr(0, prefix.size()) != prefix) continue;
    if (lib.soname.empty() || fileName == lib.soname) return std::nullopt;
    return std::string(lib.soname);
  }
  return std::nullopt;
}

std::vector<std::string> libraryDirs(const std::string& root) {
  std::vector<std::string> dirs;
  auto add = [&](const std::string& d) {
    if (std::find(dirs.begin(), dirs.end(), d) == dirs.end()) dirs.push_back(d);
  };
  try {
    if (auto cache = readSmallFile(underRoot(root, "etc/ld.so.cache"), kMaxLdCache)) {
      for (const LdCacheEntry& e : parseLdCache(*cache)) {
        if (e.soname != "libcuda.so.1" || e.path.empty() || e.path[0] != '/') continue;
        size_t slash = e.path.rfind('/');
        std::string dir = e.path.substr(1, slash == 0 ? 0 : slash - 1);
        // A directory under the root only: never "..", never the root itself.
        if (dir.empty() || dir.find("..") != std::string::npos) continue;
        add(underRoot(root, dir));
      }
    }
  } catch (const std::exception&) {
    // An unreadable cache only means we rely on the standard directories.
  }
  for (const char* d : {"usr/lib/x86_64-linux-gnu", "usr/lib64", "usr/lib"})
    add(underRoot(root, d));
  return dirs;
}

std::vector<std::string> findDriverLibraries(const std::string& root, const std::string& version) {
  std::vector<std::string> out;
  if (!safeVersion(version)) return out;
  std::vector<std::string> dirs = libraryDirs(root);
  for (const DriverLibrary& lib : driverLibraries()) {
    std::string file = std::string(lib.base) + ".so." + version;
    for (const std::string& dir : dirs) {
      std::string path = dir + "/" + file;
      if (isRegular(path)) {
        out.push_back(path);
        break;
      }
    }
  }
  return out;
}

std::optional<std::string> findNvidiaSmi(const std::string& root,
                                         const std::vector<std::string>& libraries) {
  std::vector<std::string> candidates;
  auto add = [&](const std::string& c) {
    if (std::find(candidates.begin(), candidates.end(), c) == candidates.end())
      candidates.push_back(c);
  };
  for (const std::string& lib : libraries) {
    std::string dir = lib.substr(0, lib.rfind('/'));
    size_t slash = dir.rfind('/');
    if (slash == std::string::npos || dir.compare(slash + 1, 3, "lib") != 0) continue;
    add(dir.substr(0, slash) + "/bin/nvidia-smi");
  }
  for (const char* rel : {"usr/bin/nvidia-smi", "usr/sbin/nvidia-smi"}) add(underRoot(root, rel));

  std::optional<std::string> script;
  for (const std::string& path : candidates) {
    if (!isRegular(path)) continue;
    if (isElf(path)) return path;
    if (!script) script = path;
  }
  return script;
}

}  // namespace gpubox::gpu
