// The limit writers and statistics readers against a fake cgroupfs: a plain
// temporary directory with empty (or pre-filled) control files. The v2 path
// cannot run for real on this project's hybrid CI hosts (their cgroup2 has no
// controllers), so this is where the exact bytes written are checked. Also the
// pure decisions (unsupportedLimit, describeLayout). No root needed.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "cgroup_fs.hpp"
#include "cgroup_layout.hpp"
#include "cgroup_stats.hpp"
#include "error.hpp"
#include "resource_limits.hpp"
#include "sandbox_cgroup.hpp"
#include "unique_fd.hpp"

namespace gpubox::cgroup {
namespace {

constexpr uint64_t kMiB = 1024 * 1024;

class FakeCgroup : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/gpubox-fakecg.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr) << std::strerror(errno);
    dir_ = tmpl;
    fd_ = UniqueFd(::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    ASSERT_TRUE(fd_.valid());
  }
  void TearDown() override {
    for (const std::string& f : files_) ::unlink((dir_ + "/" + f).c_str());
    ::rmdir(dir_.c_str());
  }
  void put(const std::string& file, const std::string& content = "") {
    std::ofstream(dir_ + "/" + file) << content;
    files_.push_back(file);
  }
  std::string get(const std::string& file) const {
    std::ifstream in(dir_ + "/" + file);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  std::string dir_;
  UniqueFd fd_;
  std::vector<std::string> files_;
};

TEST_F(FakeCgroup, V2WriterWritesExactBytes) {
  for (const char* f : {"memory.max", "memory.swap.max", "cpu.max", "pids.max"}) put(f);
  ResourceLimits limits;
  limits.memoryBytes = 64 * kMiB;
  limits.cpuMillis = 500;
  limits.pids = 64;
  const auto applied = writeV2Limits(fd_.get(), dir_, {"memory", "cpu", "pids"}, limits);
  EXPECT_EQ(get("memory.max"), "67108864");
  EXPECT_EQ(get("memory.swap.max"), "0");
  EXPECT_EQ(get("cpu.max"), "50000 100000");
  EXPECT_EQ(get("pids.max"), "64");
  const std::vector<std::string> want = {
      "memory.max = 67108864 (cgroup v2)", "memory.swap.max = 0 (cgroup v2)",
      "cpu.max = 50000 100000 (cgroup v2)", "pids.max = 64 (cgroup v2)"};
  EXPECT_EQ(applied, want);
}

TEST_F(FakeCgroup, V2WriterOnlyTouchesGivenControllersAndUnsetLimits) {
  for (const char* f : {"memory.max", "memory.swap.max", "cpu.max", "pids.max"}) put(f);
  ResourceLimits limits;
  limits.cpuMillis = 2500;
  limits.pids = 7;
  const auto applied = writeV2Limits(fd_.get(), dir_, {"cpu"}, limits);
  EXPECT_EQ(get("cpu.max"), "250000 100000");
  EXPECT_EQ(get("pids.max"), "") << "pids is not in the controllers given";
  EXPECT_EQ(get("memory.max"), "") << "no memory limit was set";
  EXPECT_EQ(applied.size(), 1u);
}

TEST_F(FakeCgroup, V2WriterErrorNamesOptionAndFile) {
  ResourceLimits limits;
  limits.memoryBytes = 64 * kMiB;  // memory.max does not exist here
  try {
    writeV2Limits(fd_.get(), dir_, {"memory"}, limits);
    ADD_FAILURE() << "must throw";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_EQ(m.rfind("--memory 64M: writing 67108864 to " + dir_ + "/memory.max: ", 0), 0u) << m;
  }
}

TEST_F(FakeCgroup, V2WriterWithoutSwapAccountingSaysSo) {
  put("memory.max");
  ResourceLimits limits;
  limits.memoryBytes = 3 * 1024 * kMiB;
  const auto applied = writeV2Limits(fd_.get(), dir_, {"memory"}, limits);
  EXPECT_EQ(get("memory.max"), "3221225472");
  ASSERT_EQ(applied.size(), 2u);
  EXPECT_NE(applied[1].find("swap not limited"), std::string::npos) << applied[1];
}

TEST_F(FakeCgroup, V1WriterWritesExactBytesPerHierarchy) {
  for (const char* f : {"memory.limit_in_bytes", "memory.memsw.limit_in_bytes", "cpu.cfs_period_us",
                        "cpu.cfs_quota_us", "pids.max"})
    put(f);
  ResourceLimits limits;
  limits.memoryBytes = 64 * kMiB;
  limits.cpuMillis = 500;
  limits.pids = 16;
  // A memory hierarchy gets only the memory files.
  auto applied = writeV1Limits(fd_.get(), dir_, {"memory"}, limits);
  EXPECT_EQ(get("memory.limit_in_bytes"), "67108864");
  EXPECT_EQ(get("memory.memsw.limit_in_bytes"), "67108864");
  EXPECT_EQ(get("cpu.cfs_quota_us"), "");
  EXPECT_EQ(get("pids.max"), "");
  std::vector<std::string> want = {"memory.limit_in_bytes = 67108864 (cgroup v1)",
                                   "memory.memsw.limit_in_bytes = 67108864 (cgroup v1)"};
  EXPECT_EQ(applied, want);
  // A co-mounted cpu,cpuacct hierarchy gets the CPU files; pids its own.
  applied = writeV1Limits(fd_.get(), dir_, {"cpu", "cpuacct"}, limits);
  EXPECT_EQ(get("cpu.cfs_period_us"), "100000");
  EXPECT_EQ(get("cpu.cfs_quota_us"), "50000");
  want = {"cpu.cfs_quota_us = 50000 per 100000 (cgroup v1)"};
  EXPECT_EQ(applied, want);
  applied = writeV1Limits(fd_.get(), dir_, {"pids"}, limits);
  EXPECT_EQ(get("pids.max"), "16");
  want = {"pids.max = 16 (cgroup v1)"};
  EXPECT_EQ(applied, want);
}

TEST_F(FakeCgroup, V1WriterErrorNamesOption) {
  ResourceLimits limits;
  limits.pids = 16;
  try {
    writeV1Limits(fd_.get(), dir_, {"pids"}, limits);
    ADD_FAILURE() << "must throw";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind("--pids 16: writing 16 to " + dir_ + "/pids.max", 0), 0u)
        << e.what();
  }
  limits = {};
  limits.cpuMillis = 1500;
  try {
    writeV1Limits(fd_.get(), dir_, {"cpu"}, limits);
    ADD_FAILURE() << "must throw";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind("--cpus 1.5: ", 0), 0u) << e.what();
  }
}

