#include "ld_cache_writer.hpp"

#include <algorithm>
#include <cstring>
#include <limits>
#include <set>

#include "error.hpp"

namespace gpubox::gpu {

namespace {

constexpr std::string_view kMagic = "glibc-ld.so.cache1.1";
constexpr size_t kHeader = 48;
constexpr size_t kEntry = 24;
// cache_file_new.flags: the byte order the file was written in. The loader
// (glibc >= 2.33) refuses a file whose order is not its own.
constexpr uint8_t kEndianLittle = 2;
constexpr uint8_t kEndianBig = 3;
// An entry's hwcap with this bit set indexes the glibc-hwcaps extension.
constexpr uint64_t kHwcapExtension = uint64_t{1} << 62;

bool isDigit(char c) {
  return c >= '0' && c <= '9';
}

template <typename T>
void put(std::string& out, size_t off, T value) {
  std::memcpy(out.data() + off, &value, sizeof value);  // native order, as the loader reads it
}

void checkEntry(const LdCacheEntry& e) {
  auto bad = [&](const std::string& why) {
    throw Error("loader cache entry " + e.soname + " => " + e.path + ": " + why);
  };
  if (e.soname.empty() || e.soname.find('\0') != std::string::npos) bad("bad library name");
  if (e.path.empty() || e.path[0] != '/' || e.path.find('\0') != std::string::npos)
    bad("the path must be absolute");
  if (e.hwcap & kHwcapExtension) bad("glibc-hwcaps entries need an extension this writer omits");
}

}  // namespace

int ldCacheLibCompare(std::string_view a, std::string_view b) {
  size_t i = 0, j = 0;
  while (i < a.size()) {
    if (isDigit(a[i])) {
      if (j >= b.size() || !isDigit(b[j])) return 1;
      // Compare the digit runs as numbers: skip leading zeros, then the
      // longer run is the larger, then digit by digit.
      size_t si = i, sj = j;
      while (i < a.size() && isDigit(a[i])) ++i;
      while (j < b.size() && isDigit(b[j])) ++j;
      std::string_view na = a.substr(si, i - si), nb = b.substr(sj, j - sj);
      na.remove_prefix(std::min(na.find_first_not_of('0'), na.size()));
      nb.remove_prefix(std::min(nb.find_first_not_of('0'), nb.size()));
      if (na.size() != nb.size()) return na.size() < nb.size() ? -1 : 1;
      if (int c = na.compare(nb); c != 0) return c;
    } else if (j < b.size() && isDigit(b[j])) {
      return -1;
    } else if (j >= b.size() || a[i] != b[j]) {
      // b ended (its NUL is smaller than any character) or the bytes differ.
      return j >= b.size() ? 1
                           : static_cast<unsigned char>(a[i]) - static_cast<unsigned char>(b[j]);
    } else {
      ++i;
      ++j;
    }
  }
  return j < b.size() ? -1 : 0;
}

bool ldCacheOrder(const LdCacheEntry& a, const LdCacheEntry& b) {
  int c = ldCacheLibCompare(a.soname, b.soname);
  if (c != 0) return c > 0;
  if (a.flags != b.flags) return a.flags > b.flags;
  return a.hwcap > b.hwcap;
}

int32_t defaultLdCacheFlags() {
  constexpr int32_t kElfLibc6 = 0x0003;
#if defined(__x86_64__)
  return kElfLibc6 | 0x0300;  // FLAG_X8664_LIB64
#elif defined(__aarch64__)
  return kElfLibc6 | 0x0a00;  // FLAG_AARCH64_LIB64
#elif defined(__powerpc64__)
  return kElfLibc6 | 0x0500;  // FLAG_POWERPC_LIB64
#else
  return kElfLibc6;
#endif
}

std::string writeLdCache(std::vector<LdCacheEntry> entries) {
  for (const LdCacheEntry& e : entries) checkEntry(e);
  std::stable_sort(entries.begin(), entries.end(), ldCacheOrder);
  const size_t stringsAt = kHeader + entries.size() * kEntry;
  std::string strings;
  std::vector<std::pair<uint32_t, uint32_t>> offsets;
  auto add = [&](const std::string& s) {
    size_t off = stringsAt + strings.size();
    if (off + s.size() + 1 > std::numeric_limits<uint32_t>::max())
      throw Error("loader cache: more than 4 GiB of names");
    strings += s;
    strings += '\0';
    return static_cast<uint32_t>(off);
  };
  for (const LdCacheEntry& e : entries) {
    uint32_t key = add(e.soname);
    offsets.emplace_back(key, add(e.path));
  }
  std::string out(stringsAt, '\0');
  std::memcpy(out.data(), kMagic.data(), kMagic.size());
  put(out, 20, static_cast<uint32_t>(entries.size()));
  put(out, 24, static_cast<uint32_t>(strings.size()));
  const uint16_t probe = 1;
  uint8_t little = 0;
  std::memcpy(&little, &probe, 1);
  put(out, 28, little ? kEndianLittle : kEndianBig);
  // 29..31 padding, 32 extension_offset (0: none), 36..47 unused: all zero.
  for (size_t i = 0; i < entries.size(); ++i) {
    size_t e = kHeader + i * kEntry;
    put(out, e, entries[i].flags);
    put(out, e + 4, offsets[i].first);
    put(out, e + 8, offsets[i].second);
    put(out, e + 12, entries[i].osversion);
    put(out, e + 16, entries[i].hwcap);
  }
  return out + strings;
}

std::string mergeLdCache(std::string_view root, std::vector<LdCacheEntry> added) {
  std::vector<LdCacheEntry> entries;
  if (!root.empty()) {
    entries = parseLdCache(root);
    if (entries.empty())
      throw Error(
          "the root's /etc/ld.so.cache is not a glibc-ld.so.cache1.1 cache gpubox can read, so "
          "it cannot add the driver's libraries to it");
  }
  int32_t flags = defaultLdCacheFlags();
  for (const LdCacheEntry& e : entries)
    if (e.soname == "libc.so.6" && !(e.hwcap & kHwcapExtension)) flags = e.flags;
  std::set<std::string> names;
  for (LdCacheEntry& e : added) {
    if (e.flags == 0) e.flags = flags;
    names.insert(e.soname);
  }
  std::erase_if(entries, [&](const LdCacheEntry& e) {
    return names.count(e.soname) || (e.hwcap & kHwcapExtension);
  });
  entries.insert(entries.end(), added.begin(), added.end());
  return writeLdCache(std::move(entries));
}

}  // namespace gpubox::gpu
