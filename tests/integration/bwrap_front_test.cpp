// gpubox-bwrap, bubblewrap's command line, against a real helper: what the
// sandboxed command sees for each option, as root and as uid 65534, and
// what is refused (exit 1, a "bwrap: " line) rather than dropped.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "fake_driver.hpp"
#include "harness.hpp"

namespace gpubox::itest {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;
using ::testing::UnorderedElementsAre;
using namespace std::chrono_literals;

// The host read-only, the sandbox's own /proc and /dev, no network (which
// uid 65534 may not share without a policy rule).
const std::vector<std::string> kHostRo = {"--ro-bind", "/",     "/",    "--proc",
                                          "/proc",     "--dev", "/dev", "--unshare-net"};

std::vector<std::string> operator+(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// Whether someone holds a lock on PATH that a write lock would conflict with.
bool lockedByOthers(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return false;
  struct flock l = {};
  l.l_type = F_WRLCK;
  l.l_whence = SEEK_SET;
  const bool held = ::fcntl(fd, F_GETLK, &l) == 0 && l.l_type != F_UNLCK;
  ::close(fd);
  return held;
}

class BwrapFront : public CallerTest {
 protected:
  void SetUp() override {
    CallerTest::SetUp();
    if (IsSkipped()) return;
    // A directory of the caller's, in a 0755 root-owned one.
    base_ = std::make_unique<TempDir>(0755);
    mine_ = *base_ / "mine";
    makeDir(mine_, 0755, caller(), caller());
    writeFile(mine_ + "/hello", "hello from the host\n", 0644, caller(), caller());
  }
  void TearDown() override {
    base_.reset();
    CallerTest::TearDown();
  }
  RunResult front(const std::vector<std::string>& args, RunOptions opts = {}) {
    return helper().bwrap(args, as(std::move(opts)));
  }
  RunResult script(const std::string& text, RunOptions opts = {}) {
    opts.env.push_back("MINE=" + mine_);
    return helper().bwrapScript(text, as(std::move(opts)));
  }
  std::unique_ptr<TempDir> base_;
  std::string mine_;
};

TEST_P(BwrapFront, EmptyRootShowsOnlyWhatWasAsked) {
  auto r = front({"--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin", "--symlink",
                  "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64", "--proc", "/proc",
                  "--unshare-net", "--", "/bin/sh", "-c", "ls -A /"});
  ASSERT_EQ(r.exitCode, 0) << r.describe();
  EXPECT_THAT(lines(r.out), UnorderedElementsAre("bin", "lib", "lib64", "proc", "usr"));
}

TEST_P(BwrapFront, FilesDataAndPermissionsAsBwrapMakesThem) {
  auto r = script(R"("$BWRAP" --ro-bind / / --proc /proc --unshare-net --tmpfs /tmp \
      --file 3 /tmp/file --perms 0640 --file 4 /tmp/file640 \
      --bind-data 5 /tmp/data --ro-bind-data 6 /tmp/rodata \
      --perms 0604 --dir /tmp/p/q --perms 1777 --dir /tmp/sticky --dir /tmp/c --chmod 0700 /tmp/c \
      --size 1048576 --perms 01777 --tmpfs /tmp/small --mqueue /tmp/mq -- sh -c '
        stat -c "%a %n" /tmp/file /tmp/file640 /tmp/data /tmp/rodata /tmp/p /tmp/p/q /tmp/sticky /tmp/c /tmp/small
        cat /tmp/file /tmp/data /tmp/rodata
        echo more >> /tmp/data && echo data-writable
        echo more >> /tmp/rodata 2>/dev/null || echo rodata-refused
        df --output=size --block-size=1K /tmp/small | tail -1
        grep -c " /tmp/mq .* mqueue " /proc/self/mountinfo' \
      3<<<"file" 4<<<"file640" 5<<<"data" 6<<<"rodata")");
  ASSERT_EQ(r.exitCode, 0) << r.describe();
  EXPECT_THAT(r.out,
              HasSubstr("666 /tmp/file\n640 /tmp/file640\n600 /tmp/data\n600 /tmp/rodata\n"));
  // Parents of a step with --perms let in whoever the step lets in.
  EXPECT_THAT(
      r.out,
      HasSubstr("705 /tmp/p\n604 /tmp/p/q\n1777 /tmp/sticky\n700 /tmp/c\n1777 /tmp/small\n"));
  EXPECT_THAT(r.out, HasSubstr("file\ndata\nrodata\n"));
  EXPECT_THAT(r.out, HasSubstr("data-writable\nrodata-refused\n"));
  EXPECT_THAT(r.out, HasSubstr(" 1024\n")) << "--size 1 MiB";
  EXPECT_THAT(r.out, HasSubstr("\n1\n")) << "the mqueue mount";
}

TEST_P(BwrapFront, TryFormsSkipMissingSourcesOthersFailAsBwrap) {
  auto r = front(kHostRo + std::vector<std::string>{"--tmpfs", "/mnt", "--ro-bind-try",
                                                    "/no/such/source", "/mnt/a", "--bind-try",
                                                    mine_, "/mnt/b", "--", "sh", "-c",
                                                    "ls /mnt; cat /mnt/b/hello"});
  ASSERT_EQ(r.exitCode, 0) << r.describe();
  EXPECT_EQ(r.out, "b\nhello from the host\n");

  auto missing =
      front(kHostRo + std::vector<std::string>{"--bind", "/no/such/source", "/mnt/a", "true"});
  EXPECT_EQ(missing.exitCode, 1) << missing.describe();
  EXPECT_THAT(missing.err, StartsWith("bwrap: Can't find source path /no/such/source"));
}

TEST_P(BwrapFront, BindFdBindsTheDirectoryItHoldsOpen) {
  auto r = script(R"("$BWRAP" --ro-bind / / --unshare-net --tmpfs /mnt --ro-bind-fd 7 /mnt/held \
      -- sh -c 'cat /mnt/held/hello; touch /mnt/held/new 2>/dev/null || echo read-only' 7<"$MINE")");
  ASSERT_EQ(r.exitCode, 0) << r.describe();
  EXPECT_EQ(r.out, "hello from the host\nread-only\n");
  // The directory held open, not what its old path names now (the helper
  // refuses a path that no longer leads to it: ClientApi's pinned bind).
  auto moved = script(R"(exec 7<"$MINE"; mv "$MINE" "$MINE.moved"; mkdir "$MINE";
      "$BWRAP" --ro-bind / / --unshare-net --tmpfs /mnt --bind-fd 7 /mnt/held ls /mnt/held)");
  EXPECT_EQ(moved.out, "hello\n") << moved.describe();
}

TEST_P(BwrapFront, ProcessOptionsAndBwrapsWorkingDirectory) {
  auto cleared = front(kHostRo + std::vector<std::string>{"--clearenv", "/usr/bin/env"},
                       {.env = {"FOO=wrong"}});
  ASSERT_EQ(cleared.exitCode, 0) << cleared.describe();
  // As bwrap: the caller's directory when the sandbox shows it, and PWD.
  EXPECT_EQ(cleared.out, "PWD=" + helper().workDir() + "\n");

  auto edited =
      front(kHostRo + std::vector<std::string>{"--setenv", "FOO", "bar", "--unsetenv", "BAR",
                                               "--argv0", "shown", "--chdir", "/usr", "--", "sh",
                                               "-c", "echo $0 $FOO${BAR:-unset} $PWD; pwd"},
            {.env = {"FOO=wrong", "BAR=baz", "GPUBOX_GPU=none"}});
  ASSERT_EQ(edited.exitCode, 0) << edited.describe();
  EXPECT_EQ(edited.out, "shown barunset /usr\n/usr\n");

  // Without the caller's directory inside: $HOME (the harness sets HOME=/).
  auto home = front({"--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin", "--symlink",
                     "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64", "--unshare-net", "--",
                     "/bin/sh", "-c", "pwd; env | grep -c GPUBOX_GPU"},
                    {.env = {"GPUBOX_GPU=none"}});
  EXPECT_EQ(home.out, "/\n0\n") << home.describe();
}

TEST_P(BwrapFront, ExitStatusAndStartFailuresAsBwrap) {
  EXPECT_EQ(front(kHostRo + std::vector<std::string>{"sh", "-c", "exit 3"}).exitCode, 3);
  auto killed = front(kHostRo + std::vector<std::string>{"sh", "-c", "kill -TERM $$"});
  EXPECT_EQ(killed.exitCode, 128 + SIGTERM) << killed.describe();
  auto notFound = front(kHostRo + std::vector<std::string>{"no-such-command-here"});
  EXPECT_EQ(notFound.exitCode, 1);
  EXPECT_EQ(notFound.err, "bwrap: execvp no-such-command-here: No such file or directory\n");
  auto badDir = front(kHostRo + std::vector<std::string>{"--chdir", "/no/such/dir", "true"});
  EXPECT_EQ(badDir.exitCode, 1);
  EXPECT_THAT(badDir.err, StartsWith("bwrap: Can't chdir to /no/such/dir"));
  // Options that end the list: the command's own words are not read.
  auto dashed = front(kHostRo + std::vector<std::string>{"--", "--dev-bind", "/dev", "/dev", "sh"});
  EXPECT_EQ(dashed.exitCode, 1) << dashed.describe();
  EXPECT_THAT(dashed.err, HasSubstr("execvp --dev-bind"));
}

// --uid / --gid as bwrap with a user namespace: the ids inside are labels
// the sandbox's user namespace maps onto the caller, who it still is on the
// host, with no capability even as uid 0 inside.
TEST_P(BwrapFront, UidAndGidAreLabelsMappedOntoTheCaller) {
  if (expectedUserNamespace() != "new") GTEST_SKIP() << "sandboxes get no user namespace here";
  const gid_t callerGid = caller() == 0 ? ::getgid() : kNobodyGid;
  auto r = front(
      kHostRo + std::vector<std::string>{"--unshare-user", "--uid", "1234", "--gid", "5678",
                                         "--bind", mine_, mine_, "--", "sh", "-c",
                                         "id -u; id -g; cat /proc/self/uid_map; touch \"$0/made\"; "
                                         "stat -c '%u %g' \"$0/made\"",
                                         mine_});
  ASSERT_EQ(r.exitCode, 0) << r.describe();
  const std::vector<std::string> seen = lines(r.out);
  ASSERT_EQ(seen.size(), 4u) << r.describe();
  EXPECT_EQ(seen[0], "1234");
  EXPECT_EQ(seen[1], "5678");
  EXPECT_THAT(seen[2], ::testing::MatchesRegex(" *1234 +" + std::to_string(caller()) + " +1"));
  EXPECT_EQ(seen[3], "1234 5678");
  // On the host the file is the caller's.
  struct stat st;
  ASSERT_EQ(::stat((mine_ + "/made").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, caller());
  EXPECT_EQ(st.st_gid, callerGid);

  // Only --uid: the gid stays the caller's own.
  auto uidOnly = front(kHostRo + std::vector<std::string>{"--unshare-user", "--uid", "42", "sh",
                                                          "-c", "id -u; id -g"});
  ASSERT_EQ(uidOnly.exitCode, 0) << uidOnly.describe();
  EXPECT_EQ(uidOnly.out, "42\n" + std::to_string(callerGid) + "\n");

  // uid 0 inside: no capability, and nothing the caller could not read.
  const std::string secret = *base_ / "secret";
  writeFile(secret, "root only\n", 0600, 0, 0);
  auto zero = front(
      kHostRo + std::vector<std::string>{"--unshare-user", "--uid", "0", "--gid", "0", "sh", "-c",
                                         "id -u; grep CapEff /proc/self/status; cat \"$0\" || echo "
                                         "unreadable",
                                         secret});
  ASSERT_EQ(zero.exitCode, 0) << zero.describe();
  EXPECT_THAT(zero.out, StartsWith("0\nCapEff:\t0000000000000000\n"));
  if (caller() != 0) {
    EXPECT_THAT(zero.out, HasSubstr("unreadable\n")) << zero.describe();
  }
}

// Without a user namespace (--user-namespace never) another id would be
// another user: refused with the helper's reason, never quietly ignored.
TEST_P(BwrapFront, OtherIdsWithoutAUserNamespaceAreRefused) {
  if (expectedUserNamespace() != "host") GTEST_SKIP() << "sandboxes get a user namespace here";
  const gid_t callerGid = caller() == 0 ? ::getgid() : kNobodyGid;
  auto refused =
      front(kHostRo + std::vector<std::string>{"--unshare-user", "--uid", "1234", "id", "-u"});
  EXPECT_EQ(refused.exitCode, 1) << refused.describe();
  EXPECT_THAT(refused.err, StartsWith("bwrap: --uid 1234: refused: sandboxes of this helper get "
                                      "no user namespace of their own"));
  EXPECT_EQ(refused.out, "");
  auto gid = front(kHostRo + std::vector<std::string>{"--unshare-user", "--gid", "5678", "true"});
  EXPECT_EQ(gid.exitCode, 1) << gid.describe();
  EXPECT_THAT(gid.err, StartsWith("bwrap: --gid 5678: refused"));

  // The caller's own ids are what it gets anyway.
  auto own = front(kHostRo + std::vector<std::string>{
                                 "--unshare-user", "--uid", std::to_string(caller()), "--gid",
                                 std::to_string(callerGid), "sh", "-c", "id -u; id -g"});
  ASSERT_EQ(own.exitCode, 0) << own.describe();
  EXPECT_EQ(own.out, std::to_string(caller()) + "\n" + std::to_string(callerGid) + "\n");
}

TEST_P(BwrapFront, InfoAndJsonStatusNameTheSandboxAndItsNamespaces) {
  auto r = script(R"(cd "$MINE" && "$BWRAP" --ro-bind / / --proc /proc --unshare-all \
      --info-fd 3 --json-status-fd 4 -- sh -c 'stat -L -c "%n %i" /proc/self/ns/mnt /proc/self/ns/pid /proc/self/ns/cgroup; exit 42' \
      3>info.json 4>status.json; echo "rc=$?"; cat info.json status.json)");
  EXPECT_THAT(r.out, HasSubstr("rc=42")) << r.describe();
  std::string mnt, pid, cgroup;
  for (const std::string& l : lines(r.out)) {
    if (l.rfind("/proc/self/ns/mnt ", 0) == 0) mnt = l.substr(18);
    if (l.rfind("/proc/self/ns/pid ", 0) == 0) pid = l.substr(18);
    if (l.rfind("/proc/self/ns/cgroup ", 0) == 0) cgroup = l.substr(21);
  }
  ASSERT_FALSE(mnt.empty()) << r.describe();
  const std::string info = readFile(mine_ + "/info.json");
  nlohmann::json infoDoc = parseJson(info);
  ASSERT_TRUE(infoDoc.is_object()) << info;
  EXPECT_GT(infoDoc["child-pid"].get<int>(), 1);
  EXPECT_EQ(std::to_string(infoDoc["mnt-namespace"].get<uint64_t>()), mnt);
  EXPECT_EQ(std::to_string(infoDoc["pid-namespace"].get<uint64_t>()), pid);
  ASSERT_TRUE(infoDoc.contains("cgroup-namespace")) << info;
  EXPECT_EQ(std::to_string(infoDoc["cgroup-namespace"].get<uint64_t>()), cgroup);
  const std::vector<std::string> status = lines(readFile(mine_ + "/status.json"));
  ASSERT_EQ(status.size(), 2u) << readFile(mine_ + "/status.json");
  EXPECT_EQ(parseJson(status[0])["child-pid"], infoDoc["child-pid"]);
  EXPECT_EQ(status[1], "{ \"exit-code\": 42 }");

  // A command that never ran has no exit code to report.
  auto failed = script(R"(cd "$MINE" && "$BWRAP" --ro-bind / / --unshare-net --json-status-fd 4 / \
      4>status2.json; echo "rc=$?")");
  EXPECT_THAT(failed.out, HasSubstr("rc=1"));
  EXPECT_THAT(readFile(mine_ + "/status2.json"), Not(HasSubstr("exit-code")));
  EXPECT_THAT(readFile(mine_ + "/status2.json"), HasSubstr("child-pid"));
}

TEST_P(BwrapFront, BlockFdHoldsTheCommandUntilReleased) {
  auto r = script(R"(cd "$MINE" && { sleep 0.5; touch released; echo go; } | \
      "$BWRAP" --ro-bind / / --unshare-net --block-fd 0 -- sh -c \
      'test -e "$MINE/released" && echo started-after-release')");
  ASSERT_EQ(r.exitCode, 0) << r.describe();
  EXPECT_EQ(r.out, "started-after-release\n");
}

TEST_P(BwrapFront, CallerSeccompComesOnTopOfGpuboxsFilter) {
  // ld [nr]; jeq uname(63) ? ERRNO(1) : ALLOW. On top of it, gpubox's own
  // filter still refuses mount(2) and new user namespaces.
  auto r = script(
      R"(printf '\x20\0\0\0\0\0\0\0\x15\0\0\x01\x3f\0\0\0\x06\0\0\0\x01\0\x05\0\x06\0\0\0\0\0\xff\x7f' >"$MINE/f.bpf"
      "$BWRAP" --ro-bind / / --unshare-net --tmpfs /tmp --add-seccomp-fd 3 -- sh -c \
        'uname 2>/dev/null || echo uname-refused; unshare -U true 2>/dev/null || echo userns-refused' \
        3<"$MINE/f.bpf"
      head -c 12 "$MINE/f.bpf" | "$BWRAP" --ro-bind / / --unshare-net --seccomp 0 true; echo "rc=$?")");
  EXPECT_THAT(r.out, HasSubstr("uname-refused\nuserns-refused\nrc=1")) << r.describe();
  EXPECT_THAT(r.err, HasSubstr("bwrap: Invalid seccomp data, must be multiple of 8"));
}

TEST_P(BwrapFront, LockFileIsHeldWhileTheSandboxRuns) {
  const std::string lock = mine_ + "/lock";
  writeFile(lock, "", 0644, caller(), caller());
  auto p = std::make_unique<Process>(
      std::vector<std::string>{bwrapFrontPath(), "--ro-bind", "/", "/", "--unshare-net",
                               "--lock-file", lock, "sleep", "30"},
      as({.env = {"GPUBOX_SOCKET=" + helper().socketPath()}, .cwd = helper().workDir()}));
  EXPECT_TRUE(pollUntil([&] { return lockedByOthers(lock); }, 10s));
  p->kill(SIGKILL);
  p->finish();
  EXPECT_TRUE(pollUntil([&] { return !lockedByOthers(lock); }, 10s))
      << "the sandbox must end with gpubox-bwrap";
}

TEST_P(BwrapFront, DieWithParentEndsTheSandboxWithTheParent) {
  const std::string lock = mine_ + "/lock";
  writeFile(lock, "", 0644, caller(), caller());
  // bash stays the parent (a second command keeps it from exec'ing).
  auto parent = std::make_unique<Process>(
      std::vector<std::string>{"/bin/bash", "-c",
                               "\"$BWRAP\" --die-with-parent --ro-bind / / --unshare-net "
                               "--lock-file \"$LOCK\" sleep 60; true"},
      as({.env = {"GPUBOX_SOCKET=" + helper().socketPath(), "BWRAP=" + bwrapFrontPath(),
                  "LOCK=" + lock},
          .cwd = helper().workDir()}));
  ASSERT_TRUE(pollUntil([&] { return lockedByOthers(lock); }, 10s));
  parent->kill(SIGKILL);
  parent->finish();
  EXPECT_TRUE(pollUntil([&] { return !lockedByOthers(lock); }, 10s));
}

TEST_P(BwrapFront, SharingTheHostNetworkIsThePolicysCall) {
  auto r = front({"--ro-bind", "/", "/", "--proc", "/proc", "--", "cat", "/proc/net/dev"});
  if (caller() == 0) {
    // Root may: the host's interfaces, not only lo.
    ASSERT_EQ(r.exitCode, 0) << r.describe();
    EXPECT_EQ(r.out, readFile("/proc/net/dev"));
  } else {
    EXPECT_EQ(r.exitCode, 1) << r.describe();
    EXPECT_THAT(r.err, StartsWith("bwrap: without --unshare-net the sandbox shares the host's"));
    EXPECT_THAT(r.err, HasSubstr("host_network"));
    EXPECT_THAT(r.err, HasSubstr("GPUBOX_BWRAP_NO_HOST_NETWORK=1"));
  }
  auto isolated = front({"--ro-bind", "/", "/", "--proc", "/proc", "--", "sh", "-c",
                         "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '"},
                        {.env = {"GPUBOX_BWRAP_NO_HOST_NETWORK=1"}});
  ASSERT_EQ(isolated.exitCode, 0) << isolated.describe();
  EXPECT_EQ(isolated.out, "lo\n");
}

TEST_P(BwrapFront, WhatCannotBeHonouredFailsAsBwrapFails) {
  auto check = [&](const std::vector<std::string>& args, const std::string& message) {
    auto r = front(kHostRo + args);
    EXPECT_EQ(r.exitCode, 1) << r.describe();
    EXPECT_THAT(r.err, StartsWith("bwrap: " + message)) << r.describe();
  };
  check({"--hostname", "box", "true"}, "Specifying --hostname requires --unshare-uts");
  check({"--as-pid-1", "true"}, "Specifying --as-pid-1 requires --unshare-pid");
  check({"--cap-add", "CAP_SYS_ADMIN", "true"}, "--cap-add CAP_SYS_ADMIN: gpubox sandboxes run");
  check({"--userns", "3", "true"}, "--userns is not supported");
  check({"--perms", "0640", "--bind", "/", "/", "true"},
        "--perms must be followed by an option that creates a file");
  auto named = front(kHostRo + std::vector<std::string>{"--unshare-uts", "--hostname", "box",
                                                        "--level-prefix", "hostname"});
  EXPECT_EQ(named.out, "box\n") << named.describe();
  auto prefixed = front({"--level-prefix", "--no-such-option"});
  EXPECT_EQ(prefixed.err, "<3>bwrap: Unknown option --no-such-option\n");
}

// Whether a host process runs exactly ARGV (its /proc/PID/cmdline).
bool hostProcessRuns(const std::vector<std::string>& argv) {
  std::string want;
  for (const std::string& a : argv) want += a + '\0';
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(entry.path() / "cmdline", std::ios::binary);
    const std::string cmdline((std::istreambuf_iterator<char>(in)),
                              std::istreambuf_iterator<char>());
    if (cmdline == want) return true;
  }
  return false;
}

TEST_P(BwrapFront, AsPid1MakesTheCommandPid1OfItsOwnNamespace) {
  const std::vector<std::string> pid1 = {"--unshare-pid", "--as-pid-1"};
  auto r = front(kHostRo + pid1 +
                 std::vector<std::string>{"--", "sh", "-c", "echo $$; exec readlink /proc/self"});
  ASSERT_EQ(r.exitCode, 0) << r.describe();
  EXPECT_EQ(r.out, "1\n1\n");

  // Every --proc shows the command's namespace.
  auto two =
      front(kHostRo + pid1 +
            std::vector<std::string>{"--tmpfs", "/tmp", "--proc", "/tmp/proc2", "--", "sh", "-c",
                                     "cat /proc/1/comm; exec readlink /tmp/proc2/self"});
  ASSERT_EQ(two.exitCode, 0) << two.describe();
  EXPECT_EQ(two.out, "sh\n1\n");

  // Without it the sandbox's pid 1 is gpubox's init; /proc agrees all the same.
  auto plain = front(kHostRo + std::vector<std::string>{"--unshare-pid", "--", "sh", "-c",
                                                        "echo $$; exec readlink /proc/self"});
  ASSERT_EQ(plain.exitCode, 0) << plain.describe();
  const std::vector<std::string> seen = lines(plain.out);
  ASSERT_EQ(seen.size(), 2u) << plain.describe();
  EXPECT_NE(seen[0], "1");
  EXPECT_EQ(seen[0], seen[1]);

  // The command's exit status, and pid 1's signal rule: a signal it has no
  // handler for is ignored.
  EXPECT_EQ(front(kHostRo + pid1 + std::vector<std::string>{"sh", "-c", "exit 7"}).exitCode, 7);
  auto term = front(kHostRo + pid1 +
                    std::vector<std::string>{"sh", "-c", "kill -TERM $$; echo still here"});
  EXPECT_EQ(term.exitCode, 0) << term.describe();
  EXPECT_EQ(term.out, "still here\n");

  // A command that cannot start fails as any other does.
  auto notFound = front(kHostRo + pid1 + std::vector<std::string>{"no-such-command-here"});
  EXPECT_EQ(notFound.exitCode, 1);
  EXPECT_EQ(notFound.err, "bwrap: execvp no-such-command-here: No such file or directory\n");
  auto badDir = front(kHostRo + pid1 + std::vector<std::string>{"--chdir", "/no/such/dir", "true"});
  EXPECT_EQ(badDir.exitCode, 1);
  EXPECT_THAT(badDir.err, StartsWith("bwrap: Can't chdir to /no/such/dir"));

  // In the sandbox's cgroups, seen from its cgroup namespace, as any command.
  const std::vector<std::string> cgroup = {"cat", "/proc/self/cgroup"};
  auto inPlain = front(kHostRo + std::vector<std::string>{"--unshare-pid"} + cgroup);
  auto inPid1 = front(kHostRo + pid1 + cgroup);
  ASSERT_EQ(inPid1.exitCode, 0) << inPid1.describe();
  EXPECT_EQ(inPid1.out, inPlain.out);

  // No weaker than any other command: no capability, no_new_privs, seccomp.
  auto status =
      front(kHostRo + pid1 +
            std::vector<std::string>{
                "grep", "-E", "^(CapPrm|CapEff|CapBnd|NoNewPrivs|Seccomp):", "/proc/self/status"});
  ASSERT_EQ(status.exitCode, 0) << status.describe();
  EXPECT_EQ(status.out,
            "CapPrm:\t0000000000000000\nCapEff:\t0000000000000000\nCapBnd:\t0000000000000000\n"
            "NoNewPrivs:\t1\nSeccomp:\t2\n");
}

TEST_P(BwrapFront, AsPid1TakesItsChildrenWithIt) {
  // A child left behind (immune to SIGTERM and SIGHUP) is gone by the time
  // the command's end is reported: the kernel kills a pid namespace's
  // processes when its pid 1 exits, and reaps them before that exit.
  const std::vector<std::string> orphan = {"sleep", "6127"};
  auto r = front(kHostRo +
                 std::vector<std::string>{"--unshare-pid", "--as-pid-1", "--", "sh", "-c",
                                          "trap '' TERM HUP; sleep 6127 & echo started; exit 5"});
  EXPECT_EQ(r.exitCode, 5) << r.describe();
  EXPECT_EQ(r.out, "started\n");
  EXPECT_FALSE(hostProcessRuns(orphan));
}

GPUBOX_INSTANTIATE_CALLERS(BwrapFront);

// GPUs through the front: --gpu, $GPUBOX_GPU, and the policy's default_gpus,
// on a fake driver tree (mknod: root only).
class BwrapFrontGpu : public ::testing::Test {
 protected:
  void SetUp() override {
    requireRoot();
    if (IsSkipped()) return;
    if (!testing::FakeDriverRoot::canMknod()) GTEST_SKIP() << "cannot mknod fake NVIDIA nodes";
    fake_ = std::make_unique<testing::FakeDriverRoot>(testing::FakeDriverRoot::Options{.gpus = 2});
    config_ = std::make_unique<TempDir>(0755);
    writeFile(*config_ / "helper.toml", R"([[allow]]
users = [65534]
gpus = ["all"]
max_gpus = 2
default_gpus = [1]
)",
              0644);
    helper_ = std::make_unique<HelperProcess>(HelperOptions{
        .extraArgs = {"--config", *config_ / "helper.toml", "--driver-root", fake_->root()}});
  }
  RunResult nvidiaNodes(std::vector<std::string> env, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"--ro-bind", "/",      "/",     "--dev",
                                     "/dev",      "--proc", "/proc", "--unshare-net"};
    args.insert(args.end(), extra.begin(), extra.end());
    args.insert(args.end(),
                {"sh", "-c", "ls /dev | grep '^nvidia[0-9]'; env | grep -c GPUBOX_GPU"});
    return helper_->bwrap(args, {.asUid = kNobodyUid, .env = std::move(env)});
  }
  std::unique_ptr<testing::FakeDriverRoot> fake_;
  std::unique_ptr<TempDir> config_;
  std::unique_ptr<HelperProcess> helper_;
};

TEST_F(BwrapFrontGpu, OptionEnvironmentAndPolicyDefault) {
  EXPECT_EQ(nvidiaNodes({}).out, "nvidia1\n0\n") << "the rule's default_gpus";
  EXPECT_EQ(nvidiaNodes({"GPUBOX_GPU=0"}).out, "nvidia0\n0\n") << "not passed in";
  EXPECT_EQ(nvidiaNodes({"GPUBOX_GPU=all"}, {"--gpu", "0"}).out, "nvidia0\n0\n");
  EXPECT_EQ(nvidiaNodes({"GPUBOX_GPU=all"}).out, "nvidia0\nnvidia1\n0\n");
  EXPECT_EQ(nvidiaNodes({"GPUBOX_GPU=none"}).out, "0\n") << "none is none, default or not";
  // Root has no rule here: fail-closed, with the helper's reason.
  auto root = helper_->bwrap(
      {"--ro-bind", "/", "/", "--dev", "/dev", "--unshare-net", "--gpu", "0", "true"});
  EXPECT_EQ(root.exitCode, 1) << root.describe();
  EXPECT_THAT(root.err, StartsWith("bwrap: "));
}

}  // namespace
}  // namespace gpubox::itest
