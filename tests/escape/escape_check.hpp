// The escape suite's reporting and its probe runner.
//
// Every attempt is reported as exactly one line on stdout,
//
//   ESCAPE-CHECK [<mode> <caller>] <attempt> | expected: <...> | got: <...>
//
// and fails the test when what it got is not what was expected. <mode> is
// the helper's user-namespace mode under test ($GPUBOX_TEST_USER_NAMESPACE,
// "default" when unset); <caller> is "root" or "uid65534".
//
// Probe attempts (tests/escape/escape_probe.cpp, $GPUBOX_ESCAPE_PROBE) are
// rows of a table: a sandbox plan, the probe's attempt argument, and the
// expected result. Rows that share a plan run in one sandbox.
#pragma once

#include <sys/types.h>

#include <functional>
#include <initializer_list>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "harness.hpp"

namespace gpubox::escape {

// What an attempt must come to, in words (for the report) and as a test.
struct Expect {
  std::string text;
  std::function<bool(const std::string&)> accepts;
};

// The attempt is refused with one of these errno names.
Expect refused(std::initializer_list<const char*> errnos);
// Exactly this result.
Expect exactly(const std::string& result);
// A result for which `pred` holds; `text` says which.
Expect matching(const std::string& text, std::function<bool(const std::string&)> pred);

// The mode label of the report lines.
std::string userNamespaceMode();
std::string callerLabel(uid_t uid);

// Prints the ESCAPE-CHECK line and fails the current test (ADD_FAILURE, so
// the other attempts still run) when `got` is not accepted.
void check(uid_t caller, const std::string& attempt, const Expect& expect, const std::string& got);

// The probe binary, copied to DIR/escape_probe (mode 0755, root-owned): a
// path every caller can run inside a sandbox whose plan shows DIR.
std::string installProbe(const std::string& dir);

// One attempt of the probe.
struct ProbeRow {
  std::string name;     // what is tried, in words
  std::string attempt;  // the probe's argument, e.g. "mount-tmpfs:/mnt"
  Expect expect;
};

// Runs every row's attempt in one sandbox (`gpubox run PLAN -- PROBE
// ATTEMPTS...`, as `caller`) and checks each. A row whose attempt printed
// nothing (the probe died first) is reported with the run's exit status.
// Returns the run for further checks.
itest::RunResult runProbeRows(const itest::HelperProcess& helper, uid_t caller,
                              const std::string& probe, const std::vector<std::string>& plan,
                              const std::vector<ProbeRow>& rows, itest::RunOptions opts = {});

// A test against a fresh helper, as root and as uid 65534, with the escape
// probe copied where both can run it.
class ProbeEscapeTest : public itest::CallerTest {
 protected:
  void SetUp() override {
    CallerTest::SetUp();
    if (IsSkipped()) return;
    probe_ = installProbe(helper().workDir());
  }
  itest::RunResult probeRows(const std::vector<std::string>& plan,
                             const std::vector<ProbeRow>& rows, itest::RunOptions opts = {}) {
    return runProbeRows(helper(), caller(), probe_, plan, rows, std::move(opts));
  }
  std::string probe_;
};

// "ATTEMPT => RESULT" lines of the probe's output, by attempt.
std::map<std::string, std::string> parseProbeOutput(const std::string& out);

// A host process that runs as `uid` (sleep, until destroyed): the target of
// the see/signal/ptrace attempts. The escape would be reaching it.
class HostSleeper {
 public:
  explicit HostSleeper(uid_t uid);
  ~HostSleeper();
  HostSleeper(const HostSleeper&) = delete;
  HostSleeper& operator=(const HostSleeper&) = delete;
  pid_t pid() const { return pid_; }
  bool alive() const;

 private:
  pid_t pid_ = -1;
};

// How a run ended, in words: "exit 0", "exit 137", "signal 9".
std::string endedAs(const itest::RunResult& r);

}  // namespace gpubox::escape
