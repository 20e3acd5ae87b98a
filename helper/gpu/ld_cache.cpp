#include "ld_cache.hpp"

#include <cstdint>
#include <cstring>

namespace gpubox::gpu {

namespace {

constexpr std::string_view kOldMagic = "ld.so-1.7.0";
constexpr std::string_view kNewMagic = "glibc-ld.so.cache1.1";

// struct cache_file_new: magic[17] + version[3], nlibs, len_strings, flags(u8),
// pad[3], extension_offset, unused[3] -> 48 bytes; then file_entry_new
// {int32 flags; uint32 key, value; uint32 osversion; uint64 hwcap} = 24 bytes.
constexpr size_t kNewHeader = 48;
constexpr size_t kNewEntry = 24;
// struct cache_file (old): magic[11] + pad -> nlibs at 12; entries of 12 bytes.
constexpr size_t kOldHeader = 16;
constexpr size_t kOldEntry = 12;

uint32_t u32(std::string_view d, size_t off) {
  uint32_t v;
  std::memcpy(&v, d.data() + off, sizeof v);  // native endianness, as ldconfig writes it
  return v;
}

// NUL-terminated string at `off` within `d`, or nullopt-like empty on overrun.
bool cstr(std::string_view d, size_t off, std::string& out) {
  if (off >= d.size()) return false;
  size_t end = d.find('\0', off);
  if (end == std::string_view::npos || end - off > 4096) return false;
  out.assign(d.substr(off, end - off));
  return true;
}

}  // namespace

std::vector<LdCacheEntry> parseLdCache(std::string_view data) {
  std::vector<LdCacheEntry> out;
  size_t base = 0;
  if (data.substr(0, kOldMagic.size()) == kOldMagic) {
    // Old table first; the new one follows, aligned to 8 bytes.
    if (data.size() < kOldHeader) return out;
    uint64_t oldLibs = u32(data, 12);
    uint64_t end = kOldHeader + oldLibs * kOldEntry;
    base = static_cast<size_t>((end + 7) & ~uint64_t{7});
    if (end > data.size() || base > data.size()) return out;
  }
  std::string_view d = data.substr(base);
  if (d.size() < kNewHeader || d.substr(0, kNewMagic.size()) != kNewMagic) return out;
  uint64_t nlibs = u32(d, 20);
  if (kNewHeader + nlibs * kNewEntry > d.size()) return out;
  out.reserve(static_cast<size_t>(nlibs));
  for (uint64_t i = 0; i < nlibs; ++i) {
    size_t e = kNewHeader + static_cast<size_t>(i) * kNewEntry;
    // Offsets of key/value strings are relative to the new header.
    LdCacheEntry entry;
    if (!cstr(d, u32(d, e + 4), entry.soname) || !cstr(d, u32(d, e + 8), entry.path)) continue;
    entry.flags = static_cast<int32_t>(u32(d, e));
    entry.osversion = u32(d, e + 12);
    std::memcpy(&entry.hwcap, d.data() + e + 16, sizeof entry.hwcap);
    out.push_back(std::move(entry));
  }
  return out;
}

}  // namespace gpubox::gpu
