// The loader cache writer: glibc's name order, round trips through the
// reader, the merge a foreign root gets, and glibc's own ldconfig reading
// what it wrote (an independent check of the format).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "error.hpp"
#include "ld_cache.hpp"
#include "ld_cache_writer.hpp"
#include "text_file.hpp"

using namespace gpubox::gpu;

namespace {

LdCacheEntry entry(std::string name, std::string path, int32_t flags = 0x0303) {
  return {.soname = std::move(name), .path = std::move(path), .flags = flags};
}

// `ldconfig -p -C FILE` of the host's glibc, or "" when there is none.
std::string ldconfigPrint(const std::string& image) {
  const char* ldconfig = ::access("/sbin/ldconfig", X_OK) == 0 ? "/sbin/ldconfig" : nullptr;
  if (!ldconfig) return "";
  char path[] = "/tmp/gpubox-ldcache-XXXXXX";
  int fd = ::mkstemp(path);
  if (fd < 0) return "";
  ::close(fd);
  std::ofstream(path, std::ios::binary) << image;
  std::string cmd = std::string(ldconfig) + " -p -C " + path;
  std::string out;
  if (FILE* p = ::popen(cmd.c_str(), "r")) {
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    ::pclose(p);
  }
  ::unlink(path);
  return out;
}

}  // namespace

TEST(LdCacheWriter, NamesCompareLikeGlibc) {
  EXPECT_EQ(ldCacheLibCompare("libc.so.6", "libc.so.6"), 0);
  EXPECT_GT(ldCacheLibCompare("libfoo.so.10", "libfoo.so.9"), 0);  // numerically
  EXPECT_LT(ldCacheLibCompare("libfoo.so.9", "libfoo.so.10"), 0);
  EXPECT_EQ(ldCacheLibCompare("libfoo.so.010", "libfoo.so.10"), 0);
  EXPECT_GT(ldCacheLibCompare("libfoo.so.1", "libfoo.so"), 0);
  EXPECT_LT(ldCacheLibCompare("libfoo.so", "libfoo.so.1"), 0);
  EXPECT_GT(ldCacheLibCompare("libz.so", "liba.so"), 0);
  // A digit sorts after any other character (glibc returns 1 / -1).
  EXPECT_GT(ldCacheLibCompare("lib1", "libx"), 0);
  EXPECT_LT(ldCacheLibCompare("libx", "lib1"), 0);
}

TEST(LdCacheWriter, HostCacheIsInTheOrderThisWriterUses) {
  // ldconfig's own output: every neighbour pair in the writer's order (the
  // loader binary-searches on it).
  auto cache = readSmallFile("/etc/ld.so.cache", kMaxLdCache);
  if (!cache) GTEST_SKIP() << "this host has no /etc/ld.so.cache";
  auto entries = parseLdCache(*cache);
  ASSERT_GT(entries.size(), 2u);
  for (size_t i = 0; i + 1 < entries.size(); ++i)
    EXPECT_FALSE(ldCacheOrder(entries[i + 1], entries[i]))
        << entries[i].soname << " then " << entries[i + 1].soname;
}

TEST(LdCacheWriter, RoundTripsThroughTheReaderSorted) {
  std::vector<LdCacheEntry> in = {
      entry("liba.so.1", "/usr/lib/liba.so.1"), entry("libz.so.1", "/usr/lib/libz.so.1"),
      entry("libm.so.10", "/lib/libm.so.10"), entry("libm.so.9", "/lib/libm.so.9")};
  in[1].osversion = 0x030200;
  std::string img = writeLdCache(in);
  auto out = parseLdCache(img);
  ASSERT_EQ(out.size(), 4u);
  EXPECT_EQ(out[0], in[1]);  // libz first: descending names
  EXPECT_EQ(out[1], in[2]);  // libm.so.10 before libm.so.9
  EXPECT_EQ(out[2], in[3]);
  EXPECT_EQ(out[3], in[0]);
  // Header: magic, count, little-endian flag, no extension.
  EXPECT_EQ(img.substr(0, 20), "glibc-ld.so.cache1.1");
  EXPECT_EQ(static_cast<uint8_t>(img[28]), 2);
  EXPECT_EQ(writeLdCache({}).size(), 48u);
}

TEST(LdCacheWriter, RefusesWhatTheFormatCannotHold) {
  EXPECT_THROW(writeLdCache({entry("", "/x")}), gpubox::Error);
  EXPECT_THROW(writeLdCache({entry("libx.so", "relative/libx.so")}), gpubox::Error);
  EXPECT_THROW(writeLdCache({entry(std::string("li\0b", 4), "/x")}), gpubox::Error);
  LdCacheEntry hw = entry("libx.so", "/x");
  hw.hwcap = uint64_t{1} << 62;
  EXPECT_THROW(writeLdCache({hw}), gpubox::Error);
}

TEST(LdCacheWriter, MergeReplacesTheRootsCopiesAndKeepsTheRest) {
  std::string root = writeLdCache({entry("libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6"),
                                   entry("libcuda.so.1", "/usr/lib/stale/libcuda.so.1")});
  std::string merged = mergeLdCache(
      root,
      {{.soname = "libcuda.so.1", .path = "/run/gpubox-driver/libcuda.so.1"},
       {.soname = "libcuda.so.550.54.14", .path = "/run/gpubox-driver/libcuda.so.550.54.14"}});
  auto out = parseLdCache(merged);
  ASSERT_EQ(out.size(), 3u);
  int cuda = 0;
  for (const LdCacheEntry& e : out) {
    EXPECT_EQ(e.flags, 0x0303) << e.soname;  // the root's libc.so.6 flags
    if (e.soname == "libcuda.so.1") {
      ++cuda;
      EXPECT_EQ(e.path, "/run/gpubox-driver/libcuda.so.1");
    }
  }
  EXPECT_EQ(cuda, 1);
  // No root cache at all: only the added entries, with this build's flags.
  auto alone = parseLdCache(mergeLdCache("", {{.soname = "libcuda.so.1", .path = "/d/x"}}));
  ASSERT_EQ(alone.size(), 1u);
  EXPECT_EQ(alone[0].flags, defaultLdCacheFlags());
  // A root cache this reader cannot read is refused, not silently replaced.
  EXPECT_THROW(mergeLdCache("not a cache", {}), gpubox::Error);
}

TEST(LdCacheWriter, GlibcsLdconfigReadsWhatItWrote) {
  std::string img = writeLdCache({entry("libcuda.so.1", "/run/gpubox-driver/libcuda.so.1"),
                                  entry("libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6")});
  std::string out = ldconfigPrint(img);
  if (out.empty()) GTEST_SKIP() << "no /sbin/ldconfig here";
  EXPECT_NE(out.find("2 libs found in cache"), std::string::npos) << out;
#if defined(__x86_64__)
  EXPECT_NE(out.find("libcuda.so.1 (libc6,x86-64) => /run/gpubox-driver/libcuda.so.1"),
            std::string::npos)
      << out;
#endif
}

TEST(LdCacheWriter, RewritingTheHostCacheKeepsEveryPlainEntry) {
  auto cache = readSmallFile("/etc/ld.so.cache", kMaxLdCache);
  if (!cache) GTEST_SKIP() << "this host has no /etc/ld.so.cache";
  auto entries = parseLdCache(*cache);
  std::erase_if(entries, [](const LdCacheEntry& e) { return e.hwcap & (uint64_t{1} << 62); });
  auto back = parseLdCache(writeLdCache(entries));
  EXPECT_EQ(back, entries);  // already in ldconfig's order, so unchanged
}
