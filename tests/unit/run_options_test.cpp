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

// Expects PARSE to throw gpubox::Error whose message contains TEXT.
template <typename F>
void expectErrorSaying(F parse, const std::string& text) {
  try {
    parse();
    ADD_FAILURE() << "no error; expected one saying: " << text;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(text), std::string::npos) << e.what();
  }
}

TEST(ExecBatch, TheCommandLineGivesDefaultsAndNoCommand) {
  auto o = gpubox::cli::parseExecOptions(
      {"work", "--batch", "--setenv", "A", "1", "--chdir", "/src", "--json-status", "3"}, testEnv);
  EXPECT_TRUE(o.batch);
  EXPECT_EQ(o.session, "work");
  EXPECT_EQ(o.jsonStatusFd, 3);
  EXPECT_TRUE(o.command.argv.empty());
  EXPECT_EQ(o.command.cwd, "/src");
  EXPECT_EQ(o.command.env, (std::vector<std::string>{"PATH=/usr/bin", "HOME=/home/u", "A=1"}));
  auto first = gpubox::cli::parseExecOptions({"--batch", "work"}, testEnv);
  EXPECT_TRUE(first.batch);
  EXPECT_EQ(first.session, "work");
  EXPECT_FALSE(gpubox::cli::parseExecOptions({"work", "ls"}, testEnv).batch);
  expectErrorSaying(
      [] {
        gpubox::cli::parseExecOptions({"work", "--batch", "--", "ls"}, testEnv);
      },
      "with --batch the commands come from stdin");
  expectErrorSaying(
      [] {
        gpubox::cli::parseExecOptions({"work", "--batch", "ls"}, testEnv);
      },
      "unexpected 'ls'");
}

TEST(ExecBatch, ALineIsExecsWordsAfterTheName) {
  gpubox::Command defaults;
  defaults.cwd = "/src";
  defaults.timeoutMs = 5000;
  defaults.env = {"PATH=/usr/bin", "A=1"};
  auto c = gpubox::cli::parseExecBatchLine(
      gpubox::cli::batchLineWords(
          R"(["--setenv", "B", "two words", "--unsetenv", "PATH", "sh", "-c", "echo \"$B\" \u00e9"])"),
      defaults);
  EXPECT_EQ(c.argv, (std::vector<std::string>{"sh", "-c", "echo \"$B\" \xc3\xa9"}));
  EXPECT_EQ(c.env, (std::vector<std::string>{"A=1", "B=two words"}));
  EXPECT_EQ(c.cwd, "/src") << "the command line's --chdir is every line's default";
  EXPECT_EQ(c.timeoutMs, 5000u);
  auto own =
      gpubox::cli::parseExecBatchLine({"--chdir", "/tmp", "--timeout", "1s", "--", "-x"}, defaults);
  EXPECT_EQ(own.cwd, "/tmp");
  EXPECT_EQ(own.timeoutMs, 1000u);
  EXPECT_EQ(own.argv, (std::vector<std::string>{"-x"})) << "after --, a word is the command's";
  auto clear = gpubox::cli::parseExecBatchLine({"--clearenv", "env"}, defaults);
  EXPECT_TRUE(clear.env.empty());
  EXPECT_EQ(defaults.env, (std::vector<std::string>{"PATH=/usr/bin", "A=1"}))
      << "a line changes only its own command";
}

TEST(ExecBatch, WhatALineMayNotBe) {
  using gpubox::cli::batchLineWords;
  using gpubox::cli::parseExecBatchLine;
  const gpubox::Command none;
  expectErrorSaying([] { batchLineWords("ls -l"); }, "not JSON");
  expectErrorSaying([] { batchLineWords(R"(["ls")"); }, "not JSON");
  expectErrorSaying([] { batchLineWords(R"({"argv": ["ls"]})"); }, "not an array");
  expectErrorSaying([] { batchLineWords(R"(["echo", 1])"); }, "word 2 is not a string");
  expectErrorSaying([&] { parseExecBatchLine({}, none); }, "no command given");
  expectErrorSaying([&] { parseExecBatchLine({"--chdir", "/x"}, none); }, "no command given");
  expectErrorSaying(
      [&] {
        parseExecBatchLine({"--json-status", "3", "true"}, none);
      },
      "--json-status is given once");
  expectErrorSaying(
      [&] {
        parseExecBatchLine({"--batch", "true"}, none);
      },
      "--batch is given once");
  expectErrorSaying(
      [&] {
        parseExecBatchLine({"--memory", "1G", "true"}, none);
      },
      "unknown option '--memory'");
  expectErrorSaying([&] { parseExecBatchLine({"--help"}, none); }, "unknown option '--help'");
  expectErrorSaying([&] { parseExecBatchLine({"--setenv", "A"}, none); }, "--setenv needs");
}
