// cleanLeftovers(): what a crashed helper left behind is killed and removed,
// what a live helper owns is left alone. Needs root (real cgroups).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <thread>

#include "cgroup_fs.hpp"
#include "sandbox_cgroup.hpp"
#include "unique_fd.hpp"

namespace gpubox::cgroup {
namespace {

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

TEST(CleanLeftovers, KillsAndRemovesDeadHelpersCgroupsOnly) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root (creates cgroups); CI runs these as root";
  const Layout layout = prepareLayout();
  std::vector<std::string> parents;
  if (!layout.v2Parent.empty()) parents.push_back(layout.v2Parent);
  for (const auto& [controller, parent] : layout.v1Parents)
    if (std::find(parents.begin(), parents.end(), parent) == parents.end())
      parents.push_back(parent);
  if (parents.empty()) GTEST_SKIP() << "this host has no cgroup hierarchy";

  // A "dead helper": the pid of a child that is gone.
  const pid_t dead = ::fork();
  if (dead == 0) ::_exit(0);
  ASSERT_GT(dead, 0);
  ASSERT_EQ(::waitpid(dead, nullptr, 0), dead);

  const std::string leftoverName = "sb-" + std::to_string(dead) + "-1";
  const std::string liveName = "sb-" + std::to_string(::getpid()) + "-1";
  for (const std::string& parent : parents) {
    ASSERT_EQ(::mkdir((parent + "/" + leftoverName).c_str(), 0755), 0)
        << parent << ": " << std::strerror(errno);
    ASSERT_EQ(::mkdir((parent + "/" + liveName).c_str(), 0755), 0)
        << parent << ": " << std::strerror(errno);
  }

