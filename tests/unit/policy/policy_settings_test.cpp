// The policy file's limits, privileges, bind sources, hide list and
// user_namespace: what parses, what each caller gets, and that every bad
// value is an error naming FILE:LINE.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>

#include "error.hpp"
#include "expect_policy_error.hpp"
#include "policy.hpp"

namespace gpubox::policy {
namespace {

void expectError(const std::string& text, std::initializer_list<std::string> fragments) {
  policy::expectError(text, fragments, "p.toml");
}

Caller user(uid_t uid) {
  return Caller{uid, 12345, {}};
}

constexpr uint64_t kGiB = 1024ull * 1024 * 1024;

TEST(PolicySettings, DefaultsTableAndRuleKeys) {
  const Policy p = Policy::parse(R"(
[defaults]
memory = "4G"
max_memory = "16G"
pids = 512
max_sandboxes = 8
session_ttl = "30m"

[[allow]]
users = [65534]
cpus = 1.5
max_cpus = "4"
max_timeout = "1h"
max_sessions = 0
memory = "none"
)",
                                 "p.toml");
  const LimitSettings& d = p.defaults();
  ASSERT_TRUE(d.memory.set);
  EXPECT_EQ(d.memory.value, 4 * kGiB);
  EXPECT_EQ(d.maxMemory.value, 16 * kGiB);
  EXPECT_EQ(d.maxMemory.where, "p.toml:4: max_memory");
  EXPECT_EQ(d.pids.value, 512u);
  EXPECT_EQ(d.maxSandboxes.value, 8u);
  EXPECT_EQ(d.sessionTtl.value, 30u * 60 * 1000);
  EXPECT_FALSE(d.cpus.set);

  // The rule carries only its own keys; [defaults] is applied apart.
  const Grant g = p.grantFor(user(65534));
  EXPECT_EQ(g.rule, "p.toml:9");
  EXPECT_EQ(g.limits.cpus.value, 1500u);
  EXPECT_EQ(g.limits.maxCpus.value, 4000u);
  EXPECT_EQ(g.limits.maxTimeout.value, 3600u * 1000);
  EXPECT_TRUE(g.limits.maxSessions.set);
  EXPECT_EQ(g.limits.maxSessions.value, 0u);
  EXPECT_TRUE(g.limits.memory.set);
  EXPECT_FALSE(g.limits.memory.value.has_value());  // "none": no ceiling
  EXPECT_FALSE(g.limits.maxMemory.set);

  // Someone no rule matches: no privilege, no limits of a rule.
  const Grant other = p.grantFor(user(1000));
  EXPECT_EQ(other.rule, "");
  EXPECT_FALSE(other.limits.anySet());
}

TEST(PolicySettings, OverlayTakesOnlyWhatIsSet) {
  LimitSettings base, over;
  assignLimit(base, "memory", "1G", "a");
  assignLimit(base, "pids", "10", "a");
  assignLimit(over, "pids", "none", "b");
  base.overlay(over);
  EXPECT_EQ(base.memory.value, kGiB);
  EXPECT_TRUE(base.pids.set);
  EXPECT_FALSE(base.pids.value.has_value());
  EXPECT_EQ(base.pids.where, "b");
}

TEST(PolicySettings, PrivilegesAreOffUnlessARuleSaysSo) {
  const Policy p = Policy::parse(R"(
[[allow]]
users = [1]
dev_bind = true
seccomp_none = true
nested_user_namespaces = true
host_network = true

[[allow]]
users = [2]
)",
                                 "p.toml");
  const Grant yes = p.grantFor(user(1));
  EXPECT_TRUE(yes.devBind);
  EXPECT_TRUE(yes.seccompNone);
  EXPECT_TRUE(yes.nestedUserNamespaces);
  EXPECT_TRUE(yes.hostNetwork);
  for (uid_t uid : {2u, 3u, 0u}) {
    const Grant no = p.grantFor(user(uid));
    EXPECT_FALSE(no.devBind || no.seccompNone || no.nestedUserNamespaces || no.hostNetwork);
  }
}

