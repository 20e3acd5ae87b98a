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

TEST(RunOptions, SandboxIds) {
  auto o = parseRunOptions({"--uid", "0", "--gid", "4294967294", "id"}, testEnv, "/");
  EXPECT_EQ(o.spec.sandboxUid, 0u);
  EXPECT_EQ(o.spec.sandboxGid, 4294967294u);
  auto unset = parseRunOptions({"id"}, testEnv, "/");
  EXPECT_EQ(unset.spec.sandboxUid, std::nullopt);
  EXPECT_EQ(unset.spec.sandboxGid, std::nullopt);
  EXPECT_THROW(parseRunOptions({"--uid", "4294967295", "id"}, testEnv, "/"), Error);
  EXPECT_THROW(parseRunOptions({"--uid", "-1", "id"}, testEnv, "/"), Error);
  EXPECT_THROW(parseRunOptions({"--gid", "", "id"}, testEnv, "/"), Error);
  EXPECT_THROW(parseRunOptions({"--gid", "99999999999", "id"}, testEnv, "/"), Error);
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

TEST(RunOptions, LimitsAndTimeouts) {
  auto o =
      parseRunOptions({"--memory", "512M", "--cpus", "0.5", "--pids", "64", "--rlimit",
                       "NOFILE=100:200", "--timeout", "30s", "--kill-after", "2s", "--", "true"},
                      testEnv, "/w");
  EXPECT_EQ(o.spec.limits.memoryBytes, 512ull << 20);
  EXPECT_EQ(o.spec.limits.cpuMillis, 500u);
  EXPECT_EQ(o.spec.limits.pids, 64u);
  ASSERT_EQ(o.spec.limits.rlimits.size(), 1u);
  EXPECT_EQ(o.spec.limits.rlimits[0].name, "NOFILE");
  EXPECT_EQ(o.command.timeoutMs, 30000u);
  EXPECT_EQ(o.command.killAfterMs, 2000u);
  EXPECT_THROW(parseRunOptions({"--memory", "lots", "true"}, testEnv, "/w"), Error);
  EXPECT_THROW(parseRunOptions({"--name", "x", "true"}, testEnv, "/w"), Error)
      << "--name belongs to session create";
}

TEST(SessionCreateOptions, SandboxOptionsNoCommand) {
  auto o =
      gpubox::cli::parseSessionCreateOptions({"--name", "work", "--ttl", "2h", "--idle-timeout",
                                              "5m", "--memory", "1G", "--gpu", "0", "--json"},
                                             "/home/u");
  EXPECT_EQ(o.name, "work");
  EXPECT_EQ(o.ttlMs, 7200000u);
  EXPECT_EQ(o.idleTimeoutMs, 300000u);
  EXPECT_TRUE(o.json);
  EXPECT_EQ(o.spec.gpus, (std::vector<std::string>{"0"}));
  EXPECT_EQ(o.spec.limits.memoryBytes, 1ull << 30);
  EXPECT_TRUE(o.spec.useDefaultPlan);
  EXPECT_EQ(o.spec.cwd, "/home/u");
  EXPECT_THROW(gpubox::cli::parseSessionCreateOptions({"--", "ls"}, "/w"), Error)
      << "a command belongs to exec";
  EXPECT_THROW(gpubox::cli::parseSessionCreateOptions({"--timeout", "1s"}, "/w"), Error)
      << "--timeout is per command";
}

TEST(ExecOptions, NameThenOptionsThenCommand) {
  auto o = gpubox::cli::parseExecOptions(
      {"work", "--chdir", "/src", "--setenv", "A", "1", "--timeout", "5s", "--", "make", "-j2"},
      testEnv);
  EXPECT_EQ(o.session, "work");
  EXPECT_EQ(o.command.cwd, "/src");
  EXPECT_EQ(o.command.timeoutMs, 5000u);
  EXPECT_EQ(o.command.argv, (std::vector<std::string>{"make", "-j2"}));
  EXPECT_EQ(o.command.env, (std::vector<std::string>{"PATH=/usr/bin", "HOME=/home/u", "A=1"}));
  auto before = gpubox::cli::parseExecOptions({"--clearenv", "work", "env"}, testEnv);
  EXPECT_EQ(before.session, "work");
  EXPECT_TRUE(before.command.env.empty());
  EXPECT_EQ(before.command.argv, (std::vector<std::string>{"env"}));
  EXPECT_THROW(gpubox::cli::parseExecOptions({"work"}, testEnv), Error);
  EXPECT_THROW(gpubox::cli::parseExecOptions({"--", "ls"}, testEnv), Error);
  EXPECT_THROW(gpubox::cli::parseExecOptions({"work", "--memory", "1G", "ls"}, testEnv), Error)
      << "limits are the session's";
}
