// `gpubox exec NAME --batch`, end to end: many commands into one session
// over one connection, one JSON array per stdin line, one --json-status
// record per line. Each test checks what the commands saw (their output,
// the session's state, stdin), the records and gpubox's own exit status,
// as root and as uid 65534.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "harness.hpp"

namespace gpubox::itest {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

class ExecBatch : public CallerTest {
 protected:
  // `gpubox exec NAME --batch --json-status 3 EXTRA...` with LINES on stdin.
  RunResult batch(const std::string& name, const std::vector<std::string>& lines,
                  std::vector<std::string> extra = {}) {
    return helper().cli(batchArgs(name, std::move(extra)),
                        as({.stdinData = joined(lines), .timeout = 120s, .extraFd = 3}));
  }
  static std::vector<std::string> batchArgs(const std::string& name,
                                            std::vector<std::string> extra) {
    std::vector<std::string> args{"exec", name, "--batch", "--json-status", "3"};
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  }
  static std::string joined(const std::vector<std::string>& lines) {
    std::string text;
    for (const auto& l : lines) text += l + "\n";
    return text;
  }
  void createSession(const std::string& name) {
    auto c = helper().cli({"session", "create", "--name", name}, as());
    ASSERT_EQ(c.exitCode, 0) << c.describe();
  }
  // The records, one JSON object per line.
  static std::vector<nlohmann::json> records(const RunResult& r) {
    std::vector<nlohmann::json> out;
    for (const std::string& l : lines(r.extra)) out.push_back(parseJson(l));
    return out;
  }
};

// Every line runs in the same session, in order: /tmp is shared between
// them, each has its own exit status and environment, the command line's
// options are every line's defaults, and a command's stdin is /dev/null
// (`cat` must not eat the lines after it). gpubox exits with the last
// line's status.
TEST_P(ExecBatch, RunsEachLineInTheSessionInOrder) {
  createSession("batch");
  auto r = batch(
      "batch",
      {R"(["sh", "-c", "echo kept > /tmp/state; echo one"])", "", R"(["cat", "/tmp/state"])",
       R"(["--setenv", "GBX_A", "line", "sh", "-c", "echo \"$GBX_A $GBX_B\""])", R"(["cat"])",
       R"(["--chdir", "/tmp", "sh", "-c", "pwd; exit 3"])", R"(["sh", "-c", "kill -TERM $$"])",
       R"(["gpubox-it-no-such-command"])", R"(["sh", "-c", "exit 4"])"},
      {"--setenv", "GBX_B", "cmdline"});
  EXPECT_EQ(r.exitCode, 4) << r.describe();
  EXPECT_EQ(r.out, "one\nkept\nline cmdline\n/tmp\n") << r.describe();
  EXPECT_THAT(r.err, HasSubstr("gpubox-it-no-such-command")) << r.describe();
  auto recs = records(r);
  ASSERT_EQ(recs.size(), 8u) << "one record per non-blank line\n" << r.describe();
  const std::vector<nlohmann::json> codes = {0, 0, 0, 0, 3, nullptr, nullptr, 4};
  for (size_t i = 0; i < recs.size(); ++i) {
    ASSERT_FALSE(recs[i].is_discarded()) << r.describe();
    EXPECT_EQ(recs[i]["exit_code"], codes[i]) << i << ": " << recs[i].dump();
    EXPECT_EQ(recs[i]["session"], "batch") << recs[i].dump();
    // The same init for every line: they all ran in the one session.
    EXPECT_EQ(recs[i]["sandbox_pid"], recs[0]["sandbox_pid"]) << recs[i].dump();
  }
  EXPECT_NE(recs[0]["sandbox_pid"], 0) << recs[0].dump();
  EXPECT_EQ(recs[5]["signal"], SIGTERM) << recs[5].dump();
  EXPECT_EQ(recs[6]["reason"], "not_started") << recs[6].dump();
  auto rm = helper().cli({"session", "rm", "batch"}, as());
  EXPECT_EQ(rm.exitCode, 0) << rm.describe();
}