// The first failure stops every later write (a sandbox must not run with
// half its limits), and only a file the kernel may lack (memsw, without
// swap accounting) may be missing.
TEST_F(FakeCgroup, LimitWritesStopAtTheFirstFailure) {
  for (const char* f : {"cpu.cfs_period_us", "cpu.cfs_quota_us", "pids.max"}) put(f);
  ResourceLimits limits;
  limits.memoryBytes = 64 * kMiB;  // memory.limit_in_bytes is missing here
  limits.cpuMillis = 500;
  limits.pids = 16;
  try {
    writeV1Limits(fd_.get(), dir_, {"memory", "cpu", "pids"}, limits);
    ADD_FAILURE() << "must throw";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind(
                  "--memory 64M: writing 67108864 to " + dir_ + "/memory.limit_in_bytes: ", 0),
              0u)
        << e.what();
  }
  EXPECT_EQ(get("cpu.cfs_quota_us"), "") << "written after a failure";
  EXPECT_EQ(get("pids.max"), "") << "written after a failure";
  // With the memory file there, the missing memsw is a status line and the
  // rest is written.
  put("memory.limit_in_bytes");
  const std::vector<std::string> want = {
      "memory.limit_in_bytes = 67108864 (cgroup v1)",
      "memory.memsw.limit_in_bytes absent (no swap accounting): swap not limited",
      "cpu.cfs_quota_us = 50000 per 100000 (cgroup v1)", "pids.max = 16 (cgroup v1)"};
  EXPECT_EQ(writeV1Limits(fd_.get(), dir_, {"memory", "cpu", "pids"}, limits), want);
  EXPECT_EQ(get("pids.max"), "16");
}

