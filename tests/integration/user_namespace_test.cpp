// --user-namespace auto|required|never. In never mode (and in auto where
// the kernel refuses a user namespace) the sandbox is built in the helper's
// own user namespace; the command must still run as the caller with no
// capabilities, no_new_privs and the seccomp filter, unable to undo its
// mounts, with its mounts private to it, and the status must say which mode
// was used. The fallback is driven by a wrapper that makes user namespaces
// fail with EPERM for the helper alone (tests/integration/deny_userns.cpp):
// the host-wide sysctl is left alone.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "harness.hpp"

namespace gpubox::itest {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Not;

// The helper's user namespace, as this (host) process sees it.
std::string hostUserNs() {
  char buf[128] = {};
  if (::readlink("/proc/self/ns/user", buf, sizeof buf - 1) <= 0) return "?";
  return buf;
}

std::string denyUserNsPath() {
  const char* p = std::getenv("GPUBOX_DENY_USERNS");
  if (!p) ADD_FAILURE() << "GPUBOX_DENY_USERNS is not set (meson sets it)";
  return p ? p : "";
}

class NeverMode : public CallerTest {
 protected:
  HelperOptions helperOptions() override { return {.extraArgs = {"--user-namespace", "never"}}; }
};

TEST_P(NeverMode, CommandRunsAsTheCallerWithNothingElse) {
  RunOptions o = as();
  o.extraFd = 3;
  auto r = run({"--json-status", "3", "--", "sh", "-c",
                "id -u; id -g; cat /proc/self/status; echo uid_map:$(cat /proc/self/uid_map); "
                "echo gid_map:$(cat /proc/self/gid_map); echo userns:$(readlink "
                "/proc/self/ns/user)"},
               o);
  ASSERT_EQ(r.exitCode, 0) << r.describe();
  auto l = lines(r.out);
  ASSERT_GE(l.size(), 2u) << r.describe();
  const std::string id = std::to_string(caller());
  EXPECT_EQ(l[0], id) << r.out;
  EXPECT_EQ(l[1], id) << r.out;
  const std::string all = id + "\t" + id + "\t" + id + "\t" + id;
  EXPECT_EQ(statusField(r.out, "Uid"), all) << r.out;
  EXPECT_EQ(statusField(r.out, "Gid"), all) << r.out;
  for (const char* cap : {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"})
    EXPECT_EQ(statusField(r.out, cap), "0000000000000000") << cap << "\n" << r.out;
  EXPECT_EQ(statusField(r.out, "NoNewPrivs"), "1") << r.out;
  EXPECT_EQ(statusField(r.out, "Seccomp"), "2") << r.out;
  // The full identity map: the command is in the initial user namespace
  // (no user namespace of its own), the very one the helper is in.
  EXPECT_THAT(r.out, HasSubstr("uid_map: 0 0 4294967295")) << r.out;
  EXPECT_THAT(r.out, HasSubstr("gid_map: 0 0 4294967295")) << r.out;
  EXPECT_THAT(r.out, HasSubstr("userns:" + hostUserNs())) << r.out;

  nlohmann::json j = parseJson(r.extra);
  ASSERT_FALSE(j.is_discarded()) << r.extra;
  EXPECT_EQ(j["user_namespace"], "host") << j.dump();
  auto ns = j["namespaces"].get<std::vector<std::string>>();
  EXPECT_THAT(ns, Not(Contains("user"))) << j.dump();
  for (const char* n : {"mnt", "pid", "ipc", "uts", "cgroup", "net"})
    EXPECT_THAT(ns, Contains(n)) << j.dump();
}

// Nothing is locked by a user namespace boundary here: what keeps the plan
// in place is that the command has no capability, and the seccomp filter.
// Root without the filter shows the first alone holds.
TEST_P(NeverMode, CommandCannotUndoItsMountsOrMakeNamespaces) {
  const char* probe = std::getenv("GPUBOX_SYSCALL_PROBE");
  ASSERT_NE(probe, nullptr) << "GPUBOX_SYSCALL_PROBE is not set (meson sets it)";
  std::string copy = helper().workDir() + "/syscall_probe";
  writeFile(copy, readFile(probe), 0755);
  const std::vector<std::string> calls = {"mount",       "remount_rw",   "umount_proc",
                                          "unshare_mnt", "unshare_user", "setns"};
  std::vector<std::string> args = {"--", copy};
  args.insert(args.end(), calls.begin(), calls.end());
  auto r = runAs(args);
  ASSERT_EQ(r.exitCode, 0) << r.describe();
  auto seen = parseProbe(r.out);
  for (const auto& call : calls) EXPECT_EQ(seen[call], "EPERM") << call << " in: " << r.out;

  if (caller() != 0) return;
  std::vector<std::string> bare = {"--seccomp", "none",       "--",          copy,
                                   "mount",     "remount_rw", "umount_proc", "unshare_mnt"};
  auto b = runAs(bare);
  ASSERT_EQ(b.exitCode, 0) << b.describe();
  auto without = parseProbe(b.out);
  for (const char* call : {"mount", "remount_rw", "umount_proc", "unshare_mnt"})
    EXPECT_EQ(without[call], "EPERM") << call << " without seccomp, in: " << b.out;
  // And the root it tried to make writable stayed read-only.
  auto w = runAs({"--seccomp", "none", "--", "sh", "-c", "touch /gpubox-never-rw 2>&1; echo $?"});
  EXPECT_THAT(w.out, HasSubstr("Read-only file system")) << w.describe();
  EXPECT_FALSE(pathExists("/gpubox-never-rw"));
}

// The init mounted its new root on /tmp of a copy of the host's mount
// namespace; without a user namespace only making every mount private kept
// that from reaching the host's peers. Nothing in the sandbox may share a
// peer group with anything.
TEST_P(NeverMode, MountsArePrivateToTheSandbox) {
  auto r = runAs({"--", "cat", "/proc/self/mountinfo"});
  ASSERT_EQ(r.exitCode, 0) << r.describe();
  EXPECT_THAT(r.out, Not(HasSubstr("shared:"))) << r.out;
  EXPECT_THAT(r.out, Not(HasSubstr("master:"))) << r.out;
}

// Without a user namespace, a same-uid host process's /proc/PID/root would
// lead out of the sandbox: a plan that leaves the host's procfs visible is
// refused; covering it with the sandbox's own --proc is fine.
// The host's procfs: brought along by a bind of /, it is covered (no
// /proc/PID at all); bound on purpose, the sandbox is refused.
TEST_P(NeverMode, TheHostsProcfsIsCoveredOrRefused) {
  auto covered = runAs({"--ro-bind", "/", "/", "--dev", "/dev", "--", "sh", "-c",
                        "ls -A /proc; ls /proc/1/root/ 2>/dev/null || echo no-host-proc"});
  EXPECT_EQ(covered.exitCode, 0) << covered.describe();
  EXPECT_EQ(covered.out, "no-host-proc\n") << "an empty /proc: " << covered.describe();

  auto bound = runAs({"--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "--ro-bind",
                      "/proc", "/tmp", "--", "ls", "/tmp/1/root/"});
  EXPECT_EQ(bound.exitCode, 125) << bound.describe();
  EXPECT_THAT(bound.err, HasSubstr("/tmp: the plan shows a procfs of another pid namespace there"))
      << bound.describe();
  EXPECT_THAT(bound.err, HasSubstr("put --proc /tmp over it")) << bound.describe();

  auto ok = runAs(
      {"--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "--", "cat", "/proc/1/comm"});
  EXPECT_EQ(ok.exitCode, 0) << ok.describe();
  EXPECT_EQ(ok.out, "gpubox-init\n") << "the sandbox's own procfs: " << ok.describe();
}

TEST_P(NeverMode, OwnNetworkWithLoopbackUp) {
  auto r = runAs({"--", "sh", "-c", "ip -o link; ip -o addr show lo"});
  ASSERT_EQ(r.exitCode, 0) << r.describe();
  auto l = lines(r.out);
  // Only lo: the sandbox's own network namespace.
  EXPECT_EQ(
      std::count_if(l.begin(), l.end(),
                    [](const std::string& s) { return s.find("link/") != std::string::npos; }),
      1)
      << r.out;
  EXPECT_THAT(r.out, HasSubstr("lo: <LOOPBACK,UP")) << r.out;
  EXPECT_THAT(r.out, HasSubstr("127.0.0.1/8")) << r.out;
}

TEST_P(NeverMode, InfoSaysWhichMode) {
  auto r = helper().cli({"info", "--json"}, as());
  ASSERT_EQ(r.exitCode, 0) << r.describe();
  nlohmann::json j = parseJson(r.out);
  ASSERT_FALSE(j.is_discarded()) << r.out;
  EXPECT_EQ(j["user_namespace"], "host") << r.out;
  EXPECT_EQ(j["user_namespace_setting"], "never") << r.out;
  EXPECT_THAT(j["user_namespace_reason"].get<std::string>(), HasSubstr("never")) << r.out;
  auto text = helper().cli({"info"}, as());
  ASSERT_EQ(text.exitCode, 0) << text.describe();
  EXPECT_THAT(text.out, HasSubstr("user namespace:   host (--user-namespace never")) << text.out;
  EXPECT_THAT(helper().log(),
              HasSubstr("user namespaces: never (--user-namespace never): sandboxes are built in "
                        "the helper's own user namespace"));
}

// A live sandbox in never mode shares its user namespace with every client:
// that must not make the helper take every client for a sandboxed one.
TEST_P(NeverMode, HostClientsAreServedWhileASandboxLives) {
  auto c = helper().cli({"session", "create", "--name", "nu-live"}, as());
  ASSERT_EQ(c.exitCode, 0) << c.describe();
  auto r = runAs({"--", "true"});
  EXPECT_EQ(r.exitCode, 0) << r.describe();
  auto info = helper().cli({"info"}, as());
  EXPECT_EQ(info.exitCode, 0) << info.describe();
  EXPECT_THAT(info.err, Not(HasSubstr("inside a gpubox sandbox"))) << info.describe();
  auto e =
      helper().cli({"exec", "nu-live", "--", "sh", "-c", "echo $(cat /proc/self/uid_map)"}, as());
  EXPECT_EQ(e.exitCode, 0) << e.describe();
  EXPECT_EQ(e.out, "0 0 4294967295\n") << e.describe();
  helper().cli({"session", "rm", "nu-live"}, as());
}

// And a request from inside such a sandbox is still refused (its pid
// namespace gives it away): the helper's socket bound in under another name.
TEST_P(NeverMode, RequestFromInsideIsRefused) {
  std::string inner = "/mnt/h/" + std::string(std::strrchr(helper().socketPath().c_str(), '/') + 1);
  auto r = runAs({"--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/mnt",
                  "--ro-bind", helper().dir(), "/mnt/h", "--", "sh", "-c",
                  cliPath() + " --socket " + inner + " info; echo info=$?"});
  EXPECT_EQ(r.exitCode, 0) << r.describe();
  EXPECT_THAT(r.out, HasSubstr("info=125")) << r.describe();
  EXPECT_THAT(r.err, HasSubstr("runs inside a gpubox sandbox")) << r.describe();
  EXPECT_TRUE(helper().alive());
}

GPUBOX_INSTANTIATE_CALLERS(NeverMode);

// ---------------------------------------------------------------- capabilities

// The capabilities of systemd/gpubox.service.in's CapabilityBoundingSet=, as
// setpriv(1) spells them: "-all,+sys_admin,+setuid,...".
std::string unitBoundingSet() {
  const char* unit = std::getenv("GPUBOX_SERVICE_UNIT");
  if (!unit) {
    ADD_FAILURE() << "GPUBOX_SERVICE_UNIT is not set (meson sets it)";
    return "";
  }
  std::string spec = "-all";
  for (const std::string& line : lines(readFile(unit))) {
    if (line.rfind("CapabilityBoundingSet=", 0) != 0) continue;
    std::string caps = line.substr(line.find('=') + 1) + " ";
    for (size_t at = 0, end; (end = caps.find(' ', at)) != std::string::npos; at = end + 1) {
      std::string cap = caps.substr(at, end - at);
      if (cap.rfind("CAP_", 0) != 0) continue;
      std::transform(cap.begin(), cap.end(), cap.begin(), ::tolower);
      spec += ",+" + cap.substr(4);
    }
  }
  return spec;
}

// Without a user namespace the init has nothing but the helper's own
// capabilities: the unit's bounding set (and no_new_privs) must be enough.
TEST(NeverModeCapabilities, TheUnitsBoundingSetIsEnough) {
  GPUBOX_REQUIRE_ROOT();
  std::string caps = unitBoundingSet();
  ASSERT_THAT(caps, HasSubstr("+setpcap")) << caps;
  HelperProcess h({.extraArgs = {"--user-namespace", "never"},
                   .wrapper = {"/usr/bin/setpriv", "--no-new-privs", "--bounding-set", caps,
                               "--inh-caps", "-all"}});
  auto r = h.cli({"run", "--", "sh", "-c", "id -u; grep -E '^(CapEff|CapBnd):' /proc/self/status"},
                 RunOptions{.asUid = kNobodyUid});
  ASSERT_EQ(r.exitCode, 0) << r.describe() << h.log();
  EXPECT_EQ(lines(r.out).at(0), "65534") << r.out;
  EXPECT_EQ(statusField(r.out, "CapEff"), "0000000000000000") << r.out;
  EXPECT_EQ(statusField(r.out, "CapBnd"), "0000000000000000") << r.out;
}

// A helper that lacks one of them cannot build a sandbox without a user
// namespace, and says which it needs rather than running anything.
// The never-mode init empties its bounding set with the helper's
// CAP_SETPCAP; the helper itself needs it at start to drop to what it keeps.
// Without it the helper refuses to start, naming it, rather than hand out
// sandboxes it could not build.
TEST(NeverModeCapabilities, WithoutSetpcapTheHelperRefusesToStart) {
  GPUBOX_REQUIRE_ROOT();
  std::string caps = unitBoundingSet();
  caps.replace(caps.find(",+setpcap"), std::string(",+setpcap").size(), "");
  HelperProcess h({.extraArgs = {"--user-namespace", "never"},
                   .waitReady = false,
                   .wrapper = {"/usr/bin/setpriv", "--bounding-set", caps, "--inh-caps", "-all"}});
  auto status = h.waitExit(std::chrono::seconds(30));
  ASSERT_TRUE(status.has_value()) << "the helper kept running: " << h.log();
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 1) << h.log();
  EXPECT_THAT(h.log(), HasSubstr("CAP_SETPCAP")) << h.log();
}

// ---------------------------------------------------------------- auto

// On a kernel that refuses user namespaces (simulated for the helper alone),
// auto falls back to never and says so; the sandbox still isolates.
class AutoFallback : public CallerTest {
 protected:
  HelperOptions helperOptions() override {
    return {.extraArgs = {"--user-namespace", "auto"}, .wrapper = {denyUserNsPath()}};
  }
};

TEST_P(AutoFallback, FallsBackToNeverAndSaysSo) {
  EXPECT_THAT(helper().log(),
              HasSubstr("user namespaces: auto (--user-namespace auto): the kernel refuses a new "
                        "user namespace "
                        "(unshare(CLONE_NEWUSER): Operation not permitted), so sandboxes are "
                        "built in the helper's own user namespace"))
      << helper().log();
  auto i = helper().cli({"info", "--json"}, as());
  ASSERT_EQ(i.exitCode, 0) << i.describe();
  nlohmann::json info = parseJson(i.out);
  ASSERT_FALSE(info.is_discarded()) << i.out;
  EXPECT_EQ(info["user_namespace"], "host") << i.out;
  EXPECT_EQ(info["user_namespace_setting"], "auto") << i.out;
  EXPECT_THAT(info["user_namespace_reason"].get<std::string>(),
              HasSubstr("Operation not permitted"))
      << i.out;

  RunOptions o = as();
  o.extraFd = 3;
  auto r = run({"--json-status", "3", "--", "sh", "-c",
                "id -u; grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status; "
                "echo uid_map:$(cat /proc/self/uid_map)"},
               o);
  ASSERT_EQ(r.exitCode, 0) << r.describe();
  EXPECT_EQ(lines(r.out).at(0), std::to_string(caller())) << r.out;
  EXPECT_EQ(statusField(r.out, "CapEff"), "0000000000000000") << r.out;
  EXPECT_EQ(statusField(r.out, "CapBnd"), "0000000000000000") << r.out;
  EXPECT_EQ(statusField(r.out, "NoNewPrivs"), "1") << r.out;
  EXPECT_EQ(statusField(r.out, "Seccomp"), "2") << r.out;
  EXPECT_THAT(r.out, HasSubstr("uid_map: 0 0 4294967295")) << r.out;
  nlohmann::json j = parseJson(r.extra);
  ASSERT_FALSE(j.is_discarded()) << r.extra;
  EXPECT_EQ(j["user_namespace"], "host") << j.dump();
}

GPUBOX_INSTANTIATE_CALLERS(AutoFallback);

// Where the kernel allows them, auto gives every sandbox its own.
TEST(AutoMode, UsesAUserNamespaceWhereTheKernelAllowsOne) {
  GPUBOX_REQUIRE_ROOT();
  if (!kernelAllowsUserNamespaces())
    GTEST_SKIP() << "this kernel refuses root a user namespace; AutoFallback covers auto here";
  HelperProcess h({.extraArgs = {"--user-namespace", "auto"}});
  RunOptions o{.asUid = kNobodyUid, .extraFd = 3};
  auto r = h.cli({"run", "--json-status", "3", "--", "sh", "-c",
                  "echo uid_map:$(cat /proc/self/uid_map); readlink /proc/self/ns/user"},
                 o);
  ASSERT_EQ(r.exitCode, 0) << r.describe();
  EXPECT_THAT(r.out, HasSubstr("uid_map: 65534 65534 1")) << r.out;
  EXPECT_THAT(r.out, Not(HasSubstr(hostUserNs()))) << r.out;
  nlohmann::json j = parseJson(r.extra);
  EXPECT_EQ(j["user_namespace"], "new") << r.extra;
  EXPECT_THAT(j["namespaces"].get<std::vector<std::string>>(), Contains("user")) << r.extra;
  EXPECT_THAT(h.log(),
              HasSubstr("user namespaces: auto (--user-namespace auto): each sandbox gets a new "
                        "user namespace"));
}

// ---------------------------------------------------------------- required

TEST(RequiredMode, RefusesToStartWhereTheKernelRefuses) {
  GPUBOX_REQUIRE_ROOT();
  HelperProcess h({.extraArgs = {"--user-namespace", "required"},
                   .waitReady = false,
                   .wrapper = {denyUserNsPath()}});
  auto status = h.waitExit(std::chrono::seconds(30));
  ASSERT_TRUE(status.has_value()) << "the helper kept running:\n" << h.log();
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 1) << h.log();
  EXPECT_THAT(h.log(), HasSubstr("gpubox-helper: user namespaces are required (--user-namespace "
                                 "required) but the kernel refuses to create one: "
                                 "unshare(CLONE_NEWUSER): Operation not permitted"))
      << h.log();
  EXPECT_FALSE(pathExists(h.socketPath())) << "a helper that refused to start left its socket";
}

TEST(RequiredMode, StartsAndUsesOneWhereTheKernelAllows) {
  GPUBOX_REQUIRE_ROOT();
  if (!kernelAllowsUserNamespaces()) GTEST_SKIP() << "this kernel refuses root a user namespace";
  HelperProcess h({.extraArgs = {"--user-namespace", "required"}});
  auto i = h.cli({"info", "--json"}, RunOptions{.asUid = kNobodyUid});
  ASSERT_EQ(i.exitCode, 0) << i.describe();
  nlohmann::json info = parseJson(i.out);
  EXPECT_EQ(info["user_namespace"], "new") << i.out;
  EXPECT_EQ(info["user_namespace_setting"], "required") << i.out;
}

TEST(UserNamespaceFlag, RejectsAnUnknownMode) {
  GPUBOX_REQUIRE_ROOT();
  TempDir d;
  auto r = runProcess({helperPath(), "--listen", d / "s", "--user-namespace", "sometimes"});
  EXPECT_EQ(r.exitCode, 1) << r.describe();
  EXPECT_THAT(r.err, HasSubstr("--user-namespace: 'sometimes' is not a user namespace mode: "
                               "expected auto, required or never"))
      << r.describe();
  EXPECT_FALSE(pathExists(d / "s"));
}

}  // namespace
}  // namespace gpubox::itest
