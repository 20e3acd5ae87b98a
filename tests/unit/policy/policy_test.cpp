#include "policy.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "error.hpp"
#include "expect_policy_error.hpp"

namespace gpubox::policy {
namespace {

void expectError(const std::string& text, std::initializer_list<std::string> fragments) {
  policy::expectError(text, fragments, "test.toml");
}

Caller user(uid_t uid, gid_t gid = 12345, std::vector<gid_t> groups = {}) {
  return Caller{uid, gid, std::move(groups)};
}

TEST(Policy, EmptyGrantsNothingEvenToRoot) {
  const Policy policy = Policy::empty();
  const Grant grant = policy.grantFor(user(0, 0));
  EXPECT_FALSE(grant.gpu.allowed);
  EXPECT_FALSE(grant.hostNetwork);
  EXPECT_EQ(grant.rule, "");
}

TEST(Policy, EmptyTextIsEmptyPolicy) {
  const Policy policy = Policy::parse("# nothing here\n", "p.toml");
  EXPECT_TRUE(policy.rules().empty());
  EXPECT_FALSE(policy.grantFor(user(0, 0)).gpu.allowed);
}

TEST(Policy, RuleByUidAndName) {
  const Policy policy = Policy::parse(R"(
[[allow]]
users = ["root", 65534]
gpus = ["all"]
max_gpus = 2
exclusive = true
)",
                                      "p.toml");
  for (uid_t uid : {0u, 65534u}) {
    const Grant grant = policy.grantFor(user(uid));
    EXPECT_TRUE(grant.gpu.allowed);
    EXPECT_TRUE(grant.gpu.all);
    EXPECT_EQ(grant.gpu.maxGpus, 2u);
    EXPECT_TRUE(grant.gpu.exclusive);
    EXPECT_FALSE(grant.hostNetwork);
    EXPECT_EQ(grant.rule, "p.toml:2");
  }
  EXPECT_FALSE(policy.grantFor(user(1000)).gpu.allowed);
  EXPECT_EQ(policy.grantFor(user(1000)).rule, "");
}

TEST(Policy, RuleByGroupPrimaryOrSupplementary) {
  const Policy policy = Policy::parse(R"(
[[allow]]
groups = ["root", 4242]
gpus = [0, 2, "GPU-12345678-abcd-ef01-2345-6789abcdef01"]
)",
                                      "p.toml");
  const Grant primary = policy.grantFor(user(1000, 4242));
  EXPECT_TRUE(primary.gpu.allowed);
  EXPECT_FALSE(primary.gpu.all);
  EXPECT_EQ(primary.gpu.indices, (std::vector<unsigned>{0, 2}));
  EXPECT_EQ(primary.gpu.uuids,
            (std::vector<std::string>{"GPU-12345678-abcd-ef01-2345-6789abcdef01"}));
  EXPECT_EQ(primary.gpu.maxGpus, 1u) << "max_gpus defaults to 1";
  EXPECT_FALSE(primary.gpu.exclusive);

  EXPECT_TRUE(policy.grantFor(user(1000, 100, {5, 0})).gpu.allowed) << "supplementary root group";
  EXPECT_FALSE(policy.grantFor(user(1000, 100, {5, 6})).gpu.allowed);
}

TEST(Policy, FirstMatchingRuleDecides) {
  const Policy policy = Policy::parse(R"(
[[allow]]
users = [1000]
gpus = [1]

[[allow]]
groups = [100]
gpus = ["all"]
max_gpus = 4
host_network = true
)",
                                      "p.toml");
  // uid 1000 in group 100 matches both; the first wins, nothing is merged.
  const Grant first = policy.grantFor(user(1000, 100));
  EXPECT_EQ(first.rule, "p.toml:2");
  EXPECT_FALSE(first.gpu.all);
  EXPECT_EQ(first.gpu.indices, (std::vector<unsigned>{1}));
  EXPECT_FALSE(first.hostNetwork);

  const Grant second = policy.grantFor(user(1001, 100));
  EXPECT_EQ(second.rule, "p.toml:6");
  EXPECT_TRUE(second.gpu.all);
  EXPECT_EQ(second.gpu.maxGpus, 4u);
  EXPECT_TRUE(second.hostNetwork);
}

