// Real enforcement of resource limits through SandboxCgroup on this host
// (root only; CI is root on a hybrid host, so there it is cgroup v1 memory,
// cpu, cpuacct and pids plus a controller-less cgroup2). Children are forked,
// attached, and made to hit each limit.
#include "sandbox_cgroup.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <fstream>
#include <functional>
#include <sstream>
#include <thread>

#include "error.hpp"
#include "held_descriptors.hpp"
#include "unique_fd.hpp"

namespace gpubox::cgroup {
namespace {

constexpr uint64_t kMiB = 1024 * 1024;

// Not "sb-<pid>-<n>": a helper's cleanLeftovers() must never take a running
// test's cgroups for a dead helper's.
std::string uniqueName() {
  static int counter = 0;
  return "test-lim-" + std::to_string(::getpid()) + "-" + std::to_string(++counter);
}

std::string readText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

// Retries tryRemove() the way the helper's event loop does: a cgroup stays
// busy for a moment after its last process exited.
bool removeWithRetries(SandboxCgroup& cg) {
  for (int i = 0; i < 400; ++i) {
    if (cg.tryRemove()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

// Forks a child that runs BODY (its return value is the exit code) once it
// has been attached to CG. Returns the child's pid; the caller waits.
pid_t spawnIn(SandboxCgroup& cg, const std::function<int()>& body) {
  int go[2];
  if (::pipe2(go, O_CLOEXEC) != 0) return -1;
  UniqueFd goRead(go[0]), goWrite(go[1]);
  const pid_t pid = ::fork();
  if (pid == 0) {
    goWrite.reset();
    char byte;
    if (::read(goRead.get(), &byte, 1) != 1) ::_exit(100);
    ::_exit(body());
  }
  if (pid < 0) return -1;
  try {
    cg.attach(pid);
  } catch (const Error& e) {
    ADD_FAILURE() << e.what();
    ::kill(pid, SIGKILL);
  }
  EXPECT_EQ(::write(goWrite.get(), "x", 1), 1);
  return pid;
}

int waitFor(pid_t pid) {
  int status = 0;
  EXPECT_EQ(::waitpid(pid, &status, 0), pid);
  return status;
}

class SandboxCgroupReal : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (creates cgroups); CI runs these as root";
    layout_ = prepareLayout();
    ResourceLimits all;
    all.memoryBytes = 64 * kMiB;
    all.cpuMillis = 500;
    all.pids = 16;
    if (const std::string why = unsupportedLimit(layout_, all); !why.empty())
      GTEST_SKIP() << "this host cannot enforce every limit: " << why;
  }

  // The file a limit lands in, in whichever hierarchy handles it.
  std::string limitFile(const std::string& name, const char* controller, const char* v2File,
                        const char* v1File) const {
    if (handledByV2(layout_, controller)) return layout_.v2Parent + "/" + name + "/" + v2File;
    return layout_.v1Parents.at(controller) + "/" + name + "/" + v1File;
  }

  Layout layout_;
};

TEST_F(SandboxCgroupReal, EnforcesMemoryPidsAndCpuAndKillsEverything) {
  for (const std::string& line : describeLayout(layout_)) std::printf("layout: %s\n", line.c_str());
  ResourceLimits limits;
  limits.memoryBytes = 64 * kMiB;
  limits.pids = 16;
  limits.cpuMillis = 500;
  const std::string name = uniqueName();
  auto cg = SandboxCgroup::create(layout_, name, limits);
  std::printf("cgroup: %s\n", cg->path().c_str());
  for (const std::string& line : cg->applied()) std::printf("applied: %s\n", line.c_str());
  EXPECT_EQ(cg->path().find('\n'), std::string::npos);
  EXPECT_GE(cg->applied().size(), 3u);

  // The limits read back.
  EXPECT_EQ(readText(limitFile(name, "memory", "memory.max", "memory.limit_in_bytes")),
            "67108864\n");
  EXPECT_EQ(readText(limitFile(name, "pids", "pids.max", "pids.max")), "16\n");
  if (handledByV2(layout_, "cpu")) {
    EXPECT_EQ(readText(limitFile(name, "cpu", "cpu.max", "")), "50000 100000\n");
  } else {
    EXPECT_EQ(readText(limitFile(name, "cpu", "", "cpu.cfs_quota_us")), "50000\n");
    EXPECT_EQ(readText(limitFile(name, "cpu", "", "cpu.cfs_period_us")), "100000\n");
  }
  if (!handledByV2(layout_, "memory")) {
    const std::string memsw = limitFile(name, "memory", "", "memory.memsw.limit_in_bytes");
    if (exists(memsw)) {
      EXPECT_EQ(readText(memsw), "67108864\n");
    }
  }

  // pids: a child forking 40 times gets EAGAIN once the cgroup holds 16.
  {
    int result[2];
    ASSERT_EQ(::pipe2(result, O_CLOEXEC), 0);
    UniqueFd resultRead(result[0]), resultWrite(result[1]);
    const pid_t child = spawnIn(*cg, [&] {
      pid_t kids[40];
      int made = 0, err = 0;
      for (; made < 40; ++made) {
        kids[made] = ::fork();
        if (kids[made] == 0) {
          ::pause();
          ::_exit(0);
        }
        if (kids[made] < 0) {
          err = errno;
          break;
        }
      }
      const int report[2] = {made, err};
      const bool ok = ::write(resultWrite.get(), report, sizeof report) == sizeof report;
      for (int i = 0; i < made; ++i) ::kill(kids[i], SIGKILL);
      for (int i = 0; i < made; ++i) ::waitpid(kids[i], nullptr, 0);
      return ok ? 0 : 1;
    });
    ASSERT_GT(child, 0);
    resultWrite.reset();
    int report[2] = {-1, -1};
    ASSERT_EQ(::read(resultRead.get(), report, sizeof report), static_cast<ssize_t>(sizeof report));
    EXPECT_EQ(report[1], EAGAIN) << std::strerror(report[1]);
    EXPECT_GE(report[0], 10);
    EXPECT_LE(report[0], 15) << "16 processes at most, the forking child included";
    const int status = waitFor(child);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  }

  // memory: touching 200 MiB under a 64 MiB ceiling without swap is an OOM kill.
  {
    const pid_t child = spawnIn(*cg, [] {
      const size_t size = 200 * kMiB;
      void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (p == MAP_FAILED) return 2;
      std::memset(p, 0x5a, size);
      return 0;  // not reached when the limit holds
    });
    ASSERT_GT(child, 0);
    const int status = waitFor(child);
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        << "expected an OOM kill, got status " << status;
    const Stats s = cg->stats();
    EXPECT_GE(s.oomKills, 1u);
    EXPECT_GT(s.memoryPeak, 32 * kMiB);
    EXPECT_LE(s.memoryPeak, 64 * kMiB);
    std::printf("after OOM: current %llu peak %llu oom kills %llu\n",
                static_cast<unsigned long long>(s.memoryCurrent),
                static_cast<unsigned long long>(s.memoryPeak),
                static_cast<unsigned long long>(s.oomKills));
  }

  // cpu: a busy loop for 1.5 s of wall time gets about half a CPU.
  {
    const uint64_t before = cg->stats().cpuUsageNanos;
    const auto start = std::chrono::steady_clock::now();
    const pid_t child = spawnIn(*cg, [] {
      const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(1500);
      uint64_t spin = 0;
      while (std::chrono::steady_clock::now() < end) spin = spin + 1;
      asm volatile("" : : "r"(spin));
      return 0;
    });
    ASSERT_GT(child, 0);
    const int status = waitFor(child);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
    const double wall =
        std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count();
    const double used = static_cast<double>(cg->stats().cpuUsageNanos - before);
    std::printf("cpu: %.0f ms used in %.0f ms wall (%.2f)\n", used / 1e6, wall / 1e6, used / wall);
    EXPECT_GE(used, 0.25 * wall);
    EXPECT_LE(used, 0.75 * wall);
  }

  // killAll: a child that ignores SIGTERM and a double-forked grandchild.
  // The test becomes the orphan's reaper: pids.current counts a zombie until
  // it is reaped, and the host's init may be slow to do that.
  ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  {
    int result[2], grand[2];
    ASSERT_EQ(::pipe2(result, O_CLOEXEC), 0);
    ASSERT_EQ(::pipe2(grand, O_CLOEXEC), 0);
    UniqueFd resultRead(result[0]), resultWrite(result[1]);
    UniqueFd grandRead(grand[0]), grandWrite(grand[1]);
    const pid_t child = spawnIn(*cg, [&] {
      ::signal(SIGTERM, SIG_IGN);
      const pid_t middle = ::fork();
      if (middle == 0) {
        if (::fork() == 0) {
          const pid_t self = ::getpid();
          if (::write(grandWrite.get(), &self, sizeof self) != sizeof self) ::_exit(1);
          for (;;) ::pause();
        }
        ::_exit(0);
      }
      ::waitpid(middle, nullptr, 0);
      pid_t grandchild = 0;
      if (::read(grandRead.get(), &grandchild, sizeof grandchild) != sizeof grandchild) return 1;
      if (::write(resultWrite.get(), &grandchild, sizeof grandchild) != sizeof grandchild) return 1;
      for (;;) ::pause();
    });
    ASSERT_GT(child, 0);
    resultWrite.reset();
    pid_t grandchild = 0;
    ASSERT_EQ(::read(resultRead.get(), &grandchild, sizeof grandchild),
              static_cast<ssize_t>(sizeof grandchild));
    EXPECT_EQ(cg->stats().processes, 2u) << "the child and its orphaned grandchild";
    UniqueFd grandPidfd(static_cast<int>(::syscall(SYS_pidfd_open, grandchild, 0)));
    ASSERT_TRUE(grandPidfd.valid()) << std::strerror(errno);
    ::kill(child, SIGTERM);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_EQ(::waitpid(child, nullptr, WNOHANG), 0) << "the child ignores SIGTERM";

    EXPECT_GE(cg->killAll(), 2u);
    const int status = waitFor(child);
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
    pollfd pfd{grandPidfd.get(), POLLIN, 0};
    EXPECT_EQ(::poll(&pfd, 1, 5000), 1) << "the grandchild must be dead";
    const int grandStatus = waitFor(grandchild);
    EXPECT_TRUE(WIFSIGNALED(grandStatus) && WTERMSIG(grandStatus) == SIGKILL) << grandStatus;
    EXPECT_EQ(cg->stats().processes, 0u);
  }
  ::prctl(PR_SET_CHILD_SUBREAPER, 0);

  ASSERT_TRUE(removeWithRetries(*cg));
  EXPECT_TRUE(cg->directories().empty());
  EXPECT_EQ(cg->v2Fd(), -1);
}

TEST_F(SandboxCgroupReal, MakesEveryResourceDirectoryEvenWithoutLimits) {
  const std::string name = uniqueName();
  auto cg = SandboxCgroup::create(layout_, name, {});
  std::vector<std::string> want;
  if (!layout_.v2Parent.empty()) want.push_back(layout_.v2Parent + "/" + name);
  for (const char* c : {"memory", "cpu", "cpuacct", "pids"}) {
    const auto it = layout_.v1Parents.find(c);
    if (it == layout_.v1Parents.end()) continue;
    const std::string dir = it->second + "/" + name;
    if (std::find(want.begin(), want.end(), dir) == want.end()) want.push_back(dir);
  }
  EXPECT_EQ(cg->directories(), want);
  EXPECT_TRUE(cg->applied().empty());
  EXPECT_EQ(cg->v2Fd() >= 0, !layout_.v2Parent.empty());
  for (const std::string& d : want) EXPECT_TRUE(exists(d)) << d;
  if (layout_.v1Parents.contains("devices")) {
    EXPECT_FALSE(exists(layout_.v1Parents.at("devices") + "/" + name))
        << "no devices directory without device rules";
  }

  // stats() of an attached sleeper.
  const pid_t child = spawnIn(*cg, [] {
    ::pause();
    return 0;
  });
  ASSERT_GT(child, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const Stats s = cg->stats();
  EXPECT_EQ(s.processes, 1u);
  if (layout_.v1Parents.contains("memory") || handledByV2(layout_, "memory")) {
    EXPECT_GT(s.memoryCurrent, 0u);
  }
  EXPECT_EQ(cg->killAll(), 1u);
  waitFor(child);
  ASSERT_TRUE(removeWithRetries(*cg));
  for (const std::string& d : want) EXPECT_FALSE(exists(d)) << d;
}

// A warm init's limits are planned on the loop and written by a worker
// (planLimits): the work shares its directories' descriptors, so a sandbox
// that ends while its work waits leaves the work's descriptors open on the
// same directories, and the last owner closes them.
TEST_F(SandboxCgroupReal, LimitWorkKeepsItsDirectoriesOpenPastItsCgroup) {
  auto cg = SandboxCgroup::createEmpty(layout_, uniqueName(), false);
  ResourceLimits limits;
  limits.memoryBytes = 256ull << 20;
  limits.pids = 64;
  std::unique_ptr<SandboxCgroup::LimitWork> work = cg->planLimits(limits);
  ASSERT_FALSE(work->empty());
  HeldDescriptors held;
  for (const auto& dir : work->dirs) held.note(dir.dir, dir.path);
  ASSERT_TRUE(removeWithRetries(*cg));
  cg.reset();
  held.expectOpenOnTheSameDirectories();
  work->carryOut();  // against removed directories: fails, harmlessly
  work.reset();
  held.expectClosed();
}

TEST_F(SandboxCgroupReal, KillAllWorksWithoutCgroupKill) {
  // Only in the v1 directories, which have no cgroup.kill: killAll() must
  // find it through cgroup.procs and signal it through a pidfd.
  auto cg = SandboxCgroup::create(layout_, uniqueName(), {});
  int go[2];
  ASSERT_EQ(::pipe2(go, O_CLOEXEC), 0);
  UniqueFd goRead(go[0]), goWrite(go[1]);
  const pid_t child = ::fork();
  if (child == 0) {
    ::signal(SIGTERM, SIG_IGN);
    char byte;
    (void)!::read(goRead.get(), &byte, 1);
    for (;;) ::pause();
  }
  ASSERT_GT(child, 0);
  cg->attachV1(child);
  EXPECT_EQ(cg->stats().processes, 1u);
  EXPECT_EQ(cg->killAll(), 1u);
  const int status = waitFor(child);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
  EXPECT_TRUE(removeWithRetries(*cg));
}

TEST_F(SandboxCgroupReal, RefusesToAdoptAnExistingDirectory) {
  const std::string name = uniqueName();
  auto first = SandboxCgroup::create(layout_, name, {});
  try {
    SandboxCgroup::create(layout_, name, {});
    ADD_FAILURE() << "a second cgroup with the same name must be refused";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("already exists"), std::string::npos) << e.what();
  }
  const std::vector<std::string> dirs = first->directories();
  ASSERT_FALSE(dirs.empty());
  for (const std::string& d : dirs) EXPECT_TRUE(exists(d)) << d;
  first.reset();

  // A stray directory in only the last hierarchy: create() refuses it, and
  // rolls back what it made in the others but leaves the stray one alone.
  const std::string other = uniqueName();
  const std::string stray = dirs.back().substr(0, dirs.back().rfind('/')) + "/" + other;
  ASSERT_EQ(::mkdir(stray.c_str(), 0755), 0) << std::strerror(errno);
  EXPECT_THROW(SandboxCgroup::create(layout_, other, {}), Error);
  EXPECT_TRUE(exists(stray));
  for (const std::string& d : dirs) {
    const std::string made = d.substr(0, d.rfind('/')) + "/" + other;
    if (made != stray) {
      EXPECT_FALSE(exists(made)) << made << " was not rolled back";
    }
  }
  EXPECT_EQ(::rmdir(stray.c_str()), 0);
}

TEST_F(SandboxCgroupReal, FailedLimitRollsBackAndNamesTheOption) {
  // A memory limit below what the kernel lets a v1 cgroup have with its own
  // usage would be racy; instead a CPU quota the v1/v2 parent cannot grant.
  // Simplest reliable failure: the configured limit file refused by the
  // kernel. A pids.max beyond int range is refused with EINVAL.
  ResourceLimits limits;
  limits.pids = 4000000000u;
  const std::string name = uniqueName();
  try {
    SandboxCgroup::create(layout_, name, limits);
    ADD_FAILURE() << "pids.max " << *limits.pids << " must be refused by the kernel";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind("--pids 4000000000: writing 4000000000 to ", 0), 0u)
        << e.what();
  }
  if (!layout_.v2Parent.empty()) {
    EXPECT_FALSE(exists(layout_.v2Parent + "/" + name));
  }
  for (const auto& [controller, parent] : layout_.v1Parents)
    EXPECT_FALSE(exists(parent + "/" + name)) << controller;
}

}  // namespace
}  // namespace gpubox::cgroup
