// The helper as a daemon: lifetime of sandboxes, robustness against bad
// input, concurrency, start-up and idle exit, and "no way back in".
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <thread>

#include "harness.hpp"

namespace gpubox::itest {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

// ------------------------------------------------------------ lifetime

// True while `pid` exists and is not a zombie.
bool processRunning(pid_t pid) {
  std::string stat;
  try {
    stat = readFile("/proc/" + std::to_string(pid) + "/stat");
  } catch (const std::exception&) {
    return false;
  }
  auto close = stat.rfind(')');
  if (close == std::string::npos || close + 2 >= stat.size()) return false;
  char state = stat[close + 2];
  return state != 'Z' && state != 'X';
}

class Lifetime : public CallerTest {};

// (Caught the missing context.allowCancellation() in ProcessImpl::wait: with
// Cap'n Proto 0.9 the wait call, and with it the sandbox, outlived the client.)
TEST_P(Lifetime, KillingTheClientKillsTheSandbox) {
  // A distinctive argv so that only our sleep matches on the host.
  std::string secs = std::to_string(31337 + caller());
  auto client = helper().spawnCli({"run", "--", "sleep", secs}, as());
  std::vector<pid_t> sleepers;
  ASSERT_TRUE(pollUntil(
      [&] {
        return !(sleepers = findProcesses({"sleep", secs})).empty();
      },
      30s))
      << "the sandboxed sleep never appeared; helper log:\n"
      << helper().log();
  client->kill(SIGKILL);
  auto r = client->finish();
  EXPECT_EQ(r.termSignal, SIGKILL);
  EXPECT_TRUE(pollUntil(
      [&] {
        return findProcesses({"sleep", secs}).empty();
      },
      10s))
      << "sleep " << secs << " outlived its client (pid " << sleepers[0] << ") by 10 s";
  // Dead, not merely renamed: each pid is gone (or a zombie on its way out).
  for (pid_t p : sleepers)
    EXPECT_TRUE(pollUntil([&] { return !processRunning(p); }, 10s)) << "pid " << p << " still runs";
  // The helper is fine and serves the next request.
  EXPECT_TRUE(helper().alive()) << helper().log();
  auto next = runAs({"--", "echo", "still serving"});
  EXPECT_EQ(next.exitCode, 0) << next.describe();
  EXPECT_EQ(next.out, "still serving\n");
}

// Regression: the client once crashed after forwarding a signal (its
// re-arming handler outlived the scope it lived in).
TEST_P(Lifetime, SignalsToTheClientReachTheCommand) {
  std::string secs = std::to_string(41337 + caller());
  auto client = helper().spawnCli({"run", "--", "sleep", secs}, as());
  ASSERT_TRUE(pollUntil(
      [&] {
        return !findProcesses({"sleep", secs}).empty();
      },
      30s))
      << helper().log();
  client->kill(SIGTERM);
  auto r = client->finish();
  EXPECT_EQ(r.exitCode, 143) << "SIGTERM forwarded to the command: " << r.describe();
  EXPECT_TRUE(pollUntil([&] { return findProcesses({"sleep", secs}).empty(); }, 20s));
}

TEST_P(Lifetime, BackgroundProcessesDieWithTheCommandsSandbox) {
  // The command exits at once, leaving a daemonized child behind; it must
  // not survive the sandbox (the whole pid namespace goes).
  std::string secs = std::to_string(51337 + caller());
  auto r =
      runAs({"--", "sh", "-c", "setsid sleep " + secs + " >/dev/null 2>&1 < /dev/null & exit 0"});
  EXPECT_EQ(r.exitCode, 0) << r.describe();
  EXPECT_TRUE(pollUntil(
      [&] {
        return findProcesses({"sleep", secs}).empty();
      },
      20s))
      << "a background sleep outlived the sandbox";
}

TEST_P(Lifetime, ConcurrentSandboxes) {
  // One long-running sandbox waits for a file in its (shared) cwd while the
  // same helper serves other clients.
  std::string flag = helper().workDir() + "/release";
  auto longOne =
      helper().spawnCli({"run", "--", "sh", "-c",
                         "echo started; while [ ! -e release ]; do sleep 0.1; done; echo finished"},
                        as());
  ASSERT_TRUE(pollUntil(
      [&] {
        return !findProcesses({"sleep", "0.1"}).empty();
      },
      30s))
      << helper().log();
  for (int i = 0; i < 4; ++i) {
    auto r = runAs({"--", "sh", "-c", "echo n=" + std::to_string(i)});
    EXPECT_EQ(r.exitCode, 0) << r.describe();
    EXPECT_EQ(r.out, "n=" + std::to_string(i) + "\n");
  }
  // A few at once, too.
  std::vector<std::unique_ptr<Process>> many;
  for (int i = 0; i < 4; ++i)
    many.push_back(
        helper().spawnCli({"run", "--", "sh", "-c", "echo p=$$ i=" + std::to_string(i)}, as()));
  for (int i = 0; i < 4; ++i) {
    auto r = many[static_cast<size_t>(i)]->finish();
    EXPECT_EQ(r.exitCode, 0) << r.describe();
    EXPECT_EQ(r.out, "p=2 i=" + std::to_string(i) + "\n") << "each in its own pid namespace";
  }
  writeFile(flag, "", 0644);
  auto r = longOne->finish();
  EXPECT_EQ(r.exitCode, 0) << r.describe();
  EXPECT_EQ(r.out, "started\nfinished\n");
}

TEST_P(Lifetime, HelperLogsOneRecordPerSandbox) {
  auto r = runAs({"--", "sh", "-c", "exit 7"});
  EXPECT_EQ(r.exitCode, 7);
  ASSERT_TRUE(pollUntil(
      [&] { return helper().log().find("result=\"exited with status 7\"") != std::string::npos; },
      10s))
      << helper().log();
  std::string record;
  for (const auto& l : lines(helper().log()))
    if (l.find("result=\"exited with status 7\"") != std::string::npos) record = l;
  EXPECT_THAT(record, HasSubstr("uid=" + std::to_string(caller())));
  EXPECT_THAT(record, HasSubstr("argv0=sh"));
  EXPECT_THAT(record, HasSubstr("duration_ms="));
  EXPECT_THAT(record, HasSubstr("pid="));
}

GPUBOX_INSTANTIATE_CALLERS(Lifetime);

// The helper raises its own soft RLIMIT_NOFILE to the hard one (its
// connections and sandboxes hold descriptors; 1024 is systemd's default),
// but what it was started with is what every sandbox gets: the limit is
// raised after the spawners that clone the inits were forked.
class DescriptorLimit : public CallerTest {
 protected:
  HelperOptions helperOptions() override {
    return {.wrapper = {"/usr/bin/prlimit", "--nofile=1000:4096", "--"}};
  }
};

TEST_P(DescriptorLimit, TheHelperRaisesItsOwnAndSandboxesKeepTheOneItWasStartedWith) {
  const std::string limits = readFile("/proc/" + std::to_string(helper().pid()) + "/limits");
  EXPECT_THAT(limits, ::testing::ContainsRegex("Max open files +4096 +4096 ")) << limits;
  EXPECT_THAT(helper().log(), HasSubstr("open files: soft limit raised from 1000 to 4096"));
  // A run (its init from the warm pool) and, for root, a --net host run
  // (the other pool's, or the requests' spawner's while that pool is empty).
  auto r = runAs({"--", "sh", "-c", "ulimit -Sn; ulimit -Hn"});
  EXPECT_EQ(r.exitCode, 0) << r.describe();
  EXPECT_EQ(r.out, "1000\n4096\n") << r.describe();
  if (caller() == 0) {
    auto host = runAs({"--net", "host", "--", "sh", "-c", "ulimit -Sn; ulimit -Hn"});
    EXPECT_EQ(host.exitCode, 0) << host.describe();
    EXPECT_EQ(host.out, "1000\n4096\n") << host.describe();
  }
}

GPUBOX_INSTANTIATE_CALLERS(DescriptorLimit);

// ------------------------------------------------------------ no way back in

class NoWayBackIn : public CallerTest {};

TEST_P(NoWayBackIn, SocketHiddenInTheDefaultSandbox) {
  std::string sock = helper().socketPath();
  auto r = runAs({"--", "sh", "-c",
                  "test -e " + sock + " && echo visible; " + cliPath() + " --socket " + sock +
                      " info; echo nested=$?"});
  EXPECT_EQ(r.exitCode, 0) << r.describe();
  EXPECT_THAT(r.out, Not(HasSubstr("visible"))) << r.describe();
  EXPECT_THAT(r.out, HasSubstr("nested=125")) << r.describe();
  EXPECT_THAT(r.out, Not(HasSubstr("helper version"))) << r.describe();
  EXPECT_THAT(r.err, HasSubstr("cannot reach the helper")) << r.describe();
}

TEST_P(NoWayBackIn, SocketMaskedEvenUnderTheHostRoot) {
  std::string sock = helper().socketPath();
  for (const std::vector<std::string>& plan :
       {std::vector<std::string>{"--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev"},
        std::vector<std::string>{"--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev",
                                 "--ro-bind", helper().dir(), helper().dir()}}) {
    std::vector<std::string> args = plan;
    args.insert(args.end(), {"--", "sh", "-c",
                             "test -S " + sock + " && echo is-a-socket; " + cliPath() +
                                 " --socket " + sock + " info; echo nested=$?"});
    auto r = runAs(args);
    EXPECT_EQ(r.exitCode, 0) << r.describe();
    EXPECT_THAT(r.out, Not(HasSubstr("is-a-socket"))) << r.describe();
    EXPECT_THAT(r.out, HasSubstr("nested=125")) << r.describe();
    EXPECT_THAT(r.out, Not(HasSubstr("helper version"))) << r.describe();
    // connect() itself fails: the request never reaches the helper.
    EXPECT_THAT(r.err, HasSubstr("cannot reach the helper")) << r.describe();
  }
}

TEST_P(NoWayBackIn, RequestFromInsideASandboxIsRefused) {
  // The socket's directory at another path escapes the path-based mask; the
  // helper must still recognise the peer as sandboxed and refuse.
  std::string inner = "/mnt/h/" + std::string(std::strrchr(helper().socketPath().c_str(), '/') + 1);
  auto r = runAs({"--ro-bind", "/", "/", "--proc", "/proc", "--tmpfs", "/mnt", "--ro-bind",
                  helper().dir(), "/mnt/h", "--", "sh", "-c",
                  cliPath() + " --socket " + inner + " info; echo info=$?; " + cliPath() +
                      " --socket " + inner + " run -- echo ESCAPED; echo run=$?"});
  EXPECT_EQ(r.exitCode, 0) << r.describe();
  EXPECT_THAT(r.out, HasSubstr("info=125")) << r.describe();
  EXPECT_THAT(r.out, HasSubstr("run=125")) << r.describe();
  EXPECT_THAT(r.out, Not(HasSubstr("ESCAPED"))) << r.describe();
  EXPECT_THAT(r.out, Not(HasSubstr("helper version"))) << r.describe();
  EXPECT_THAT(r.err, HasSubstr("runs inside a gpubox sandbox")) << r.describe();
  EXPECT_TRUE(helper().alive());
}

// A sandbox that makes its own nested user and pid namespaces is still a
// sandbox: the helper walks the peer's namespace ancestry. The default
// seccomp filter already refuses nested user namespaces, so the ancestry
// check is driven by root with --seccomp none; for everyone else the filter
// must refuse the unshare. (No --map-root-user: a root caller's sandbox may
// not write that map; the nested process then runs as the overflow uid,
// which is fine for asking the helper.)
TEST_P(NoWayBackIn, RequestFromANestedNamespaceIsRefused) {
  std::string inner = "/mnt/h/" + std::string(std::strrchr(helper().socketPath().c_str(), '/') + 1);
  std::vector<std::string> args;
  if (caller() == 0) args = {"--seccomp", "none"};
  std::vector<std::string> plan = {"--ro-bind",
                                   "/",
                                   "/",
                                   "--proc",
                                   "/proc",
                                   "--dev",
                                   "/dev",
                                   "--tmpfs",
                                   "/mnt",
                                   "--ro-bind",
                                   helper().dir(),
                                   "/mnt/h",
                                   "--",
                                   "sh",
                                   "-c",
                                   "unshare --user --pid --fork true 2>/dev/null || exit 77; "
                                   "unshare --user --pid --fork " +
                                       cliPath() + " --socket " + inner + " info; echo info=$?"};
  args.insert(args.end(), plan.begin(), plan.end());
  auto r = runAs(args);
  if (caller() != 0) {
    EXPECT_EQ(r.exitCode, 77) << "the seccomp filter let a nested user namespace through: "
                              << r.describe();
    return;
  }
  if (r.exitCode == 77)
    GTEST_SKIP() << "unshare --user --pid fails inside the sandbox even without seccomp";
  EXPECT_EQ(r.exitCode, 0) << r.describe();
  EXPECT_THAT(r.out, HasSubstr("info=125")) << r.describe();
  EXPECT_THAT(r.err, HasSubstr("runs inside a gpubox sandbox")) << r.describe();
}

GPUBOX_INSTANTIATE_CALLERS(NoWayBackIn);

// ------------------------------------------------------------ bad input

int rawConnect(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  struct sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  if (::connect(fd, reinterpret_cast<struct sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Sends what it can (the helper may hang up early); never blocks forever.
void sendAll(int fd, const std::string& data) {
  struct timeval tv = {5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    done += static_cast<size_t>(n);
  }
}

std::string u32(uint32_t v) {
  return std::string(reinterpret_cast<const char*>(&v), 4);
}

class BadInput : public HelperTest {
 protected:
  void expectStillServing(const std::string& what) {
    ASSERT_TRUE(helper().alive()) << "helper died after " << what << ":\n" << helper().log();
    RunOptions o;
    o.asUid = kNobodyUid;
    auto r = run({"--", "echo", "ok"}, o);
    EXPECT_EQ(r.exitCode, 0) << "after " << what << ": " << r.describe();
    EXPECT_EQ(r.out, "ok\n") << "after " << what;
  }
};

TEST_F(BadInput, RandomBytes) {
  std::mt19937 rng(1234);
  std::string junk(256 * 1024, '\0');
  for (auto& c : junk) c = static_cast<char>(rng());
  int fd = rawConnect(helper().socketPath());
  ASSERT_GE(fd, 0);
  sendAll(fd, junk);
  ::close(fd);
  expectStillServing("random bytes");
}

TEST_F(BadInput, HugeSegmentTable) {
  // A Cap'n Proto frame header claiming 2^32 segments.
  int fd = rawConnect(helper().socketPath());
  ASSERT_GE(fd, 0);
  sendAll(fd, u32(0xffffffffu) + u32(0xffffffffu) + std::string(4096, '\xff'));
  ::close(fd);
  expectStillServing("a huge segment table");
}

TEST_F(BadInput, HugeMessage) {
  // One segment of 2^31 words (16 GiB) announced, then 16 MiB streamed.
  int fd = rawConnect(helper().socketPath());
  ASSERT_GE(fd, 0);
  std::string header = u32(0) + u32(0x7fffffffu);
  sendAll(fd, header + std::string(16 * 1024 * 1024, '\0'));
  // While that connection is still open, others work.
  expectStillServing("a huge message (connection open)");
  ::close(fd);
  expectStillServing("a huge message");
}

TEST_F(BadInput, ValidFramingGarbageContent) {
  // Well-framed messages whose content is nonsense (pointers out of bounds).
  int fd = rawConnect(helper().socketPath());
  ASSERT_GE(fd, 0);
  std::string msg = u32(0) + u32(4);
  for (int i = 0; i < 4; ++i) msg += u32(0xdeadbeefu) + u32(0x7fffffffu);
  for (int i = 0; i < 100; ++i) sendAll(fd, msg);
  ::close(fd);
  expectStillServing("garbage messages");
}

TEST_F(BadInput, IdleAndHalfClosedConnections) {
  std::vector<int> fds;
  for (int i = 0; i < 64; ++i) {
    int fd = rawConnect(helper().socketPath());
    ASSERT_GE(fd, 0) << "connection " << i;
    if (i % 2) ::shutdown(fd, SHUT_WR);
    fds.push_back(fd);
  }
  expectStillServing("64 idle connections");
  for (int fd : fds) ::close(fd);
  expectStillServing("64 closed connections");
}

TEST_F(BadInput, ClientHangsUpMidRun) {
  // A real client that dies while its sandbox writes output.
  auto client = helper().spawnCli({"run", "--", "sh", "-c", "while :; do echo spam; done"});
  sleepFor(500ms);
  client->kill(SIGKILL);
  client->finish();
  expectStillServing("a client killed mid-output");
}

// ------------------------------------------------------------ start-up

TEST(HelperStartup, NoSocketAndNoListenExitsWithAClearError) {
  GPUBOX_REQUIRE_ROOT();
  RunOptions o;
  o.timeout = 30s;
  o.replaceEnv = true;  // in particular, no LISTEN_FDS
  o.env = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin"};
  auto r = runProcess({helperPath()}, o);
  EXPECT_FALSE(r.timedOut) << "the helper kept running without a socket";
  EXPECT_NE(r.exitCode, 0) << r.describe();
  EXPECT_NE(r.exitCode, -1) << r.describe();
  EXPECT_THAT(r.err, StartsWith("gpubox-helper: ")) << r.describe();
  EXPECT_THAT(r.err, HasSubstr("--listen")) << r.describe();
}

// Regression: --idle-exit once crashed the helper on its first idle check.
TEST(HelperStartup, IdleExit) {
  GPUBOX_REQUIRE_ROOT();
  HelperOptions ho;
  ho.extraArgs = {"--idle-exit", "2"};
  HelperProcess h(ho);
  // A sandbox that outlasts the idle period keeps the helper alive.
  auto r = h.cli({"run", "--", "sh", "-c", "sleep 4; echo done"});
  EXPECT_EQ(r.exitCode, 0) << r.describe() << "\nhelper log:\n" << h.log();
  EXPECT_EQ(r.out, "done\n");
  // Then, idle, it exits on its own, cleanly.
  auto st = h.waitExit(60s);
  ASSERT_TRUE(st.has_value()) << "helper did not exit when idle:\n" << h.log();
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << "status " << *st << "\n" << h.log();
}

namespace {

uint64_t monotonicNowNs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000 + static_cast<uint64_t>(ts.tv_nsec);
}

// A spans line's start ("... @NS: ..."), and checks that PHASES are in it in
// this order, each at or after the one before. Other phases may lie between.
uint64_t checkSpansLine(const std::string& line, const std::vector<std::string>& phases) {
  const size_t origin = line.find(" @");
  const size_t colon = line.find(':', origin == std::string::npos ? 0 : origin);
  EXPECT_NE(origin, std::string::npos) << line;
  EXPECT_NE(colon, std::string::npos) << line;
  if (origin == std::string::npos || colon == std::string::npos) return 0;
  double last = 0;
  size_t at = colon;
  for (const std::string& phase : phases) {
    size_t found = line.find(" " + phase + " +", at);
    EXPECT_NE(found, std::string::npos) << phase << " missing or out of order in: " << line;
    if (found == std::string::npos) return 0;
    at = found + phase.size() + 3;
    double ms = std::stod(line.substr(at));
    EXPECT_GE(ms, last) << phase << " in: " << line;
    last = ms;
  }
  return std::stoull(line.substr(origin + 2, colon - origin - 2));
}

// The helper's last spans line, once it has logged one.
std::string lastHelperSpans(const HelperProcess& h, const std::string& after = "") {
  std::string line;
  pollUntil(
      [&] {
        for (const auto& l : lines(h.log()))
          if (l.find("spans run-") != std::string::npos && l != after) line = l;
        return !line.empty();
      },
      10s);
  return line;
}

}  // namespace

// --trace-spans: one line per sandbox with its start-up phases, the init's
// setup steps among them (init:*, timed in the init), in the order they
// happen, each time at or after the one before (docs/performance.md); for a
// connection's first sandbox from the connection's accept. As root and as
// uid 65534. Without the flag there is none.
TEST(HelperStartup, TraceSpansLogsThePhasesInOrder) {
  GPUBOX_REQUIRE_ROOT();
  HelperProcess traced(HelperOptions{.extraArgs = {"--trace-spans"}});
  std::string previous;
  for (uid_t uid : {0u, kNobodyUid}) {
    SCOPED_TRACE("uid " + std::to_string(uid));
    auto r = traced.cli({"run", "--", "true"}, {.asUid = uid});
    ASSERT_EQ(r.exitCode, 0) << r.describe();
    std::string line = lastHelperSpans(traced, previous);
    ASSERT_FALSE(line.empty()) << traced.log();
    previous = line;
    // The init is told its configuration after the helper's "cgroup" and
    // may take it before the helper has marked "cloned": that one is only
    // checked to come after "cgroup" and before "ready".
    checkSpansLine(
        line, {"accepted",     "received",     "checked",      "planned",       "cgroup",
               "init:config",  "init:caller",  "init:private", "init:sources",  "init:newroot",
               "init:plan",    "init:hidden",  "init:pivot",   "init:detached", "init:cgroupns",
               "init:dropped", "init:seccomp", "ready",        "exec",          "started",
               "exited"});
    checkSpansLine(line, {"cgroup", "cloned", "ready"});
  }

  HelperProcess plain;
  ASSERT_EQ(plain.cli({"run", "--", "true"}).exitCode, 0);
  plain.stop();
  EXPECT_EQ(plain.log().find("spans "), std::string::npos) << plain.log();
}

// GPUBOX_TRACE_SPANS: the client writes its phases to stderr, one line after
// everything the command wrote, on the clock of the helper's spans (the
// helper accepts the connection after the client's main begins, and before
// the client's line ends). As root and as uid 65534. With "0", or unset,
// stderr is the command's alone.
TEST(HelperStartup, ClientTraceSpansFollowTheCommandOnTheHelpersClock) {
  GPUBOX_REQUIRE_ROOT();
  HelperProcess traced(HelperOptions{.extraArgs = {"--trace-spans"}});
  const std::vector<std::string> cmd = {"run", "--", "sh", "-c", "echo out; echo err >&2"};
  std::string previous;
  for (uid_t uid : {0u, kNobodyUid}) {
    SCOPED_TRACE("uid " + std::to_string(uid));
    const uint64_t before = monotonicNowNs();
    auto r = traced.cli(cmd, {.asUid = uid, .env = {"GPUBOX_TRACE_SPANS=1"}});
    const uint64_t after = monotonicNowNs();
    ASSERT_EQ(r.exitCode, 0) << r.describe();
    EXPECT_EQ(r.out, "out\n");
    ASSERT_THAT(r.err, StartsWith("err\ngpubox spans @")) << r.describe();
    EXPECT_EQ(r.err.find('\n', 4), r.err.size() - 1) << "one line, at the end: " << r.err;
    EXPECT_THAT(r.err, HasSubstr(" (ms)\n"));
    const uint64_t client =
        checkSpansLine(r.err.substr(4), {"main", "parsed", "connected", "sent", "status"});
    EXPECT_GE(client, before);
    EXPECT_LE(client, after);

    std::string line = lastHelperSpans(traced, previous);
    ASSERT_FALSE(line.empty()) << traced.log();
    previous = line;
    const uint64_t helper = checkSpansLine(line, {"accepted", "exited"});
    EXPECT_GT(helper, client) << "client line: " << r.err << "helper line: " << line;
    EXPECT_LT(helper, after) << line;
  }
  for (const std::vector<std::string>& env :
       std::vector<std::vector<std::string>>{{"GPUBOX_TRACE_SPANS=0"}, {}}) {
    auto r = traced.cli(cmd, {.asUid = kNobodyUid, .env = env});
    ASSERT_EQ(r.exitCode, 0) << r.describe();
    EXPECT_EQ(r.err, "err\n") << (env.empty() ? "unset" : env[0]);
  }
}

// Regression: SIGTERM with a live sandbox once aborted the helper (a sandbox
// released after the event loop was gone).
TEST(HelperStartup, SigtermWithARunningSandboxExitsCleanlyAndKillsIt) {
  GPUBOX_REQUIRE_ROOT();
  HelperProcess h;
  auto client = h.spawnCli({"run", "--", "sleep", "61337"});
  ASSERT_TRUE(pollUntil(
      [&] {
        return !findProcesses({"sleep", "61337"}).empty();
      },
      30s))
      << h.log();
  h.kill(SIGTERM);
  auto st = h.waitExit(30s);
  ASSERT_TRUE(st.has_value()) << "helper ignored SIGTERM:\n" << h.log();
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << "status " << *st << "\n" << h.log();
  EXPECT_TRUE(pollUntil(
      [&] {
        return findProcesses({"sleep", "61337"}).empty();
      },
      20s))
      << "the sandbox outlived the helper";
  auto r = client->finish();
  EXPECT_EQ(r.exitCode, 125) << r.describe();
  EXPECT_THAT(r.err, StartsWith("gpubox: ")) << r.describe();
}

TEST(HelperStartup, NoIdleExitByDefault) {
  GPUBOX_REQUIRE_ROOT();
  HelperProcess h;
  sleepFor(3s);
  EXPECT_TRUE(h.alive()) << h.log();
}

TEST(HelperStartup, SocketModeIsHonoured) {
  GPUBOX_REQUIRE_ROOT();
  HelperOptions ho;
  ho.extraArgs = {"--socket-mode", "0600"};
  HelperProcess h(ho);
  struct stat st;
  ASSERT_EQ(::stat(h.socketPath().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  RunOptions nobody;
  nobody.asUid = kNobodyUid;
  auto n = h.cli({"info"}, nobody);
  EXPECT_EQ(n.exitCode, 125) << n.describe();
  EXPECT_THAT(n.err, StartsWith("gpubox: ")) << n.describe();
  auto root = h.cli({"info"});
  EXPECT_EQ(root.exitCode, 0) << root.describe();
}

TEST(HelperStartup, DefaultSocketModeLetsEveryoneConnect) {
  GPUBOX_REQUIRE_ROOT();
  HelperProcess h;
  struct stat st;
  ASSERT_EQ(::stat(h.socketPath().c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0666u);
}

TEST(HelperStartup, BadSocketModeIsRejected) {
  GPUBOX_REQUIRE_ROOT();
  TempDir d;
  RunOptions o;
  o.timeout = 30s;
  auto r = runProcess({helperPath(), "--listen", d / "s", "--socket-mode", "999"}, o);
  EXPECT_NE(r.exitCode, 0) << r.describe();
  EXPECT_THAT(r.err, HasSubstr("--socket-mode")) << r.describe();
}

// ------------------------------------------------------------ client side

TEST(ClientStartup, NoHelperIs125) {
  TempDir d;
  auto r = runCli({"--socket", d / "nothing-here.sock", "run", "--", "true"});
  EXPECT_EQ(r.exitCode, 125) << r.describe();
  EXPECT_THAT(r.err, StartsWith("gpubox: ")) << r.describe();
  EXPECT_THAT(r.err, HasSubstr("nothing-here.sock")) << r.describe();
  EXPECT_EQ(lines(r.err).size(), 1u) << "one line: " << r.describe();
}

TEST(ClientStartup, SocketFromEnvironment) {
  GPUBOX_REQUIRE_ROOT();
  HelperProcess h;
  RunOptions o;
  o.env = {"GPUBOX_SOCKET=" + h.socketPath()};
  o.cwd = h.workDir();
  auto r = runCli({"run", "--", "echo", "via-env"}, o);
  EXPECT_EQ(r.exitCode, 0) << r.describe();
  EXPECT_EQ(r.out, "via-env\n");
  // --socket wins over the environment.
  TempDir d;
  o.env = {"GPUBOX_SOCKET=" + (d / "nope.sock")};
  auto s = runCli({"--socket", h.socketPath(), "info"}, o);
  EXPECT_EQ(s.exitCode, 0) << s.describe();
}

// ------------------------------------------------- more placement and lifetime

// Invariant 2 depends on client and helper resolving paths in one mount
// namespace; a client in another one is refused, with the reason.
TEST(Placement, ClientInAnotherMountNamespaceIsRefused) {
  GPUBOX_REQUIRE_ROOT();
  HelperProcess h;
  auto r =
      runProcess({"/usr/bin/unshare", "--mount", cliPath(), "--socket", h.socketPath(), "info"},
                 {.cwd = h.workDir()});
  EXPECT_EQ(r.exitCode, 125) << r.describe();
  EXPECT_THAT(r.err, HasSubstr("another mount namespace")) << r.describe();
  // The helper keeps serving everyone else.
  EXPECT_EQ(h.cli({"info"}).exitCode, 0);
}

// The default plan must not show the host's /run: a read-only bind does not
// stop connect(), and the caller's session bus or docker.sock there would act
// for it outside the sandbox.
TEST(Placement, DefaultPlanHidesHostSocketsUnderRun) {
  GPUBOX_REQUIRE_ROOT();
  HelperProcess h;
  auto r = h.cli({"run", "--", "sh", "-c", "ls -A /run | wc -l"}, {.asUid = kNobodyUid});
  EXPECT_EQ(r.exitCode, 0) << r.describe();
  EXPECT_EQ(r.out, "0\n") << r.describe();
}

// Nothing outlives its owner: SIGKILL to the helper (no chance to clean up)
// still takes every sandbox down, for a non-root caller too.
TEST(HelperStartup, SigkillOfTheHelperKillsItsSandboxes) {
  GPUBOX_REQUIRE_ROOT();
  HelperProcess h;
  auto client = h.spawnCli({"run", "--", "sleep", "71337"}, {.asUid = kNobodyUid});
  ASSERT_TRUE(pollUntil(
      [&] {
        return !findProcesses({"sleep", "71337"}).empty();
      },
      30s))
      << h.log();
  h.kill(SIGKILL);
  h.waitExit(30s);
  EXPECT_TRUE(pollUntil(
      [&] {
        return findProcesses({"sleep", "71337"}).empty();
      },
      20s))
      << "the sandbox outlived a killed helper";
  auto r = client->finish();
  EXPECT_EQ(r.exitCode, 125) << r.describe();
}

// The helper is never setuid: installed so by mistake, it refuses to run.
TEST(HelperStartup, SetuidInstallIsRefused) {
  GPUBOX_REQUIRE_ROOT();
  TempDir dir(0755, 0, 0, "gpubox-it-suid");
  std::string copy = dir / "gpubox-helper";
  writeFile(copy, readFile(helperPath()), 04755);
  ::chmod(copy.c_str(), 04755);  // writeFile's umask may have dropped the bit
  struct statvfs vfs;
  if (::statvfs(copy.c_str(), &vfs) == 0 && (vfs.f_flag & ST_NOSUID))
    GTEST_SKIP() << dir.path() << " is mounted nosuid: cannot test a setuid install here";
  auto r = runProcess({copy, "--listen", dir / "sock"}, {.asUid = kNobodyUid, .cwd = dir.path()});
  EXPECT_EQ(r.exitCode, 1) << r.describe();
  EXPECT_THAT(r.err, HasSubstr("must not be installed setuid")) << r.describe();
}

// A record per sandbox must never hold the helper up. Here its stderr is a
// FIFO nobody reads, shrunk to one page, which fills after a few dozen
// records: before the records had a thread of their own, the event loop
// then blocked in write(2) and every later client hung. Once read, every
// record is there.
TEST(HelperLog, AStalledLogNeverHoldsUpSandboxes) {
  GPUBOX_REQUIRE_ROOT();
  TempDir dir;
  const std::string fifo = dir.path() + "/stderr";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0) << std::strerror(errno);
  const int reader = ::open(fifo.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  ASSERT_GE(reader, 0) << std::strerror(errno);
  struct CloseReader {
    int fd;
    ~CloseReader() { ::close(fd); }
  } closeReader{reader};
  ASSERT_GE(::fcntl(reader, F_SETPIPE_SZ, 4096), 0) << std::strerror(errno);
  HelperOptions ho;
  ho.wrapper = {"/bin/sh", "-c", "exec \"$@\" 2>" + fifo, "sh"};
  HelperProcess h(ho);
  constexpr int kRuns = 120;  // each record is about 100 bytes
  for (int i = 0; i < kRuns; ++i) {
    RunOptions o;
    if (i % 2) o.asUid = kNobodyUid;
    o.timeout = 20s;
    auto r = h.cli({"run", "--", "true"}, o);
    ASSERT_EQ(r.exitCode, 0) << "run " << i << " (uid " << (i % 2 ? kNobodyUid : 0)
                             << ") with the helper's stderr unread: " << r.describe();
  }
  // A session's start and end are logged too, the same way.
  for (uid_t uid : {0u, kNobodyUid}) {
    RunOptions o;
    o.asUid = uid;
    o.timeout = 20s;
    const std::string name = "stalled-log-" + std::to_string(uid);
    auto made = h.cli({"session", "create", "--name", name}, o);
    ASSERT_EQ(made.exitCode, 0) << made.describe();
    auto removed = h.cli({"session", "rm", name}, o);
    ASSERT_EQ(removed.exitCode, 0) << removed.describe();
  }
  EXPECT_TRUE(h.alive());
  // Now read it: every record comes.
  std::string text;
  int records = 0;
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while ((records < kRuns + 2 ||
          text.find("session stalled-log-65534 of uid 65534 ended") == std::string::npos) &&
         std::chrono::steady_clock::now() < deadline) {
    char buf[4096];
    const ssize_t n = ::read(reader, buf, sizeof buf);
    if (n > 0) {
      text.append(buf, static_cast<size_t>(n));
      records = 0;
      for (size_t at = 0; (at = text.find("sandbox uid=", at)) != std::string::npos; ++at)
        ++records;
    } else {
      std::this_thread::sleep_for(10ms);
    }
  }
  EXPECT_EQ(records, kRuns + 2) << text;  // the sessions' records too
  EXPECT_THAT(text, HasSubstr("session stalled-log-0 created by uid 0"));
  EXPECT_THAT(text, HasSubstr("session stalled-log-65534 of uid 65534 ended"));
  EXPECT_THAT(text, HasSubstr("sandbox uid=65534 "));
  EXPECT_THAT(text, Not(HasSubstr(" dropped: the journal")));
}

}  // namespace
}  // namespace gpubox::itest