  // A process the dead helper left running in its sandbox.
  const pid_t sleeper = ::fork();
  if (sleeper == 0) {
    ::execlp("sleep", "sleep", "60", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ASSERT_GT(sleeper, 0);
  for (const std::string& parent : parents)
    writeControl(parent + "/" + leftoverName, "cgroup.procs", std::to_string(sleeper));

  // Other helpers may run on this host (integration tests): they stay live.
  const pid_t self = ::getpid();
  const std::vector<std::string> lines =
      cleanLeftovers(layout, [self](pid_t pid) { return pid == self || isGpuboxHelper(pid); });
  for (const std::string& line : lines) std::printf("cleaned: %s\n", line.c_str());

  int status = 0;
  ASSERT_EQ(::waitpid(sleeper, &status, 0), sleeper);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "status " << status;
  for (const std::string& parent : parents) {
    const std::string leftover = parent + "/" + leftoverName;
    EXPECT_FALSE(exists(leftover)) << leftover;
    const auto line = std::find_if(lines.begin(), lines.end(), [&](const std::string& l) {
      return l.find(leftover + " ") != std::string::npos;
    });
    ASSERT_NE(line, lines.end()) << "no line for " << leftover;
    EXPECT_EQ(line->rfind("removed leftover cgroup " + leftover + " of dead helper " +
                              std::to_string(dead) + " (killed ",
                          0),
              0u)
        << *line;
    const std::string live = parent + "/" + liveName;
    EXPECT_TRUE(exists(live)) << live << " belongs to a live helper";
    for (const std::string& l : lines) EXPECT_EQ(l.find(live), std::string::npos) << l;
    EXPECT_EQ(::rmdir(live.c_str()), 0) << live;
  }
  // The sleeper was in every leftover directory: the first one killed it.
  EXPECT_NE(std::find_if(lines.begin(), lines.end(),
                         [](const std::string& l) {
                           return l.find("(killed 1 process)") != std::string::npos;
                         }),
            lines.end());
}

TEST(CleanLeftovers, IgnoresOtherNamesAndEmptyLayouts) {
  EXPECT_TRUE(cleanLeftovers(Layout{}).empty());
  char tmpl[] = "/tmp/gpubox-leftovers.XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string parent = tmpl;
  // Only "sb-<pid>-<n>" is ours; pid 999999999 is never live.
  const std::vector<std::string> keep = {"sb-x-1",      "sb-12",    "sb-12-", "sb-12-3x",
                                         "test-1-2",    "sb--1-2",  "helper", "sb-12-3-ns",
                                         "sb-12-3-nsx", "sb-12-3-4"};
  for (const std::string& n : keep) ASSERT_EQ(::mkdir((parent + "/" + n).c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((parent + "/sb-999999999-7").c_str(), 0755), 0);
  // Named the way this helper names them: same pid namespace, judged by pid.
  const std::string ours = "sb-999999999-8-ns" + std::to_string(ownPidNamespace());
  ASSERT_EQ(::mkdir((parent + "/" + ours).c_str(), 0755), 0);
  Layout layout;
  layout.v1Parents["memory"] = parent;
  auto lines = cleanLeftovers(layout, [](pid_t) { return false; });
  std::sort(lines.begin(), lines.end());
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0], "removed leftover cgroup " + parent +
                          "/sb-999999999-7 of dead helper 999999999 (killed 0 processes)");
  EXPECT_EQ(lines[1], "removed leftover cgroup " + parent + "/" + ours +
                          " of dead helper 999999999 (killed 0 processes)");
  for (const std::string& n : keep) {
    EXPECT_TRUE(exists(parent + "/" + n)) << n;
    ::rmdir((parent + "/" + n).c_str());
  }
  ::rmdir(parent.c_str());
}

// A helper in another pid namespace (another container on the same
// hierarchy) cannot be judged by its pid: its pid means nothing here. Its
// sandbox is left alone while the kernel says a process is in it, and while
// it may still be being set up.
TEST(CleanLeftovers, AnotherPidNamespacesSandboxesAreJudgedByTheKernelOnly) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root (creates cgroups); CI runs these as root";
  const Layout layout = prepareLayout();
  if (layout.v2Parent.empty()) GTEST_SKIP() << "no cgroup2 hierarchy on this host";
  const std::string foreign = "sb-1-1-ns" + std::to_string(ownPidNamespace() + 1);
  const std::string dir = layout.v2Parent + "/" + foreign;
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0) << std::strerror(errno);
  // Fresh and unpopulated: could be a sandbox a live helper is setting up.
  auto lines = cleanLeftovers(layout, [](pid_t) { return false; });
  EXPECT_TRUE(exists(dir)) << "a fresh foreign cgroup was removed";
  for (const auto& l : lines) EXPECT_EQ(l.find(foreign), std::string::npos) << l;
  // Populated and old: a live sandbox of another container.
  pid_t child = ::fork();
  if (child == 0) {
    ::pause();
    ::_exit(0);
  }
  const std::string pid = std::to_string(child);
  const int procs = ::open((dir + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC);
  ASSERT_GE(procs, 0);
  ASSERT_EQ(::write(procs, pid.data(), pid.size()), static_cast<ssize_t>(pid.size()));
  ::close(procs);
  const timespec old[2] = {{std::time(nullptr) - 3600, 0}, {std::time(nullptr) - 3600, 0}};
  const bool aged = ::utimensat(AT_FDCWD, dir.c_str(), old, 0) == 0;
  cleanLeftovers(layout, [](pid_t) { return false; });
  EXPECT_TRUE(exists(dir)) << "a populated foreign cgroup was removed";
  EXPECT_EQ(::kill(child, 0), 0) << "a process of another container's sandbox was killed";
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  if (!aged) {
    ::rmdir(dir.c_str());
    GTEST_SKIP() << "cannot age a cgroup directory here (utimensat: " << std::strerror(errno)
                 << ")";
  }
  // Unpopulated and old: abandoned, removed, with its v1 siblings (judged
  // by the v2 directory, which goes in the same pass).
  std::vector<std::string> siblings;
  for (const auto& [controller, parent] : layout.v1Parents)
    if (std::find(siblings.begin(), siblings.end(), parent + "/" + foreign) == siblings.end() &&
        ::mkdir((parent + "/" + foreign).c_str(), 0755) == 0)
      siblings.push_back(parent + "/" + foreign);
  for (int i = 0; i < 100 && exists(dir + "/cgroup.procs"); ++i) {
    lines = cleanLeftovers(layout, [](pid_t) { return false; });
    if (!exists(dir)) break;
    ::usleep(20000);
  }
  EXPECT_FALSE(exists(dir)) << "an abandoned foreign cgroup stayed";
  for (const std::string& sibling : siblings) {
    EXPECT_FALSE(exists(sibling)) << "its v1 sibling stayed: " << sibling;
    ::rmdir(sibling.c_str());
  }
  ::rmdir(dir.c_str());
}

TEST(CleanLeftovers, DefaultLivenessIsTheHelpersName) {
  EXPECT_FALSE(isGpuboxHelper(::getpid())) << "the test binary is not gpubox-helper";
  EXPECT_FALSE(isGpuboxHelper(999999999));
  // A process called gpubox-helper is live until it dies; as a zombie (killed,
  // not yet reaped) it is dead: its sandboxes are gone with it.
  pid_t child = ::fork();
  if (child == 0) {
    ::prctl(PR_SET_NAME, "gpubox-helper", 0, 0, 0);
    ::pause();
    ::_exit(0);
  }
  ASSERT_GT(child, 0);
  bool named = false;
  for (int i = 0; i < 200 && !(named = isGpuboxHelper(child)); ++i) ::usleep(5000);
  EXPECT_TRUE(named);
  ::kill(child, SIGKILL);
  siginfo_t info = {};
  // Wait for the exit without reaping it (WNOWAIT): it stays a zombie.
  ASSERT_EQ(::waitid(P_PID, static_cast<id_t>(child), &info, WEXITED | WNOWAIT), 0);
  EXPECT_FALSE(isGpuboxHelper(child)) << "a zombie helper counted as live";
  ::waitpid(child, nullptr, 0);
}

}  // namespace
}  // namespace gpubox::cgroup
