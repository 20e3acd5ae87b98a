// glibc ld.so.cache reader: built images, the host's real cache, and junk.
#include <gtest/gtest.h>

#include "fake_driver.hpp"
#include "ld_cache.hpp"
#include "text_file.hpp"

using gpubox::testing::FakeDriverRoot;
using namespace gpubox::gpu;

TEST(LdCache, ReadsNewFormat) {
  std::string img = FakeDriverRoot::ldCacheImage(
      {{"libcuda.so.1", "/usr/lib/x86_64-linux-gnu/nvidia/current/libcuda.so.1"},
       {"libc.so.6", "/usr/lib/x86_64-linux-gnu/libc.so.6"}});
  auto entries = parseLdCache(img);
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].soname, "libcuda.so.1");
  EXPECT_EQ(entries[0].path, "/usr/lib/x86_64-linux-gnu/nvidia/current/libcuda.so.1");
  EXPECT_EQ(entries[1].soname, "libc.so.6");
}

TEST(LdCache, ReadsNewFormatAfterOldTable) {
  // "ld.so-1.7.0", nlibs = 1, one 12-byte old entry, then the new format
  // at the next 8-byte boundary (offset 32).
  std::string img = "ld.so-1.7.0";
  img += '\0';
  uint32_t one = 1;
  img.append(reinterpret_cast<const char*>(&one), 4);
  img += std::string(12, '\0');
  img += std::string(32 - img.size(), '\0');
  img += FakeDriverRoot::ldCacheImage({{"libcuda.so.1", "/opt/nv/libcuda.so.1"}});
  auto entries = parseLdCache(img);
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].path, "/opt/nv/libcuda.so.1");
}

TEST(LdCache, HostCacheParsesWhenPresent) {
  auto cache = readSmallFile("/etc/ld.so.cache", kMaxLdCache);
  if (!cache) GTEST_SKIP() << "this host has no /etc/ld.so.cache";
  auto entries = parseLdCache(*cache);
  bool libc = false;
  for (const auto& e : entries) libc |= e.soname == "libc.so.6";
  EXPECT_TRUE(libc) << entries.size() << " entries, no libc.so.6";
}

TEST(LdCache, TruncatedOrHostileImagesGiveNothingOrLess) {
  std::string img = FakeDriverRoot::ldCacheImage({{"libcuda.so.1", "/x/libcuda.so.1"}});
  for (size_t n = 0; n < img.size(); ++n) {
    auto entries = parseLdCache(std::string_view(img).substr(0, n));
    EXPECT_LE(entries.size(), 1u);
  }
  // An entry count far beyond the data.
  std::string big = img;
  uint32_t huge = 0xffffffffu;
  big.replace(20, 4, reinterpret_cast<const char*>(&huge), 4);
  EXPECT_TRUE(parseLdCache(big).empty());
  // String offsets outside the image.
  std::string bad = img;
  bad.replace(48 + 4, 4, reinterpret_cast<const char*>(&huge), 4);
  EXPECT_TRUE(parseLdCache(bad).empty());
  EXPECT_TRUE(parseLdCache("not a cache at all").empty());
}
