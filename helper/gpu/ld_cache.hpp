// Reader for glibc's /etc/ld.so.cache ("glibc-ld.so.cache1.1" format, alone
// or after the old "ld.so-1.7.0" table). Used only to learn which
// directories hold the driver's libraries (e.g. Debian's
// /usr/lib/x86_64-linux-gnu/nvidia/current); the result is validated by
// looking at the files, so a wrong or hostile cache can at worst make us
// miss a library, never bind something that is not one.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gpubox::gpu {

inline constexpr size_t kMaxLdCache = 16 * 1024 * 1024;

struct LdCacheEntry {
  std::string soname;  // "libcuda.so.1"
  std::string path;    // "/usr/lib/x86_64-linux-gnu/libcuda.so.1"
  // As ldconfig wrote them: the ABI (FLAG_ELF_LIBC6 | the architecture's
  // bits, 0x0303 on x86-64), the minimum kernel (0: any), and the hardware
  // capability mask (bit 62: an index into the file's glibc-hwcaps
  // extension, see ld_cache_writer.hpp).
  int32_t flags = 0;
  uint32_t osversion = 0;
  uint64_t hwcap = 0;
  bool operator==(const LdCacheEntry&) const = default;
};

// Entries of a cache image; empty when the format is not recognised or the
// data is inconsistent (never throws, never reads out of bounds).
std::vector<LdCacheEntry> parseLdCache(std::string_view data);

}  // namespace gpubox::gpu
