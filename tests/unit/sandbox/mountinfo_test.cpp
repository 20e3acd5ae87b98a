#include "mountinfo.hpp"

#include <gtest/gtest.h>

namespace gpubox {
namespace {

// A bind of / (id 40) into the staging directory brought the host's /proc
// (41, with binfmt_misc 42 of type proc-like "binfmt_misc" below it) and a
// second procfs nested in the first (43); 50 is the host's own /proc,
// outside the bind.
constexpr const char* kInfo =
    "1 0 8:1 / / rw - ext4 /dev/sda1 rw\n"
    "50 1 0:5 / /proc rw,nosuid - proc proc rw\n"
    "40 30 8:1 / /tmp rw shared:1 - ext4 /dev/sda1 rw\n"
    "41 40 0:5 / /tmp/proc rw - proc proc rw\n"
    "42 41 0:6 / /tmp/proc/sys/fs/binfmt_misc rw - binfmt_misc binfmt_misc rw\n"
    "43 41 0:5 / /tmp/proc/nested rw - proc proc rw\n"
    "44 40 0:7 / /tmp/with\\040space rw - proc proc rw\n"
    "garbage line\n";

TEST(MountInfo, ParsesAndDecodes) {
  auto all = parseMountInfo(kInfo);
  ASSERT_EQ(all.size(), 7u);
  EXPECT_EQ(all[3].id, 41);
  EXPECT_EQ(all[3].parent, 40);
  EXPECT_EQ(all[3].mountPoint, "/tmp/proc");
  EXPECT_EQ(all[3].fsType, "proc");
  EXPECT_EQ(all[6].mountPoint, "/tmp/with space");
}

TEST(MountInfo, OutermostProcfsUnderTheBindOnly) {
  auto found = outermostOfTypeUnder(parseMountInfo(kInfo), 40, "proc");
  std::vector<std::string> points;
  for (const auto& e : found) points.push_back(e.mountPoint);
  // 43 is covered with 41; 50 is not under the bind.
  EXPECT_EQ(points, (std::vector<std::string>{"/tmp/proc", "/tmp/with space"}));
}

}  // namespace
}  // namespace gpubox
