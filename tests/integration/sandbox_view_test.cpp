// What a sandboxed process sees of itself: identity, capabilities,
// namespaces (pid, uts, net), environment and working directory. Each runs
// as root and as uid 65534.
#include <sys/stat.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <set>
#include <string>

#include "harness.hpp"

namespace gpubox::itest {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class SandboxView : public CallerTest {};

TEST_P(SandboxView, RunsAsTheCallersUidAndGid) {
  auto r =
      runAs({"--", "sh", "-c", "id -u; id -g; id -G; grep -E '^(Uid|Gid):' /proc/self/status"});
  ASSERT_EQ(r.exitCode, 0) << r.describe();
  auto l = lines(r.out);
  ASSERT_GE(l.size(), 5u) << r.describe();
  std::string id = std::to_string(caller());
  EXPECT_EQ(l[0], id);
  EXPECT_EQ(l[1], id);
  EXPECT_EQ(l[2], id) << "supplementary groups should be exactly the caller's (none here)";
  std::string all = id + "\t" + id + "\t" + id + "\t" + id;
  EXPECT_EQ(statusField(r.out, "Uid"), all) << r.out;
  EXPECT_EQ(statusField(r.out, "Gid"), all) << r.out;
}

TEST_P(SandboxView, HasNoCapabilitiesAndNoNewPrivs) {
  auto r = runAs({"--", "cat", "/proc/self/status"});
  ASSERT_EQ(r.exitCode, 0) << r.describe();
  for (const char* cap : {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"})
    EXPECT_EQ(statusField(r.out, cap), "0000000000000000") << cap << "\n" << r.out;
  EXPECT_EQ(statusField(r.out, "NoNewPrivs"), "1") << r.out;
}

TEST_P(SandboxView, OwnPidNamespaceWithCommandAsPid2UnderInit) {
  // The loop runs inside the shell itself (no fork), so the sandbox must
  // hold exactly pid 1 (the init) and pid 2 (this shell).
  auto r = runAs({"--", "sh", "-c",
                  "echo self=$$ parent=$PPID; for p in /proc/[0-9]*; do echo pid=${p#/proc/}; "
                  "done"});
  ASSERT_EQ(r.exitCode, 0) << r.describe();
  std::set<std::string> pids;
  for (const auto& l : lines(r.out))
    if (l.rfind("pid=", 0) == 0) pids.insert(l.substr(4));
  EXPECT_THAT(r.out, HasSubstr("self=2 parent=1")) << r.describe();
  EXPECT_EQ(pids, (std::set<std::string>{"1", "2"})) << r.describe();
}

// Pid 1 is a clone of the helper: nothing of the helper's command line
// (socket path, flags) or environment may be read from it.
TEST_P(SandboxView, InitShowsANeutralNameAndNothingOfTheHelper) {
  auto r = runAs({"--", "sh", "-c", "tr '\\0' '\\n' < /proc/1/cmdline; echo; cat /proc/1/comm"});
  ASSERT_EQ(r.exitCode, 0) << r.describe();
  auto l = lines(r.out);
  ASSERT_FALSE(l.empty()) << r.describe();
  EXPECT_EQ(l[0], "gpubox-init") << r.describe();
  EXPECT_THAT(r.out, Not(HasSubstr("--listen"))) << r.describe();
  EXPECT_THAT(r.out, Not(HasSubstr(helper().socketPath()))) << r.describe();
  EXPECT_THAT(r.out, Not(HasSubstr("gpubox-helper"))) << r.describe();
  EXPECT_EQ(l.back(), "gpubox-init") << r.describe();
}

// The default plan shows the host's / and so the caller's home: its
// credentials are hidden (empty read-only directories and files), the rest
// of the home is not, and the status lists what was hidden.
TEST_P(SandboxView, DefaultPlanHidesTheCallersSecrets) {
  const std::string home = helper().workDir() + "/home";
  const uid_t owner = caller();
  makeDir(home, 0755, owner, owner);
  makeDir(home + "/.ssh", 0700, owner, owner);
  writeFile(home + "/.ssh/id_ed25519", "PRIVATE KEY\n", 0600, owner, owner);
  makeDir(home + "/.config", 0755, owner, owner);
  makeDir(home + "/.config/gcloud", 0700, owner, owner);
  writeFile(home + "/.config/gcloud/credentials.db", "TOKEN\n", 0600, owner, owner);
  writeFile(home + "/.netrc", "machine x password SECRET\n", 0600, owner, owner);
  writeFile(home + "/notes.txt", "visible\n", 0644, owner, owner);
  RunOptions opts = as(
      {.env = {"PATH=/usr/bin:/bin", "HOME=" + home, "LANG=C"}, .replaceEnv = true, .extraFd = 3});
  auto r = run({"--json-status", "3", "--", "sh", "-c",
                "ls -A \"$HOME/.ssh\" \"$HOME/.config/gcloud\"; echo ls-done; "
                "cat \"$HOME/.netrc\"; echo netrc-done; cat \"$HOME/notes.txt\"; "
                "touch \"$HOME/.ssh/new\" 2>/dev/null && echo wrote || echo read-only"},
               opts);
  ASSERT_EQ(r.exitCode, 0) << r.describe();
  EXPECT_THAT(r.out, Not(HasSubstr("id_ed25519"))) << r.describe();
  EXPECT_THAT(r.out, Not(HasSubstr("credentials.db"))) << r.describe();
  EXPECT_THAT(r.out, Not(HasSubstr("SECRET"))) << r.describe();
  EXPECT_THAT(r.out, HasSubstr("ls-done\nnetrc-done\nvisible\nread-only\n")) << r.describe();
  EXPECT_THAT(r.extra, HasSubstr("--hide " + home + "/.ssh")) << r.extra;
  EXPECT_THAT(r.extra, HasSubstr("--hide " + home + "/.netrc")) << r.extra;
  EXPECT_THAT(r.extra, Not(HasSubstr("--hide " + home + "/.aws"))) << "no such path: " << r.extra;
}

TEST_P(SandboxView, PsShowsOnlyTheSandboxesProcesses) {
  auto r = runAs({"--", "ps", "-e", "-o", "pid=,ppid=,comm="});
  ASSERT_EQ(r.exitCode, 0) << r.describe();
  auto l = lines(r.out);
  // init (1), ps itself (2); nothing of the host.
  ASSERT_EQ(l.size(), 2u) << r.describe();
  EXPECT_THAT(l[0], ::testing::MatchesRegex(" *1 +0 .*"));
  EXPECT_THAT(l[1], ::testing::MatchesRegex(" *2 +1 ps"));
}

TEST_P(SandboxView, OwnHostname) {
  auto r = runAs({"--hostname", "gpubox-it-host", "--", "sh", "-c",
                  "hostname; cat /proc/sys/kernel/hostname"});
  ASSERT_EQ(r.exitCode, 0) << r.describe();
  EXPECT_EQ(r.out, "gpubox-it-host\ngpubox-it-host\n");
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  EXPECT_NE(std::string(host), "gpubox-it-host") << "the host's hostname must not change";
}

std::set<std::string> interfaces(const std::string& procNetDev) {
  std::set<std::string> names;
  for (const auto& l : lines(procNetDev)) {
    if (l == "---") break;
    auto colon = l.find(':');
    if (colon == std::string::npos) continue;
    std::string name = l.substr(0, colon);
    name.erase(0, name.find_first_not_of(' '));
    names.insert(name);
  }
  return names;
}

std::string hostNetNs() {
  char buf[128] = {};
  ssize_t n = ::readlink("/proc/self/ns/net", buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
}

TEST_P(SandboxView, DefaultNetworkIsOnlyLoopback) {
  auto r = runAs({"--", "sh", "-c", "cat /proc/net/dev; echo ---; readlink /proc/self/ns/net"});
  ASSERT_EQ(r.exitCode, 0) << r.describe();
  EXPECT_EQ(interfaces(r.out), std::set<std::string>{"lo"}) << r.out;
  EXPECT_THAT(r.out, ::testing::Not(HasSubstr(hostNetNs()))) << "shares the host's net namespace";
  // Explicit --net none is the same.
  auto n = runAs({"--net", "none", "--", "cat", "/proc/net/dev"});
  ASSERT_EQ(n.exitCode, 0) << n.describe();
  EXPECT_EQ(interfaces(n.out), std::set<std::string>{"lo"}) << n.out;
}

TEST_P(SandboxView, HostNetworkOnlyForRoot) {
  auto r = runAs({"--net", "host", "--", "sh", "-c",
                  "cat /proc/net/dev; echo ---; readlink /proc/self/ns/net"});
  if (caller() == 0) {
    ASSERT_EQ(r.exitCode, 0) << r.describe();
    EXPECT_EQ(interfaces(r.out), interfaces(readFile("/proc/net/dev"))) << r.out;
    EXPECT_THAT(r.out, HasSubstr(hostNetNs()));
  } else {
    EXPECT_EQ(r.exitCode, 125) << r.describe();
    EXPECT_THAT(r.err, ::testing::StartsWith("gpubox: ")) << r.describe();
    EXPECT_THAT(r.err, HasSubstr("--net host")) << r.describe();
    EXPECT_THAT(r.err, HasSubstr("refused")) << r.describe();
    EXPECT_TRUE(r.out.empty()) << "the command must not have run: " << r.describe();
  }
}

TEST_P(SandboxView, DefaultPlanCwdIsTheSameWritablePath) {
  auto r = runAs({"--", "sh", "-c", "pwd; echo written > made-inside; stat -c %u made-inside"});
  ASSERT_EQ(r.exitCode, 0) << r.describe();
  auto l = lines(r.out);
  ASSERT_EQ(l.size(), 2u) << r.describe();
  EXPECT_EQ(l[0], helper().workDir());
  EXPECT_EQ(l[1], std::to_string(caller()));
  // The write landed on the host, at the same path, owned by the caller.
  std::string made = helper().workDir() + "/made-inside";
  EXPECT_EQ(readFile(made), "written\n");
  struct stat st;
  ASSERT_EQ(::stat(made.c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, caller());
}

TEST_P(SandboxView, DefaultPlanShape) {
  // Host root read-only, a fresh /tmp, /proc, /sys read-only, minimal /dev.
  TempDir hostTmpMarker(0755);
  auto r = runAs({"--", "sh", "-c",
                  "test -e " + hostTmpMarker.path() +
                      " && echo host-tmp-visible; "
                      "touch /tmp/x && echo tmp-writable; "
                      "touch /usr/gpubox-it 2>&1; touch /sys/gpubox-it 2>&1; "
                      "test -e /proc/self/status && echo proc-ok; ls /dev"});
  EXPECT_THAT(r.out, ::testing::Not(HasSubstr("host-tmp-visible"))) << r.describe();
  EXPECT_THAT(r.out, HasSubstr("tmp-writable")) << r.describe();
  EXPECT_THAT(r.out, HasSubstr("proc-ok")) << r.describe();
  EXPECT_THAT(r.out, HasSubstr("touch: cannot touch '/usr/gpubox-it': Read-only file system"))
      << r.describe();
  EXPECT_THAT(r.out, HasSubstr("touch: cannot touch '/sys/gpubox-it': Read-only file system"))
      << r.describe();
  EXPECT_FALSE(pathExists("/usr/gpubox-it"));
  for (const char* node : {"null", "zero", "full", "random", "urandom", "tty", "pts", "shm"})
    EXPECT_THAT(lines(r.out), ::testing::Contains(node)) << r.describe();
  EXPECT_THAT(lines(r.out), ::testing::Not(::testing::Contains("sda"))) << r.describe();
}

TEST_P(SandboxView, Chdir) {
  auto r = runAs({"--chdir", "/usr/bin", "--", "pwd"});
  ASSERT_EQ(r.exitCode, 0) << r.describe();
  EXPECT_EQ(r.out, "/usr/bin\n");
  auto bad = runAs({"--chdir", "/nonexistent-gpubox-it", "--", "pwd"});
  EXPECT_NE(bad.exitCode, 0) << bad.describe();
  EXPECT_THAT(bad.err, HasSubstr("/nonexistent-gpubox-it")) << bad.describe();
}

TEST_P(SandboxView, EnvironmentIsTheClientsByDefault) {
  RunOptions o;
  o.env = {"GPUBOX_IT_A=alpha", "GPUBOX_IT_B=beta"};
  auto r = runAs({"--", "/usr/bin/env"}, o);
  ASSERT_EQ(r.exitCode, 0) << r.describe();
  EXPECT_THAT(lines(r.out), ::testing::Contains("GPUBOX_IT_A=alpha"));
  EXPECT_THAT(lines(r.out), ::testing::Contains("GPUBOX_IT_B=beta"));
  EXPECT_THAT(lines(r.out), ::testing::Contains("HOME=/"));
}

TEST_P(SandboxView, SetenvUnsetenv) {
  RunOptions o;
  o.env = {"GPUBOX_IT_A=alpha", "GPUBOX_IT_B=beta"};
  auto r = runAs({"--setenv", "GPUBOX_IT_C", "with space=and equals", "--setenv", "GPUBOX_IT_A",
                  "changed", "--unsetenv", "GPUBOX_IT_B", "--", "/usr/bin/env"},
                 o);
  ASSERT_EQ(r.exitCode, 0) << r.describe();
  auto l = lines(r.out);
  EXPECT_THAT(l, ::testing::Contains("GPUBOX_IT_A=changed"));
  EXPECT_THAT(l, ::testing::Contains("GPUBOX_IT_C=with space=and equals"));
  for (const auto& e : l) EXPECT_THAT(e, ::testing::Not(::testing::StartsWith("GPUBOX_IT_B=")));
}

TEST_P(SandboxView, Clearenv) {
  RunOptions o;
  o.env = {"GPUBOX_IT_A=alpha"};
  auto r = runAs({"--clearenv", "--setenv", "ONLY", "this", "--", "/usr/bin/env"}, o);
  ASSERT_EQ(r.exitCode, 0) << r.describe();
  EXPECT_EQ(r.out, "ONLY=this\n");
  auto empty = runAs({"--clearenv", "--", "/usr/bin/env"}, o);
  ASSERT_EQ(empty.exitCode, 0) << empty.describe();
  EXPECT_EQ(empty.out, "");
}

TEST_P(SandboxView, OwnIpcNamespace) {
  auto r = runAs({"--", "readlink", "/proc/self/ns/ipc", "/proc/self/ns/uts", "/proc/self/ns/mnt",
                  "/proc/self/ns/user", "/proc/self/ns/cgroup"});
  ASSERT_EQ(r.exitCode, 0) << r.describe();
  for (const char* ns : {"ipc", "uts", "mnt", "user", "cgroup"}) {
    char buf[128] = {};
    std::string p = std::string("/proc/self/ns/") + ns;
    ASSERT_GT(::readlink(p.c_str(), buf, sizeof buf - 1), 0);
    // Without a user namespace of its own (never mode) the sandbox is in the
    // host's, and must say so; every other namespace is always its own.
    if (std::string(ns) == "user" && expectedUserNamespace() == "host")
      EXPECT_THAT(r.out, HasSubstr(buf)) << "never mode, yet not in the host's user namespace";
    else
      EXPECT_THAT(r.out, ::testing::Not(HasSubstr(buf)))
          << "shares the host's " << ns << " namespace";
  }
}

TEST_P(SandboxView, InfoJson) {
  auto r = helper().cli({"info", "--json"}, as());
  ASSERT_EQ(r.exitCode, 0) << r.describe();
  nlohmann::json j = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << r.out;
  EXPECT_TRUE(j["helper_version"].is_string() && !j["helper_version"].get<std::string>().empty());
  EXPECT_TRUE(j["client_version"].is_string());
  EXPECT_EQ(j["helper_version"], j["client_version"]) << "same build";
  ASSERT_TRUE(j["protocol"].is_string());
  EXPECT_THAT(j["protocol"].get<std::string>(), ::testing::MatchesRegex("[0-9]+\\.[0-9]+"));
  ASSERT_TRUE(j["kernel"].is_string());
  EXPECT_THAT(j["kernel"].get<std::string>(), HasSubstr("Linux"));
  ASSERT_TRUE(j["features"].is_array());
  EXPECT_FALSE(j["features"].empty());
  EXPECT_TRUE(j["cgroup_mode"].is_string());
  EXPECT_EQ(j["caller_uid"], caller()) << "the helper's view of who is calling (SO_PEERCRED)";
  EXPECT_EQ(j["caller_gid"], caller());

  auto text = helper().cli({"info"}, as());
  ASSERT_EQ(text.exitCode, 0) << text.describe();
  EXPECT_THAT(text.out, HasSubstr("helper version:"));
  EXPECT_THAT(text.out, HasSubstr("protocol:"));
}

GPUBOX_INSTANTIATE_CALLERS(SandboxView);

}  // namespace
}  // namespace gpubox::itest
