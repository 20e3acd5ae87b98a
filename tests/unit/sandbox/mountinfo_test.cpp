#include "mountinfo.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <optional>
#include <string>

#include "unique_fd.hpp"

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

// What the kernel writes that the first table leaves out: several optional
// fields, every escape (space, tab, newline, backslash), other control
// bytes as they are (only a space separates fields), a last line with no
// newline; and lines that are not mountinfo, each skipped alone.
TEST(MountInfo, ParsesEveryFieldTheKernelWritesAndSkipsWhatItCannotRead) {
  constexpr const char* kText =
      "60 1 0:44 /a\\134b /mnt/x\\011y\\012z rw,relatime shared:3 master:1 propagate_from:2 - "
      "tmpfs tmpfs rw\n"
      "\n"
      "61 1 0:45 / /no-separator rw tmpfs tmpfs rw\n"
      "6x 1 0:46 / /bad-id rw - tmpfs tmpfs rw\n"
      "62 1 046 / /bad-device rw - tmpfs tmpfs rw\n"
      "63 1 0:4x / /bad-minor rw - tmpfs tmpfs rw\n"
      "64 1 0:48 / /no-type rw -\n"
      "65 1 0:49 /\n"
      "67 1 0:5 / /a\rcarriage\vreturn rw - proc proc rw\n"
      "66 60 259:3 / /last rw - ext4 /dev/nvme0n1p3 rw";
  auto all = parseMountInfo(kText);
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].id, 60);
  EXPECT_EQ(all[0].parent, 1);
  EXPECT_EQ(all[0].dev, makedev(0, 44));
  EXPECT_EQ(all[0].root, "/a\\b");
  EXPECT_EQ(all[0].mountPoint, "/mnt/x\ty\nz");
  EXPECT_EQ(all[0].fsType, "tmpfs");
  EXPECT_EQ(all[1].id, 67);
  EXPECT_EQ(all[1].mountPoint, "/a\rcarriage\vreturn");
  EXPECT_EQ(all[1].fsType, "proc");
  EXPECT_EQ(all[2].id, 66);
  EXPECT_EQ(all[2].parent, 60);
  EXPECT_EQ(all[2].dev, makedev(259, 3));
  EXPECT_EQ(all[2].mountPoint, "/last");
  EXPECT_EQ(all[2].fsType, "ext4");
}

// This process's own table: every line is read, and the entry of the mount
// "/" is on carries the id statx gives it.
TEST(MountInfo, ReadsThisProcessesOwnTable) {
  UniqueFd info(::open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(info);
  std::string text;
  char buf[4096];
  for (ssize_t n; (n = ::read(info.get(), buf, sizeof buf)) > 0;)
    text.append(buf, static_cast<size_t>(n));
  const size_t lines = static_cast<size_t>(std::count(text.begin(), text.end(), '\n'));
  const std::vector<MountInfoEntry> all = readOwnMountInfo("test");
  EXPECT_EQ(all.size(), lines);
  UniqueFd root(::open("/", O_PATH | O_CLOEXEC));
  ASSERT_TRUE(root);
  const int rootId = mountIdOf(root.get(), "test");
  const auto entry =
      std::find_if(all.begin(), all.end(), [&](const MountInfoEntry& e) { return e.id == rootId; });
  ASSERT_NE(entry, all.end());
  EXPECT_EQ(entry->mountPoint, "/");
  for (const MountInfoEntry& e : all) {
    EXPECT_FALSE(e.fsType.empty()) << e.mountPoint;
    EXPECT_EQ(e.mountPoint.front(), '/') << e.mountPoint;
  }
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

namespace gpubox {
namespace {

// mountHasChildren against the real kernel, in a mount namespace of its
// own: a tmpfs with nothing below it, then with a tmpfs mounted inside.
TEST(MountHasChildren, AsksTheKernelWhetherAMountHasMountsBelowIt) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root: makes a mount namespace";
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto code = [&]() -> int {
      if (::unshare(CLONE_NEWNS) != 0) return 10;
      if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return 11;
      char dir[] = "/tmp/gpubox-children-XXXXXX";
      if (!::mkdtemp(dir)) return 12;
      if (::mount("tmpfs", dir, "tmpfs", 0, nullptr) != 0) return 13;
      UniqueFd top(::open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC));
      std::optional<bool> alone = mountHasChildren(top.get());
      if (!alone) return 77;  // a kernel without listmount (before 6.8)
      if (*alone) return 14;
      const std::string inner = std::string(dir) + "/inner";
      if (::mkdir(inner.c_str(), 0755) != 0) return 15;
      if (::mount("tmpfs", inner.c_str(), "tmpfs", 0, nullptr) != 0) return 16;
      std::optional<bool> withOne = mountHasChildren(top.get());
      if (!withOne || !*withOne) return 17;
      // The inner one has none of its own.
      UniqueFd innerFd(::open(inner.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
      if (mountHasChildren(innerFd.get()) != false) return 18;
      ::umount2(dir, MNT_DETACH);
      ::rmdir(dir);
      return 0;
    };
    _exit(code());
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  if (WEXITSTATUS(status) == 77) GTEST_SKIP() << "this kernel has no listmount (Linux 6.8)";
  EXPECT_EQ(WEXITSTATUS(status), 0) << "failed at step " << WEXITSTATUS(status);
}

}  // namespace
}  // namespace gpubox