TEST(Policy, RuleWithoutGpusGrantsNoGpu) {
  const Policy policy = Policy::parse("[[allow]]\nusers = [7]\nhost_network = true\n", "p.toml");
  const Grant grant = policy.grantFor(user(7));
  EXPECT_FALSE(grant.gpu.allowed);
  EXPECT_EQ(grant.gpu.maxGpus, 0u);
  EXPECT_TRUE(grant.hostNetwork);
  EXPECT_EQ(grant.rule, "p.toml:1");

  const Policy none = Policy::parse("[[allow]]\nusers = [7]\ngpus = []\n", "p.toml");
  EXPECT_FALSE(none.grantFor(user(7)).gpu.allowed);
}

TEST(Policy, DuplicatesAreFolded) {
  const Policy policy = Policy::parse("[[allow]]\nusers = [7, 7]\ngpus = [3, 1, 3]\n", "p.toml");
  EXPECT_EQ(policy.grantFor(user(7)).gpu.indices, (std::vector<unsigned>{1, 3}));
}

TEST(PolicyErrors, UnknownTopLevelKey) {
  expectError("[[allow]]\nusers = [1]\n\n[limits]\nmemory = 1\n",
              {"test.toml:4:", "unknown key 'limits'"});
  expectError("verbose = true\n", {"test.toml:1:", "unknown key 'verbose'"});
}

TEST(PolicyErrors, UnknownRuleKey) {
  expectError("[[allow]]\nusers = [1]\ngpu = [0]\n",
              {"test.toml:3:", "unknown key 'gpu' in [[allow]]", "known keys: users, groups"});
}

TEST(PolicyErrors, WrongTypes) {
  expectError("[[allow]]\nusers = 1\n", {"test.toml:2:", "users must be an array"});
  expectError("[[allow]]\nusers = [1.5]\n", {"test.toml:2:", "not a float"});
  expectError("[[allow]]\nusers = [1]\ngpus = [0]\nexclusive = \"yes\"\n",
              {"test.toml:4:", "exclusive must be true or false"});
  expectError("[[allow]]\nusers = [1]\ngpus = [0]\nmax_gpus = \"2\"\n",
              {"test.toml:4:", "max_gpus must be an integer"});
  expectError("[[allow]]\nusers = [1]\nhost_network = 1\n",
              {"test.toml:3:", "host_network must be true or false"});
  expectError("[[allow]]\nusers = [1]\ngpus = [true]\n", {"test.toml:3:", "gpus entries"});
  expectError("allow = 3\n", {"test.toml:1:", "[[allow]]"});
  expectError("[allow]\nusers = [1]\n", {"test.toml:1:", "[[allow]]"});
}

TEST(PolicyErrors, NegativeAndOutOfRangeNumbers) {
  expectError("[[allow]]\nusers = [-1]\n", {"test.toml:2:", "must not be negative"});
  expectError("[[allow]]\ngroups = [4294967295]\n", {"test.toml:2:", "out of range"});
  expectError("[[allow]]\nusers = [1]\ngpus = [-2]\n", {"test.toml:3:", "must not be negative"});
  expectError("[[allow]]\nusers = [1]\ngpus = [0]\nmax_gpus = -1\n",
              {"test.toml:4:", "must not be negative"});
  expectError("[[allow]]\nusers = [1]\ngpus = [0]\nmax_gpus = 0\n", {"test.toml:4:", "at least 1"});
}

TEST(PolicyErrors, UnknownNames) {
  expectError("[[allow]]\nusers = [\"root\",\n  \"no-such-user-gpubox\"]\n",
              {"test.toml:3:", "unknown user 'no-such-user-gpubox'"});
  expectError("[[allow]]\ngroups = [\"no-such-group-gpubox\"]\n",
              {"test.toml:2:", "unknown group 'no-such-group-gpubox'"});
}

TEST(PolicyErrors, RuleMustNameSomeone) {
  expectError("[[allow]]\ngpus = [\"all\"]\n", {"test.toml:1:", "at least one user or group"});
  expectError("\n[[allow]]\nusers = []\ngroups = []\n", {"test.toml:2:", "lists are empty"});
}

