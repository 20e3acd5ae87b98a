// The mount engine's skip decisions for optional steps (the helper's GPU and
// /proc/driver steps) when earlier steps change what those decisions looked
// at: what the engine learnt of a directory must not outlive a step that
// changed it (RootBuilder::stepApplied). Each case builds a root in a child
// of its own (a private mount namespace, then pivot_root into the result)
// and reports what the result shows. Needs root; CI runs it as root.
#include <sched.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "mount_engine.hpp"

namespace gpubox {
namespace {

struct Built {
  std::vector<size_t> skipped;
  std::vector<bool> exists;  // for each path asked about, in the built root
  std::string error;
};

// Builds PLAN in a child with a mount namespace of its own and says, for
// each of PATHS, whether it exists in the result.
Built buildInChild(const std::vector<MountOp>& plan, const std::vector<std::string>& paths) {
  int fds[2];
  if (::pipe(fds) != 0) return {.error = std::strerror(errno)};
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    std::string report;
    try {
      if (::unshare(CLONE_NEWNS) != 0) throw std::runtime_error("unshare(CLONE_NEWNS) failed");
      MountOutcome outcome = buildSandboxRoot(plan, {});
      for (size_t i : outcome.skipped) report += "s" + std::to_string(i) + " ";
      for (const std::string& p : paths) {
        struct stat st;
        report += ::lstat(p.c_str(), &st) == 0 ? "1" : "0";
      }
    } catch (const std::exception& e) {
      report = std::string("E") + e.what();
    }
    [[maybe_unused]] ssize_t n = ::write(fds[1], report.data(), report.size());
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string text;
  char buf[512];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;)
    text.append(buf, static_cast<size_t>(n));
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  Built b;
  if (!text.empty() && text[0] == 'E') {
    b.error = text.substr(1);
    return b;
  }
  size_t at = 0;
  while (at < text.size() && text[at] == 's') {
    size_t space = text.find(' ', at);
    b.skipped.push_back(std::stoul(text.substr(at + 1, space - at - 1)));
    at = space + 1;
  }
  for (; at < text.size(); ++at) b.exists.push_back(text[at] == '1');
  return b;
}

MountOp dir(const std::string& dest, bool optional = false) {
  return {.kind = MountKind::Dir, .dest = dest, .optional = optional};
}

class MountEngineSkips : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (mount namespaces, pivot_root)";
  }
};

// A directory found missing, then made by a later step: an optional step
// inside it is applied, not skipped on what was learnt before.
TEST_F(MountEngineSkips, ADirectoryMadeLaterIsSeen) {
  Built b = buildInChild({dir("/a/b", true), dir("/a"), dir("/a/c", true)}, {"/a/b", "/a/c"});
  ASSERT_EQ(b.error, "");
  EXPECT_EQ(b.skipped, std::vector<size_t>{0});
  EXPECT_EQ(b.exists, (std::vector<bool>{false, true}));
}

// A directory found there, then covered by a mount above it: an optional
// step inside it is skipped, and nothing is made in its place.
TEST_F(MountEngineSkips, ADirectoryCoveredLaterIsGone) {
  Built b = buildInChild({dir("/d/sub"),
                          dir("/d/sub/k", true),
                          {.kind = MountKind::Tmpfs, .dest = "/d"},
                          dir("/d/sub/m", true)},
                         {"/d/sub", "/d/sub/m"});
  ASSERT_EQ(b.error, "");
  EXPECT_EQ(b.skipped, std::vector<size_t>{3});
  EXPECT_EQ(b.exists, (std::vector<bool>{false, false}));
}

// What was learnt outside a step's destination still holds after it: a
// directory beside a new mount is still there for the optional steps in it.
TEST_F(MountEngineSkips, ADirectoryBesideAMountStays) {
  Built b = buildInChild({dir("/e/keep"),
                          dir("/e/keep/x", true),
                          {.kind = MountKind::Tmpfs, .dest = "/e/other"},
                          dir("/e/keep/y", true)},
                         {"/e/keep/x", "/e/keep/y", "/e/other"});
  ASSERT_EQ(b.error, "");
  EXPECT_TRUE(b.skipped.empty());
  EXPECT_EQ(b.exists, (std::vector<bool>{true, true, true}));
}

}  // namespace
}  // namespace gpubox
