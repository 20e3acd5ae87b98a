#include "run_options.hpp"

#include <gtest/gtest.h>

#include "error.hpp"

using gpubox::Error;
using gpubox::MountKind;
using gpubox::cli::parseRunOptions;

namespace {
char* testEnv[] = {const_cast<char*>("PATH=/usr/bin"), const_cast<char*>("HOME=/home/u"), nullptr};
}

TEST(RunOptions, NoMountOptionMeansDefaultPlanAndCwd) {
  auto o = parseRunOptions({"--", "ls", "-l"}, testEnv, "/work");
  EXPECT_TRUE(o.spec.useDefaultPlan);
  EXPECT_EQ(o.spec.cwd, "/work");
  EXPECT_EQ(o.command.cwd, "/work");
  EXPECT_EQ(o.command.argv, (std::vector<std::string>{"ls", "-l"}));
  EXPECT_EQ(o.command.env, (std::vector<std::string>{"PATH=/usr/bin", "HOME=/home/u"}));
}

TEST(RunOptions, MountOptionsKeepTheirOrderAndDisableTheDefaultPlan) {
  auto o = parseRunOptions({"--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin", "--tmpfs",
                            "/tmp", "--bind", "data", "/data", "--remount-ro", "/", "true"},
                           testEnv, "/home/u");
  EXPECT_FALSE(o.spec.useDefaultPlan);
  ASSERT_EQ(o.spec.mounts.size(), 5u);
  EXPECT_EQ(o.spec.mounts[0].kind, MountKind::RoBind);
  EXPECT_EQ(o.spec.mounts[1].kind, MountKind::Symlink);
  EXPECT_EQ(o.spec.mounts[1].source, "usr/bin");       // link targets stay as written
  EXPECT_EQ(o.spec.mounts[3].source, "/home/u/data");  // relative sources are the caller's
  EXPECT_EQ(o.spec.mounts[4].kind, MountKind::RemountRo);
  EXPECT_EQ(o.command.cwd, "");  // bwrap's rule: the new root unless --chdir
}

TEST(RunOptions, WithDefaultsKeepsTheDefaultPlan) {
  auto o = parseRunOptions({"--with-defaults", "--tmpfs", "/scratch", "true"}, testEnv, "/w");
  EXPECT_TRUE(o.spec.useDefaultPlan);
  EXPECT_EQ(o.spec.mounts.size(), 1u);
}

TEST(RunOptions, EnvironmentEditsApplyInOrder) {
  auto o = parseRunOptions(
      {"--setenv", "A", "1", "--unsetenv", "HOME", "--clearenv", "--setenv", "B", "2", "env"},
      testEnv, "/");
  EXPECT_EQ(o.command.env, (std::vector<std::string>{"B=2"}));
}

TEST(RunOptions, ProcessOptions) {
  auto o = parseRunOptions({"--chdir", "/src", "--hostname", "box", "--net", "host", "--gpu", "0",
                            "--gpu", "count:1", "--json-status", "3", "make"},
                           testEnv, "/");
  EXPECT_EQ(o.command.cwd, "/src");
  EXPECT_EQ(o.spec.hostname, "box");
  EXPECT_EQ(o.spec.network, gpubox::Network::Host);
  EXPECT_EQ(o.spec.gpus, (std::vector<std::string>{"0", "count:1"}));
  EXPECT_EQ(o.jsonStatusFd, 3);
}

TEST(RunOptions, ErrorsNameTheOption) {
  auto message = [](std::vector<std::string> args) {
    try {
      parseRunOptions(args, testEnv, "/");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_EQ(message({"--bogus", "x"}), "unknown option '--bogus'");
  EXPECT_EQ(message({"--bind", "/a"}), "--bind needs DST");
  EXPECT_EQ(message({"--net", "bridge", "x"}), "--net 'bridge': expected none or host");
  EXPECT_EQ(message({"--json-status", "x", "y"}), "--json-status 'x' is not a file descriptor");
  EXPECT_EQ(message({"--tmpfs", "/t"}), "no command given");
}

TEST(RunOptions, HelpStopsParsing) {
  EXPECT_TRUE(parseRunOptions({"--help"}, testEnv, "/").help);
}