// A warm init's limits are planned on the event loop and written on the
// device worker's thread (SandboxCgroup::planLimits): planning writes
// nothing, the writes may run on any thread, and the status lines are only
// given once they are in force.
TEST_F(FakeCgroup, PlannedLimitsAreWrittenOnlyWhenCarriedOut) {
  for (const char* f : {"memory.limit_in_bytes", "memory.memsw.limit_in_bytes", "cpu.cfs_period_us",
                        "cpu.cfs_quota_us", "pids.max"})
    put(f);
  ResourceLimits limits;
  limits.memoryBytes = 64 * kMiB;
  limits.cpuMillis = 250;
  limits.pids = 32;
  std::vector<PlannedLimit> plan = planV1Limits(fd_.get(), {"memory", "cpu", "pids"}, limits);
  for (const char* f : {"memory.limit_in_bytes", "memory.memsw.limit_in_bytes", "cpu.cfs_period_us",
                        "cpu.cfs_quota_us", "pids.max"})
    EXPECT_EQ(get(f), "") << f << " written by the plan alone";
  std::thread worker([&] { carryOutLimits(fd_.get(), plan); });
  worker.join();
  EXPECT_EQ(get("memory.limit_in_bytes"), "67108864");
  EXPECT_EQ(get("memory.memsw.limit_in_bytes"), "67108864");
  EXPECT_EQ(get("cpu.cfs_period_us"), "100000");
  EXPECT_EQ(get("cpu.cfs_quota_us"), "25000");
  EXPECT_EQ(get("pids.max"), "32");
  const std::vector<std::string> want = {"memory.limit_in_bytes = 67108864 (cgroup v1)",
                                         "memory.memsw.limit_in_bytes = 67108864 (cgroup v1)",
                                         "cpu.cfs_quota_us = 25000 per 100000 (cgroup v1)",
                                         "pids.max = 32 (cgroup v1)"};
  EXPECT_EQ(limitsInForce(dir_, plan), want);
  // A plan whose write failed names the option and the file, and says
  // nothing is in force.
  ::unlink((dir_ + "/pids.max").c_str());
  std::vector<PlannedLimit> failing = planV1Limits(fd_.get(), {"pids"}, limits);
  carryOutLimits(fd_.get(), failing);
  try {
    limitsInForce(dir_, failing);
    ADD_FAILURE() << "must throw";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind("--pids 32: writing 32 to " + dir_ + "/pids.max: ", 0),
              0u)
        << e.what();
  }
}

TEST_F(FakeCgroup, V2StatsParsing) {
  put("memory.current", "1234\n");
  put("memory.peak", "5678\n");
  put("memory.events", "low 0\nhigh 0\nmax 9\noom 3\noom_kill 2\noom_group_kill 0\n");
  put("cpu.stat", "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n");
  put("pids.current", "3\n");
  Stats s;
  EXPECT_TRUE(readV2Stats(fd_.get(), s));
  EXPECT_EQ(s.memoryCurrent, 1234u);
  EXPECT_EQ(s.memoryPeak, 5678u);
  EXPECT_EQ(s.oomKills, 2u) << "oom_kill, not oom or oom_group_kill";
  EXPECT_EQ(s.cpuUsageNanos, 1500000u);
  EXPECT_EQ(s.processes, 3u);
}

TEST_F(FakeCgroup, V2StatsWithoutControllers) {
  // What a controller-less v2 cgroup (hybrid host) has.
  put("cpu.stat", "usage_usec 42\n");
  put("cgroup.procs", "10\n11\n12\n");
  Stats s;
  EXPECT_FALSE(readV2Stats(fd_.get(), s));
  EXPECT_EQ(s.cpuUsageNanos, 42000u);
  EXPECT_EQ(s.memoryCurrent, 0u);
  EXPECT_EQ(s.oomKills, 0u);
  EXPECT_EQ(cgroupPids(fd_.get()), (std::vector<pid_t>{10, 11, 12}));
}

TEST_F(FakeCgroup, V1StatsParsing) {
  put("memory.usage_in_bytes", "4096\n");
  put("memory.max_usage_in_bytes", "8192\n");
  put("memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 4\n");
  put("cpuacct.usage", "987654321\n");
  Stats s;
  readV1MemoryStats(fd_.get(), s);
  EXPECT_EQ(s.memoryCurrent, 4096u);
  EXPECT_EQ(s.memoryPeak, 8192u);
  EXPECT_EQ(s.oomKills, 4u) << "oom_kill, not oom_kill_disable";
  EXPECT_EQ(s.cpuUsageNanos, 0u) << "cpuacct is another controller's file";
  readV1CpuacctStats(fd_.get(), s);
  EXPECT_EQ(s.cpuUsageNanos, 987654321u);
  uint64_t processes = 0;
  EXPECT_FALSE(readPidsCurrent(fd_.get(), processes));
  put("pids.current", "5\n");
  EXPECT_TRUE(readPidsCurrent(fd_.get(), processes));
  EXPECT_EQ(processes, 5u);
}