TEST(Policy, DefaultGpusAreSelectorsForRequestsNamingNone) {
  const Policy policy = Policy::parse(R"(
[[allow]]
users = [1000]
gpus = [0, 1]
default_gpus = ["count:1", 1]
)",
                                      "p.toml");
  EXPECT_EQ(policy.grantFor(user(1000)).defaultGpus, (std::vector<std::string>{"count:1", "1"}));
  EXPECT_TRUE(policy.grantFor(user(1001)).defaultGpus.empty()) << "no rule: no default either";
}

TEST(PolicyErrors, BadDefaultGpus) {
  expectError("[[allow]]\nusers = [1]\ndefault_gpus = [\"count:1\"]\n",
              {"test.toml:3:", "default_gpus is set but the rule grants no GPUs"});
  expectError("[[allow]]\nusers = [1]\ngpus = [0]\ndefault_gpus = [\"none\"]\n",
              {"test.toml:4:", "leave default_gpus out"});
  expectError("[[allow]]\nusers = [1]\ngpus = [0]\ndefault_gpus = [true]\n",
              {"test.toml:4:", "default_gpus entries are --gpu selectors"});
  expectError("[[allow]]\nusers = [1]\ngpus = [0]\ndefault_gpus = \"0\"\n", {"test.toml:4:"});
}

TEST(PolicyErrors, BadGpuEntries) {
  expectError("[[allow]]\nusers = [1]\ngpus = [\"0\"]\n", {"test.toml:3:", "got \"0\""});
  expectError("[[allow]]\nusers = [1]\ngpus = [\"GPU-zz\"]\n", {"test.toml:3:", "GPU-zz"});
  expectError("[[allow]]\nusers = [1]\ngpus = [\"all\", 0]\n",
              {"test.toml:3:", "cannot be combined"});
  expectError("[[allow]]\nusers = [1]\nmax_gpus = 2\n", {"test.toml:3:", "grants no GPUs"});
  expectError("[[allow]]\nusers = [1]\nexclusive = true\n", {"test.toml:3:", "grants no GPUs"});
}

TEST(PolicyErrors, TomlSyntaxErrorNamesFileAndLine) {
  expectError("[[allow]]\nusers = [1\n\n", {"test.toml:"});
  expectError("[[allow]]\nusers = [1]\nusers = [2]\n", {"test.toml:3:"});
}

class PolicyFile : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/gpubox-policy-test.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    ::unlink((dir_ + "/helper.toml").c_str());
    ::rmdir(dir_.c_str());
  }
  std::string write(const std::string& text, mode_t mode) {
    const std::string path = dir_ + "/helper.toml";
    std::ofstream(path) << text;
    ::chmod(path.c_str(), mode);
    return path;
  }
  std::string dir_;
};

TEST_F(PolicyFile, MissingFile) {
  const std::string path = dir_ + "/absent.toml";
  EXPECT_TRUE(Policy::load(path, false).rules().empty());
  try {
    Policy::load(path, true);
    ADD_FAILURE() << "a required missing policy must be an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
}

TEST_F(PolicyFile, LoadsAndNamesFileInRule) {
  const std::string path = write("[[allow]]\nusers = [0]\ngpus = [\"all\"]\n", 0644);
  const Policy policy = Policy::load(path, true);
  EXPECT_EQ(policy.source(), path);
  EXPECT_EQ(policy.grantFor(user(0)).rule, path + ":1");
}

TEST_F(PolicyFile, ErrorsNameTheFile) {
  const std::string path = write("[[allow]]\nusers = [0]\nbogus = 1\n", 0644);
  try {
    Policy::load(path, true);
    ADD_FAILURE() << "unknown key must fail";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path + ":3:"), std::string::npos) << e.what();
  }
}

TEST_F(PolicyFile, WorldWritableIsRefused) {
  const std::string path = write("[[allow]]\nusers = [0]\n", 0666);
  try {
    Policy::load(path, true);
    ADD_FAILURE() << "a world-writable policy must be refused";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("writable"), std::string::npos) << e.what();
  }
}

TEST_F(PolicyFile, DirectoryIsRefusedEvenIfOptional) {
  EXPECT_THROW(Policy::load(dir_, false), Error);
}

}  // namespace
}  // namespace gpubox::policy
