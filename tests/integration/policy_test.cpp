// The policy file end to end: per-user limits, ceilings and caps; privileges
// a rule grants (dev_bind, seccomp_none, nested_user_namespaces,
// host_network) and that nobody else gets; where bind sources may come from;
// extra hidden paths; SIGHUP reload (good and bad); --check-config. Each
// test drives the real helper through the real CLI and checks what the
// sandboxed process met or why it was refused, naming the policy line.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "harness.hpp"

namespace gpubox::itest {
namespace {

using namespace std::chrono_literals;
using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Not;

bool contains(const std::string& hay, const std::string& needle) {
  return hay.find(needle) != std::string::npos;
}

// A helper started with --config <a root-owned policy file>.
class PolicyTest : public HelperTest {
 protected:
  PolicyTest() : dir_(0755, 0, 0, "gpubox-it-policy") { path_ = dir_.path() + "/helper.toml"; }
  virtual std::string policyText() = 0;
  HelperOptions helperOptions() override {
    writePolicy(policyText());
    return {.extraArgs = {"--config", path_}};
  }
  void writePolicy(const std::string& text) {
    // Replaced in one rename, as an administrator's editor would.
    writeFile(path_ + ".new", text, 0644);
    ASSERT_EQ(::rename((path_ + ".new").c_str(), path_.c_str()), 0);
  }
  RunOptions nobody(RunOptions o = {}) {
    o.asUid = kNobodyUid;
    return o;
  }
  const std::string& path() const { return path_; }