TEST_F(FakeCgroup, OomKillsAloneReadTheirOwnFile) {
  uint64_t kills = 0;
  readV1OomKills(fd_.get(), kills);
  EXPECT_EQ(kills, 0u) << "absent file leaves the count";
  put("memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n");
  readV1OomKills(fd_.get(), kills);
  EXPECT_EQ(kills, 3u);
  put("memory.events", "low 0\nhigh 0\nmax 5\noom 2\noom_kill 1\noom_group_kill 0\n");
  readV2OomKills(fd_.get(), kills);
  EXPECT_EQ(kills, 1u) << "oom_kill, not oom or oom_group_kill";
}

TEST(KeyedValue, FindsWholeKeysOnly) {
  EXPECT_EQ(keyedValue("oom 1\noom_kill 7\n", "oom_kill"), 7u);
  EXPECT_EQ(keyedValue("oom_kill_disable 1\n", "oom_kill"), std::nullopt);
  EXPECT_EQ(keyedValue("usage_usec 3", "usage_usec"), 3u);
  EXPECT_EQ(keyedValue("", "x"), std::nullopt);
  EXPECT_EQ(keyedValue("x notanumber\n", "x"), std::nullopt);
}

TEST(ResourceLimits, OptionSpelling) {
  EXPECT_EQ(memoryOption(64 * kMiB), "--memory 64M");
  EXPECT_EQ(memoryOption(2 * 1024 * kMiB), "--memory 2G");
  EXPECT_EQ(memoryOption(1000), "--memory 1000");
  EXPECT_EQ(memoryOption(1536 * 1024), "--memory 1536K");
  EXPECT_EQ(cpuOption(500), "--cpus 0.5");
  EXPECT_EQ(cpuOption(2000), "--cpus 2");
  EXPECT_EQ(cpuOption(1250), "--cpus 1.25");
  EXPECT_EQ(cpuOption(5), "--cpus 0.005");
  EXPECT_EQ(pidsOption(16), "--pids 16");
}

TEST(ResourceLimits, RejectsValuesNoCgroupAccepts) {
  ResourceLimits limits;
  limits.cpuMillis = 5;
  try {
    validateLimits(limits);
    ADD_FAILURE() << "must throw";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind("--cpus 0.005: ", 0), 0u) << e.what();
  }
  limits = {};
  limits.pids = 0;
  EXPECT_THROW(validateLimits(limits), Error);
  limits = {};
  limits.memoryBytes = 0;
  EXPECT_THROW(validateLimits(limits), Error);
  limits = {};
  limits.memoryBytes = 1;
  limits.cpuMillis = 10;
  limits.pids = 1;
  EXPECT_NO_THROW(validateLimits(limits));
}

// A hybrid host like CI, by hand: v1 memory and cpu, no v1 pids, a
// controller-less cgroup2.
Layout hybridLayout() {
  Layout l;
  l.mounts.v2Mount = "/sys/fs/cgroup/unified";
  l.mounts.v1["memory"] = {"/sys/fs/cgroup/memory", "/"};
  l.mounts.v1["cpu"] = {"/sys/fs/cgroup/cpu", "/"};
  l.v2Parent = "/sys/fs/cgroup/unified/x/gpubox";
  l.v1Parents["memory"] = "/sys/fs/cgroup/memory/x/gpubox";
  l.v1Parents["cpu"] = "/sys/fs/cgroup/cpu/gpubox";
  return l;
}

TEST(Layout, UnsupportedLimitNamesTheOption) {
  const Layout l = hybridLayout();
  ResourceLimits limits;
  limits.memoryBytes = kMiB;
  limits.cpuMillis = 100;
  EXPECT_EQ(unsupportedLimit(l, limits), "");
  limits.pids = 10;
  EXPECT_EQ(unsupportedLimit(l, limits),
            "--pids: no pids controller is available to the helper (cgroup v2: not enabled in "
            "/sys/fs/cgroup/unified/x/gpubox/cgroup.subtree_control; cgroup v1: not mounted)");

  Layout none;  // no cgroups at all
  limits = {};
  limits.memoryBytes = kMiB;
  EXPECT_EQ(unsupportedLimit(none, limits),
            "--memory: no memory controller is available to the helper (cgroup v2: not mounted; "
            "cgroup v1: not mounted)");
  limits = {};
  limits.cpuMillis = 500;
  EXPECT_EQ(unsupportedLimit(none, limits).rfind("--cpus: no cpu controller", 0), 0u);
  EXPECT_EQ(unsupportedLimit(none, {}), "") << "no limit asked, nothing missing";

  // A controller in v2 counts without any v1.
  Layout v2;
  v2.v2Parent = "/sys/fs/cgroup/gpubox";
  v2.v2Controllers = {"memory", "pids"};
  limits = {};
  limits.memoryBytes = kMiB;
  limits.pids = 3;
  EXPECT_EQ(unsupportedLimit(v2, limits), "");
  limits.cpuMillis = 100;
  EXPECT_NE(unsupportedLimit(v2, limits).find("--cpus"), std::string::npos);
}

