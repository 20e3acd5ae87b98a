// Sessions, end to end: `gpubox session create`, `exec`, `session rm`,
// `ps`; shared state across execs, concurrent execs, ownership between uids,
// TTL and idle expiry, GPU leases held for the session's life. Each test
// checks what the commands inside saw and what the host has left.
#include <signal.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <regex>
#include <string>
#include <vector>

#include "fake_driver.hpp"
#include "harness.hpp"

namespace gpubox::itest {
namespace {

using namespace std::chrono_literals;
using gpubox::testing::FakeDriverRoot;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

constexpr uid_t kOtherUid = 65533;  // a second unprivileged user

class Sessions : public CallerTest {
 protected:
  RunResult cliAs(const std::vector<std::string>& args, std::optional<uid_t> uid,
                  RunOptions o = {}) {
    o.asUid = uid;
    return helper().cli(args, std::move(o));
  }
  RunResult mine(const std::vector<std::string>& args, RunOptions o = {}) {
    return cliAs(args, caller(), std::move(o));
  }
  // `session create ARGS --name NAME` as the caller; ASSERTs in the caller.
  RunResult create(const std::string& name, std::vector<std::string> extra = {}) {
    std::vector<std::string> args{"session", "create", "--name", name};
    args.insert(args.end(), extra.begin(), extra.end());
    return mine(args);
  }
  bool listed(const std::string& name, std::optional<uid_t> uid) {
    return findByName(helper().psJson(uid), name).is_object();
  }
};

// Lifecycle: create, execs that share /tmp and the cwd, each with its own
// exit status, two at once, rm, and exec after rm.
TEST_P(Sessions, CreateExecShareStateAndRemove) {
  auto c = create("life");
  ASSERT_EQ(c.exitCode, 0) << c.describe();
  EXPECT_EQ(c.out, "life\n");

  auto w = mine({"exec", "life", "--", "sh", "-c", "echo kept > /tmp/state; exit 3"});
  EXPECT_EQ(w.exitCode, 3) << w.describe();
  auto r = mine({"exec", "life", "--", "cat", "/tmp/state"});
  EXPECT_EQ(r.exitCode, 0) << r.describe();
  EXPECT_EQ(r.out, "kept\n") << "the session's /tmp is shared across execs";
  // The host's /tmp does not have it: the session's /tmp is its own.
  EXPECT_FALSE(pathExists("/tmp/state"));
  // Default cwd: the creator's (the work dir under the default plan).
  auto pwd = mine({"exec", "life", "--", "pwd"});
  EXPECT_EQ(pwd.exitCode, 0) << pwd.describe();
  EXPECT_EQ(pwd.out, helper().workDir() + "\n");
  // Exit statuses are each exec's own, with the run rules.
  auto sig = mine({"exec", "life", "--", "sh", "-c", "kill -TERM $$"});
  EXPECT_EQ(sig.exitCode, 143) << sig.describe();
  auto nf = mine({"exec", "life", "--", "gpubox-it-no-such-command"});
  EXPECT_EQ(nf.exitCode, 127) << nf.describe();
  // Environment: the client's, modified by the options; --chdir.
  auto env = mine({"exec", "life", "--chdir", "/tmp", "--setenv", "GBX_A", "one", "--unsetenv",
                   "LANG", "--", "sh", "-c", "echo \"$GBX_A ${LANG-unset} $GBX_B\"; pwd"},
                  {.env = {"GBX_B=from-client"}});
  EXPECT_EQ(env.exitCode, 0) << env.describe();
  EXPECT_EQ(env.out, "one unset from-client\n/tmp\n") << env.describe();
  auto clear = mine({"exec", "life", "--clearenv", "--setenv", "ONLY", "1", "--", "/usr/bin/env"});
  EXPECT_EQ(clear.exitCode, 0) << clear.describe();
  EXPECT_EQ(clear.out, "ONLY=1\n") << clear.describe();

  // Two execs at once: each waits for the other's mark in the shared /tmp,
  // so both finish only if they really ran concurrently.
  auto a = helper().spawnCli(
      {"exec", "life", "--", "sh", "-c",
       "touch /tmp/a; i=0; while [ ! -e /tmp/b ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); "
       "done; [ -e /tmp/b ] && echo A-saw-B; exit 5"},
      as({.timeout = 60s}));
  auto b = helper().spawnCli(
      {"exec", "life", "--", "sh", "-c",
       "touch /tmp/b; i=0; while [ ! -e /tmp/a ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); "
       "done; [ -e /tmp/a ] && echo B-saw-A; exit 6"},
      as({.timeout = 60s}));
  auto ra = a->finish();
  auto rb = b->finish();
  EXPECT_EQ(ra.exitCode, 5) << ra.describe();
  EXPECT_EQ(rb.exitCode, 6) << rb.describe();
  EXPECT_EQ(ra.out, "A-saw-B\n") << ra.describe();
  EXPECT_EQ(rb.out, "B-saw-A\n") << rb.describe();

  nlohmann::json entry = findByName(helper().psJson(caller()), "life");
  ASSERT_TRUE(entry.is_object()) << helper().psJson(caller()).dump();
  std::vector<std::string> dirs = cgroupHostDirs(entry["cgroup"].get<std::string>());
  ASSERT_FALSE(dirs.empty()) << entry.dump();
  auto rm = mine({"session", "rm", "life"});
  EXPECT_EQ(rm.exitCode, 0) << rm.describe();
  for (const auto& dir : dirs)
    EXPECT_TRUE(pollUntil([&] { return !pathExists(dir); }, 10s)) << dir << " outlived rm";
  auto after = mine({"exec", "life", "--", "true"});
  EXPECT_EQ(after.exitCode, 125) << after.describe();
  EXPECT_THAT(after.err, StartsWith("gpubox: ")) << after.describe();
  EXPECT_THAT(after.err, HasSubstr("no session named 'life'")) << after.describe();
  auto rm2 = mine({"session", "rm", "life"});
  EXPECT_EQ(rm2.exitCode, 125) << rm2.describe();
  EXPECT_THAT(rm2.err, HasSubstr("no session named 'life'")) << rm2.describe();
}

// A session made with --uid / --gid: every exec runs as those ids too (the
// init's, which each command inherits); without a user namespace they are
// refused when they are not the caller's.
TEST_P(Sessions, ExecRunsAsTheSessionsSandboxIds) {
  auto c = create("ids", {"--uid", "1234", "--gid", "5678"});
  if (expectedUserNamespace() != "new") {
    EXPECT_EQ(c.exitCode, 125) << c.describe();
    EXPECT_THAT(c.err, HasSubstr("--uid 1234: refused")) << c.describe();
    return;
  }
  ASSERT_EQ(c.exitCode, 0) << c.describe();
  auto first = mine({"exec", "ids", "--", "sh", "-c", "id -u; id -g"});
  EXPECT_EQ(first.out, "1234\n5678\n") << first.describe();
  auto again = mine({"exec", "ids", "--", "sh", "-c", "id -u; id -g"});
  EXPECT_EQ(again.out, "1234\n5678\n") << again.describe();
  EXPECT_EQ(mine({"session", "rm", "ids"}).exitCode, 0);
}

// `session rm` ends an exec that is still running (its client learns why)
// and every process left in the session.
TEST_P(Sessions, RemoveKillsRunningExecAndLeftoverProcesses) {
  const std::string running = std::to_string(8181 + caller() % 10);
  const std::string left = std::to_string(8281 + caller() % 10);
  ASSERT_EQ(create("doomed").exitCode, 0);
  // A process left behind by an exec that has returned.
  auto bg = mine({"exec", "doomed", "--", "sh", "-c",
                  "setsid sleep " + left + " >/dev/null 2>&1 < /dev/null & echo started"});
  EXPECT_EQ(bg.exitCode, 0) << bg.describe();
  auto ex = helper().spawnCli({"exec", "doomed", "--json-status", "3", "--", "sleep", running},
                              as({.timeout = 60s, .extraFd = 3}));
  ASSERT_TRUE(pollUntil(
      [&] {
        return !findProcesses({"sleep", running}).empty();
      },
      30s))
      << helper().log();
  bool leftRuns = !findProcesses({"sleep", left}).empty();
  auto rm = mine({"session", "rm", "doomed"});
  EXPECT_EQ(rm.exitCode, 0) << rm.describe();
  auto r = ex->finish();
  EXPECT_FALSE(r.timedOut) << r.describe();
  EXPECT_NE(r.exitCode, 0) << r.describe();
  nlohmann::json j = parseJson(r.extra);
  ASSERT_FALSE(j.is_discarded()) << r.describe();
  EXPECT_EQ(j["reason"], "session_removed") << j.dump();
  EXPECT_EQ(j["session"], "doomed") << j.dump();
  EXPECT_THAT(r.err, HasSubstr("gpubox: ")) << r.describe();
  EXPECT_TRUE(pollUntil([&] { return findProcesses({"sleep", running}).empty(); }, 20s));
  // Processes that an earlier exec left in the session are gone too (if the
  // session kept them; either way none may outlive rm).
  EXPECT_TRUE(leftRuns) << "an exec's background process did not stay in the session";
  EXPECT_TRUE(pollUntil(
      [&] {
        return findProcesses({"sleep", left}).empty();
      },
      20s))
      << "sleep " << left << " outlived session rm";
  EXPECT_FALSE(listed("doomed", caller()));
}

// An exec's --timeout signals that exec only; the session and its other
// processes stay.
TEST_P(Sessions, ExecTimeoutEndsOnlyThatExec) {
  const std::string other = std::to_string(8381 + caller() % 10);
  ASSERT_EQ(create("timed").exitCode, 0);
  auto bg = helper().spawnCli({"exec", "timed", "--", "sleep", other}, as({.timeout = 60s}));
  ASSERT_TRUE(pollUntil([&] { return !findProcesses({"sleep", other}).empty(); }, 30s));
  auto t = mine({"exec", "timed", "--timeout", "1s", "--kill-after", "1s", "--json-status", "3",
                 "--", "sleep", "10014"},
                {.timeout = 60s, .extraFd = 3});
  EXPECT_EQ(t.exitCode, 124) << t.describe();
  EXPECT_THAT(t.err, HasSubstr("gpubox: timed out")) << t.describe();
  nlohmann::json j = parseJson(t.extra);
  ASSERT_FALSE(j.is_discarded()) << t.describe();
  EXPECT_EQ(j["reason"], "timed_out") << j.dump();
  EXPECT_FALSE(findProcesses({"sleep", other}).empty()) << "the other exec was signalled too";
  auto still = mine({"exec", "timed", "--", "echo", "alive"});
  EXPECT_EQ(still.exitCode, 0) << still.describe();
  EXPECT_EQ(still.out, "alive\n");
  EXPECT_EQ(mine({"session", "rm", "timed"}).exitCode, 0);
  bg->finish();
}

// Names: a taken name is refused; a bad one too; a generated one is valid;
// --json describes the session.
TEST_P(Sessions, NamesAndJson) {
  ASSERT_EQ(create("taken").exitCode, 0);
  auto again = create("taken");
  EXPECT_EQ(again.exitCode, 125) << again.describe();
  EXPECT_THAT(again.err, HasSubstr("taken")) << again.describe();
  auto bad = create("-bad/name");
  EXPECT_EQ(bad.exitCode, 125) << bad.describe();
  auto gen = mine({"session", "create"});
  ASSERT_EQ(gen.exitCode, 0) << gen.describe();
  std::string name = gen.out.substr(0, gen.out.find('\n'));
  EXPECT_TRUE(std::regex_match(name, std::regex("[A-Za-z0-9][A-Za-z0-9._-]{0,63}"))) << gen.out;
  EXPECT_EQ(gen.out, name + "\n");
  auto ex = mine({"exec", name, "--", "echo", "in-generated"});
  EXPECT_EQ(ex.exitCode, 0) << ex.describe();
  EXPECT_EQ(ex.out, "in-generated\n");

  auto js = mine({"session", "create", "--name", "described", "--ttl", "10m", "--idle-timeout",
                  "5m", "--json"});
  ASSERT_EQ(js.exitCode, 0) << js.describe();
  nlohmann::json j = parseJson(js.out);
  ASSERT_TRUE(j.is_object()) << js.describe();
  EXPECT_EQ(j["name"], "described") << j.dump();
  EXPECT_EQ(j["ttl_seconds"], 600) << j.dump();
  EXPECT_EQ(j["idle_timeout_seconds"], 300) << j.dump();
  EXPECT_TRUE(j["init_pid"].is_number_integer() && j["init_pid"].get<long>() > 0) << j.dump();
  ASSERT_TRUE(j["cgroup"].is_string()) << j.dump();
  for (const auto& dir : cgroupHostDirs(j["cgroup"].get<std::string>()))
    EXPECT_TRUE(pathExists(dir)) << dir << " (from " << j.dump() << ")";
  EXPECT_TRUE(j["gpus"].is_array()) << j.dump();
  EXPECT_TRUE(j["limits"].is_array()) << j.dump();
  // The init pid is a live host process.
  EXPECT_TRUE(pidRunning(static_cast<pid_t>(j["init_pid"].get<long>()))) << j.dump();
  for (const char* n : {"taken", "described"}) EXPECT_EQ(mine({"session", "rm", n}).exitCode, 0);
  EXPECT_EQ(mine({"session", "rm", name}).exitCode, 0);
}

// `gpubox ps --json` shows the session with its figures.
TEST_P(Sessions, PsShowsTheSession) {
  ASSERT_EQ(create("listed", {"--ttl", "5m"}).exitCode, 0);
  const std::string arg = std::to_string(8481 + caller() % 10);
  auto bg = helper().spawnCli({"exec", "listed", "--", "sleep", arg}, as({.timeout = 60s}));
  ASSERT_TRUE(pollUntil([&] { return !findProcesses({"sleep", arg}).empty(); }, 30s));
  RunResult raw;
  nlohmann::json ps = helper().psJson(caller(), &raw);
  ASSERT_TRUE(ps.is_array()) << raw.describe();
  nlohmann::json e = findByName(ps, "listed");
  ASSERT_TRUE(e.is_object()) << ps.dump();
  EXPECT_EQ(e["kind"], "session") << e.dump();
  EXPECT_EQ(e["uid"], caller()) << e.dump();
  EXPECT_TRUE(e["processes"].is_number_integer() && e["processes"].get<long>() >= 1) << e.dump();
  EXPECT_TRUE(e["memory_bytes"].is_number() && e["memory_bytes"].get<double>() > 0) << e.dump();
  EXPECT_TRUE(e["memory_peak_bytes"].is_number() && e["memory_peak_bytes"].get<double>() > 0)
      << e.dump();
  EXPECT_TRUE(e["cpu_seconds"].is_number()) << e.dump();
  EXPECT_TRUE(e["age_seconds"].is_number() && e["age_seconds"].get<double>() >= 0) << e.dump();
  ASSERT_TRUE(e["ttl_left_seconds"].is_number()) << e.dump();
  EXPECT_GT(e["ttl_left_seconds"].get<double>(), 0) << e.dump();
  EXPECT_LE(e["ttl_left_seconds"].get<double>(), 300) << e.dump();
  EXPECT_TRUE(e["gpus"].is_array()) << e.dump();
  EXPECT_TRUE(e["init_pid"].is_number_integer()) << e.dump();
  ASSERT_TRUE(e["cgroup"].is_string()) << e.dump();
  for (const auto& dir : cgroupHostDirs(e["cgroup"].get<std::string>()))
    EXPECT_TRUE(pathExists(dir)) << dir << " (from " << e.dump() << ")";
  // A plain run is listed too, as kind "run" with no TTL.
  const std::string runArg = std::to_string(8581 + caller() % 10);
  auto oneShot = helper().spawnCli({"run", "--", "sleep", runArg}, as({.timeout = 60s}));
  ASSERT_TRUE(pollUntil([&] { return !findProcesses({"sleep", runArg}).empty(); }, 30s));
  ps = helper().psJson(caller(), &raw);
  bool sawRun = false;
  for (const auto& x : ps)
    if (x["kind"] == "run") {
      sawRun = true;
      EXPECT_TRUE(x["ttl_left_seconds"].is_null()) << x.dump();
      EXPECT_EQ(x["uid"], caller()) << x.dump();
    }
  EXPECT_TRUE(sawRun) << ps.dump();
  // Plain `ps` prints a table naming it.
  auto table = mine({"ps"});
  EXPECT_EQ(table.exitCode, 0) << table.describe();
  EXPECT_THAT(table.out, HasSubstr("listed")) << table.describe();
  oneShot->kill(SIGKILL);
  oneShot->finish();
  EXPECT_EQ(mine({"session", "rm", "listed"}).exitCode, 0);
  bg->finish();
}

// The session outlives the client that created it: `session create` has
// exited (and its whole process tree with it) before the exec.
TEST_P(Sessions, OutlivesItsCreator) {
  auto c = create("survivor");
  ASSERT_EQ(c.exitCode, 0) << c.describe();
  ASSERT_FALSE(c.timedOut);
  sleepFor(1s);
  auto ex = mine({"exec", "survivor", "--", "sh", "-c", "echo still here"});
  EXPECT_EQ(ex.exitCode, 0) << ex.describe();
  EXPECT_EQ(ex.out, "still here\n");
  EXPECT_EQ(mine({"session", "rm", "survivor"}).exitCode, 0);
}

// The session's limits apply to every exec.
TEST_P(Sessions, LimitsApplyToEveryExec) {
  ASSERT_EQ(
      create("limited", {"--pids", "32", "--rlimit", "NOFILE=50", "--memory", "64M"}).exitCode, 0);
  auto n = mine({"exec", "limited", "--", "sh", "-c", "ulimit -n"});
  EXPECT_EQ(n.exitCode, 0) << n.describe();
  EXPECT_EQ(n.out, "50\n");
  auto oom = mine({"exec", "limited", "--json-status", "3", "--", "sh", "-c",
                   "x=$(head -c 300000000 /dev/zero | tr '\\0' a); echo survived"},
                  {.timeout = 120s, .extraFd = 3});
  EXPECT_EQ(oom.exitCode, 137) << oom.describe();
  EXPECT_THAT(oom.err, HasSubstr("gpubox: out of memory")) << oom.describe();
  nlohmann::json j = parseJson(oom.extra);
  ASSERT_FALSE(j.is_discarded()) << oom.describe();
  EXPECT_EQ(j["reason"], "out_of_memory") << j.dump();
  EXPECT_EQ(j["session"], "limited") << j.dump();
  // Each later command counts OOM kills from its own start: that kill is
  // not its, whether it exits or is SIGKILLed.
  auto after = mine({"exec", "limited", "--", "true"});
  EXPECT_EQ(after.exitCode, 0) << after.describe();
  EXPECT_EQ(after.err, "") << after.describe();
  auto killed = mine({"exec", "limited", "--json-status", "3", "--", "sh", "-c", "kill -9 $$"},
                     {.extraFd = 3});
  EXPECT_EQ(killed.exitCode, 137) << killed.describe();
  EXPECT_THAT(killed.err, Not(HasSubstr("out of memory"))) << killed.describe();
  nlohmann::json k = parseJson(killed.extra);
  ASSERT_FALSE(k.is_discarded()) << killed.describe();
  EXPECT_EQ(k["reason"], "signaled") << k.dump();
  EXPECT_EQ(mine({"session", "rm", "limited"}).exitCode, 0);
}

GPUBOX_INSTANTIATE_CALLERS(Sessions);

// ------------------------------------------------------------ ownership

class Ownership : public HelperTest {
 protected:
  RunResult cliAs(const std::vector<std::string>& args, uid_t uid, RunOptions o = {}) {
    o.asUid = uid;
    return helper().cli(args, std::move(o));
  }
};

TEST_F(Ownership, AnotherUsersSessionIsRefused) {
  ASSERT_EQ(cliAs({"session", "create", "--name", "roots"}, 0).exitCode, 0);
  ASSERT_EQ(cliAs({"session", "create", "--name", "nobodys"}, kNobodyUid).exitCode, 0);

  // 65534 into root's: refused, saying whose it is.
  auto ex = cliAs({"exec", "roots", "--", "echo", "ESCAPED"}, kNobodyUid);
  EXPECT_EQ(ex.exitCode, 125) << ex.describe();
  EXPECT_THAT(ex.out, Not(HasSubstr("ESCAPED")));
  EXPECT_THAT(ex.err, StartsWith("gpubox: ")) << ex.describe();
  EXPECT_THAT(ex.err, HasSubstr("belongs to uid 0")) << ex.describe();
  EXPECT_THAT(ex.err, HasSubstr("uid 65534 may not use it")) << ex.describe();
  auto rm = cliAs({"session", "rm", "roots"}, kNobodyUid);
  EXPECT_EQ(rm.exitCode, 125) << rm.describe();
  EXPECT_THAT(rm.err, HasSubstr("belongs to uid 0")) << rm.describe();

  // Another unprivileged uid into 65534's: refused the same way.
  auto ex2 = cliAs({"exec", "nobodys", "--", "echo", "ESCAPED"}, kOtherUid);
  EXPECT_EQ(ex2.exitCode, 125) << ex2.describe();
  EXPECT_THAT(ex2.out, Not(HasSubstr("ESCAPED")));
  EXPECT_THAT(ex2.err, HasSubstr("belongs to uid 65534")) << ex2.describe();
  EXPECT_THAT(ex2.err, HasSubstr("uid 65533 may not use it")) << ex2.describe();
  auto rm2 = cliAs({"session", "rm", "nobodys"}, kOtherUid);
  EXPECT_EQ(rm2.exitCode, 125) << rm2.describe();
  EXPECT_THAT(rm2.err, HasSubstr("belongs to uid 65534")) << rm2.describe();
  // A taken name is taken across users too (names are helper-wide).
  auto clash = cliAs({"session", "create", "--name", "roots"}, kNobodyUid);
  EXPECT_EQ(clash.exitCode, 125) << clash.describe();

  // Both sessions survived the refused attempts.
  auto own = cliAs({"exec", "nobodys", "--", "id", "-u"}, kNobodyUid);
  EXPECT_EQ(own.exitCode, 0) << own.describe();
  EXPECT_EQ(own.out, "65534\n");
  // Root may use anyone's (the contract does not say as which uid the
  // command then runs; it must run, in that session).
  auto mark =
      cliAs({"exec", "nobodys", "--", "sh", "-c", "echo owner-was-here > /tmp/mark"}, kNobodyUid);
  EXPECT_EQ(mark.exitCode, 0) << mark.describe();
  auto rootIn = cliAs({"exec", "nobodys", "--", "cat", "/tmp/mark"}, 0);
  EXPECT_EQ(rootIn.exitCode, 0) << rootIn.describe();
  EXPECT_EQ(rootIn.out, "owner-was-here\n") << rootIn.describe();

  // ps: each unprivileged uid sees its own only; root sees both.
  nlohmann::json ps65534 = helper().psJson(kNobodyUid);
  ASSERT_TRUE(ps65534.is_array());
  EXPECT_TRUE(findByName(ps65534, "nobodys").is_object()) << ps65534.dump();
  EXPECT_TRUE(findByName(ps65534, "roots").is_null()) << ps65534.dump();
  for (const auto& e : ps65534) EXPECT_EQ(e["uid"], kNobodyUid) << e.dump();
  auto psOther = cliAs({"ps", "--json"}, kOtherUid);
  EXPECT_EQ(psOther.exitCode, 0) << psOther.describe();
  EXPECT_EQ(parseJson(psOther.out), nlohmann::json::array()) << psOther.describe();
  nlohmann::json psRoot = helper().psJson(0);
  EXPECT_TRUE(findByName(psRoot, "nobodys").is_object()) << psRoot.dump();
  EXPECT_TRUE(findByName(psRoot, "roots").is_object()) << psRoot.dump();

  // Root may remove anyone's.
  EXPECT_EQ(cliAs({"session", "rm", "nobodys"}, 0).exitCode, 0);
  EXPECT_EQ(cliAs({"session", "rm", "roots"}, 0).exitCode, 0);
  EXPECT_TRUE(findByName(helper().psJson(0), "nobodys").is_null());
}

// ------------------------------------------------------------ expiry

class Expiry : public HelperTest {
 protected:
  RunResult nobody(const std::vector<std::string>& args, RunOptions o = {}) {
    o.asUid = kNobodyUid;
    return helper().cli(args, std::move(o));
  }
};

// The TTL passes: the session disappears from ps, its processes are gone,
// an exec running in it ends with reason session_expired, exec says no
// session.
TEST_F(Expiry, TtlRemovesTheSessionAndEverythingInIt) {
  auto c = nobody({"session", "create", "--name", "brief", "--ttl", "2s", "--json"});
  ASSERT_EQ(c.exitCode, 0) << c.describe();
  nlohmann::json created = parseJson(c.out);
  ASSERT_TRUE(created.is_object()) << c.describe();
  EXPECT_EQ(created["ttl_seconds"], 2) << created.dump();
  auto running = helper().spawnCli({"exec", "brief", "--json-status", "3", "--", "sleep", "8681"},
                                   {.asUid = kNobodyUid, .timeout = 60s, .extraFd = 3});
  ASSERT_TRUE(pollUntil([&] { return !findProcesses({"sleep", "8681"}).empty(); }, 30s));
  EXPECT_TRUE(
      pollUntil([&] { return findByName(helper().psJson(kNobodyUid), "brief").is_null(); }, 30s))
      << helper().psJson(kNobodyUid).dump();
  EXPECT_TRUE(pollUntil([&] { return findProcesses({"sleep", "8681"}).empty(); }, 20s));
  auto r = running->finish();
  EXPECT_EQ(r.exitCode, 137) << r.describe();
  nlohmann::json j = parseJson(r.extra);
  ASSERT_FALSE(j.is_discarded()) << r.describe();
  EXPECT_EQ(j["reason"], "session_expired") << j.dump();
  auto ex = nobody({"exec", "brief", "--", "true"});
  EXPECT_EQ(ex.exitCode, 125) << ex.describe();
  EXPECT_THAT(ex.err, HasSubstr("no session named 'brief'")) << ex.describe();
  // Its cgroup went with it.
  if (created["cgroup"].is_string()) {
    for (const auto& dir : cgroupHostDirs(created["cgroup"].get<std::string>()))
      EXPECT_TRUE(pollUntil([&] { return !pathExists(dir); }, 10s)) << dir << " remains";
  }
}

TEST_F(Expiry, IdleTimeoutRemovesOnlyIdleSessions) {
  ASSERT_EQ(nobody({"session", "create", "--name", "idle", "--idle-timeout", "1s"}).exitCode, 0);
  ASSERT_EQ(nobody({"session", "create", "--name", "busy", "--idle-timeout", "1s"}).exitCode, 0);
  // "busy" runs one exec for longer than its idle timeout: while that runs,
  // it is not idle.
  auto ex = helper().spawnCli(
      {"exec", "busy", "--json-status", "3", "--", "sh", "-c", "sleep 4.0101; echo done-busy"},
      {.asUid = kNobodyUid, .timeout = 60s, .extraFd = 3});
  EXPECT_TRUE(
      pollUntil([&] { return findByName(helper().psJson(kNobodyUid), "idle").is_null(); }, 30s))
      << "an idle session outlived --idle-timeout 1s: " << helper().psJson(kNobodyUid).dump();
  auto idleExec = nobody({"exec", "idle", "--", "true"});
  EXPECT_EQ(idleExec.exitCode, 125) << idleExec.describe();
  EXPECT_THAT(idleExec.err, HasSubstr("no session named 'idle'")) << idleExec.describe();
  // The busy one is still there while its exec runs (checked while the
  // exec's sleep is seen running; the exec's own result below tells too).
  bool sleeping = !findProcesses({"sleep", "4.0101"}).empty();
  nlohmann::json during = helper().psJson(kNobodyUid);
  if (sleeping && !findProcesses({"sleep", "4.0101"}).empty()) {
    EXPECT_TRUE(findByName(during, "busy").is_object()) << during.dump();
  }
  auto r = ex->finish();
  EXPECT_EQ(r.exitCode, 0) << r.describe();
  EXPECT_EQ(r.out, "done-busy\n") << r.describe();
  nlohmann::json j = parseJson(r.extra);
  ASSERT_FALSE(j.is_discarded()) << r.describe();
  EXPECT_EQ(j["reason"], "exited") << j.dump();
  // Afterwards, idle, it goes too.
  EXPECT_TRUE(
      pollUntil([&] { return findByName(helper().psJson(kNobodyUid), "busy").is_null(); }, 30s))
      << helper().psJson(kNobodyUid).dump();
}

// ------------------------------------------------------------ helper ceilings

class SessionCaps : public HelperTest {
 protected:
  HelperOptions helperOptions() override {
    return {.extraArgs = {"--max-sessions-per-uid", "2", "--max-session-ttl", "2h"}};
  }
  RunResult nobody(const std::vector<std::string>& args) {
    return helper().cli(args, {.asUid = kNobodyUid});
  }
};

TEST_F(SessionCaps, TtlCeilingAndSessionCountCap) {
  auto longTtl = nobody({"session", "create", "--ttl", "3h"});
  EXPECT_EQ(longTtl.exitCode, 125) << longTtl.describe();
  EXPECT_THAT(longTtl.err, HasSubstr("--max-session-ttl")) << longTtl.describe();
  ASSERT_EQ(nobody({"session", "create", "--name", "s1", "--ttl", "2h"}).exitCode, 0);
  ASSERT_EQ(nobody({"session", "create", "--name", "s2"}).exitCode, 0);
  auto third = nobody({"session", "create", "--name", "s3"});
  EXPECT_EQ(third.exitCode, 125) << third.describe();
  EXPECT_THAT(third.err, HasSubstr("--max-sessions-per-uid")) << third.describe();
  EXPECT_THAT(third.err, HasSubstr("65534")) << third.describe();
  // A run is not a session: still allowed.
  auto run = helper().cli({"run", "--", "echo", "ok"}, {.asUid = kNobodyUid});
  EXPECT_EQ(run.exitCode, 0) << run.describe();
  // Another uid has its own count.
  EXPECT_EQ(helper().cli({"session", "create", "--name", "r1"}).exitCode, 0);
  ASSERT_EQ(nobody({"session", "rm", "s1"}).exitCode, 0);
  auto now = nobody({"session", "create", "--name", "s3"});
  EXPECT_EQ(now.exitCode, 0) << now.describe();
}

// ------------------------------------------------------------ GPUs

const std::string kAllowGpus = R"([[allow]]
users = [65534, 0]
gpus = ["all"]
max_gpus = 4
)";

TEST(SessionGpus, LeaseHeldAcrossExecsAndFreedAtRemove) {
  GPUBOX_REQUIRE_ROOT();
  if (!FakeDriverRoot::canMknod()) GTEST_SKIP() << "cannot mknod fake NVIDIA nodes here";
  FakeDriverRoot fake({.gpus = 2});
  TempDir config(0755);
  writeFile(config / "helper.toml", kAllowGpus, 0644);
  HelperProcess h(
      {.extraArgs = {"--config", config / "helper.toml", "--driver-root", fake.root()}});
  auto c =
      h.cli({"session", "create", "--name", "gpu", "--gpu", "1", "--json"}, {.asUid = kNobodyUid});
  ASSERT_EQ(c.exitCode, 0) << c.describe() << h.log();
  nlohmann::json created = parseJson(c.out);
  ASSERT_TRUE(created.is_object()) << c.describe();
  EXPECT_EQ(created["gpus"], nlohmann::json::array({fake.gpus()[1].uuid})) << created.dump();
  EXPECT_EQ(gpuHolders(h, 1), 1u);
  EXPECT_EQ(gpuHolders(h, 0), 0u);
  for (int i = 0; i < 2; ++i) {
    auto ex = h.cli({"exec", "gpu", "--", "sh", "-c", "ls /dev | grep '^nvidia[0-9]'"},
                    {.asUid = kNobodyUid});
    EXPECT_EQ(ex.exitCode, 0) << ex.describe();
    EXPECT_EQ(ex.out, "nvidia1\n") << "exec " << i;
    EXPECT_EQ(gpuHolders(h, 1), 1u) << "after exec " << i << ": one lease for the whole session";
  }
  nlohmann::json ps = h.psJson(kNobodyUid);
  nlohmann::json e = findByName(ps, "gpu");
  ASSERT_TRUE(e.is_object()) << ps.dump();
  EXPECT_EQ(e["gpus"], nlohmann::json::array({fake.gpus()[1].uuid})) << e.dump();
  auto rm = h.cli({"session", "rm", "gpu"}, {.asUid = kNobodyUid});
  EXPECT_EQ(rm.exitCode, 0) << rm.describe();
  EXPECT_TRUE(pollUntil([&] { return gpuHolders(h, 1) == 0; }, 20s)) << h.log();
}

}  // namespace
}  // namespace gpubox::itest