TEST(PolicySettings, BindSourcesFallThroughRuleDefaultsBuiltIn) {
  const Policy p = Policy::parse(R"(
[defaults]
writable_bind_sources = ["/data"]

[[allow]]
users = [1]
bind_sources = ["/srv", "/home"]

[[allow]]
users = [2]
writable_bind_sources = []
)",
                                 "p.toml");
  const BindSources builtIn = BindSources::builtIn();
  // Rule 1 sets readable; writable comes from [defaults].
  const BindSources one = p.grantFor(user(1)).binds;
  EXPECT_EQ(one.readable, (std::vector<std::string>{"/srv", "/home"}));
  EXPECT_EQ(one.writable, (std::vector<std::string>{"/data"}));
  // Rule 2: no writable bind at all; readable from the built-in choice.
  const BindSources two = p.grantFor(user(2)).binds;
  EXPECT_TRUE(two.writable.empty());
  EXPECT_EQ(two.readable, builtIn.readable);
  // No rule: [defaults] over the built-in choice.
  const BindSources three = p.grantFor(user(3)).binds;
  EXPECT_EQ(three.writable, (std::vector<std::string>{"/data"}));
  EXPECT_EQ(three.readable, builtIn.readable);
  EXPECT_EQ(three.where, "p.toml:3");
  // The built-in choice never lets / or the system be bound writable.
  for (const std::string& w : builtIn.writable)
    for (const char* system : {"/", "/etc", "/usr", "/bin", "/lib", "/boot", "/var", "/proc"})
      EXPECT_NE(w, system);
}

TEST(PolicySettings, HideAndUserNamespace) {
  const Policy p = Policy::parse(R"(
user_namespace = "never"
hide = ["~/.config/op", "/etc/gpubox-secrets"]
)",
                                 "p.toml");
  EXPECT_EQ(p.userNamespace(), UserNamespaceSetting::Never);
  EXPECT_EQ(p.hide(), (std::vector<std::string>{"~/.config/op", "/etc/gpubox-secrets"}));
  EXPECT_EQ(Policy::parse("", "p.toml").userNamespace(), UserNamespaceSetting::Unset);
  EXPECT_EQ(Policy::parse("user_namespace = \"auto\"", "p.toml").userNamespace(),
            UserNamespaceSetting::Auto);
  EXPECT_EQ(Policy::parse("user_namespace = \"required\"", "p.toml").userNamespace(),
            UserNamespaceSetting::Required);
}

TEST(PolicySettings, BadValuesNameFileAndLine) {
  expectError("[defaults]\nmemory = 8\n", {"p.toml:2", "memory", "\"8G\""});
  expectError("[defaults]\nmemory = \"8X\"\n", {"p.toml:2", "memory", "8X"});
  expectError("[defaults]\nmax_timeout = 30\n", {"p.toml:2", "max_timeout", "\"30m\""});
  expectError("[defaults]\npids = -1\n", {"p.toml:2", "pids", "negative"});
  expectError("[defaults]\nsession_ttl = \"none\"\n", {"p.toml:2", "session_ttl"});
  expectError("[defaults]\nhost_network = true\n",
              {"p.toml:2", "unknown key 'host_network' in [defaults]"});
  expectError("[defaults]\nbind_sources = [\"relative\"]\n",
              {"p.toml:2", "bind_sources", "absolute path"});
  expectError("[defaults]\nwritable_bind_sources = [\"/a/../etc\"]\n", {"p.toml:2", ".."});
  expectError("[defaults]\nwritable_bind_sources = [\"/tmp/\"]\n", {"p.toml:2", "trailing"});
  expectError("[[allow]]\nusers = [1]\ndev_bind = \"yes\"\n", {"p.toml:3", "dev_bind"});
  expectError("[[allow]]\nusers = [1]\nseccomp_nope = true\n",
              {"p.toml:3", "unknown key 'seccomp_nope'", "seccomp_none"});
  expectError("user_namespace = \"sometimes\"\n", {"p.toml:1", "auto", "never", "sometimes"});
  expectError("user_namespace = true\n", {"p.toml:1", "user_namespace"});
  expectError("hide = [\"relative/path\"]\n", {"p.toml:1", "hide", "~/path"});
  expectError("hide = [\"~/\"]\n", {"p.toml:1", "hide"});
  expectError("defaults = 3\n", {"p.toml:1", "table"});
  expectError("limits = 3\n", {"p.toml:1", "unknown key 'limits'", "defaults"});
}

// The example shipped in systemd/ is valid, and says what it claims.
TEST(PolicySettings, ShippedExampleParses) {
  const char* path = std::getenv("GPUBOX_POLICY_EXAMPLE");
  ASSERT_NE(path, nullptr) << "run with meson test";
  std::ifstream in(path);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_FALSE(text.empty()) << path;
  const Policy p = Policy::parse(text, path);
  ASSERT_EQ(p.rules().size(), 1u);
  EXPECT_TRUE(p.rules()[0].grant.gpu.all);
  EXPECT_TRUE(p.rules()[0].grant.limits.maxMemory.set);
  EXPECT_FALSE(p.defaults().anySet());
}

}  // namespace
}  // namespace gpubox::policy