TEST(Layout, DescribesWhereEachResourceIsEnforced) {
  Layout l = hybridLayout();
  l.v1Parents["devices"] = "/sys/fs/cgroup/devices/gpubox";
  const std::vector<std::string> want = {
      "memory: cgroup v1 (/sys/fs/cgroup/memory/x/gpubox)",
      "cpu: cgroup v1 (/sys/fs/cgroup/cpu/gpubox)",
      "pids: unavailable",
      "devices: cgroup v1 (/sys/fs/cgroup/devices/gpubox) + cgroup v2 BPF "
      "(/sys/fs/cgroup/unified/x/gpubox)",
  };
  EXPECT_EQ(describeLayout(l), want);
  Layout v2;
  v2.v2Parent = "/sys/fs/cgroup/gpubox";
  v2.v2Controllers = {"memory", "cpu", "pids"};
  EXPECT_EQ(describeLayout(v2)[1], "cpu: cgroup v2 (/sys/fs/cgroup/gpubox)");
  EXPECT_TRUE(handledByV2(v2, "cpuacct"));
}

// The warm pool plans each init's cgroup from a shape computed once
// (emptyShape) and the init's name (named): the same directories, paths and
// /proc/PID/cgroup-style names planEmpty gives, co-mounted controllers
// sharing a directory, a mount whose root is a sub-tree (a container's)
// shown from that root.
TEST(SandboxCgroup, APlannedCgroupIsItsLayoutsShapeAndItsName) {
  Layout l = hybridLayout();
  l.mounts.v1["cpuacct"] = {"/sys/fs/cgroup/cpu", "/"};
  l.v1Parents["cpuacct"] = "/sys/fs/cgroup/cpu/gpubox";
  l.mounts.v1["pids"] = {"/sys/fs/cgroup/pids", "/kubepods/pod1"};
  l.v1Parents["pids"] = "/sys/fs/cgroup/pids/gpubox";
  const auto plan = SandboxCgroup::planEmpty(l, "sb-7-3", false);
  std::vector<std::string> paths, displays;
  for (const auto& d : plan) {
    paths.push_back(d.path);
    displays.push_back(d.display);
  }
  EXPECT_EQ(paths,
            (std::vector<std::string>{
                "/sys/fs/cgroup/unified/x/gpubox/sb-7-3", "/sys/fs/cgroup/memory/x/gpubox/sb-7-3",
                "/sys/fs/cgroup/cpu/gpubox/sb-7-3", "/sys/fs/cgroup/pids/gpubox/sb-7-3"}));
  EXPECT_EQ(displays, (std::vector<std::string>{
                          "/sys/fs/cgroup/unified/x/gpubox/sb-7-3", "memory:/x/gpubox/sb-7-3",
                          "cpu,cpuacct:/gpubox/sb-7-3", "pids:/kubepods/pod1/gpubox/sb-7-3"}));
  EXPECT_EQ(plan[2].controllers, (std::vector<std::string>{"cpu", "cpuacct"}));
  EXPECT_TRUE(plan[0].v2);
  const SandboxCgroup::EmptyShape shape = SandboxCgroup::emptyShape(l, false);
  const auto again = SandboxCgroup::named(shape, "sb-7-3");
  ASSERT_EQ(again.size(), plan.size());
  for (size_t i = 0; i < plan.size(); ++i) {
    EXPECT_EQ(again[i].parent, plan[i].parent);
    EXPECT_EQ(again[i].path, plan[i].path);
    EXPECT_EQ(again[i].display, plan[i].display);
  }
  EXPECT_EQ(SandboxCgroup::named(shape, "sb-7-4")[1].path, "/sys/fs/cgroup/memory/x/gpubox/sb-7-4");
  EXPECT_THROW(SandboxCgroup::named(shape, "../escape"), Error);
}

TEST(SandboxCgroup, LimitWithoutControllerThrowsAndCreatesNothing) {
  // No parents at all: nothing could be created even by accident.
  Layout none;
  ResourceLimits limits;
  limits.pids = 4;
  try {
    SandboxCgroup::create(none, "sb-1-1", limits);
    ADD_FAILURE() << "must throw";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind("--pids: no pids controller", 0), 0u) << e.what();
  }
}

