// The seccomp filter every sandboxed command runs under: what it denies (and
// how: EPERM, ENOSYS for clone3, the end of the process for other ABIs), what
// it keeps working, that sessions' commands get it too, and that only root
// may turn it off. A probe binary copied into the sandbox's working
// directory makes each call (tests/integration/syscall_probe.cpp).
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "harness.hpp"

namespace gpubox::itest {
namespace {

using ::testing::HasSubstr;

class Seccomp : public CallerTest {
 protected:
  void SetUp() override {
    CallerTest::SetUp();
    if (IsSkipped()) return;
    const char* probe = std::getenv("GPUBOX_SYSCALL_PROBE");
    ASSERT_NE(probe, nullptr) << "GPUBOX_SYSCALL_PROBE is not set (meson sets it)";
    probe_ = helper().workDir() + "/syscall_probe";
    writeFile(probe_, readFile(probe), 0755);
  }
  RunResult probe(const std::vector<std::string>& calls, std::vector<std::string> runArgs = {},
                  RunOptions opts = {}) {
    runArgs.push_back("--");
    runArgs.push_back(probe_);
    runArgs.insert(runArgs.end(), calls.begin(), calls.end());
    return runAs(runArgs, std::move(opts));
  }
  std::string probe_;
};

TEST_P(Seccomp, DefaultProfileDeniesWhatSandboxedCodeHasNoBusinessDoing) {
  const std::vector<std::string> calls = {"keyctl",
                                          "add_key",
                                          "unshare_user",
                                          "clone3",
                                          "mount",
                                          "bpf",
                                          "perf_event_open",
                                          "userfaultfd",
                                          "setns",
                                          "open_by_handle_at",
                                          "personality_aslr_off",
                                          "tiocsti"};
  RunOptions opts{.extraFd = 3};
  auto r = probe(calls, {"--json-status", "3"}, opts);
  ASSERT_EQ(r.exitCode, 0) << r.describe();
  auto seen = parseProbe(r.out);
  for (const auto& call : calls) {
    const std::string expected = call == "clone3" ? "ENOSYS" : "EPERM";
    EXPECT_EQ(seen[call], expected) << call << " in: " << r.out;
  }
  EXPECT_THAT(r.extra, HasSubstr("\"seccomp\":\"default\"")) << r.extra;
}

// Numbers the profile was never reviewed for get ENOSYS, as libc expects
// from an older kernel; the nested-userns profile is no different there.
TEST_P(Seccomp, CallsNewerThanTheProfileGetEnosys) {
  auto r = probe({"statmount"});
  ASSERT_EQ(r.exitCode, 0) << r.describe();
  EXPECT_EQ(parseProbe(r.out)["statmount"], "ENOSYS") << r.out;
}

TEST_P(Seccomp, OrdinaryWorkKeepsWorking) {
  auto r = probe({"fork", "personality_query"});
  ASSERT_EQ(r.exitCode, 0) << r.describe();
  auto seen = parseProbe(r.out);
  EXPECT_EQ(seen["fork"], "0") << r.out;
  EXPECT_EQ(seen["personality_query"], "0") << r.out;
  // Shells, pipes, subshells and job control; perl and Python where the host has them.
  auto sh = runAs({"--", "sh", "-c", "(echo a | tr a b) & wait; ls / >/dev/null && echo ok"});
  EXPECT_EQ(sh.exitCode, 0) << sh.describe();
  EXPECT_EQ(sh.out, "b\nok\n");
  if (pathExists("/usr/bin/python3")) {
    auto py = runAs({"--", "/usr/bin/python3", "-c",
                     "import threading, subprocess, tempfile; t = threading.Thread(target=print, "
                     "args=('thread',)); t.start(); t.join(); "
                     "print(subprocess.run(['true']).returncode)"});
    EXPECT_EQ(py.exitCode, 0) << py.describe();
    EXPECT_EQ(py.out, "thread\n0\n") << py.describe();
  }
}

#if defined(__x86_64__)
TEST_P(Seccomp, OtherAbisEndTheProcess) {
  for (const char* abi : {"i386", "x32"}) {
    const int host = hostSignalForAbi(probe_, abi);
    auto r = probe({abi});
    EXPECT_EQ(r.exitCode, 128 + (host ? host : SIGSYS)) << abi << ": " << r.describe();
    EXPECT_THAT(r.out, ::testing::Not(HasSubstr(std::string(abi) + "=0"))) << r.describe();
  }
}
#endif

TEST_P(Seccomp, SessionCommandsRunUnderTheFilterToo) {
  auto created = helper().cli({"session", "create", "--name", "filtered"}, as());
  ASSERT_EQ(created.exitCode, 0) << created.describe();
  auto r = helper().cli({"exec", "filtered", "--", probe_, "keyctl", "clone3"}, as());
  EXPECT_EQ(r.exitCode, 0) << r.describe();
  auto seen = parseProbe(r.out);
  EXPECT_EQ(seen["keyctl"], "EPERM") << r.out;
  EXPECT_EQ(seen["clone3"], "ENOSYS") << r.out;
  EXPECT_EQ(helper().cli({"session", "rm", "filtered"}, as()).exitCode, 0);
}

// gpubox's filter is on a sandbox's init itself (attached at the end of its
// setup) and its commands inherit it: one filter in the init and one in
// each command, the second exec's as much as the first's (none attached
// per command on top). With --seccomp none (root only) neither has one.
TEST_P(Seccomp, TheInitCarriesTheFilterAndItsCommandsInheritIt) {
  for (bool filtered : {true, false}) {
    if (!filtered && caller() != 0) continue;
    SCOPED_TRACE(filtered ? "default profile" : "--seccomp none");
    const std::string name = filtered ? "inherits" : "unfiltered";
    std::vector<std::string> create = {"session", "create", "--name", name, "--json"};
    if (!filtered) create.insert(create.end(), {"--seccomp", "none"});
    auto created = helper().cli(create, as());
    ASSERT_EQ(created.exitCode, 0) << created.describe();
    nlohmann::json j = parseJson(created.out);
    ASSERT_TRUE(j["init_pid"].is_number_integer()) << created.out;
    const std::string status =
        readFile("/proc/" + std::to_string(j["init_pid"].get<long>()) + "/status");
    const std::string expected =
        filtered ? "Seccomp:\t2\nSeccomp_filters:\t1\n" : "Seccomp:\t0\nSeccomp_filters:\t0\n";
    EXPECT_THAT(status, HasSubstr(expected)) << "the init's status:\n" << status;
    for (int i = 0; i < 2; ++i) {
      auto r = helper().cli({"exec", name, "--", "grep", "^Seccomp", "/proc/self/status"}, as());
      ASSERT_EQ(r.exitCode, 0) << r.describe();
      EXPECT_EQ(r.out, expected) << "exec " << i + 1;
    }
    EXPECT_EQ(helper().cli({"session", "rm", name}, as()).exitCode, 0);
  }
}

TEST_P(Seccomp, OnlyRootMayTurnItOff) {
  auto r = probe({"keyctl", "clone3", "setns"}, {"--seccomp", "none"});
  if (caller() != 0) {
    EXPECT_EQ(r.exitCode, 125) << r.describe();
    EXPECT_THAT(r.err, HasSubstr("--seccomp none: refused")) << r.describe();
    return;
  }
  ASSERT_EQ(r.exitCode, 0) << r.describe();
  auto seen = parseProbe(r.out);
  // Without the filter the kernel answers for itself.
  EXPECT_NE(seen["keyctl"], "EPERM") << r.out;
  EXPECT_NE(seen["clone3"], "ENOSYS") << r.out;
  EXPECT_EQ(seen["setns"], "EBADF") << r.out;
}

GPUBOX_INSTANTIATE_CALLERS(Seccomp);

}  // namespace
}  // namespace gpubox::itest