// A line that cannot run says why (on stderr and in its record, naming the
// line) and the next line still runs; a bad last line makes the exit
// status 125. A session that does not exist fails each line the same way.
TEST_P(ExecBatch, ABadLineIsReportedAndTheNextStillRuns) {
  createSession("lines");
  auto r = batch("lines", {"ls -l", R"({"argv": ["true"]})", R"(["echo", 1])",
                           R"(["--json-status", "4", "true"])", R"(["--memory", "1G", "true"])",
                           "[]", R"(["echo", "after"])"});
  EXPECT_EQ(r.exitCode, 0) << r.describe();
  EXPECT_EQ(r.out, "after\n") << r.describe();
  auto recs = records(r);
  ASSERT_EQ(recs.size(), 7u) << r.describe();
  const std::vector<std::string> said = {"line 1: not JSON",
                                         "line 2: not an array",
                                         "line 3: word 2 is not a string",
                                         "line 4: --json-status is given once",
                                         "line 5: unknown option '--memory'",
                                         "line 6: no command given"};
  for (size_t i = 0; i < said.size(); ++i) {
    EXPECT_THAT(recs[i]["error"].get<std::string>(), HasSubstr(said[i])) << recs[i].dump();
    EXPECT_EQ(recs[i]["exit_code"], nullptr) << recs[i].dump();
    EXPECT_THAT(r.err, HasSubstr("gpubox: " + said[i])) << r.describe();
  }
  EXPECT_EQ(recs[6]["exit_code"], 0) << recs[6].dump();
  EXPECT_TRUE(recs[6]["error"].is_null()) << recs[6].dump();

  auto badLast = batch("lines", {R"(["true"])", "["});
  EXPECT_EQ(badLast.exitCode, 125) << badLast.describe();
  EXPECT_EQ(records(badLast).size(), 2u) << badLast.describe();

  auto none = batch("gpubox-it-no-such-session", {R"(["true"])", R"(["true"])"});
  EXPECT_EQ(none.exitCode, 125) << none.describe();
  auto noneRecs = records(none);
  ASSERT_EQ(noneRecs.size(), 2u) << none.describe();
  for (const auto& rec : noneRecs)
    EXPECT_THAT(rec["error"].get<std::string>(),
                HasSubstr("no session named 'gpubox-it-no-such-session'"))
        << rec.dump();

  auto refused = helper().cli({"exec", "lines", "--batch", "--", "true"}, as());
  EXPECT_EQ(refused.exitCode, 125) << refused.describe();
  EXPECT_THAT(refused.err, HasSubstr("with --batch the commands come from stdin"))
      << refused.describe();
  EXPECT_EQ(helper().cli({"session", "rm", "lines"}, as()).exitCode, 0);
}

