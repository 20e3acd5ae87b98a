// glibc's ld.so.cache (binary), through parseLdCache, the function the
// driver-library discovery calls with the file's bytes.
//
// Invariants beyond "no crash": it never throws; every entry's strings are
// bounded and NUL-free; and the parser reads only the image it is given
// (ASan would report a read past the copy below, which has no slack).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "ld_cache.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > gpubox::gpu::kMaxLdCache) return 0;  // the discovery never reads more
  // An exact-size heap copy, so an out-of-bounds read lands in ASan's redzone.
  auto copy = std::make_unique<char[]>(size);
  std::copy(data, data + size, copy.get());
  auto entries = gpubox::gpu::parseLdCache(std::string_view(copy.get(), size));
  for (const auto& e : entries) {
    FUZZ_CHECK(e.soname.size() <= 4096 && e.path.size() <= 4096);
    FUZZ_CHECK(e.soname.find('\0') == std::string::npos);
    FUZZ_CHECK(e.path.find('\0') == std::string::npos);
  }
  // Entries hold at least 24 bytes each in the image.
  FUZZ_CHECK(entries.size() <= size / 24);
  return 0;
}