  TempDir dir_;
  std::string path_;
};

// --------------------------------------------------------- limits per user

class PolicyLimits : public PolicyTest {
  std::string policyText() override {
    return "[defaults]\n"            // 1
           "memory = \"256M\"\n"     // 2
           "max_memory = \"1G\"\n"   // 3
           "\n"                      // 4
           "[[allow]]\n"             // 5
           "users = [65534]\n"       // 6
           "memory = \"128M\"\n"     // 7
           "max_pids = 100\n"        // 8
           "max_timeout = \"2s\"\n"  // 9
           "max_sessions = 0\n"      // 10
           "max_sandboxes = 2\n";    // 11
  }
};

TEST_F(PolicyLimits, ARuleSetsItsUsersDefaultsAndCeilings) {
  // nobody: its rule's 128M default, over [defaults]' 256M.
  auto r = run({"--json-status", "3", "--", "true"}, nobody({.extraFd = 3}));
  ASSERT_EQ(r.exitCode, 0) << r.describe();
  nlohmann::json j = parseJson(r.extra);
  EXPECT_THAT(stringsOf(j["limits"]), Contains(HasSubstr("134217728"))) << j.dump();

  auto pids = run({"--pids", "200", "--", "true"}, nobody());
  EXPECT_EQ(pids.exitCode, 125) << pids.describe();
  EXPECT_THAT(pids.err, HasSubstr("--pids 200")) << pids.describe();
  EXPECT_THAT(pids.err, HasSubstr(path() + ":8: max_pids")) << pids.describe();

  // A ceiling the rule leaves out comes from [defaults], named by its line.
  auto mem = run({"--memory", "2G", "--", "true"}, nobody());
  EXPECT_EQ(mem.exitCode, 125) << mem.describe();
  EXPECT_THAT(mem.err, HasSubstr(path() + ":3: max_memory")) << mem.describe();

  // root matches no rule: [defaults] alone.
  auto root = run({"--json-status", "3", "--", "true"}, {.extraFd = 3});
  ASSERT_EQ(root.exitCode, 0) << root.describe();
  EXPECT_THAT(stringsOf(parseJson(root.extra)["limits"]), Contains(HasSubstr("268435456")))
      << root.extra;
  EXPECT_EQ(run({"--pids", "200", "--", "true"}).exitCode, 0);
}

TEST_F(PolicyLimits, TimeoutCeilingAppliesToCommandsThatSetNone) {
  auto r = run({"--json-status", "3", "--", "sleep", "30"}, nobody({.timeout = 60s, .extraFd = 3}));
  nlohmann::json j = parseJson(r.extra);
  EXPECT_EQ(j["reason"], "timed_out") << r.describe();
  EXPECT_EQ(j["timeout"]["limit_seconds"], 2.0) << j.dump();

  auto longer = run({"--timeout", "1m", "--", "true"}, nobody());
  EXPECT_EQ(longer.exitCode, 125) << longer.describe();
  EXPECT_THAT(longer.err, HasSubstr(path() + ":9: max_timeout")) << longer.describe();
  EXPECT_EQ(run({"--timeout", "1s", "--", "true"}, nobody()).exitCode, 0);
}

TEST_F(PolicyLimits, PerUidCapsComeFromTheRule) {
  auto s = helper().cli({"session", "create", "--name", "not-allowed"}, nobody());
  EXPECT_NE(s.exitCode, 0) << s.describe();
  EXPECT_THAT(s.err, HasSubstr(path() + ":10: max_sessions")) << s.describe();

  // Two sandboxes may run at once; the third is refused, naming the line.
  auto a = helper().spawnCli({"run", "--", "sleep", "30"}, nobody());
  auto b = helper().spawnCli({"run", "--", "sleep", "30"}, nobody());
  ASSERT_TRUE(pollUntil(
      [&] {
        RunResult raw;
        nlohmann::json ps = helper().psJson(std::nullopt, &raw);
        return ps.is_array() && ps.size() >= 2;
      },
      20s));
  auto third = run({"--", "true"}, nobody());
  EXPECT_EQ(third.exitCode, 125) << third.describe();
  EXPECT_THAT(third.err, HasSubstr(path() + ":11: max_sandboxes")) << third.describe();
}

// ------------------------------------------------------------- privileges

class PolicyPrivileges : public PolicyTest {
  std::string policyText() override {
    return "[[allow]]\n"
           "users = [65534]\n"
           "dev_bind = true\n"
           "seccomp_none = true\n"
           "nested_user_namespaces = true\n"
           "host_network = true\n";
  }
};

class NoPrivileges : public PolicyTest {
  std::string policyText() override { return "[[allow]]\nusers = [65533]\nhost_network = true\n"; }
};

std::string probeCopy(HelperProcess& h) {
  const char* probe = std::getenv("GPUBOX_SYSCALL_PROBE");
  if (!probe) return {};
  std::string copy = h.workDir() + "/syscall_probe";
  writeFile(copy, readFile(probe), 0755);
  return copy;
}

// Whether this kernel lets an unprivileged process make a user namespace.
bool unprivilegedUsernsAllowed() {
  std::ifstream clone("/proc/sys/kernel/unprivileged_userns_clone");
  int v = 1;
  if (clone >> v && v == 0) return false;
  std::ifstream max("/proc/sys/user/max_user_namespaces");
  return !(max >> v) || v > 0;
}

TEST_F(NoPrivileges, WithoutARuleEachIsRefusedNamingTheKey) {
  const std::string probe = probeCopy(helper());
  ASSERT_FALSE(probe.empty());
  struct Case {
    std::vector<std::string> args;
    std::string said;
  };
  for (const Case& c : std::vector<Case>{
           {{"--dev-bind", "/dev/null", "/mnt/null"}, "--dev-bind /dev/null /mnt/null: refused"},
           {{"--seccomp", "none"}, "--seccomp none: refused"},
           {{"--seccomp", "nested-userns"}, "--seccomp nested-userns: refused"},
           {{"--net", "host"}, "--net host: refused"}}) {
    std::vector<std::string> args = c.args;
    args.insert(args.end(), {"--", "true"});
    auto r = run(args, nobody());
    EXPECT_EQ(r.exitCode, 125) << r.describe();
    EXPECT_THAT(r.err, HasSubstr(c.said)) << r.describe();
    EXPECT_THAT(r.err, HasSubstr("no policy rule matches")) << r.describe();
  }
}

TEST_F(PolicyPrivileges, ARuleGrantsEachToItsUsers) {
  const std::string probe = probeCopy(helper());
  ASSERT_FALSE(probe.empty());
  auto dev = run({"--with-defaults", "--dev-bind", "/dev/null", "/tmp/null", "--", "sh", "-c",
                  "echo x > /tmp/null && echo wrote"},
                 nobody());
  EXPECT_EQ(dev.exitCode, 0) << dev.describe();
  EXPECT_EQ(dev.out, "wrote\n");

  auto none = run({"--seccomp", "none", "--json-status", "3", "--", probe, "keyctl"},
                  nobody({.extraFd = 3}));
  ASSERT_EQ(none.exitCode, 0) << none.describe();
  EXPECT_NE(parseProbe(none.out)["keyctl"], "EPERM") << none.out;
  EXPECT_EQ(parseJson(none.extra)["seccomp"], "none") << none.extra;

  auto nested = run({"--seccomp", "nested-userns", "--json-status", "3", "--", probe,
                     "unshare_user", "keyctl", "clone3"},
                    nobody({.extraFd = 3}));
  ASSERT_EQ(nested.exitCode, 0) << nested.describe();
  auto seen = parseProbe(nested.out);
  EXPECT_EQ(parseJson(nested.extra)["seccomp"], "nested-userns") << nested.extra;
  EXPECT_EQ(seen["keyctl"], "EPERM") << nested.out;  // the rest of the profile holds
  EXPECT_EQ(seen["clone3"], "ENOSYS") << nested.out;
  if (unprivilegedUsernsAllowed())
    EXPECT_EQ(seen["unshare_user"], "0") << nested.out;
  else
    std::printf("kernel refuses unprivileged user namespaces: unshare result not checked\n");

  auto host = run({"--net", "host", "--", "true"}, nobody());
  EXPECT_EQ(host.exitCode, 0) << host.describe();
}

// ----------------------------------------------------------- bind sources

class BindSourcePolicy : public PolicyTest {
  std::string policyText() override {
    return "[defaults]\nwritable_bind_sources = [\"/tmp\", \"/var/tmp\"]\n";
  }
};

TEST_F(BindSourcePolicy, WritableBindsOnlyFromAllowedPlaces) {
  // /etc read-only: fine; writable: refused, naming the rule.
  auto ro = run({"--with-defaults", "--ro-bind", "/etc", "/tmp/etc", "--", "true"}, nobody());
  EXPECT_EQ(ro.exitCode, 0) << ro.describe();
  auto rw = run({"--bind", "/etc", "/mnt/etc", "--", "true"}, nobody());
  EXPECT_EQ(rw.exitCode, 125) << rw.describe();
  EXPECT_THAT(rw.err, HasSubstr("--bind /etc /mnt/etc: refused")) << rw.describe();
  EXPECT_THAT(rw.err, HasSubstr("writable_bind_sources, " + path() + ":2")) << rw.describe();

  // The whole host writable: refused too.
  auto slash = run({"--bind", "/", "/mnt/host", "--", "true"}, nobody());
  EXPECT_EQ(slash.exitCode, 125) << slash.describe();

  // A symlink in an allowed place that points elsewhere is judged by where
  // it leads.
  const std::string link = helper().workDir() + "/etc-link";
  ASSERT_EQ(::symlink("/etc", link.c_str()), 0);
  auto viaLink = run({"--bind", link, "/mnt/etc", "--", "true"}, nobody());
  EXPECT_EQ(viaLink.exitCode, 125) << viaLink.describe();
  EXPECT_THAT(viaLink.err, HasSubstr("is /etc")) << viaLink.describe();

  // Its own directory under /tmp: fine, and really writable.
  auto own = run({"--with-defaults", "--bind", helper().workDir(), "/tmp/w", "--", "sh", "-c",
                  "echo hi > /tmp/w/out && echo ok"},
                 nobody());
  EXPECT_EQ(own.exitCode, 0) << own.describe();
  EXPECT_EQ(readFile(helper().workDir() + "/out"), "hi\n");

  // The default plan's working directory is a writable bind too.
  auto cwd = run({"--", "true"}, nobody({.cwd = "/usr"}));
  EXPECT_EQ(cwd.exitCode, 125) << cwd.describe();
  EXPECT_THAT(cwd.err, HasSubstr("--bind /usr /usr: refused")) << cwd.describe();

  // root is not bound by the rule.
  EXPECT_EQ(run({"--with-defaults", "--bind", "/etc", "/tmp/etc", "--", "true"}).exitCode, 0);
}

// ------------------------------------------------------------------- hide

class HidePolicy : public PolicyTest {
 protected:
  // Under /var/tmp: the default plan shows it (its /tmp is a fresh tmpfs).
  std::string policyText() override {
    secret_ =
        "/var/tmp/gpubox-it-hide-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++);
    makeDir(secret_, 0755, 0, 0);
    writeFile(secret_ + "/token", "SECRET\n", 0644);
    return "hide = [\"" + secret_ + "\", \"~/.config/op\"]\n";
  }
  ~HidePolicy() override {
    ::unlink((secret_ + "/token").c_str());
    ::rmdir(secret_.c_str());
  }
  std::string secret_;
  static inline int counter_ = 0;
};

TEST_F(HidePolicy, PolicyPathsAreHiddenToo) {
  const std::string home = helper().workDir() + "/home";
  makeDir(home, 0755, kNobodyUid, kNobodyGid);
  makeDir(home + "/.config", 0755, kNobodyUid, kNobodyGid);
  makeDir(home + "/.config/op", 0700, kNobodyUid, kNobodyGid);
  writeFile(home + "/.config/op/session", "OPTOKEN\n", 0600, kNobodyUid, kNobodyGid);
  auto r = run({"--json-status", "3", "--", "sh", "-c",
                "cat " + secret_ + "/token; ls -A \"$HOME/.config/op\"; echo done"},
               nobody({.env = {"PATH=/usr/bin:/bin", "HOME=" + home, "LANG=C"},
                       .replaceEnv = true,
                       .extraFd = 3}));
  ASSERT_EQ(r.exitCode, 0) << r.describe();
  EXPECT_THAT(r.out, Not(HasSubstr("SECRET"))) << r.describe();
  EXPECT_THAT(r.out, Not(HasSubstr("session"))) << r.describe();
  EXPECT_THAT(r.out, HasSubstr("done")) << r.describe();
  EXPECT_THAT(r.extra, HasSubstr("--hide " + secret_)) << r.extra;
  EXPECT_THAT(r.extra, HasSubstr("--hide " + home + "/.config/op")) << r.extra;
}

// ----------------------------------------------------------------- reload

class PolicyReload : public PolicyTest {
  std::string policyText() override { return "# nobody gets anything\n"; }
};

TEST_F(PolicyReload, SighupAppliesAGoodFileAndKeepsTheOldOnABadOne) {
  auto before = run({"--net", "host", "--", "true"}, nobody());
  EXPECT_EQ(before.exitCode, 125) << before.describe();

  writePolicy("[[allow]]\nusers = [65534]\nhost_network = true\n");
  helper().kill(SIGHUP);
  ASSERT_TRUE(pollUntil([&] { return contains(helper().log(), "policy reloaded"); }, 20s))
      << helper().log();
  auto after = run({"--net", "host", "--", "true"}, nobody());
  EXPECT_EQ(after.exitCode, 0) << after.describe();

  writePolicy("[[allow]]\nusers = [65534]\nhost_network = maybe\n");
  helper().kill(SIGHUP);
  ASSERT_TRUE(pollUntil([&] { return contains(helper().log(), "policy not reloaded"); }, 20s))
      << helper().log();
  EXPECT_THAT(helper().log(), HasSubstr(path() + ":3")) << helper().log();
  auto still = run({"--net", "host", "--", "true"}, nobody());
  EXPECT_EQ(still.exitCode, 0) << "the previous policy must stay in force: " << still.describe();
  EXPECT_TRUE(helper().alive());
}

// ----------------------------------------------------------- check-config

TEST(CheckConfig, ValidatesAndPrintsWhatAUserGets) {
  requireRoot();
  if (::testing::Test::IsSkipped()) return;
  TempDir dir(0755, 0, 0, "gpubox-it-check");
  const std::string good = dir.path() + "/good.toml";
  writeFile(good,
            "[defaults]\nmax_memory = \"8G\"\n[[allow]]\nusers = [65534]\nhost_network = true\n"
            "gpus = [\"all\"]\n",
            0644);
  auto ok = runProcess({helperPath(), "--check-config", good, "--for-user", "65534"});
  EXPECT_EQ(ok.exitCode, 0) << ok.describe();
  EXPECT_THAT(ok.out, HasSubstr("valid, 1 rule")) << ok.out;
  EXPECT_THAT(ok.out, HasSubstr("policy rule: " + good + ":3")) << ok.out;
  EXPECT_THAT(ok.out, HasSubstr("privileges: host_network")) << ok.out;
  EXPECT_THAT(ok.out, HasSubstr("memory: default")) << ok.out;
  EXPECT_THAT(ok.out, HasSubstr("ceiling 8G")) << ok.out;

  const std::string bad = dir.path() + "/bad.toml";
  writeFile(bad, "[defaults]\nmemory = \"lots\"\n", 0644);
  auto no = runProcess({helperPath(), "--check-config", bad});
  EXPECT_EQ(no.exitCode, 1) << no.describe();
  EXPECT_THAT(no.err, HasSubstr(bad + ":2: memory")) << no.describe();

  // Writable by others: refused as the helper would refuse it.
  ::chmod(good.c_str(), 0666);
  auto loose = runProcess({helperPath(), "--check-config", good});
  EXPECT_EQ(loose.exitCode, 1) << loose.describe();
  EXPECT_THAT(loose.err, HasSubstr("writable by group or others")) << loose.describe();

  // The helper refuses to start on a bad file, naming FILE:LINE.
  auto start = runProcess({helperPath(), "--config", bad, "--listen", dir.path() + "/s.sock"});
  EXPECT_EQ(start.exitCode, 1) << start.describe();
  EXPECT_THAT(start.err, HasSubstr(bad + ":2: memory")) << start.describe();
}

}  // namespace
}  // namespace gpubox::itest
