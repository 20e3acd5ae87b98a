// Writer for glibc's loader cache in the "glibc-ld.so.cache1.1" format (the
// only one glibc >= 2.32 writes; every loader since 2.3 reads it). Used by a
// sandbox's init to give a root that is not the host's a cache naming the
// driver's libraries (docs/gpu.md, "Roots that are not the host's"): no
// program of that root (its ldconfig) ever runs with privileges.
//
// The layout, as glibc's elf/cache.c and dl-cache.h define it: a 48-byte
// header (magic and version, entry count, string table length, endianness
// flags, extension offset), then 24-byte entries (flags, key and value
// string offsets from the header's start, minimum OS version, hwcap mask),
// then the NUL-terminated strings. The loader binary-searches the entries,
// so their order is the one ldconfig gives them (ldCacheOrder below).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "ld_cache.hpp"

namespace gpubox::gpu {

// glibc's _dl_cache_libcmp: strcmp, except that runs of digits compare as
// numbers ("libfoo.so.10" > "libfoo.so.9"). <0, 0, >0 like strcmp.
int ldCacheLibCompare(std::string_view a, std::string_view b);

// Whether A comes before B in a cache file: names in descending
// ldCacheLibCompare order, then higher flags first, then higher hwcap first.
bool ldCacheOrder(const LdCacheEntry& a, const LdCacheEntry& b);

// The flags an entry for a library of this build's architecture carries
// (FLAG_ELF_LIBC6 plus the architecture's bits: 0x0303 on x86-64).
int32_t defaultLdCacheFlags();

// A cache image holding ENTRIES (sorted here). Throws Error on what the
// format cannot hold or the loader would misread: an empty or NUL-containing
// name or path, a relative path, a hwcap that points into a glibc-hwcaps
// extension (none is written), more than 4 GiB of strings.
std::string writeLdCache(std::vector<LdCacheEntry> entries);

// The root's cache (its /etc/ld.so.cache image, or empty for none) with
// ADDED put in: every entry of the root whose name ADDED also has is left
// out (the driver's library must win over a stale copy in the root), and so
// are glibc-hwcaps extension entries (the image written has no extension;
// the loader then uses the plain entry of the same library). Added entries
// without flags get the root's libc.so.6 flags, else defaultLdCacheFlags().
// Throws Error when ROOT is not empty but not a cache this parser reads:
// replacing it with one that lost the root's own entries would break the
// root's other libraries silently.
std::string mergeLdCache(std::string_view root, std::vector<LdCacheEntry> added);

}  // namespace gpubox::gpu
