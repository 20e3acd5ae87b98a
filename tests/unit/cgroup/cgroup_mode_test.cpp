#include "cgroup_mode.hpp"

#include <gtest/gtest.h>

#include "error.hpp"

namespace gpubox::cgroup {
namespace {

// What this project's CI looks like (systemd "hybrid").
constexpr const char* kHybrid =
    "30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
    "31 30 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
    "35 30 0:32 / /sys/fs/cgroup/devices rw,relatime shared:7 - cgroup cgroup rw,devices\n"
    "39 30 0:36 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd\n"
    "40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate\n";

TEST(CgroupMode, Hybrid) {
  const Mounts m = parseMountinfo(kHybrid);
  EXPECT_EQ(m.mode, Mode::Hybrid);
  EXPECT_EQ(m.v1DevicesMount, "/sys/fs/cgroup/devices");
  EXPECT_EQ(m.v1DevicesRoot, "/");
  EXPECT_EQ(m.v2Mount, "/sys/fs/cgroup/unified");
  EXPECT_STREQ(modeName(m.mode), "hybrid");
}

TEST(CgroupMode, PureV2) {
  const Mounts m = parseMountinfo(
      "25 20 0:22 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 "
      "rw,nsdelegate,memory_recursiveprot\n");
  EXPECT_EQ(m.mode, Mode::V2);
  EXPECT_EQ(m.v2Mount, "/sys/fs/cgroup");
  EXPECT_EQ(m.v1DevicesMount, "");
}

TEST(CgroupMode, PureV1AndNamedHierarchyIsNotAController) {
  const Mounts v1 = parseMountinfo(
      "35 30 0:32 / /sys/fs/cgroup/devices rw - cgroup cgroup rw,devices\n"
      "39 30 0:36 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd\n");
  EXPECT_EQ(v1.mode, Mode::V1);
  // Only a named hierarchy and cgroup2: that is v2 for our purposes.
  const Mounts named = parseMountinfo(
      "39 30 0:36 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd\n"
      "40 30 0:37 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n");
  EXPECT_EQ(named.mode, Mode::V2);
  EXPECT_EQ(parseMountinfo("").mode, Mode::None);
}

TEST(CgroupMode, ContainerRootAndEscapes) {
  const Mounts m = parseMountinfo(
      "35 30 0:32 /docker/abc /sys/fs/cgroup/dev\\040ices ro - cgroup cgroup rw,devices\n");
  EXPECT_EQ(m.v1DevicesMount, "/sys/fs/cgroup/dev ices");
  EXPECT_EQ(m.v1DevicesRoot, "/docker/abc");
  EXPECT_EQ(cgroupDir(m.v1DevicesMount, m.v1DevicesRoot, "/docker/abc/x"),
            "/sys/fs/cgroup/dev ices/x");
  EXPECT_EQ(cgroupDir(m.v1DevicesMount, m.v1DevicesRoot, "/docker/abc"), "/sys/fs/cgroup/dev ices");
  EXPECT_THROW(cgroupDir(m.v1DevicesMount, m.v1DevicesRoot, "/docker/abcd"), Error);
  EXPECT_THROW(cgroupDir("/m", "/", "/../x"), Error);
  EXPECT_EQ(cgroupDir("/m", "/", "/"), "/m");
  EXPECT_EQ(cgroupDir("/m", "/", "/a/b"), "/m/a/b");
}

TEST(CgroupMode, ProcCgroup) {
  const SelfCgroups s = parseProcCgroup(
      "9:name=systemd:/\n5:devices:/system.slice/gpubox.service\n"
      "4:memory:/a:b\n0::/system.slice/gpubox.service\n");
  EXPECT_TRUE(s.hasV1Devices);
  EXPECT_EQ(s.v1Devices, "/system.slice/gpubox.service");
  EXPECT_TRUE(s.hasV2);
  EXPECT_EQ(s.v2, "/system.slice/gpubox.service");

  const SelfCgroups v2 = parseProcCgroup("0::/user.slice/user-1000.slice/session-2.scope\n");
  EXPECT_FALSE(v2.hasV1Devices);
  EXPECT_EQ(v2.v2, "/user.slice/user-1000.slice/session-2.scope");
}

TEST(CgroupMode, DetectsThisHost) {
  const Mounts m = detectMounts();  // must not throw on any Linux host
  std::printf("this host: cgroup %s (v1 devices at '%s', cgroup2 at '%s')\n", modeName(m.mode),
              m.v1DevicesMount.c_str(), m.v2Mount.c_str());
  EXPECT_NO_THROW(selfCgroups());
}

}  // namespace
}  // namespace gpubox::cgroup
