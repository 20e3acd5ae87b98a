// The default seccomp profile as a program: what it returns for each kind of
// system call, on x86_64 and on aarch64 (built for that architecture by
// libseccomp and run here in an interpreter), so the aarch64 profile is
// checked without an aarch64 machine.
#include "seccomp_profile.hpp"

#include <errno.h>
#include <gtest/gtest.h>
#include <linux/audit.h>
#include <linux/sched.h>
#include <seccomp.h>
#include <sys/ioctl.h>
#include <sys/personality.h>

#include "bpf_interpreter.hpp"

namespace gpubox {
namespace {

constexpr uint32_t kAllow = SECCOMP_RET_ALLOW;
constexpr uint32_t kEperm = SECCOMP_RET_ERRNO | EPERM;
constexpr uint32_t kEnosys = SECCOMP_RET_ERRNO | ENOSYS;
constexpr uint32_t kKill = SECCOMP_RET_KILL_PROCESS;

struct Arch {
  uint32_t scmp;   // SCMP_ARCH_* (the AUDIT_ARCH_* value)
  uint32_t other;  // a second ABI the same kernel runs, which must be killed
  const char* name;
};

class SeccompProgramTest : public ::testing::TestWithParam<Arch> {
 protected:
  uint32_t run(const SeccompProgram& p, const char* call, std::vector<uint64_t> args = {},
               uint32_t arch = 0) const {
    const int nr = seccomp_syscall_resolve_name_arch(GetParam().scmp, call);
    EXPECT_GE(nr, 0) << call << " on " << GetParam().name;
    return runNr(p, nr, args, arch);
  }
  uint32_t runNr(const SeccompProgram& p, int nr, std::vector<uint64_t> args = {},
                 uint32_t arch = 0) const {
    seccomp_data data = {};
    data.nr = nr;
    data.arch = arch ? arch : GetParam().scmp;
    for (size_t i = 0; i < args.size() && i < 6; ++i) data.args[i] = args[i];
    return test::runSeccompBpf(p.instructions, data);
  }
};

TEST_P(SeccompProgramTest, DeniesWithEpermAllowsTheRest) {
  const SeccompProgram p = buildDefaultSeccompProfile(false, GetParam().scmp);
  EXPECT_EQ(p.name, "default");
  for (const char* denied :
       {"keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd", "mount",
        "umount2", "pivot_root", "move_mount", "fsopen", "open_tree", "setns", "init_module",
        "kexec_load", "open_by_handle_at", "reboot", "swapon", "settimeofday"})
    EXPECT_EQ(run(p, denied), kEperm) << denied;
  for (const char* allowed : {"read", "write", "openat", "mmap", "futex", "clone", "execve",
                              "ioctl", "socket", "unshare", "personality", "exit_group"})
    EXPECT_EQ(run(p, allowed), kAllow) << allowed;
}

TEST_P(SeccompProgramTest, ArgumentRules) {
  const SeccompProgram p = buildDefaultSeccompProfile(false, GetParam().scmp);
  EXPECT_EQ(run(p, "unshare", {CLONE_NEWUSER}), kEperm);
  EXPECT_EQ(run(p, "unshare", {CLONE_NEWNS | CLONE_NEWUSER}), kEperm);
  EXPECT_EQ(run(p, "unshare", {CLONE_NEWNS}), kAllow);
  EXPECT_EQ(run(p, "clone", {CLONE_NEWUSER | SIGCHLD}), kEperm);
  EXPECT_EQ(run(p, "clone", {CLONE_VM | CLONE_THREAD | CLONE_SIGHAND}), kAllow);
  EXPECT_EQ(run(p, "clone3"), kEnosys);
  EXPECT_EQ(run(p, "ioctl", {0, TIOCSTI}), kEperm);
  EXPECT_EQ(run(p, "ioctl", {0, 0x541C /* TIOCLINUX */}), kEperm);
  EXPECT_EQ(run(p, "ioctl", {0, TIOCGWINSZ}), kAllow);
  // The upper 32 bits of the request are ignored by the kernel: so here.
  EXPECT_EQ(run(p, "ioctl", {0, 0xffffffff00000000ull | TIOCSTI}), kEperm);
  EXPECT_EQ(run(p, "personality", {ADDR_NO_RANDOMIZE}), kEperm);
  EXPECT_EQ(run(p, "personality", {static_cast<uint64_t>(READ_IMPLIES_EXEC)}), kEperm);
  EXPECT_EQ(run(p, "personality", {PER_LINUX}), kAllow);
  EXPECT_EQ(run(p, "personality", {0xffffffff}), kAllow);  // a query
}

TEST_P(SeccompProgramTest, UnknownNumbersGetEnosysOtherAbisAreKilled) {
  const SeccompProgram p = buildDefaultSeccompProfile(false, GetParam().scmp);
  EXPECT_EQ(runNr(p, 1000), kEnosys);
  EXPECT_EQ(runNr(p, 0x3fffffff), kEnosys);
  EXPECT_EQ(run(p, "read", {}, GetParam().other), kKill);
  EXPECT_EQ(runNr(p, 0, {}, GetParam().other), kKill);
}

TEST_P(SeccompProgramTest, NestedUsernsProfileAllowsOnlyThatMore) {
  const SeccompProgram p = buildDefaultSeccompProfile(true, GetParam().scmp);
  EXPECT_EQ(p.name, "nested-userns");
  EXPECT_EQ(run(p, "unshare", {CLONE_NEWUSER}), kAllow);
  EXPECT_EQ(run(p, "clone", {CLONE_NEWUSER | SIGCHLD}), kAllow);
  EXPECT_EQ(run(p, "clone3"), kEnosys);
  EXPECT_EQ(run(p, "keyctl"), kEperm);
  EXPECT_EQ(run(p, "mount"), kEperm);
  EXPECT_EQ(runNr(p, 1000), kEnosys);
}

INSTANTIATE_TEST_SUITE_P(Arches, SeccompProgramTest,
                         ::testing::Values(Arch{SCMP_ARCH_X86_64, AUDIT_ARCH_I386, "x86_64"},
                                           Arch{SCMP_ARCH_AARCH64, AUDIT_ARCH_ARM, "aarch64"}),
                         [](const auto& info) { return std::string(info.param.name); });

// x32 shares x86_64's arch value; its numbers carry bit 30.
TEST(SeccompProgramX86, X32NumbersAreKilled) {
  const SeccompProgram p = buildDefaultSeccompProfile(false, SCMP_ARCH_X86_64);
  seccomp_data data = {};
  data.arch = AUDIT_ARCH_X86_64;
  data.nr = 0x40000000 | 39;  // x32 getpid
  EXPECT_EQ(test::runSeccompBpf(p.instructions, data), kKill);
}

}  // namespace
}  // namespace gpubox