// A signal while a command runs goes to that command, and the batch goes on
// to the next line; while gpubox waits for a line it ends gpubox.
TEST_P(ExecBatch, SignalsGoToTheRunningCommandAndEndAWaitingBatch) {
  createSession("signals");
  const std::string unique = std::to_string(9421 + caller() % 10);
  auto running = helper().spawnCli(
      batchArgs("signals", {}),
      as({.stdinData = joined({R"(["sleep", ")" + unique + R"("])", R"(["echo", "after"])"}),
          .timeout = 60s,
          .extraFd = 3}));
  std::thread interrupter([&] {
    if (pollUntil([&] { return !findProcesses({"sleep", unique}).empty(); }, 30s))
      running->kill(SIGINT);
  });
  auto r = running->finish();
  interrupter.join();
  EXPECT_EQ(r.exitCode, 0) << r.describe();
  EXPECT_EQ(r.out, "after\n") << r.describe();
  auto recs = records(r);
  ASSERT_EQ(recs.size(), 2u) << r.describe();
  EXPECT_EQ(recs[0]["signal"], SIGINT) << recs[0].dump();
  EXPECT_TRUE(findProcesses({"sleep", unique}).empty());

  // Waiting for a line: stdin is a FIFO this test holds open, so no end of
  // input comes. SIGTERM then ends gpubox itself, at once.
  const std::string fifo = helper().workDir() + "/lines-" + std::to_string(caller());
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0666), 0) << fifo;
  ASSERT_EQ(::chmod(fifo.c_str(), 0666), 0);
  const int writer = ::open(fifo.c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(writer, 0) << fifo;
  std::vector<std::string> argv = {"/bin/sh", "-c", "exec \"$@\" < \"$0\"", fifo};
  for (const auto& a : helper().cliArgv(batchArgs("signals", {}))) argv.push_back(a);
  RunOptions o = as({.timeout = 60s, .extraFd = 3});
  o.cwd = helper().workDir();
  Process waiting(argv, o);
  const std::string line = "[\"true\"]\n";
  ASSERT_EQ(::write(writer, line.data(), line.size()), static_cast<ssize_t>(line.size()));
  // Blocked in read(2) on its stdin (system call 0, fd 0) once that line
  // has run and been reported.
  const std::string syscallFile = "/proc/" + std::to_string(waiting.pid()) + "/syscall";
  EXPECT_TRUE(pollUntil(
      [&] {
        return readFile(syscallFile).rfind("0 0x0 ", 0) == 0 && findProcesses({"true"}).empty();
      },
      30s))
      << readFile(syscallFile);
  waiting.kill(SIGTERM);
  auto w = waiting.finish();
  ::close(writer);
  EXPECT_FALSE(w.timedOut) << w.describe();
  EXPECT_EQ(w.termSignal, SIGTERM) << w.describe();
  auto wrecs = records(w);
  ASSERT_EQ(wrecs.size(), 1u) << w.describe();
  EXPECT_EQ(wrecs[0]["exit_code"], 0) << wrecs[0].dump();
  EXPECT_EQ(helper().cli({"session", "rm", "signals"}, as()).exitCode, 0);
}

// The helper gone mid-batch: the line that was running reports the lost
// connection, and gpubox ends there (125) instead of failing every line
// still to come the same way.
TEST_P(ExecBatch, ALostConnectionEndsTheBatch) {
  createSession("lost");
  const std::string unique = std::to_string(9431 + caller() % 10);
  auto running =
      helper().spawnCli(batchArgs("lost", {}),
                        as({.stdinData = joined({R"(["sleep", ")" + unique + R"("])",
                                                 R"(["echo", "never"])", R"(["echo", "never"])"}),
                            .timeout = 60s,
                            .extraFd = 3}));
  std::thread killer([&] {
    if (pollUntil([&] { return !findProcesses({"sleep", unique}).empty(); }, 30s))
      helper().kill(SIGKILL);
  });
  auto r = running->finish();
  killer.join();
  EXPECT_EQ(r.exitCode, 125) << r.describe();
  EXPECT_EQ(r.out, "") << r.describe();
  EXPECT_THAT(r.err, HasSubstr("gpubox: line 1: the helper closed the connection")) << r.describe();
  EXPECT_THAT(r.err, HasSubstr("no more lines are run")) << r.describe();
  auto recs = records(r);
  ASSERT_EQ(recs.size(), 1u) << r.describe();
  EXPECT_THAT(recs[0]["error"].get<std::string>(), HasSubstr("no more lines are run"))
      << recs[0].dump();

  // A new batch reaches the helper a service manager restarts.
  ASSERT_TRUE(helper().waitExit(30s).has_value());
  helper().restart();
  createSession("again");
  auto again = batch("again", {R"(["echo", "back"])"});
  EXPECT_EQ(again.exitCode, 0) << again.describe();
  EXPECT_EQ(again.out, "back\n") << again.describe();
}

GPUBOX_INSTANTIATE_CALLERS(ExecBatch);

}  // namespace
}  // namespace gpubox::itest