TEST(SandboxCgroup, RejectsBadNames) {
  const Layout none;
  for (const char* name : {"", ".", "..", "a/b", "x y", "../escape", "a\nb", "é"}) {
    try {
      SandboxCgroup::create(none, name, {});
      ADD_FAILURE() << "accepted '" << name << "'";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("invalid sandbox cgroup name"), std::string::npos)
          << e.what();
    }
  }
  EXPECT_THROW(validateCgroupName(std::string(129, 'a')), Error);
  EXPECT_NO_THROW(validateCgroupName("sb-123-4"));
  EXPECT_NO_THROW(validateCgroupName("A.b_c-9"));
}

}  // namespace
}  // namespace gpubox::cgroup

namespace gpubox::cgroup {
namespace {

// makeCgroupDir tries the sandbox's directory first; a parent removed
// since start (an administrator, a cleanup job) is made again, and a name
// in use is still refused.
TEST(MakeCgroup, MakesAGoneParentAgainAndRefusesANameInUse) {
  char tmpl[] = "/tmp/gpubox-makecg.XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr) << std::strerror(errno);
  const std::string parent = std::string(tmpl) + "/gpubox";
  auto make = [&](const std::string& name) {
    UniqueFd fd;
    const MakeResult r = makeCgroupDir(parent, parent + "/" + name, &fd);
    if (r.failed != MakeResult::Step::Done) throw makeCgroupError(parent, parent + "/" + name, r);
    return fd;
  };
  EXPECT_TRUE(make("sb-1").valid());
  EXPECT_TRUE(make("sb-2").valid());
  try {
    make("sb-2");
    ADD_FAILURE() << "a name in use was made again";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("already exists"), std::string::npos) << e.what();
  }
  ::rmdir((parent + "/sb-1").c_str());
  ::rmdir((parent + "/sb-2").c_str());
  ASSERT_EQ(::rmdir(parent.c_str()), 0);
  EXPECT_TRUE(make("sb-3").valid());
  EXPECT_EQ(::rmdir((parent + "/sb-3").c_str()), 0);
  ::rmdir(parent.c_str());
  ::rmdir(tmpl);
}

}  // namespace
}  // namespace gpubox::cgroup

namespace gpubox::cgroup {
namespace {

void writeText(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

// What a command's start and end read, through a SandboxCgroup over a fake
// v2 hierarchy: memory.events and pids.current where memory and pids are
// v2 controllers (a v2 host), and not looked for where they are not (a
// hybrid host, whose v2 directory has neither file).
TEST(FakeV2SandboxCgroup, OomAndProcessReadsFollowTheV2Controllers) {
  char tmpl[] = "/tmp/gpubox-fakev2.XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr) << std::strerror(errno);
  Layout layout;
  layout.v2Parent = std::string(tmpl) + "/gpubox";
  layout.v2Controllers = {"memory", "pids"};
  auto cg = SandboxCgroup::createEmpty(layout, "sb-fake-1", false);
  const std::string dir = layout.v2Parent + "/sb-fake-1";
  writeText(dir + "/memory.events", "low 0\nhigh 0\nmax 2\noom 1\noom_kill 1\n");
  writeText(dir + "/pids.current", "3\n");
  EXPECT_EQ(cg->oomKills(), 1u);
  EXPECT_EQ(cg->processes(), 3u);

  layout.v2Controllers = {};
  auto hybrid = SandboxCgroup::createEmpty(layout, "sb-fake-2", false);
  const std::string dir2 = layout.v2Parent + "/sb-fake-2";
  // Were they read, these would count.
  writeText(dir2 + "/memory.events", "oom_kill 5\n");
  writeText(dir2 + "/pids.current", "7\n");
  writeText(dir2 + "/cgroup.procs", "");
  EXPECT_EQ(hybrid->oomKills(), 0u);
  EXPECT_EQ(hybrid->processes(), 0u) << "members counted from cgroup.procs instead";

  for (const std::string& d : {dir, dir2}) {
    for (const char* f : {"memory.events", "pids.current", "cgroup.procs"})
      ::unlink((d + "/" + f).c_str());
  }
  cg.reset();
  hybrid.reset();
  ::rmdir(layout.v2Parent.c_str());
  ::rmdir(tmpl);
}

}  // namespace
}  // namespace gpubox::cgroup
