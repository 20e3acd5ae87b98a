// Crash recovery: the helper killed with SIGKILL takes its sandboxes (runs
// and sessions) with it, and the next helper started on the same socket
// removes the cgroups the dead one left, killing anything still in them, and
// says so in its log. A live helper's cgroups are never touched.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "fake_driver.hpp"
#include "harness.hpp"

namespace gpubox::itest {
namespace {

using namespace std::chrono_literals;
using gpubox::testing::FakeDriverRoot;
using ::testing::HasSubstr;
using ::testing::StartsWith;

std::string baseName(const std::string& path) {
  auto slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += "  " + s + "\n";
  return out;
}

// The host cgroup directories of the caller-visible sandbox `name` (root's
// ps lists everyone's).
std::vector<std::string> dirsOf(const nlohmann::json& ps, const std::string& name) {
  nlohmann::json e = findByName(ps, name);
  if (!e.is_object() || !e["cgroup"].is_string()) return {};
  return cgroupHostDirs(e["cgroup"].get<std::string>());
}

std::vector<std::string> leftoverLines(const std::string& log) {
  std::vector<std::string> out;
  for (const auto& l : lines(log))
    if (l.find("leftover") != std::string::npos) out.push_back(l);
  return out;
}

// Moves a host process into the cgroup directory `dir` (any hierarchy).
bool moveInto(const std::string& dir, pid_t pid) {
  int fd = ::open((dir + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  std::string s = std::to_string(pid);
  bool ok = ::write(fd, s.data(), s.size()) == static_cast<ssize_t>(s.size());
  ::close(fd);
  return ok;
}

// Directories named "<prefix>*" anywhere in any cgroup hierarchy (depth
// limited: sandbox cgroups sit a few levels down).
std::vector<std::string> cgroupDirsNamed(const std::string& prefix) {
  namespace fs = std::filesystem;
  std::vector<std::string> found;
  for (const auto& mount : cgroupMounts()) {
    std::error_code ec;
    fs::recursive_directory_iterator it(mount, ec), end;
    for (; !ec && it != end; it.increment(ec)) {
      if (it.depth() >= 6) {
        it.disable_recursion_pending();
        continue;
      }
      if (!it->is_directory(ec)) continue;
      if (it->path().filename().string().rfind(prefix, 0) == 0) {
        found.push_back(it->path().string());
        it.disable_recursion_pending();
      }
    }
  }
  return found;
}

// A cgroup parent of this test's own (so that helpers of other test runs on
// the same machine, which use the default parent, never see our leftovers),
// removed at the end from every hierarchy.
class PrivateCgroupParent {
 public:
  PrivateCgroupParent() : rel_("/gpubox-it-recovery-" + std::to_string(::getpid())) {}
  ~PrivateCgroupParent() {
    for (const auto& m : cgroupMounts()) ::rmdir((m + rel_).c_str());
  }
  const std::string& rel() const { return rel_; }

 private:
  std::string rel_;
};

const std::string kAllowGpus = "[[allow]]\nusers = [65534, 0]\ngpus = [\"all\"]\n";

TEST(Recovery, SigkilledHelperLeavesNothingAfterARestart) {
  GPUBOX_REQUIRE_ROOT();
  PrivateCgroupParent parent;
  // A GPU (fake driver) for the one-shot run where mknod works, so that the
  // device hierarchy has a leftover too.
  const bool gpu = FakeDriverRoot::canMknod();
  std::unique_ptr<FakeDriverRoot> fake;
  TempDir config(0755);
  std::vector<std::string> args{"--max-sessions-per-uid", "8", "--cgroup-parent", parent.rel()};
  if (gpu) {
    fake = std::make_unique<FakeDriverRoot>(FakeDriverRoot::Options{.gpus = 1});
    writeFile(config / "helper.toml", kAllowGpus, 0644);
    args.insert(args.end(), {"--config", config / "helper.toml", "--driver-root", fake->root()});
  }
  HelperProcess h({.extraArgs = args});
  const RunOptions nobody{.asUid = kNobodyUid, .timeout = 60s};

  // A one-shot run and a session with a command running in it, both 65534's.
  std::vector<std::string> runArgs{"run"};
  if (gpu) runArgs.insert(runArgs.end(), {"--gpu", "0"});
  runArgs.insert(runArgs.end(), {"--", "sleep", "93931"});
  auto runClient = h.spawnCli(runArgs, nobody);
  auto created = h.cli({"session", "create", "--name", "old", "--json"}, nobody);
  ASSERT_EQ(created.exitCode, 0) << created.describe();
  auto execClient = h.spawnCli({"exec", "old", "--", "sleep", "94941"}, nobody);
  ASSERT_TRUE(pollUntil(
      [&] {
        return !findProcesses({"sleep", "93931"}).empty() &&
               !findProcesses({"sleep", "94941"}).empty();
      },
      30s))
      << h.log();
  if (gpu) {
    EXPECT_EQ(gpuHolders(h, 0), 1u);
  }

  // Where their cgroups are, before the crash.
  nlohmann::json ps = h.psJson(0);
  ASSERT_TRUE(ps.is_array()) << h.log();
  std::vector<std::string> sessionDirs = dirsOf(ps, "old");
  std::vector<std::string> runDirs;
  for (const auto& e : ps)
    if (e["kind"] == "run" && e["cgroup"].is_string())
      for (const auto& d : cgroupHostDirs(e["cgroup"].get<std::string>())) runDirs.push_back(d);
  ASSERT_FALSE(sessionDirs.empty()) << ps.dump();
  ASSERT_FALSE(runDirs.empty()) << ps.dump();
  std::vector<std::string> all = sessionDirs;
  all.insert(all.end(), runDirs.begin(), runDirs.end());
  const pid_t oldPid = h.pid();
  const std::string prefix = "sb-" + std::to_string(oldPid) + "-";
  for (const auto& d : all) {
    ASSERT_TRUE(pathExists(d)) << d << " (from " << ps.dump() << ")";
    EXPECT_THAT(baseName(d), StartsWith(prefix)) << d;
  }
  // Every hierarchy's directory is listed: what the host has for this
  // helper is exactly what ps named, and the warm inits' (which belong to no
  // sandbox yet, and which the next helper must remove too).
  // (Polled: a warm init made a moment ago may still be on its way into
  // its v1 hierarchies.)
  auto unexplained = [&] {
    std::vector<std::string> out;
    for (const auto& d : cgroupDirsNamed(prefix))
      if (std::find(all.begin(), all.end(), d) == all.end() && !holdsOnlyAWarmInit(d, oldPid))
        out.push_back(d);
    return out;
  };
  EXPECT_TRUE(pollUntil([&] { return unexplained().empty(); }, 10s))
      << join(unexplained()) << "\nexist but no ps entry names them";

  h.kill(SIGKILL);
  ASSERT_TRUE(h.waitExit(30s).has_value());

  // Its sandboxes died with it (parent-death signal on their inits).
  EXPECT_TRUE(pollUntil(
      [&] {
        return findProcesses({"sleep", "93931"}).empty() &&
               findProcesses({"sleep", "94941"}).empty();
      },
      20s))
      << "a sandbox outlived the SIGKILLed helper";
  auto rc = runClient->finish();
  EXPECT_EQ(rc.exitCode, 125) << rc.describe();
  auto ec = execClient->finish();
  EXPECT_EQ(ec.exitCode, 125) << ec.describe();

  // Something is still in the dead helper's cgroups: a host process moved
  // into the run's directories (what a process that escaped the kill would
  // look like). The next helper must kill it.
  Process stray({"/bin/sleep", "95951"}, {.timeout = 60s});
  std::vector<std::string> remaining;
  for (const auto& d : all)
    if (pathExists(d)) remaining.push_back(d);
  bool moved = false;
  for (const auto& d : runDirs)
    if (pathExists(d)) moved = moveInto(d, stray.pid()) || moved;
  ASSERT_TRUE(moved) << "could not move a stray process into any of:\n" << join(runDirs);

  h.restart();
  // Everything the dead helper left is removed, in every hierarchy.
  for (const auto& d : all)
    EXPECT_TRUE(pollUntil([&] { return !pathExists(d); }, 20s))
        << d << " remains after the restart; new helper's log:\n"
        << h.logSinceStart();
  EXPECT_THAT(cgroupDirsNamed(prefix), ::testing::IsEmpty());
  auto s = stray.finish();
  EXPECT_FALSE(s.timedOut) << "a process left in a dead helper's cgroup was not killed";
  EXPECT_EQ(s.termSignal, SIGKILL) << s.describe();

  // Served: the start-up cleanup is over and logged.
  EXPECT_EQ(h.cli({"info"}).exitCode, 0);
  // One "leftover" line per thing cleaned, naming it. (Directories under the
  // shared default parent, e.g. the v1 device hierarchy's, may have been
  // cleaned by another helper on this machine first; ours only we clean.)
  std::string log = h.logSinceStart();
  auto said = leftoverLines(log);
  EXPECT_FALSE(said.empty()) << "no leftover lines in the new helper's log:\n" << log;
  for (const auto& d : remaining) {
    if (d.find(parent.rel() + "/") == std::string::npos) continue;
    bool named = false;
    for (const auto& l : said)
      if (l.find(d) != std::string::npos) named = true;
    EXPECT_TRUE(named) << d << " was cleaned but no leftover line names it:\n" << join(said);
  }

  // The old session is gone; the message says sessions do not survive a
  // helper restart.
  auto ex = h.cli({"exec", "old", "--", "true"}, nobody);
  EXPECT_EQ(ex.exitCode, 125) << ex.describe();
  EXPECT_THAT(ex.err, StartsWith("gpubox: ")) << ex.describe();
  EXPECT_THAT(ex.err, HasSubstr("no session named 'old'")) << ex.describe();
  EXPECT_THAT(ex.err, HasSubstr("restart")) << ex.describe();
  // The GPU lease went with the dead helper.
  if (gpu) {
    EXPECT_EQ(gpuHolders(h, 0), 0u);
  }
  // The new helper serves, under the same flags.
  auto ok = h.cli({"run", "--", "echo", "ok"}, nobody);
  EXPECT_EQ(ok.exitCode, 0) << ok.describe();
  EXPECT_EQ(ok.out, "ok\n");
  nlohmann::json ps2 = h.psJson(0);
  EXPECT_TRUE(findByName(ps2, "old").is_null()) << ps2.dump();
  if (gpu) {
    auto again = h.cli({"run", "--gpu", "0", "--", "true"}, nobody);
    EXPECT_EQ(again.exitCode, 0) << again.describe();
  }
}

// A helper starting next to a live one (same cgroup parents) leaves the live
// one's sandboxes and cgroups alone; also when it runs in another pid
// namespace (a container next to another), where the live helper's pid is
// not visible to it and so cannot be told alive from /proc.
class LiveNeighbour : public ::testing::TestWithParam<bool> {};

TEST_P(LiveNeighbour, ANewHelperLeavesALiveHelpersCgroupsAlone) {
  GPUBOX_REQUIRE_ROOT();
  const bool otherPidNs = GetParam();
  HelperProcess live;
  const std::string arg = otherPidNs ? "96962" : "96961";
  auto client = live.spawnCli({"run", "--", "sleep", arg}, {.asUid = kNobodyUid});
  auto created = live.cli({"session", "create", "--name", "alive"}, {.asUid = kNobodyUid});
  ASSERT_EQ(created.exitCode, 0) << created.describe();
  ASSERT_TRUE(pollUntil([&] { return !findProcesses({"sleep", arg}).empty(); }, 30s)) << live.log();
  nlohmann::json ps = live.psJson(0);
  ASSERT_TRUE(ps.is_array()) << live.log();
  std::vector<std::string> dirs;
  for (const auto& e : ps)
    if (e["cgroup"].is_string())
      for (const auto& d : cgroupHostDirs(e["cgroup"].get<std::string>())) dirs.push_back(d);
  ASSERT_FALSE(dirs.empty()) << ps.dump();

  HelperOptions o;
  if (otherPidNs) {
    if (!pathExists("/usr/bin/unshare")) GTEST_SKIP() << "no /usr/bin/unshare";
    o.wrapper = {"/usr/bin/unshare", "--pid", "--fork", "--kill-child", "--mount-proc"};
  }
  HelperProcess fresh(o);
  // A request answered (in another pid namespace: refused, which is an
  // answer too) means the start-up cleanup is over.
  fresh.cli({"info"});
  for (const auto& d : dirs) EXPECT_TRUE(pathExists(d)) << d << " removed by another helper";
  std::vector<std::string> wrong;
  for (const auto& l : leftoverLines(fresh.log())) {
    bool names = false;
    for (const auto& d : dirs) names = names || l.find(baseName(d)) != std::string::npos;
    if (names) wrong.push_back(l);
  }
  EXPECT_THAT(wrong, ::testing::IsEmpty())
      << "the new helper took a live helper's cgroups for leftovers:\n"
      << join(wrong);
  EXPECT_FALSE(findProcesses({"sleep", arg}).empty()) << "another helper killed a live sandbox";
  auto ex = live.cli({"exec", "alive", "--", "echo", "fine"}, {.asUid = kNobodyUid});
  EXPECT_EQ(ex.exitCode, 0) << ex.describe();
  EXPECT_EQ(ex.out, "fine\n");
  client->kill(SIGKILL);
  client->finish();
  // (unshare does not pass SIGTERM on; SIGKILL reaches the helper through
  // --kill-child.)
  if (otherPidNs) fresh.kill(SIGKILL);
}

INSTANTIATE_TEST_SUITE_P(PidNamespace, LiveNeighbour, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& i) {
                           return i.param ? "OtherPidNamespace" : "SamePidNamespace";
                         });

}  // namespace
}  // namespace gpubox::itest
