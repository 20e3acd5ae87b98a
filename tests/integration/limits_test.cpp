// Resource limits, end to end: --memory, --pids, --cpus, --rlimit, --timeout,
// the helper's ceilings and per-uid caps, and many clients at once. Each test
// checks what the sandboxed process actually met (an OOM kill, a failing
// fork, CPU time, ulimit values) and what gpubox said about it (stderr line,
// exit status, --json-status record).
#include <signal.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "fake_driver.hpp"
#include "harness.hpp"

namespace gpubox::itest {
namespace {

using namespace std::chrono_literals;
using ::testing::AllOf;
using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

// The lines of `text` that start with `prefix`.
std::vector<std::string> linesStartingWith(const std::string& text, const std::string& prefix) {
  std::vector<std::string> out;
  for (const auto& l : lines(text))
    if (l.rfind(prefix, 0) == 0) out.push_back(l);
  return out;
}

RunOptions withStatusFd(RunOptions o) {
  o.extraFd = 3;
  return o;
}

// ------------------------------------------------------------ memory

class Memory : public CallerTest {};

// The shell accumulates 300 MB in a variable: far above the 64 MiB ceiling.
TEST_P(Memory, OomIsReportedInWordsAndInTheStatus) {
  auto r = runAs({"--memory", "64M", "--json-status", "3", "--", "sh", "-c",
                  "x=$(head -c 300000000 /dev/zero | tr '\\0' a); echo survived"},
                 withStatusFd({.timeout = 120s}));
  EXPECT_EQ(r.exitCode, 137) << r.describe();
  EXPECT_THAT(r.out, Not(HasSubstr("survived"))) << r.describe();
  // Not a bare 137: one line says what happened, naming the ceiling.
  auto said = linesStartingWith(r.err, "gpubox: out of memory");
  ASSERT_EQ(said.size(), 1u) << r.describe();
  EXPECT_THAT(said[0], HasSubstr("--memory 64M")) << r.describe();
  EXPECT_THAT(said[0], HasSubstr("ceiling")) << r.describe();

  nlohmann::json j = parseJson(r.extra);
  ASSERT_FALSE(j.is_discarded()) << "not JSON: " << r.describe();
  EXPECT_EQ(j["reason"], "out_of_memory") << j.dump();
  EXPECT_TRUE(j["exit_code"].is_null()) << j.dump();
  EXPECT_EQ(j["signal"], 9) << j.dump();
  ASSERT_TRUE(j["message"].is_string()) << j.dump();
  EXPECT_THAT(j["message"].get<std::string>(), HasSubstr("memory")) << j.dump();
  EXPECT_TRUE(j["timeout"].is_null()) << j.dump();
  EXPECT_TRUE(j["session"].is_null()) << j.dump();
  // The ceiling that was applied is listed: 64 MiB in bytes.
  auto limits = stringsOf(j["limits"]);
  EXPECT_THAT(limits, Contains(HasSubstr("67108864"))) << j.dump();
}

// A process of the sandbox other than the command is OOM-killed (here a
// subshell holding 300 MB) and the command goes on: its own status is
// passed on, and the line says what happened to the other one. Also the
// sandbox's first command, whose count of OOM kills starts at 0 unread.
TEST_P(Memory, AnOomKilledChildIsReportedBesideTheCommandsOwnStatus) {
  auto r = runAs({"--memory", "64M", "--json-status", "3", "--", "sh", "-c",
                  "(x=$(head -c 300000000 /dev/zero | tr '\\0' a); echo child survived); "
                  "echo command survived"},
                 withStatusFd({.timeout = 120s}));
  EXPECT_EQ(r.exitCode, 0) << r.describe();
  EXPECT_EQ(r.out, "command survived\n") << r.describe();
  auto said = linesStartingWith(r.err, "gpubox: ");
  ASSERT_EQ(said.size(), 1u) << r.describe();
  EXPECT_THAT(said[0], HasSubstr("(a process of the sandbox was killed: out of memory"))
      << r.describe();
  nlohmann::json j = parseJson(r.extra);
  ASSERT_FALSE(j.is_discarded()) << r.describe();
  EXPECT_EQ(j["reason"], "exited") << j.dump();
  EXPECT_EQ(j["exit_code"], 0) << j.dump();
}

// Control: the same work under a ceiling it fits in is not reported as OOM.
// (A bare number is bytes: 256 MiB here.)
TEST_P(Memory, WorkThatFitsIsNotKilled) {
  auto r = runAs({"--memory", "268435456", "--json-status", "3", "--", "sh", "-c",
                  "x=$(head -c 20000000 /dev/zero | tr '\\0' a); echo survived ${#x}"},
                 withStatusFd({.timeout = 120s}));
  EXPECT_EQ(r.exitCode, 0) << r.describe();
  EXPECT_EQ(r.out, "survived 20000000\n") << r.describe();
  nlohmann::json j = parseJson(r.extra);
  ASSERT_FALSE(j.is_discarded()) << r.describe();
  EXPECT_EQ(j["reason"], "exited") << j.dump();
  EXPECT_EQ(j["exit_code"], 0) << j.dump();
  EXPECT_THAT(stringsOf(j["limits"]), Contains(HasSubstr("268435456"))) << j.dump();
}

GPUBOX_INSTANTIATE_CALLERS(Memory);

// A GPU sandbox's OOM message also speaks of the host memory GPU jobs need.
TEST(GpuMemory, OomOfAGpuSandboxMentionsGpuHostMemory) {
  GPUBOX_REQUIRE_ROOT();
  using gpubox::testing::FakeDriverRoot;
  if (!FakeDriverRoot::canMknod()) GTEST_SKIP() << "cannot mknod fake NVIDIA nodes here";
  FakeDriverRoot fake({.gpus = 1});
  TempDir config(0755);
  writeFile(config / "helper.toml", "[[allow]]\nusers = [65534]\ngpus = [\"all\"]\n", 0644);
  HelperProcess h(
      {.extraArgs = {"--config", config / "helper.toml", "--driver-root", fake.root()}});
  auto r = h.cli({"run", "--gpu", "0", "--memory", "64M", "--json-status", "3", "--", "sh", "-c",
                  "x=$(head -c 300000000 /dev/zero | tr '\\0' a); echo survived"},
                 withStatusFd({.asUid = kNobodyUid, .timeout = 120s}));
  EXPECT_EQ(r.exitCode, 137) << r.describe();
  auto said = linesStartingWith(r.err, "gpubox: out of memory");
  ASSERT_EQ(said.size(), 1u) << r.describe();
  EXPECT_THAT(said[0], HasSubstr("--memory 64M")) << r.describe();
  EXPECT_THAT(said[0], HasSubstr("GPU")) << r.describe();
  EXPECT_THAT(said[0], HasSubstr("host memory")) << r.describe();
  nlohmann::json j = parseJson(r.extra);
  ASSERT_FALSE(j.is_discarded()) << r.describe();
  EXPECT_EQ(j["reason"], "out_of_memory") << j.dump();
  EXPECT_EQ(j["gpus"], nlohmann::json::array({fake.gpus()[0].uuid})) << j.dump();
}

// ------------------------------------------------------------ defaults

class Defaults : public CallerTest {};

// Every sandbox gets a cgroup with the default ceilings (pids 4096, memory
// 75% of RAM) and a core limit of 0; the status lists them.
TEST_P(Defaults, EverySandboxHasACgroupAndDefaultCeilings) {
  auto r =
      runAs({"--json-status", "3", "--", "sh", "-c", "ulimit -c; ulimit -Hc"}, withStatusFd({}));
  ASSERT_EQ(r.exitCode, 0) << r.describe();
  EXPECT_EQ(r.out, "0\n0\n") << "default CORE rlimit is 0 (soft and hard): " << r.describe();
  nlohmann::json j = parseJson(r.extra);
  ASSERT_FALSE(j.is_discarded()) << r.describe();
  ASSERT_TRUE(j["cgroup"].is_string()) << j.dump();
  EXPECT_NE(j["cgroup"], "") << j.dump();
  auto limits = stringsOf(j["limits"]);
  EXPECT_THAT(limits, Contains(AllOf(HasSubstr("pids"), HasSubstr("4096")))) << j.dump();
  EXPECT_THAT(limits, Contains(HasSubstr("memory"))) << j.dump();
  // 75% of RAM, as the kernel counts it (MemTotal), within rounding.
  long pages = ::sysconf(_SC_PHYS_PAGES), pageSize = ::sysconf(_SC_PAGESIZE);
  double expected = 0.75 * static_cast<double>(pages) * static_cast<double>(pageSize);
  bool found = false;
  for (const auto& l : limits) {
    if (l.find("memory") == std::string::npos) continue;
    size_t eq = l.find("= ");
    if (eq == std::string::npos) continue;
    double v = std::strtod(l.c_str() + eq + 2, nullptr);
    if (v > expected * 0.95 && v < expected * 1.05) found = true;
  }
  EXPECT_TRUE(found) << "no memory limit of about 75% of RAM (" << expected
                     << " bytes) in: " << j.dump();
  // The sandbox's cgroups go away with it.
  for (const auto& dir : cgroupHostDirs(j["cgroup"].get<std::string>()))
    EXPECT_TRUE(pollUntil([&] { return !pathExists(dir); }, 10s)) << dir << " outlived its sandbox";
}

// The init and every command sit in the sandbox's cgroup in every hierarchy
// it uses (v2 from birth through CLONE_INTO_CGROUP, v1 joined before the
// init runs anything), as the host sees them in /proc/PID/cgroup.
TEST_P(Defaults, InitAndCommandsAreInTheSandboxsCgroupInEveryHierarchy) {
  auto created = helper().cli({"session", "create", "--name", "where", "--json"}, as());
  ASSERT_EQ(created.exitCode, 0) << created.describe();
  nlohmann::json s = parseJson(created.out);
  ASSERT_TRUE(s["cgroup"].is_string()) << created.out;
  const std::string secs = std::to_string(61717 + caller());
  auto exec = helper().spawnCli({"exec", "where", "--", "sleep", secs}, as());
  std::vector<pid_t> sleepers;
  ASSERT_TRUE(pollUntil([&] { return !(sleepers = findProcesses({"sleep", secs})).empty(); }, 20s));
  // The directory name, e.g. "sb-123-4-ns4026531836", and each line of it.
  std::string field = s["cgroup"].get<std::string>();
  const std::string first = field.substr(0, field.find(' '));
  const std::string name = first.substr(first.rfind('/') + 1);
  ASSERT_THAT(name, StartsWith("sb-"));
  for (pid_t pid : {static_cast<pid_t>(s["init_pid"].get<int>()), sleepers[0]}) {
    std::string cgroups = readFile("/proc/" + std::to_string(pid) + "/cgroup");
    for (const char* controller : {"memory", "pids"}) {
      bool placed = false;
      for (const auto& line : lines(cgroups))
        if (line.find(std::string(":") + controller) != std::string::npos &&
            line.ends_with("/" + name))
          placed = true;
      EXPECT_TRUE(placed) << "pid " << pid << " is not in " << name << " for " << controller
                          << ":\n"
                          << cgroups;
    }
    bool v2 = false;
    for (const auto& line : lines(cgroups))
      if (line.starts_with("0::") && line.ends_with("/" + name)) v2 = true;
    EXPECT_TRUE(v2) << "pid " << pid << " is not in the v2 " << name << ":\n" << cgroups;
  }
  EXPECT_EQ(helper().cli({"session", "rm", "where"}, as()).exitCode, 0);
  exec->finish();
}

GPUBOX_INSTANTIATE_CALLERS(Defaults);

// ------------------------------------------------------------ pids

// A fork bomb (perl, so that the errno is printed) under --pids 64: it gets a
// bounded number of processes, sees fork fail with EAGAIN, and holds them
// while the same helper serves another client.
class Pids : public CallerTest {};

TEST_P(Pids, ForkBombIsContainedAndTheHelperKeepsServing) {
  const std::string sleepArg = std::to_string(9191 + caller() % 7);
  const std::string script =
      "my $n = 0; my $err = 'none';"
      "while ($n < 1000) {"
      "  my $p = fork();"
      "  if (!defined $p) { $err = \"$!\"; last; }"
      "  if ($p == 0) { exec('sleep', '" +
      sleepArg +
      "'); exit 0; }"
      "  $n++;"
      "}"
      "open(my $f, '>', 'bomb.result.tmp') or die; print $f \"forked=$n error=$err\\n\"; close $f;"
      "rename('bomb.result.tmp', 'bomb.result');"
      "print \"forked=$n error=$err\\n\";"
      "for (my $i = 0; $i < 1200 && !-e 'bomb.release'; $i++) { select(undef, undef, undef, 0.05); "
      "}"
      "exit 0;";
  auto bomb =
      helper().spawnCli({"run", "--pids", "64", "--json-status", "3", "--", "perl", "-e", script},
                        withStatusFd(as({.timeout = 120s})));
  const std::string result = helper().workDir() + "/bomb.result";
  ASSERT_TRUE(pollUntil([&] { return pathExists(result); }, 60s))
      << "the bomb never reported; helper log:\n"
      << helper().log();
  // While the bomb holds every pid it could get, another client is served.
  auto other = runAs({"--", "echo", "ok"}, {.timeout = 60s});
  EXPECT_EQ(other.exitCode, 0) << other.describe();
  EXPECT_EQ(other.out, "ok\n");
  auto otherRoot = run({"--", "echo", "ok-root"}, {.timeout = 60s});
  EXPECT_EQ(otherRoot.exitCode, 0) << otherRoot.describe();
  EXPECT_EQ(otherRoot.out, "ok-root\n");

  writeFile(helper().workDir() + "/bomb.release", "", 0644);
  auto r = bomb->finish();
  EXPECT_EQ(r.exitCode, 0) << r.describe();
  // "forked=N error=Resource temporarily unavailable"
  ASSERT_THAT(r.out, StartsWith("forked=")) << r.describe();
  int forked = std::atoi(r.out.c_str() + 7);
  EXPECT_LE(forked, 64) << r.describe();
  EXPECT_GE(forked, 8) << "the bomb could hardly fork at all: " << r.describe();
  EXPECT_THAT(r.out, HasSubstr("Resource temporarily unavailable")) << r.describe();
  nlohmann::json j = parseJson(r.extra);
  ASSERT_FALSE(j.is_discarded()) << r.describe();
  EXPECT_THAT(stringsOf(j["limits"]), Contains(AllOf(HasSubstr("pids"), HasSubstr("64"))))
      << j.dump();
  // The bomb's processes went with its sandbox.
  EXPECT_TRUE(pollUntil(
      [&] {
        return findProcesses({"sleep", sleepArg}).empty();
      },
      20s))
      << "sleep " << sleepArg << " outlived the bomb's sandbox";
}

// A limit the kernel itself refuses (pids.max takes at most PID_MAX_LIMIT,
// 4194304) fails the run with the option, the file and the kernel's word,
// before the command runs (here in a warm init's cgroup, the default); the
// helper goes on serving.
TEST_P(Pids, AValueTheKernelRefusesNamesTheFileAndNothingRuns) {
  const std::string marker = helper().workDir() + "/ran-" + std::to_string(caller());
  auto refused = runAs({"--pids", "5000000", "--", "sh", "-c", "touch " + marker});
  EXPECT_EQ(refused.exitCode, 125) << refused.describe();
  EXPECT_EQ(refused.out, "");
  EXPECT_THAT(refused.err, StartsWith("gpubox: --pids 5000000: writing 5000000 to "))
      << refused.describe();
  EXPECT_THAT(refused.err, HasSubstr("/pids.max: Invalid argument")) << refused.describe();
  EXPECT_FALSE(pathExists(marker)) << "the command ran although its limit was refused";
  auto next = runAs({"--pids", "64", "--json-status", "3", "--", "echo", "ran"}, withStatusFd({}));
  EXPECT_EQ(next.exitCode, 0) << next.describe();
  EXPECT_EQ(next.out, "ran\n");
  nlohmann::json j = parseJson(next.extra);
  ASSERT_FALSE(j.is_discarded()) << next.describe();
  EXPECT_THAT(stringsOf(j["limits"]), Contains(StartsWith("pids.max = 64 (cgroup v"))) << j.dump();
}

GPUBOX_INSTANTIATE_CALLERS(Pids);

// ------------------------------------------------------------ timeouts

class Timeout : public CallerTest {};

// A command that ignores SIGTERM: SIGKILL after --kill-after.
TEST_P(Timeout, TermIgnoredEscalatesToKill) {
  auto r = runAs({"--timeout", "1s", "--kill-after", "1s", "--json-status", "3", "--", "sh", "-c",
                  "trap '' TERM; while :; do sleep 0.1; done"},
                 withStatusFd({.timeout = 60s}));
  EXPECT_EQ(r.exitCode, 124) << r.describe();
  auto said = linesStartingWith(r.err, "gpubox: timed out");
  ASSERT_EQ(said.size(), 1u) << r.describe();
  EXPECT_THAT(said[0], HasSubstr("--timeout 1s")) << r.describe();
  EXPECT_THAT(said[0], HasSubstr("SIGKILL")) << r.describe();
  nlohmann::json j = parseJson(r.extra);
  ASSERT_FALSE(j.is_discarded()) << r.describe();
  EXPECT_EQ(j["reason"], "timed_out") << j.dump();
  ASSERT_TRUE(j["timeout"].is_object()) << j.dump();
  EXPECT_EQ(j["timeout"]["sigkill"], true) << j.dump();
  ASSERT_TRUE(j["timeout"]["limit_seconds"].is_number()) << j.dump();
  EXPECT_DOUBLE_EQ(j["timeout"]["limit_seconds"].get<double>(), 1.0) << j.dump();
}

GPUBOX_INSTANTIATE_CALLERS(Timeout);

class TimeoutOnce : public HelperTest {};

// A command that obeys SIGTERM: no SIGKILL needed.
TEST_F(TimeoutOnce, PlainSleepEndsOnTerm) {
  auto r = run({"--timeout", "1s", "--json-status", "3", "--", "sleep", "10011"},
               withStatusFd({.asUid = kNobodyUid, .timeout = 60s}));
  EXPECT_EQ(r.exitCode, 124) << r.describe();
  auto said = linesStartingWith(r.err, "gpubox: timed out");
  ASSERT_EQ(said.size(), 1u) << r.describe();
  EXPECT_THAT(said[0], HasSubstr("--timeout 1s")) << r.describe();
  nlohmann::json j = parseJson(r.extra);
  ASSERT_FALSE(j.is_discarded()) << r.describe();
  EXPECT_EQ(j["reason"], "timed_out") << j.dump();
  ASSERT_TRUE(j["timeout"].is_object()) << j.dump();
  EXPECT_EQ(j["timeout"]["sigkill"], false) << j.dump();
}

// Duration syntax: 1500ms and a bare number of seconds both work; a run that
// ends before its timeout is not reported as timed out.
TEST_F(TimeoutOnce, DurationSyntaxAndNoFalseTimeout) {
  auto ms = run({"--timeout", "1500ms", "--", "sleep", "10012"}, {.timeout = 60s});
  EXPECT_EQ(ms.exitCode, 124) << ms.describe();
  EXPECT_THAT(ms.err, HasSubstr("gpubox: timed out")) << ms.describe();
  auto quick =
      run({"--timeout", "30", "--json-status", "3", "--", "sh", "-c", "exit 3"}, withStatusFd({}));
  EXPECT_EQ(quick.exitCode, 3) << quick.describe();
  EXPECT_EQ(quick.err, "") << quick.describe();
  nlohmann::json j = parseJson(quick.extra);
  ASSERT_FALSE(j.is_discarded()) << quick.describe();
  EXPECT_EQ(j["reason"], "exited") << j.dump();
  EXPECT_TRUE(j["timeout"].is_null()) << j.dump();
  auto bad = run({"--timeout", "soon", "--", "true"});
  EXPECT_EQ(bad.exitCode, 125) << bad.describe();
  EXPECT_THAT(bad.err, HasSubstr("soon")) << bad.describe();
}

// Every process of the sandbox is signalled, also one that double-forked
// into its own session and ignores SIGTERM. The command waits until that
// grandchild is up (it says so) before the timeout can fire.
TEST_F(TimeoutOnce, DoubleForkedChildIsGoneAfterTheRun) {
  const std::string arg = "77771";
  auto r = run({"--timeout", "2s", "--kill-after", "1s", "--json-status", "3", "--", "sh", "-c",
                "(setsid sh -c \"trap '' TERM; touch /tmp/up; exec sleep " + arg +
                    "\" </dev/null >/dev/null 2>&1 &); "
                    "while [ ! -e /tmp/up ]; do sleep 0.05; done; echo grandchild-up; sleep 10013"},
               withStatusFd({.asUid = kNobodyUid, .timeout = 60s}));
  EXPECT_EQ(r.exitCode, 124) << r.describe();
  EXPECT_EQ(r.out, "grandchild-up\n") << r.describe();
  nlohmann::json j = parseJson(r.extra);
  ASSERT_FALSE(j.is_discarded()) << r.describe();
  EXPECT_EQ(j["reason"], "timed_out") << j.dump();
  EXPECT_TRUE(findProcesses({"sleep", arg}).empty())
      << "sleep " << arg << " still runs after the run returned";
  EXPECT_TRUE(findProcesses({"sleep", "10013"}).empty());
  // The grandchild ignored SIGTERM (its exec'ed sleep keeps the ignored
  // disposition): only SIGKILL could end it, so the status must not claim
  // that everything ended after SIGTERM.
  EXPECT_EQ(j["timeout"]["sigkill"], true) << j.dump();
}

// --as-pid-1: the command is pid 1 of its own pid namespace, so the
// timeout's SIGTERM, which it has no handler for, is ignored (its children
// still get it); --kill-after's SIGKILL ends it and everything it started.
TEST_F(TimeoutOnce, AsPid1CommandEndsWithTheKillAfter) {
  auto r = run({"--as-pid-1", "--timeout", "1s", "--kill-after", "1s", "--json-status", "3", "--",
                "sh", "-c", "sleep 10021 & echo $$; while :; do sleep 0.05; done"},
               withStatusFd({.asUid = kNobodyUid, .timeout = 60s}));
  EXPECT_EQ(r.exitCode, 124) << r.describe();
  EXPECT_EQ(r.out, "1\n") << r.describe();
  nlohmann::json j = parseJson(r.extra);
  ASSERT_FALSE(j.is_discarded()) << r.describe();
  EXPECT_EQ(j["reason"], "timed_out") << j.dump();
  EXPECT_EQ(j["timeout"]["sigkill"], true) << j.dump();
  EXPECT_TRUE(findProcesses({"sleep", "10021"}).empty());
}

// SIGTERM reaches every process, not only the command: a double-forked one
// that handles it leaves a mark in the (host-visible) working directory. The
// command itself ignores SIGTERM so the sandbox lives on until SIGKILL (it
// sets that after forking: a signal ignored on entry cannot be trapped).
TEST_F(TimeoutOnce, SigtermReachesADoubleForkedProcess) {
  auto r = run({"--timeout", "1s", "--kill-after", "2s", "--json-status", "3", "--", "sh", "-c",
                "(setsid sh -c \"trap 'echo got-term > gc-term; exit 0' TERM; "
                "touch /tmp/up; while :; do sleep 0.05; done\" </dev/null >/dev/null 2>&1 &); "
                "trap '' TERM; "
                "while [ ! -e /tmp/up ]; do sleep 0.05; done; echo grandchild-up; "
                "while :; do sleep 0.05; done"},
               withStatusFd({.asUid = kNobodyUid, .timeout = 60s}));
  EXPECT_EQ(r.exitCode, 124) << r.describe();
  EXPECT_EQ(r.out, "grandchild-up\n") << r.describe();
  const std::string mark = helper().workDir() + "/gc-term";
  ASSERT_TRUE(pathExists(mark)) << "the double-forked process never saw SIGTERM: " << r.describe();
  EXPECT_EQ(readFile(mark), "got-term\n");
  nlohmann::json j = parseJson(r.extra);
  ASSERT_FALSE(j.is_discarded()) << r.describe();
  EXPECT_EQ(j["timeout"]["sigkill"], true) << j.dump();
}

// ------------------------------------------------------------ cpu

class Cpu : public HelperTest {};

// Two busy loops in a session under --cpus 0.5: the sandbox's CPU time
// (cgroup accounting, from `gpubox ps --json`) grows at about half a core,
// not at the one or two cores the loops could use.
TEST_F(Cpu, HalfACoreIsAboutHalfACore) {
  auto created = helper().cli({"session", "create", "--cpus", "0.5", "--name", "cpu-half"},
                              {.asUid = kNobodyUid});
  ASSERT_EQ(created.exitCode, 0) << created.describe();
  ASSERT_EQ(created.out, "cpu-half\n");
  auto spin = helper().spawnCli(
      {"exec", "cpu-half", "--", "sh", "-c", "spin() { while :; do :; done; }; spin & spin & wait"},
      {.asUid = kNobodyUid, .timeout = 60s});
  auto cpuOf = [&](double* secs) {
    nlohmann::json ps = helper().psJson(kNobodyUid);
    nlohmann::json e = findByName(ps, "cpu-half");
    if (!e.is_object() || !e["cpu_seconds"].is_number()) return false;
    *secs = e["cpu_seconds"].get<double>();
    return true;
  };
  double c0 = 0;
  // Started: some CPU time is accounted.
  ASSERT_TRUE(pollUntil([&] { return cpuOf(&c0) && c0 > 0.05; }, 30s))
      << "no CPU time accounted; ps: " << helper().psJson(kNobodyUid).dump() << "\n"
      << helper().log();
  auto t0 = std::chrono::steady_clock::now();
  sleepFor(2500ms);
  double c1 = 0;
  ASSERT_TRUE(cpuOf(&c1));
  double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  double share = (c1 - c0) / wall;
  // (The lower bound can only fail on a host so loaded that the sandbox
  // could not get half a core: the load average is shown for that case.)
  EXPECT_GT(share, 0.25) << "cpu " << (c1 - c0) << " s in " << wall
                         << " s of wall time; load: " << readFile("/proc/loadavg");
  EXPECT_LT(share, 0.75) << "cpu " << (c1 - c0) << " s in " << wall << " s of wall time";
  auto rm = helper().cli({"session", "rm", "cpu-half"}, {.asUid = kNobodyUid});
  EXPECT_EQ(rm.exitCode, 0) << rm.describe();
  auto s = spin->finish();
  EXPECT_NE(s.exitCode, 0) << s.describe();
}

// The CPU ceiling is applied and reported for a plain run too.
TEST_F(Cpu, CpusAreListedInTheStatus) {
  auto r = run({"--cpus", "0.5", "--json-status", "3", "--", "true"}, withStatusFd({}));
  ASSERT_EQ(r.exitCode, 0) << r.describe();
  nlohmann::json j = parseJson(r.extra);
  ASSERT_FALSE(j.is_discarded()) << r.describe();
  // cgroup v1: cpu.cfs_quota_us half of cpu.cfs_period_us; v2: cpu.max.
  EXPECT_THAT(stringsOf(j["limits"]), Contains(HasSubstr("cpu"))) << j.dump();
  auto bad = run({"--cpus", "half", "--", "true"});
  EXPECT_EQ(bad.exitCode, 125) << bad.describe();
  EXPECT_THAT(bad.err, HasSubstr("half")) << bad.describe();
}

// ------------------------------------------------------------ rlimits

class Rlimits : public CallerTest {};

TEST_P(Rlimits, NofileIsSeenInside) {
  auto r = runAs({"--rlimit", "NOFILE=64", "--", "sh", "-c", "ulimit -n; ulimit -Hn"});
  ASSERT_EQ(r.exitCode, 0) << r.describe();
  EXPECT_EQ(r.out, "64\n64\n") << "HARD defaults to SOFT: " << r.describe();
}

// The soft and hard values of one "Max ..." row of /proc/<pid>/limits.
std::pair<std::string, std::string> limitRow(const std::string& limits, const std::string& row) {
  for (const auto& l : lines(limits)) {
    if (l.rfind(row, 0) != 0) continue;
    std::istringstream rest(l.substr(row.size()));
    std::string soft, hard;
    rest >> soft >> hard;
    return {soft, hard};
  }
  return {"absent", "absent"};
}

TEST_P(Rlimits, SoftHardCaseInsensitiveAndRepeatable) {
  auto r =
      runAs({"--rlimit", "nofile=32:128", "--rlimit", "Stack=16777216", "--rlimit",
             "CORE=1048576:unlimited", "--rlimit", "nproc=500", "--", "cat", "/proc/self/limits"});
  ASSERT_EQ(r.exitCode, 0) << r.describe();
  using P = std::pair<std::string, std::string>;
  EXPECT_EQ(limitRow(r.out, "Max open files"), P("32", "128")) << r.out;
  EXPECT_EQ(limitRow(r.out, "Max stack size"), P("16777216", "16777216")) << r.out;
  EXPECT_EQ(limitRow(r.out, "Max core file size"), P("1048576", "unlimited")) << r.out;
  EXPECT_EQ(limitRow(r.out, "Max processes"), P("500", "500")) << r.out;
}

TEST_P(Rlimits, DefaultCoreLimitIsZero) {
  auto r = runAs({"--", "sh", "-c", "ulimit -c"});
  ASSERT_EQ(r.exitCode, 0) << r.describe();
  EXPECT_EQ(r.out, "0\n");
}

TEST_P(Rlimits, InvalidNamesAndValuesAreRefused) {
  auto r = runAs({"--rlimit", "BOGUS=1", "--", "echo", "ran"});
  EXPECT_EQ(r.exitCode, 125) << r.describe();
  EXPECT_EQ(r.out, "") << r.describe();
  EXPECT_THAT(r.err, StartsWith("gpubox: ")) << r.describe();
  EXPECT_THAT(r.err, HasSubstr("BOGUS")) << r.describe();
  auto v = runAs({"--rlimit", "NOFILE=lots", "--", "echo", "ran"});
  EXPECT_EQ(v.exitCode, 125) << v.describe();
  EXPECT_THAT(v.err, HasSubstr("lots")) << v.describe();
  // An unprivileged caller cannot raise a hard limit above its own: refused
  // (or clamped) loudly, never silently ignored. Soft above hard is an error.
  auto inverted = runAs({"--rlimit", "NOFILE=128:64", "--", "echo", "ran"});
  EXPECT_EQ(inverted.exitCode, 125) << inverted.describe();
  EXPECT_THAT(inverted.err, HasSubstr("NOFILE")) << inverted.describe();
}

GPUBOX_INSTANTIATE_CALLERS(Rlimits);

// ------------------------------------------------------------ ceilings and caps

class Ceilings : public HelperTest {
 protected:
  HelperOptions helperOptions() override {
    return {.extraArgs = {"--max-memory", "256M", "--max-pids", "100", "--max-cpus", "1",
                          "--max-sandboxes-per-uid", "2"}};
  }
};

TEST_F(Ceilings, RequestsAboveTheHelpersCeilingsAreRefusedNamingTheFlag) {
  auto mem = run({"--memory", "1G", "--", "echo", "ran"}, {.asUid = kNobodyUid});
  EXPECT_EQ(mem.exitCode, 125) << mem.describe();
  EXPECT_EQ(mem.out, "");
  EXPECT_THAT(mem.err, StartsWith("gpubox: ")) << mem.describe();
  EXPECT_THAT(mem.err, HasSubstr("--max-memory")) << mem.describe();
  auto pids = run({"--pids", "1000", "--", "echo", "ran"}, {.asUid = kNobodyUid});
  EXPECT_EQ(pids.exitCode, 125) << pids.describe();
  EXPECT_THAT(pids.err, HasSubstr("--max-pids")) << pids.describe();
  auto cpus = run({"--cpus", "2", "--", "echo", "ran"}, {.asUid = kNobodyUid});
  EXPECT_EQ(cpus.exitCode, 125) << cpus.describe();
  EXPECT_THAT(cpus.err, HasSubstr("--max-cpus")) << cpus.describe();
  // At the ceiling is fine.
  auto ok = run({"--memory", "256M", "--pids", "100", "--", "echo", "ran"}, {.asUid = kNobodyUid});
  EXPECT_EQ(ok.exitCode, 0) << ok.describe();
  EXPECT_EQ(ok.out, "ran\n");
}

TEST_F(Ceilings, PerUidSandboxCap) {
  std::string release = helper().workDir() + "/release";
  const std::string wait = "while [ ! -e release ]; do sleep 0.05; done; echo done";
  auto a = helper().spawnCli({"run", "--", "sh", "-c", wait}, {.asUid = kNobodyUid});
  auto b = helper().spawnCli({"run", "--", "sh", "-c", wait}, {.asUid = kNobodyUid});
  // Both alive: two sandboxes of uid 65534 listed.
  ASSERT_TRUE(pollUntil(
      [&] {
        nlohmann::json ps = helper().psJson(kNobodyUid);
        return ps.is_array() && ps.size() >= 2;
      },
      30s))
      << helper().psJson(kNobodyUid).dump() << "\n"
      << helper().log();
  auto third = run({"--", "echo", "third"}, {.asUid = kNobodyUid});
  EXPECT_EQ(third.exitCode, 125) << third.describe();
  EXPECT_EQ(third.out, "");
  EXPECT_THAT(third.err, StartsWith("gpubox: ")) << third.describe();
  EXPECT_THAT(third.err, HasSubstr("--max-sandboxes-per-uid")) << third.describe();
  EXPECT_THAT(third.err, HasSubstr("65534")) << third.describe();
  // The cap is per uid: root is not affected by 65534's sandboxes.
  auto root = run({"--", "echo", "root"});
  EXPECT_EQ(root.exitCode, 0) << root.describe();
  // A session counts as a sandbox too.
  auto sess = helper().cli({"session", "create"}, {.asUid = kNobodyUid});
  EXPECT_EQ(sess.exitCode, 125) << sess.describe();
  EXPECT_THAT(sess.err, HasSubstr("--max-sandboxes-per-uid")) << sess.describe();

  writeFile(release, "", 0644);
  auto ra = a->finish();
  auto rb = b->finish();
  EXPECT_EQ(ra.exitCode, 0) << ra.describe();
  EXPECT_EQ(rb.exitCode, 0) << rb.describe();
  // Once they have ended, the uid may run again (the count may trail the
  // clients' exit by a moment).
  RunResult again;
  EXPECT_TRUE(pollUntil(
      [&] {
        again = run({"--", "echo", "again"}, {.asUid = kNobodyUid});
        return again.exitCode == 0;
      },
      20s))
      << again.describe();
  EXPECT_EQ(again.out, "again\n");
}

// The helper's defaults apply to requests that set no limit of their own,
// and "none" means none.
TEST(HelperDefaults, DefaultsAndNone) {
  GPUBOX_REQUIRE_ROOT();
  {
    HelperProcess h({.extraArgs = {"--default-memory", "128M", "--default-pids", "100",
                                   "--default-cpus", "1.5"}});
    auto r = h.cli({"run", "--json-status", "3", "--", "sh", "-c", "ulimit -c"},
                   withStatusFd({.asUid = kNobodyUid}));
    ASSERT_EQ(r.exitCode, 0) << r.describe();
    EXPECT_EQ(r.out, "0\n");
    nlohmann::json j = parseJson(r.extra);
    ASSERT_FALSE(j.is_discarded()) << r.describe();
    auto limits = stringsOf(j["limits"]);
    EXPECT_THAT(limits, Contains(AllOf(HasSubstr("memory"), HasSubstr("134217728")))) << j.dump();
    EXPECT_THAT(limits, Contains(AllOf(HasSubstr("pids"), HasSubstr("100")))) << j.dump();
    EXPECT_THAT(limits, Contains(HasSubstr("cpu"))) << j.dump();
    // A request's own value wins over the default.
    auto own = h.cli({"run", "--pids", "50", "--json-status", "3", "--", "true"},
                     withStatusFd({.asUid = kNobodyUid}));
    ASSERT_EQ(own.exitCode, 0) << own.describe();
    nlohmann::json o = parseJson(own.extra);
    EXPECT_THAT(stringsOf(o["limits"]), Contains(AllOf(HasSubstr("pids"), HasSubstr("50"))))
        << o.dump();
    EXPECT_THAT(stringsOf(o["limits"]), Not(Contains(HasSubstr("= 100 ")))) << o.dump();
  }
  {
    HelperProcess h({.extraArgs = {"--default-memory", "none", "--default-pids", "none"}});
    auto r =
        h.cli({"run", "--json-status", "3", "--", "true"}, withStatusFd({.asUid = kNobodyUid}));
    ASSERT_EQ(r.exitCode, 0) << r.describe();
    nlohmann::json j = parseJson(r.extra);
    ASSERT_FALSE(j.is_discarded()) << r.describe();
    auto limits = stringsOf(j["limits"]);
    EXPECT_THAT(limits, Not(Contains(HasSubstr("memory")))) << j.dump();
    EXPECT_THAT(limits, Not(Contains(HasSubstr("pids")))) << j.dump();
    // The core limit is not a cgroup default: still 0.
    EXPECT_THAT(limits, Contains(HasSubstr("CORE"))) << j.dump();
  }
}

// ------------------------------------------------------------ many clients

class ManyClients : public HelperTest {};

TEST_F(ManyClients, FiftyConcurrentRunsEachGetTheirOwnOutput) {
  constexpr int kClients = 50;
  std::vector<std::unique_ptr<Process>> clients;
  for (int i = 0; i < kClients; ++i) {
    RunOptions o;
    if (i % 2) o.asUid = kNobodyUid;
    o.timeout = 120s;
    clients.push_back(helper().spawnCli({"run", "--", "echo", std::to_string(i)}, o));
  }
  int ok = 0;
  for (int i = 0; i < kClients; ++i) {
    auto r = clients[static_cast<size_t>(i)]->finish();
    EXPECT_EQ(r.exitCode, 0) << "client " << i << ": " << r.describe();
    EXPECT_EQ(r.out, std::to_string(i) + "\n") << "client " << i << ": " << r.describe();
    if (r.exitCode == 0 && r.out == std::to_string(i) + "\n") ++ok;
  }
  EXPECT_EQ(ok, kClients);
  EXPECT_TRUE(helper().alive()) << helper().log();
}

// ------------------------------------------------------------ no cgroups

// A helper whose cgroup hierarchies are read-only (a pod without a
// delegated cgroup): with default limits it refuses to start, saying how to
// run without them; without them it serves sandboxes that need no cgroup and
// refuses, by name, every request that does.
std::vector<std::string> readOnlyCgroupsWrapper() {
  // A mount namespace of its own in which every cgroup mount is read-only.
  return {"/usr/bin/unshare",
          "--mount",
          "--propagation",
          "slave",
          "/bin/sh",
          "-c",
          "for m in $(awk '$3 ~ /^cgroup2?$/ {print $2}' /proc/self/mounts); do "
          "mount -o remount,bind,ro \"$m\" || exit 99; done; exec \"$@\"",
          "sh"};
}

TEST(ReadOnlyCgroups, DefaultLimitsStopTheHelperWithAWayOut) {
  GPUBOX_REQUIRE_ROOT();
  HelperProcess h({.waitReady = false, .wrapper = readOnlyCgroupsWrapper()});
  auto status = h.waitExit(30s);
  ASSERT_TRUE(status.has_value()) << "the helper kept running without its cgroups:\n" << h.log();
  EXPECT_NE(*status, 0) << h.log();
  EXPECT_THAT(h.log(), HasSubstr("cannot enforce the default limits")) << h.log();
  EXPECT_THAT(h.log(), HasSubstr("--default-memory none")) << h.log();
  EXPECT_FALSE(pathExists(h.socketPath())) << "a helper that did not start left its socket";
}

TEST(ReadOnlyCgroups, WithoutDefaultLimitsOnlyWhatNeedsACgroupIsRefused) {
  GPUBOX_REQUIRE_ROOT();
  HelperProcess h({.extraArgs = {"--default-memory", "none", "--default-pids", "none"},
                   .wrapper = readOnlyCgroupsWrapper()});
  ASSERT_TRUE(
      pollUntil([&] { return h.log().find("cgroups: unavailable") != std::string::npos; }, 10s))
      << h.log();
  // Clients must share the helper's mount namespace (it refuses others).
  auto cli = [&](std::vector<std::string> args) {
    std::vector<std::string> argv = {"/usr/bin/nsenter",
                                     "--mount=/proc/" + std::to_string(h.pid()) + "/ns/mnt",
                                     "--",
                                     cliPath(),
                                     "--socket",
                                     h.socketPath()};
    argv.insert(argv.end(), args.begin(), args.end());
    return runProcess(argv, {.cwd = h.workDir(), .timeout = 60s});
  };
  auto ok = cli({"run", "--", "echo", "no cgroup needed"});
  EXPECT_EQ(ok.exitCode, 0) << ok.describe() << h.log();
  EXPECT_EQ(ok.out, "no cgroup needed\n");
  for (const std::vector<std::string>& ask :
       {std::vector<std::string>{"--memory", "64M"}, {"--pids", "8"}, {"--cpus", "1"}}) {
    std::vector<std::string> args = {"run"};
    args.insert(args.end(), ask.begin(), ask.end());
    args.insert(args.end(), {"--", "true"});
    auto r = cli(args);
    EXPECT_EQ(r.exitCode, 125) << r.describe();
    EXPECT_THAT(r.err, AllOf(HasSubstr(ask[0]), HasSubstr("no cgroups"))) << r.describe();
  }
}

}  // namespace
}  // namespace gpubox::itest
