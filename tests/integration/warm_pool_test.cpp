// Warm inits (gpubox-helper --warm-inits, helper/init_pool.hpp): a sandbox
// built from an init made ahead of its request must be exactly the sandbox a
// fresh init would have given. Each case runs as root and as uid 65534,
// with a pool and without one (--warm-inits 0), and checks what the
// sandboxed process saw and where it ran.
#include <dirent.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>

#include "harness.hpp"

namespace gpubox::itest {
namespace {

using namespace std::chrono_literals;
using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Not;

// The network namespace PID is in ("" once it is gone).
std::string networkOf(pid_t pid) {
  std::error_code ec;
  const auto link = std::filesystem::read_symlink("/proc/" + std::to_string(pid) + "/ns/net", ec);
  return ec ? std::string() : link.string();
}

// The helper's inits in a network namespace of their own (OWN), or in the
// host's, which this test shares (the pool for --net host).
std::set<pid_t> initsWithNetwork(pid_t helper, bool own) {
  const std::string host = networkOf(::getpid());
  std::set<pid_t> out;
  for (pid_t pid : initChildren(helper)) {
    const std::string net = networkOf(pid);
    if (!net.empty() && (net != host) == own) out.insert(pid);
  }
  return out;
}

class WarmPool : public HelperTest, public ::testing::WithParamInterface<std::tuple<int, uid_t>> {
 protected:
  int warm() const { return std::get<0>(GetParam()); }
  uid_t caller() const { return std::get<1>(GetParam()); }
  // The default --warm-inits-max: four times --warm-inits, at least 64.
  size_t ceiling() const { return std::max<size_t>(4 * static_cast<size_t>(warm()), 64); }
  // With a pool, two spawners clone its inits (on any host: the default
  // is one per 8 CPUs), so every case here also covers inits from either.
  HelperOptions helperOptions() override {
    if (warm() == 0) return {.extraArgs = {"--warm-inits", "0"}};
    return {.extraArgs = {"--warm-inits", std::to_string(warm()), "--pool-spawners", "2",
                          "--rpc-threads", "3"}};
  }
  RunOptions as(RunOptions opts = {}) const {
    opts.asUid = caller();
    return opts;
  }
  // The warm inits once the pool is full (none for --warm-inits 0); those
  // of the --net host pool are not counted (they share this test's network).
  std::set<pid_t> fullPool() {
    std::set<pid_t> pool;
    EXPECT_TRUE(pollUntil(
        [&] {
          return (pool = initsWithNetwork(helper().pid(), true)).size() ==
                 static_cast<size_t>(warm());
        },
        20s))
        << "expected " << warm() << " warm inits, found " << pool.size();
    return pool;
  }
};

// What a command sees: who it is, its namespaces, its capabilities, and the
// limit it asked for.
TEST_P(WarmPool, SandboxFromThePoolIsTheSandboxAskedFor) {
  const std::set<pid_t> pool = fullPool();
  const std::string probe =
      "id -u; id -g; readlink /proc/self/ns/user /proc/self/ns/net /proc/self/ns/mnt; "
      "grep -E '^(CapEff|NoNewPrivs):' /proc/self/status; hostname; ip -o link 2>/dev/null | wc -l";
  auto r = helper().cli(
      {"run", "--json-status", "3", "--pids", "57", "--hostname", "warm", "--", "sh", "-c", probe},
      as({.extraFd = 3}));
  ASSERT_EQ(r.exitCode, 0) << r.describe();
  const auto l = lines(r.out);
  ASSERT_GE(l.size(), 7u) << r.describe();
  EXPECT_EQ(l[0], std::to_string(caller()));
  EXPECT_EQ(l[1], std::to_string(caller()));
  EXPECT_EQ(statusField(r.out, "CapEff"), "0000000000000000") << r.out;
  EXPECT_EQ(statusField(r.out, "NoNewPrivs"), "1") << r.out;
  EXPECT_THAT(r.out, HasSubstr("\nwarm\n")) << r.out;
  nlohmann::json status = parseJson(r.extra);
  ASSERT_FALSE(status.is_discarded()) << r.extra;
  const pid_t init = status["sandbox_pid"].get<pid_t>();
  if (warm() > 0)
    EXPECT_TRUE(pool.contains(init)) << "init " << init << " is not one of the warm inits";
  else
    EXPECT_FALSE(pool.contains(init));
  bool pidsLimit = false;
  for (const std::string& line : stringsOf(status["limits"]))
    if (line.find("pids.max = 57") != std::string::npos) pidsLimit = true;
  EXPECT_TRUE(pidsLimit) << r.extra;

  // Two sandboxes alive at once never share an init or a namespace: a warm
  // init serves one sandbox only.
  auto created = helper().cli({"session", "create", "--name", "first", "--json"}, as());
  ASSERT_EQ(created.exitCode, 0) << created.describe();
  auto inSession = helper().cli({"exec", "first", "--", "sh", "-c", probe}, as());
  auto inRun = helper().cli({"run", "--", "sh", "-c", probe}, as());
  ASSERT_EQ(inSession.exitCode, 0) << inSession.describe();
  ASSERT_EQ(inRun.exitCode, 0) << inRun.describe();
  const auto a = lines(inSession.out), b = lines(inRun.out);
  ASSERT_GE(a.size(), 5u) << inSession.describe();
  ASSERT_GE(b.size(), 5u) << inRun.describe();
  // (Without a user namespace of their own, both are in the host's.)
  const size_t firstOwn = expectedUserNamespace() == "new" ? 2 : 3;
  for (size_t i = firstOwn; i < 5; ++i) EXPECT_NE(a[i], b[i]) << "namespace shared: " << a[i];
  EXPECT_EQ(helper().cli({"session", "rm", "first"}, as()).exitCode, 0);
  // And the pool fills up again.
  fullPool();
}

// Every init is cloned by a spawner process (helper/init_spawner.hpp), never
// by the helper itself, which has threads: an init cloned by raw clone3
// from a multi-threaded process inherits every lock as another thread held
// it (docs/architecture.md). strace on all the helper's threads, while
// sandboxes are made from the pool, without one (--warm-inits 0), for
// --net host (its pool empty: the first such request) and for more
// requests at once than the pool holds, sees no clone into new namespaces.
TEST_P(WarmPool, TheHelperItselfClonesNoInit) {
  fullPool();
  TempDir dir(0755);
  const std::string trace = dir / "clones";
  Process strace({"/usr/bin/strace", "-f", "-qq", "-e", "trace=clone,clone3,fork,vfork", "-e",
                  "signal=none", "-o", trace, "-p", std::to_string(helper().pid())},
                 {.timeout = 120s});
  // Attached once every thread of the helper has a tracer.
  auto traced = [&] {
    const std::string task = "/proc/" + std::to_string(helper().pid()) + "/task";
    DIR* d = ::opendir(task.c_str());
    if (!d) return false;
    bool all = true;
    while (struct dirent* e = ::readdir(d))
      if (e->d_name[0] != '.')
        all = all && statusField(readFile(task + "/" + e->d_name + "/status"), "TracerPid") != "0";
    ::closedir(d);
    return all;
  };
  ASSERT_TRUE(pollUntil(traced, 10s)) << "strace did not attach to every thread";
  std::vector<std::thread> clients;
  std::vector<int> codes(6, -1);
  for (size_t i = 0; i < codes.size(); ++i)
    clients.emplace_back([&, i] { codes[i] = helper().cli({"run", "--", "true"}, as()).exitCode; });
  for (std::thread& t : clients) t.join();
  EXPECT_THAT(codes, ::testing::Each(0));
  if (caller() == 0) {
    auto host = helper().cli({"run", "--net", "host", "--", "true"}, as());
    EXPECT_EQ(host.exitCode, 0) << host.describe();
  }
  strace.kill(SIGINT);
  strace.finish();
  const std::string clones = readFile(trace);
  EXPECT_THAT(clones, Not(HasSubstr("CLONE_NEWPID"))) << clones;
  EXPECT_THAT(clones, Not(HasSubstr("CLONE_NEWNS"))) << clones;
}

// The requests' spawner gone (killed by an administrator, say): a request
// that needs an init cloned for it is refused saying why and what to do,
// the helper logs it, and sandboxes from the pool are still made. Nothing
// falls back to a clone by the helper itself.
TEST_P(WarmPool, WithoutTheRequestsSpawnerOnlyThePoolServes) {
  // With a pool, the one request that surely needs an init cloned for it
  // is --net host (root only under the default policy).
  if (warm() > 0 && caller() != 0) GTEST_SKIP() << "--net host: root only";
  fullPool();
  const std::set<pid_t> requests = childrenNamed(helper().pid(), "gpubox-reqspawn");
  ASSERT_EQ(requests.size(), 1u);
  ASSERT_EQ(::kill(*requests.begin(), SIGKILL), 0);
  ASSERT_TRUE(pollUntil([&] { return !pidRunning(*requests.begin()); }, 10s));
  auto refusedInWords = [](const RunResult& r) {
    EXPECT_NE(r.exitCode, 0) << r.describe();
    EXPECT_THAT(r.err, HasSubstr("the init spawner exited (gpubox-reqspawn, pid")) << r.describe();
    EXPECT_THAT(r.err, HasSubstr("until it is restarted")) << r.describe();
  };
  if (warm() == 0) {
    // Every init is cloned for its request.
    refusedInWords(helper().cli({"run", "--", "true"}, as()));
  } else {
    refusedInWords(helper().cli({"run", "--net", "host", "--", "true"}, as()));
    // The pool goes on.
    auto r = helper().cli({"run", "--", "true"}, as());
    EXPECT_EQ(r.exitCode, 0) << r.describe();
  }
  EXPECT_THAT(helper().log(), HasSubstr("the init spawner exited"));
}

// A requests' spawner that does not answer (stopped here; in life, stuck
// in the kernel) holds its request at most RequestSpawner::kReplyTimeoutMs
// (10 s), then is killed: the request is refused saying so, and the pool
// goes on. Root only, once: it takes those 10 s.
TEST_P(WarmPool, ARequestsSpawnerThatDoesNotAnswerIsGivenUpAfterTenSeconds) {
  if (warm() == 0 || caller() != 0) GTEST_SKIP() << "once is enough: it takes 10 s";
  fullPool();
  const std::set<pid_t> requests = childrenNamed(helper().pid(), "gpubox-reqspawn");
  ASSERT_EQ(requests.size(), 1u);
  const pid_t spawner = *requests.begin();
  ASSERT_EQ(::kill(spawner, SIGSTOP), 0);
  const auto t0 = std::chrono::steady_clock::now();
  auto r = helper().cli({"run", "--net", "host", "--", "true"}, as({.timeout = 60s}));
  const auto waited = std::chrono::steady_clock::now() - t0;
  EXPECT_NE(r.exitCode, 0) << r.describe();
  EXPECT_THAT(r.err, HasSubstr("the init spawner did not answer within 10 s")) << r.describe();
  EXPECT_GE(waited, 9s);
  EXPECT_TRUE(pollUntil([&] { return !pidRunning(spawner); }, 10s)) << "it was not killed";
  auto pooled = helper().cli({"run", "--", "true"}, as());
  EXPECT_EQ(pooled.exitCode, 0) << pooled.describe();
}

// --uid / --gid: a warm init was cloned before the request, and its user
// namespace gets the request's ids when it is taken.
TEST_P(WarmPool, SandboxIdsOfTheRequest) {
  if (expectedUserNamespace() != "new") GTEST_SKIP() << "sandboxes get no user namespace here";
  const std::set<pid_t> pool = fullPool();
  auto r = helper().cli({"run", "--json-status", "3", "--uid", "1234", "--gid", "5678", "--", "sh",
                         "-c", "id -u; id -g; grep CapEff /proc/self/status"},
                        as({.extraFd = 3}));
  ASSERT_EQ(r.exitCode, 0) << r.describe();
  EXPECT_EQ(r.out, "1234\n5678\nCapEff:\t0000000000000000\n");
  nlohmann::json status = parseJson(r.extra);
  ASSERT_FALSE(status.is_discarded()) << r.extra;
  EXPECT_EQ(pool.contains(status["sandbox_pid"].get<pid_t>()), warm() > 0) << r.extra;
}

// A warm init waits with nothing of a caller: no uid/gid map yet, no
// limits, nothing running under it. What the request brings (the map, the
// cgroup limits) is applied when it is taken.
// The same with a pool only.
class WarmInits : public WarmPool {};

TEST_P(WarmInits, AWaitingInitHoldsNothingOfACaller) {
  const std::set<pid_t> pool = fullPool();
  for (pid_t pid : pool) {
    const std::string dir = "/proc/" + std::to_string(pid);
    if (expectedUserNamespace() == "new") {
      EXPECT_EQ(readFile(dir + "/uid_map"), "") << pid;
      EXPECT_EQ(readFile(dir + "/gid_map"), "") << pid;
    }
    EXPECT_EQ(readFile(dir + "/task/" + std::to_string(pid) + "/children"), "") << pid;
  }
  auto created = helper().cli({"session", "create", "--pids", "61", "--json"}, as());
  ASSERT_EQ(created.exitCode, 0) << created.describe();
  nlohmann::json s = parseJson(created.out);
  ASSERT_TRUE(s["cgroup"].is_string()) << created.out;
  const pid_t init = s["init_pid"].get<pid_t>();
  EXPECT_TRUE(pool.contains(init)) << created.out;
  if (expectedUserNamespace() == "new") {
    const std::string map = readFile("/proc/" + std::to_string(init) + "/uid_map");
    std::istringstream in(map);
    unsigned inside = 1, outside = 1, count = 0;
    in >> inside >> outside >> count;
    EXPECT_EQ(inside, caller()) << map;
    EXPECT_EQ(outside, caller()) << map;
    EXPECT_EQ(count, 1u) << map;
  }
  bool found = false;
  for (const std::string& dir : cgroupHostDirs(s["cgroup"].get<std::string>())) {
    if (pathExists(dir + "/pids.max")) {
      EXPECT_EQ(readFile(dir + "/pids.max"), "61\n") << dir;
      found = true;
    }
  }
  EXPECT_TRUE(found) << "no pids.max under " << s["cgroup"];
  auto rm = helper().cli({"session", "rm", s["name"].get<std::string>()}, as());
  EXPECT_EQ(rm.exitCode, 0) << rm.describe();
}

// A warm init's mount namespace is copied from the host's before its
// request: what the host mounts or unmounts after that must still reach it
// (its copies stay slaves until the request's setup makes them private), or
// a bind would show a stale tree and the init would pin unmounted
// filesystems.
TEST_P(WarmInits, HostMountsAfterWarmUpReachTheSandbox) {
  const std::set<pid_t> before = fullPool();
  TempDir dir(0755);
  ASSERT_EQ(::mount("tmpfs", dir.path().c_str(), "tmpfs", 0, "mode=0755"), 0)
      << "mount tmpfs on " << dir.path() << ": " << std::strerror(errno);
  { std::ofstream(dir.path() + "/marker") << "mounted-later\n"; }
  ::chmod((dir.path() + "/marker").c_str(), 0644);
  auto seen = helper().cli(
      {"run", "--with-defaults", "--ro-bind", dir.path(), "/tmp/m", "--", "cat", "/tmp/m/marker"},
      as());
  ASSERT_EQ(::umount2(dir.path().c_str(), MNT_DETACH), 0) << std::strerror(errno);
  EXPECT_EQ(seen.exitCode, 0) << seen.describe();
  EXPECT_EQ(seen.out, "mounted-later\n") << seen.describe();
  auto after = helper().cli(
      {"run", "--with-defaults", "--ro-bind", dir.path(), "/tmp/m", "--", "ls", "-A", "/tmp/m"},
      as());
  EXPECT_EQ(after.exitCode, 0) << after.describe();
  EXPECT_EQ(after.out, "") << "the host unmounted it; the sandbox still shows it: "
                           << after.describe();
  // The inits that waited through the changes were replaced, not lost: the
  // pool is full again, and none of them is one that saw the old table.
  const std::set<pid_t> refilled = fullPool();
  for (pid_t pid : before) EXPECT_FALSE(refilled.contains(pid)) << "init " << pid << " survived";
}

// A host whose mounts change in a loop (a user's FUSE mounts, a busy
// container host) must not make the helper clone and kill inits in that
// loop: the pool is remade once the table has been still for a moment.
// Without that, each of these 100 changes would replace every waiting init.
TEST_P(WarmInits, MountChurnDoesNotChurnThePool) {
  if (caller() != 0) GTEST_SKIP() << "about the helper's pool: once is enough";
  const std::set<pid_t> before = fullPool();
  TempDir dir(0755);
  std::set<pid_t> seen;
  for (int i = 0; i < 100; ++i) {
    ASSERT_EQ(::mount("tmpfs", dir.path().c_str(), "tmpfs", 0, "mode=0755"), 0)
        << std::strerror(errno);
    ASSERT_EQ(::umount2(dir.path().c_str(), MNT_DETACH), 0) << std::strerror(errno);
    for (pid_t pid : initChildren(helper().pid())) seen.insert(pid);
    sleepFor(2ms);
  }
  size_t made = 0;
  for (pid_t pid : seen) made += before.contains(pid) ? 0 : 1;
  // A pause of the test longer than the quiet time (a loaded machine) lets
  // one refill through; a pool remade at each change would show hundreds.
  EXPECT_LE(made, static_cast<size_t>(3 * warm())) << "warm inits made during 100 mount changes";
  // Once the table is still, the pool is full again, and its sandboxes work.
  const std::set<pid_t> after = fullPool();
  for (pid_t pid : before) EXPECT_FALSE(after.contains(pid)) << "init " << pid << " survived";
  auto r = helper().cli({"run", "--", "true"}, as());
  EXPECT_EQ(r.exitCode, 0) << r.describe();
}

// Each init taken is made again: once its sandbox is ready (so that the
// clone does not slow that sandbox's setup), once its setup failed, and at
// once when a take empties the pool.
TEST_P(WarmInits, ThePoolIsMadeWholeAgainAfterEveryKindOfTake) {
  const std::set<pid_t> first = fullPool();
  for (int i = 0; i < 2 * warm(); ++i) {
    auto r = helper().cli({"run", "--", "true"}, as());
    ASSERT_EQ(r.exitCode, 0) << r.describe();
  }
  const std::set<pid_t> afterRuns = fullPool();
  for (pid_t pid : first) EXPECT_FALSE(afterRuns.contains(pid)) << "init " << pid << " not taken";
  // Setup fails in the init (a bind source that does not exist).
  auto failed =
      helper().cli({"run", "--ro-bind", "/nonexistent-gpubox-source", "/x", "--", "true"}, as());
  EXPECT_NE(failed.exitCode, 0) << failed.describe();
  EXPECT_THAT(failed.err, HasSubstr("/nonexistent-gpubox-source")) << failed.describe();
  fullPool();
  // Sessions hold their inits: warm() + 1 of them empty the pool (a take
  // that leaves it empty refills it at once, and one that finds it empty
  // also makes it grow by one).
  std::vector<std::string> names;
  std::set<pid_t> sessionInits;
  for (int i = 0; i < warm() + 1; ++i) {
    auto created = helper().cli({"session", "create", "--json"}, as());
    ASSERT_EQ(created.exitCode, 0) << created.describe();
    nlohmann::json j = parseJson(created.out);
    names.push_back(j["name"].get<std::string>());
    sessionInits.insert(j["init_pid"].get<pid_t>());
  }
  std::set<pid_t> waiting;
  EXPECT_TRUE(pollUntil(
      [&] {
        waiting.clear();
        for (pid_t pid : initChildren(helper().pid()))
          if (!sessionInits.contains(pid)) waiting.insert(pid);
        return waiting.size() >= static_cast<size_t>(warm());
      },
      20s))
      << "expected " << warm() << " warm inits beside the sessions', found " << waiting.size();
  EXPECT_LE(waiting.size(), ceiling());
  for (const std::string& name : names) {
    auto rm = helper().cli({"session", "rm", name}, as());
    EXPECT_EQ(rm.exitCode, 0) << rm.describe();
  }
}

// The pool follows demand: a take that finds it empty raises its size by
// one (up to --warm-inits-max), and it shrinks back by one after 10 s
// without such a miss.
TEST_P(WarmInits, ThePoolGrowsWhenRequestsFindItEmptyAndShrinksBack) {
  if (caller() != 0) GTEST_SKIP() << "about the helper's pool: once is enough";
  fullPool();
  // Sessions keep their inits: warm() of them empty the pool, and the next
  // finds it empty (a miss).
  std::vector<std::string> names;
  std::set<pid_t> sessionInits;
  auto waitingInits = [&] {
    std::set<pid_t> waiting;
    for (pid_t pid : initChildren(helper().pid()))
      if (!sessionInits.contains(pid)) waiting.insert(pid);
    return waiting;
  };
  for (int round = 0; round < 3 && waitingInits().size() <= static_cast<size_t>(warm()); ++round) {
    // More sessions than the pool holds, while its spawners are stopped:
    // no refill can beat a request, so the last three surely miss (their
    // inits come from the requests' spawner, which runs).
    const std::set<pid_t> spawners = childrenNamed(helper().pid(), "gpubox-spawner");
    for (pid_t spawner : spawners) ::kill(spawner, SIGSTOP);
    std::vector<RunResult> results(warm() + 3);
    for (RunResult& r : results) r = helper().cli({"session", "create", "--json"}, as());
    for (pid_t spawner : spawners) ::kill(spawner, SIGCONT);
    for (const RunResult& created : results) {
      ASSERT_EQ(created.exitCode, 0) << created.describe();
      nlohmann::json j = parseJson(created.out);
      names.push_back(j["name"].get<std::string>());
      sessionInits.insert(j["init_pid"].get<pid_t>());
    }
    pollUntil([&] { return waitingInits().size() > static_cast<size_t>(warm()); }, 10s);
    // Each round's sessions go before the next (the per-uid session cap).
    for (const std::string& name : names) {
      auto rm = helper().cli({"session", "rm", name}, as());
      EXPECT_EQ(rm.exitCode, 0) << rm.describe();
    }
    names.clear();
  }
  const size_t grown = waitingInits().size();
  EXPECT_GT(grown, static_cast<size_t>(warm())) << "the pool did not grow after misses";
  EXPECT_LE(grown, ceiling());
  // Without misses it goes back to --warm-inits, one init per 10 s.
  EXPECT_TRUE(pollUntil([&] { return waitingInits().size() == grown - 1; }, 15s))
      << waitingInits().size() << " waiting, " << grown << " before";
}

// `gpubox info` shows root the pool and what came of each request for it
// (whether --warm-inits fits the load); other users see nothing of it, as
// it counts everyone's requests.
TEST_P(WarmInits, InfoCountsTakesAndMissesForRootOnly) {
  // NAME: "warm_pool", or "warm_pool_host_net" (the --net host pool).
  auto pool = [&](const char* name = "warm_pool") {
    auto info = helper().cli({"info", "--json"}, as());
    EXPECT_EQ(info.exitCode, 0) << info.describe();
    nlohmann::json j = parseJson(info.out);
    EXPECT_TRUE(j.contains(name)) << info.out;
    return j[name];
  };
  if (caller() != 0) {
    EXPECT_TRUE(pool().is_null()) << pool().dump();
    EXPECT_TRUE(pool("warm_pool_host_net").is_null()) << pool("warm_pool_host_net").dump();
    return;
  }
  fullPool();
  const nlohmann::json before = pool();
  ASSERT_TRUE(before.is_object()) << before.dump();
  EXPECT_EQ(before["floor"], warm());
  EXPECT_EQ(before["ceiling"], ceiling());
  EXPECT_EQ(before["ready"], warm());
  // The --net host pool: empty (--warm-inits-host-net 0) until asked.
  const nlohmann::json hostBefore = pool("warm_pool_host_net");
  ASSERT_TRUE(hostBefore.is_object()) << hostBefore.dump();
  EXPECT_EQ(hostBefore["floor"], 0);
  EXPECT_EQ(hostBefore["ceiling"], 64);
  EXPECT_EQ(hostBefore["size"], 0);
  EXPECT_EQ(hostBefore["taken"], 0);
  EXPECT_EQ(hostBefore["missed"], 0);
  auto r = helper().cli({"run", "--", "true"}, as());
  ASSERT_EQ(r.exitCode, 0) << r.describe();
  auto host = helper().cli({"run", "--net", "host", "--", "true"}, as());
  ASSERT_EQ(host.exitCode, 0) << host.describe();
  nlohmann::json after = pool();
  EXPECT_EQ(after["taken"], before["taken"].get<uint64_t>() + 1) << "--net host is no take here";
  EXPECT_EQ(after["missed"], before["missed"]) << after.dump();
  // It asked the other pool, which was empty: a miss there, and it grew.
  const nlohmann::json hostAfter = pool("warm_pool_host_net");
  EXPECT_EQ(hostAfter["missed"], 1) << hostAfter.dump();
  EXPECT_EQ(hostAfter["taken"], 0) << hostAfter.dump();
  EXPECT_EQ(hostAfter["size"], 1) << hostAfter.dump();
  // With its spawners stopped the pool cannot refill: one session more
  // than it holds finds it empty.
  fullPool();
  const nlohmann::json full = pool();
  const std::set<pid_t> spawners = childrenNamed(helper().pid(), "gpubox-spawner");
  for (pid_t spawner : spawners) ::kill(spawner, SIGSTOP);
  std::vector<std::string> names;
  for (int i = 0; i <= warm(); ++i) {
    auto created = helper().cli({"session", "create", "--json"}, as());
    EXPECT_EQ(created.exitCode, 0) << created.describe();
    names.push_back(parseJson(created.out)["name"].get<std::string>());
  }
  after = pool();  // before the spawners refill it
  for (pid_t spawner : spawners) ::kill(spawner, SIGCONT);
  EXPECT_EQ(after["taken"], full["taken"].get<uint64_t>() + warm()) << after.dump();
  EXPECT_EQ(after["missed"], full["missed"].get<uint64_t>() + 1) << after.dump();
  EXPECT_EQ(after["ready"], 0) << after.dump();
  for (const std::string& name : names) helper().cli({"session", "rm", name}, as());
}

// --warm-inits-max caps the growth: equal to --warm-inits, the pool keeps
// its size whatever the misses.
class FixedPool : public HelperTest {
 protected:
  HelperOptions helperOptions() override {
    return {.extraArgs = {"--warm-inits", "2", "--warm-inits-max", "2"}};
  }
};

TEST_F(FixedPool, WarmInitsMaxCapsTheGrowth) {
  EXPECT_TRUE(pollUntil([&] { return initChildren(helper().pid()).size() == 2; }, 20s));
  std::vector<RunResult> results(6);
  {
    std::vector<std::jthread> clients;
    for (RunResult& r : results)
      clients.emplace_back([&] { r = helper().cli({"session", "create", "--json"}); });
  }
  std::set<pid_t> sessionInits;
  std::vector<std::string> names;
  for (const RunResult& created : results) {
    ASSERT_EQ(created.exitCode, 0) << created.describe();
    nlohmann::json j = parseJson(created.out);
    names.push_back(j["name"].get<std::string>());
    sessionInits.insert(j["init_pid"].get<pid_t>());
  }
  auto waiting = [&] {
    size_t n = 0;
    for (pid_t pid : initChildren(helper().pid())) n += sessionInits.contains(pid) ? 0 : 1;
    return n;
  };
  EXPECT_TRUE(pollUntil([&] { return waiting() == 2; }, 20s)) << waiting() << " waiting";
  sleepFor(500ms);  // a pool that grew would be making more by now
  EXPECT_EQ(waiting(), 2u);
  for (const std::string& name : names) helper().cli({"session", "rm", name});
}

// --net host sandboxes never come from the pool of inits in network
// namespaces of their own: that pool is left as it was.
// A caller the policy does not grant the host's network is refused before
// any pool is asked: it cannot make the --net host pool grow.
TEST_P(WarmInits, HostNetworkIsNeverServedFromTheOwnNetworkPool) {
  const std::set<pid_t> pool = fullPool();
  if (caller() != 0) {
    for (int i = 0; i < 3; ++i) {
      auto refused = helper().cli({"run", "--net", "host", "--", "true"}, as());
      EXPECT_EQ(refused.exitCode, 125) << refused.describe();
      EXPECT_THAT(refused.err, HasSubstr("--net host: refused")) << refused.describe();
    }
    auto hostPool = parseJson(helper().cli({"info", "--json"}).out)["warm_pool_host_net"];
    EXPECT_EQ(hostPool["size"], 0) << hostPool.dump();
    EXPECT_EQ(hostPool["missed"], 0) << hostPool.dump();
    EXPECT_EQ(initsWithNetwork(helper().pid(), false), std::set<pid_t>{});
    EXPECT_EQ(initsWithNetwork(helper().pid(), true), pool);
    return;
  }
  auto r = helper().cli({"run", "--net", "host", "--json-status", "3", "--", "true"},
                        as({.extraFd = 3}));
  ASSERT_EQ(r.exitCode, 0) << r.describe();
  nlohmann::json status = parseJson(r.extra);
  ASSERT_FALSE(status.is_discarded()) << r.extra;
  EXPECT_FALSE(pool.contains(status["sandbox_pid"].get<pid_t>())) << r.extra;
  EXPECT_THAT(stringsOf(status["namespaces"]), Not(Contains("net"))) << r.extra;
  EXPECT_EQ(initsWithNetwork(helper().pid(), true), pool);
}

// The pool of --net host inits (--warm-inits-host-net, 0 by default): what
// a bwrap-based agent with network access asks for through gpubox-bwrap.
// A policy rule grants uid 65534 the host's network.
class HostNetworkPool : public HelperTest, public ::testing::WithParamInterface<uid_t> {
 protected:
  HostNetworkPool() : dir_(0755, 0, 0, "gpubox-it-hostnet") {}
  HelperOptions helperOptions() override {
    const std::string config = dir_.path() + "/helper.toml";
    writeFile(config, "[[allow]]\nusers = [65534]\nhost_network = true\n", 0644);
    return {.extraArgs = {"--config", config, "--warm-inits", "2", "--pool-spawners", "2"}};
  }
  uid_t caller() const { return GetParam(); }
  RunOptions as(RunOptions opts = {}) const {
    opts.asUid = caller();
    return opts;
  }
  // The inits waiting in the host's network namespace, once COUNT of them
  // wait and the inits of the sandboxes in GONE (ended, or replaced) have
  // been reaped: until then they are in that namespace too.
  std::set<pid_t> waitingHostNetwork(size_t count, const std::set<pid_t>& gone = {}) {
    std::set<pid_t> out;
    EXPECT_TRUE(pollUntil(
        [&] {
          out = initsWithNetwork(helper().pid(), false);
          return out.size() == count &&
                 std::none_of(gone.begin(), gone.end(), [&](pid_t p) { return out.contains(p); });
        },
        20s))
        << "expected " << count << " warm --net host inits, found " << out.size();
    return out;
  }
  // `gpubox run --net host ARGS -- true` as the caller: its init's pid.
  pid_t runHostNetwork(std::vector<std::string> args = {}) {
    std::vector<std::string> full = {"run", "--net", "host", "--json-status", "3"};
    full.insert(full.end(), args.begin(), args.end());
    full.insert(full.end(), {"--", "true"});
    auto r = helper().cli(full, as({.extraFd = 3}));
    EXPECT_EQ(r.exitCode, 0) << r.describe();
    nlohmann::json status = parseJson(r.extra);
    return status.is_object() ? status["sandbox_pid"].get<pid_t>() : -1;
  }
  TempDir dir_;
};

// Empty at start, it grows at the first --net host request, and the next
// one is served from it: a sandbox in the host's network namespace and in
// every other namespace of its own, as the caller, with nothing of another
// caller's. A sandbox with a network of its own never takes one of its
// inits.
TEST_P(HostNetworkPool, ServesHostNetworkSandboxesOnlyAfterTheFirst) {
  waitingHostNetwork(0);
  const pid_t first = runHostNetwork();
  const std::set<pid_t> waiting = waitingHostNetwork(1, {first});
  const pid_t warm = *waiting.begin();
  const std::string dir = "/proc/" + std::to_string(warm);
  if (expectedUserNamespace() == "new") {
    EXPECT_EQ(readFile(dir + "/uid_map"), "") << warm;
    EXPECT_EQ(readFile(dir + "/gid_map"), "") << warm;
  }
  EXPECT_EQ(readFile(dir + "/task/" + std::to_string(warm) + "/children"), "") << warm;

  // A sandbox with a network of its own: not from this pool.
  auto own = helper().cli({"run", "--json-status", "3", "--", "true"}, as({.extraFd = 3}));
  ASSERT_EQ(own.exitCode, 0) << own.describe();
  EXPECT_NE(parseJson(own.extra)["sandbox_pid"].get<pid_t>(), warm) << own.extra;
  EXPECT_TRUE(pidRunning(warm));

  const std::string probe =
      "id -u; id -g; readlink /proc/self/ns/net /proc/self/ns/user /proc/self/ns/mnt "
      "/proc/self/ns/pid; grep -E '^(CapEff|NoNewPrivs):' /proc/self/status";
  auto r = helper().cli({"run", "--net", "host", "--json-status", "3", "--", "sh", "-c", probe},
                        as({.extraFd = 3}));
  ASSERT_EQ(r.exitCode, 0) << r.describe();
  nlohmann::json status = parseJson(r.extra);
  ASSERT_FALSE(status.is_discarded()) << r.extra;
  EXPECT_EQ(status["sandbox_pid"].get<pid_t>(), warm) << "not the waiting init: " << r.extra;
  EXPECT_THAT(stringsOf(status["namespaces"]), Not(Contains("net"))) << r.extra;
  EXPECT_THAT(stringsOf(status["namespaces"]), Contains("mnt")) << r.extra;
  const auto l = lines(r.out);
  ASSERT_GE(l.size(), 6u) << r.describe();
  EXPECT_EQ(l[0], std::to_string(caller()));
  EXPECT_EQ(l[1], std::to_string(caller()));
  EXPECT_EQ(l[2], networkOf(::getpid())) << "not the host's network";
  auto self = [](const char* ns) {
    return std::filesystem::read_symlink(std::string("/proc/self/ns/") + ns).string();
  };
  if (expectedUserNamespace() == "new") {
    EXPECT_NE(l[3], self("user"));
  }
  EXPECT_NE(l[4], self("mnt"));
  EXPECT_NE(l[5], self("pid"));
  EXPECT_EQ(statusField(r.out, "CapEff"), "0000000000000000") << r.out;
  EXPECT_EQ(statusField(r.out, "NoNewPrivs"), "1") << r.out;
  // And it is made again.
  waitingHostNetwork(1, {warm});

  auto info = parseJson(helper().cli({"info", "--json"}).out)["warm_pool_host_net"];
  EXPECT_EQ(info["taken"], 1) << info.dump();
  EXPECT_EQ(info["missed"], 1) << info.dump();
}

// As the other pool: a waiting --net host init copied the host's mount
// table before its request, so what the host mounts after that reaches
// the sandbox, and the inits that waited through the change are replaced.
TEST_P(HostNetworkPool, HostMountsAfterWarmUpReachTheSandbox) {
  const pid_t first = runHostNetwork();
  const std::set<pid_t> before = waitingHostNetwork(1, {first});
  TempDir dir(0755);
  ASSERT_EQ(::mount("tmpfs", dir.path().c_str(), "tmpfs", 0, "mode=0755"), 0)
      << "mount tmpfs on " << dir.path() << ": " << std::strerror(errno);
  writeFile(dir.path() + "/marker", "mounted-later\n", 0644);
  auto seen = helper().cli({"run", "--net", "host", "--with-defaults", "--ro-bind", dir.path(),
                            "/tmp/m", "--json-status", "3", "--", "cat", "/tmp/m/marker"},
                           as({.extraFd = 3}));
  ASSERT_EQ(::umount2(dir.path().c_str(), MNT_DETACH), 0) << std::strerror(errno);
  EXPECT_EQ(seen.exitCode, 0) << seen.describe();
  EXPECT_EQ(seen.out, "mounted-later\n") << seen.describe();
  // The init that waited through the change is killed, not served, and
  // replaced (the poll fails if it is still there after 20 s).
  std::set<pid_t> gone = before;
  gone.insert(parseJson(seen.extra)["sandbox_pid"].get<pid_t>());
  waitingHostNetwork(1, gone);
}

// A pool whose floor is 0 (this one, by default) under a trickle of
// requests, one every 2.5 s: after the first (a miss) each finds the init
// made after the one before, also past the 10 s after which a pool with
// no miss gives an init back (a pool that every take empties keeps its
// size: InitPool::shrinkLater).
TEST_P(HostNetworkPool, ATrickleOfRequestsKeepsItsInit) {
  if (caller() != 0) GTEST_SKIP() << "about the helper's pool: once is enough";
  pid_t last = runHostNetwork();
  for (int i = 0; i < 6; ++i) {
    waitingHostNetwork(1, {last});
    sleepFor(2500ms);
    last = runHostNetwork();
  }
  auto pool = parseJson(helper().cli({"info", "--json"}).out)["warm_pool_host_net"];
  EXPECT_EQ(pool["missed"], 1) << pool.dump();
  EXPECT_EQ(pool["taken"], 6) << pool.dump();
  EXPECT_EQ(pool["size"], 1) << pool.dump();
}

INSTANTIATE_TEST_SUITE_P(Callers, HostNetworkPool, ::testing::Values(uid_t{0}, kNobodyUid),
                         callerName);

// --warm-inits-host-net N keeps N of them from the start; --warm-inits 0
// keeps neither pool.
class HostNetworkFloor : public HelperTest {
 protected:
  HelperOptions helperOptions() override {
    return {.extraArgs = {"--warm-inits", "1", "--warm-inits-host-net", "2"}};
  }
};

// ... and its inits, in the host's network namespace, die with the helper
// (killed, so nothing of it cleans up: the parent-death signal does).
TEST_F(HostNetworkFloor, KeepsItsFloorBeforeAnyRequestAndDiesWithTheHelper) {
  std::set<pid_t> hostNet;
  EXPECT_TRUE(pollUntil(
      [&] { return (hostNet = initsWithNetwork(helper().pid(), false)).size() == 2; }, 20s));
  EXPECT_TRUE(pollUntil([&] { return initsWithNetwork(helper().pid(), true).size() == 1; }, 20s));
  auto info = parseJson(helper().cli({"info", "--json"}).out);
  EXPECT_EQ(info["warm_pool_host_net"]["floor"], 2) << info.dump();
  EXPECT_EQ(info["warm_pool_host_net"]["ready"], 2) << info.dump();
  helper().kill(SIGKILL);
  ASSERT_TRUE(helper().waitExit(30s).has_value());
  for (pid_t pid : hostNet)
    EXPECT_TRUE(pollUntil([&] { return !pidRunning(pid); }, 10s))
        << "warm --net host init " << pid << " outlived the helper";
}

class NoPools : public HelperTest {
 protected:
  HelperOptions helperOptions() override { return {.extraArgs = {"--warm-inits", "0"}}; }
};

TEST_F(NoPools, WarmInitsZeroKeepsNeitherPool) {
  for (int i = 0; i < 2; ++i) {
    auto host = helper().cli({"run", "--net", "host", "--", "true"});
    ASSERT_EQ(host.exitCode, 0) << host.describe();
  }
  sleepFor(300ms);  // a pool would be cloning by now
  EXPECT_EQ(initChildren(helper().pid()), std::set<pid_t>{});
  auto info = parseJson(helper().cli({"info", "--json"}).out);
  EXPECT_TRUE(info["warm_pool"].is_null()) << info.dump();
  EXPECT_TRUE(info["warm_pool_host_net"].is_null()) << info.dump();
}

// Asking for --net host inits with no pools at all is a contradiction: the
// helper says so and does not start.
TEST(WarmPoolOptions, HostNetworkFloorWithoutPoolsIsRefused) {
  GPUBOX_REQUIRE_ROOT();
  TempDir d;
  auto r = runProcess(
      {helperPath(), "--listen", d / "s", "--warm-inits", "0", "--warm-inits-host-net", "2"},
      {.timeout = 30s});
  EXPECT_NE(r.exitCode, 0) << r.describe();
  EXPECT_THAT(r.err, HasSubstr("--warm-inits-host-net 2: --warm-inits 0 turns both warm pools off"))
      << r.describe();
  EXPECT_FALSE(pathExists(d / "s")) << "a helper that cannot start leaves no socket";
}

// --pool-spawners 2: the pool's inits come from both spawners, side by
// side. strace on each while requests take inits and the pool refills.
TEST_P(WarmInits, EveryPoolSpawnerClonesInits) {
  if (caller() != 0) GTEST_SKIP() << "about the helper's processes: once is enough";
  fullPool();
  const std::set<pid_t> spawners = childrenNamed(helper().pid(), "gpubox-spawner");
  ASSERT_EQ(spawners.size(), 2u);
  TempDir dir(0755);
  std::vector<std::unique_ptr<Process>> traces;
  for (pid_t spawner : spawners)
    traces.push_back(std::make_unique<Process>(
        std::vector<std::string>{"/usr/bin/strace", "-qq", "-e", "trace=clone3", "-e",
                                 "signal=none", "-o", dir / std::to_string(spawner), "-p",
                                 std::to_string(spawner)},
        RunOptions{.timeout = 120s}));
  for (pid_t spawner : spawners)
    ASSERT_TRUE(pollUntil(
        [&] {
          return statusField(readFile("/proc/" + std::to_string(spawner) + "/status"),
                             "TracerPid") != "0";
        },
        10s));
  // Sessions hold their inits, so each one taken is cloned again.
  for (int i = 0; i < 6; ++i) {
    auto r = helper().cli({"session", "create", "--name", "s" + std::to_string(i)}, as());
    ASSERT_EQ(r.exitCode, 0) << r.describe();
  }
  // The sessions' six inits and a pool made whole again.
  EXPECT_TRUE(pollUntil(
      [&] { return initChildren(helper().pid()).size() == static_cast<size_t>(warm()) + 6; }, 20s));
  for (auto& t : traces) t->kill(SIGINT);
  for (auto& t : traces) t->finish();
  for (pid_t spawner : spawners) {
    const std::string trace = readFile(dir / std::to_string(spawner));
    EXPECT_THAT(trace, HasSubstr("CLONE_NEWPID")) << "spawner " << spawner << " cloned none";
  }
  for (int i = 0; i < 6; ++i) helper().cli({"session", "rm", "s" + std::to_string(i)}, as());
}

// The spawners (helper/init_spawner.hpp) are privileged processes of the
// helper's: each holds nothing but its socket to the helper (and stdio), and
// goes when the helper goes, taking nothing of the helper's with it.
TEST_P(WarmInits, TheSpawnersHoldOnlyTheirSocketAndDieWithTheHelper) {
  if (caller() != 0) GTEST_SKIP() << "about the helper's processes: once is enough";
  fullPool();
  std::set<pid_t> spawners = childrenNamed(helper().pid(), "gpubox-spawner");
  ASSERT_EQ(spawners.size(), 2u) << "the pool's spawners (--pool-spawners 2)";
  const std::set<pid_t> requests = childrenNamed(helper().pid(), "gpubox-reqspawn");
  ASSERT_EQ(requests.size(), 1u) << "the requests' spawner";
  spawners.insert(*requests.begin());
  for (pid_t spawner : spawners) {
    const std::string fdDir = "/proc/" + std::to_string(spawner) + "/fd";
    std::vector<std::string> fds;
    DIR* d = ::opendir(fdDir.c_str());
    ASSERT_NE(d, nullptr) << fdDir;
    while (struct dirent* e = ::readdir(d))
      if (e->d_name[0] != '.') fds.push_back(e->d_name);
    ::closedir(d);
    std::sort(fds.begin(), fds.end());
    EXPECT_EQ(fds, (std::vector<std::string>{"0", "1", "2", "3"})) << "spawner " << spawner;
    char target[256] = {};
    ASSERT_GT(::readlink((fdDir + "/3").c_str(), target, sizeof(target) - 1), 0);
    EXPECT_THAT(std::string(target), ::testing::StartsWith("socket:"));
  }
  const std::set<pid_t> pool = initChildren(helper().pid());
  helper().kill(SIGKILL);
  ASSERT_TRUE(helper().waitExit(30s).has_value());
  for (pid_t spawner : spawners)
    EXPECT_TRUE(pollUntil([&] { return !pidRunning(spawner); }, 10s))
        << "spawner " << spawner << " outlived the helper";
  for (pid_t pid : pool)
    EXPECT_TRUE(pollUntil([&] { return !pidRunning(pid); }, 10s))
        << "warm init " << pid << " outlived the helper";
}

std::string warmName(const ::testing::TestParamInfo<std::tuple<int, uid_t>>& info) {
  const uid_t uid = std::get<1>(info.param);
  return "warm" + std::to_string(std::get<0>(info.param)) + "_" +
         (uid == 0 ? "root" : "uid" + std::to_string(uid));
}

INSTANTIATE_TEST_SUITE_P(PoolAndCallers, WarmPool,
                         ::testing::Combine(::testing::Values(0, 3),
                                            ::testing::Values(uid_t{0}, kNobodyUid)),
                         warmName);
INSTANTIATE_TEST_SUITE_P(PoolAndCallers, WarmInits,
                         ::testing::Combine(::testing::Values(3),
                                            ::testing::Values(uid_t{0}, kNobodyUid)),
                         warmName);

}  // namespace
}  // namespace gpubox::itest
