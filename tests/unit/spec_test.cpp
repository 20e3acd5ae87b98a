#include "spec.hpp"

#include <gtest/gtest.h>

#include <algorithm>

#include "error.hpp"

using gpubox::Command;
using gpubox::Error;
using gpubox::MountKind;
using gpubox::MountOp;
using gpubox::SandboxSpec;

namespace {

SandboxSpec minimalSpec() {
  SandboxSpec spec;
  spec.cwd = "/home/user/project";
  return spec;
}

std::string errorOf(const SandboxSpec& spec) {
  try {
    gpubox::validateSpec(spec);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(ValidateSpec, AcceptsDefaultPlanWithAbsoluteCwd) {
  EXPECT_EQ(errorOf(minimalSpec()), "");
}

TEST(ValidateSpec, RejectsRelativeAndDotDotPaths) {
  SandboxSpec spec = minimalSpec();
  spec.mounts.push_back({.kind = MountKind::Bind, .source = "relative", .dest = "/x"});
  EXPECT_NE(errorOf(spec).find("--bind source 'relative' is not an absolute path"),
            std::string::npos);
  spec.mounts[0] = {.kind = MountKind::RoBind, .source = "/a/../etc", .dest = "/x"};
  EXPECT_NE(errorOf(spec).find("contains a '..' component"), std::string::npos);
  spec.mounts[0] = {.kind = MountKind::Tmpfs, .dest = "/a/./b"};
  EXPECT_NE(errorOf(spec).find("'.' component"), std::string::npos);
}

TEST(ValidateSpec, RejectsNulBytesAndOverlongPaths) {
  SandboxSpec spec = minimalSpec();
  spec.mounts.push_back({.kind = MountKind::Dir, .dest = std::string("/a\0b", 4)});
  EXPECT_NE(errorOf(spec).find("NUL"), std::string::npos);
  spec.mounts[0].dest = "/" + std::string(5000, 'a');
  EXPECT_NE(errorOf(spec).find("longer than 4096"), std::string::npos);
}

TEST(ValidateSpec, RejectsTooManyMounts) {
  SandboxSpec spec = minimalSpec();
  spec.mounts.assign(gpubox::SpecLimits::kMaxMounts + 1, {.kind = MountKind::Dir, .dest = "/d"});
  EXPECT_NE(errorOf(spec).find("too many mount steps"), std::string::npos);
}

TEST(ValidateSpec, RejectsBadHostname) {
  SandboxSpec spec = minimalSpec();
  spec.hostname = "bad name";
  EXPECT_NE(errorOf(spec).find("hostname"), std::string::npos);
  spec.hostname = std::string(65, 'h');
  EXPECT_NE(errorOf(spec).find("longer than 64"), std::string::npos);
  spec.hostname = "box-1.example";
  EXPECT_EQ(errorOf(spec), "");
}

TEST(ValidateSpec, FileContentsAreBounded) {
  SandboxSpec spec = minimalSpec();
  spec.mounts.push_back({.kind = MountKind::File, .source = "x", .dest = "/etc/x"});
  EXPECT_EQ(errorOf(spec), "");
  spec.mounts.push_back({.kind = MountKind::BindData,
                         .source = std::string(gpubox::SpecLimits::kMaxFileData + 1, 'a'),
                         .dest = "/etc/big"});
  EXPECT_NE(errorOf(spec).find("larger than 4 MiB"), std::string::npos) << errorOf(spec);
  spec.mounts.pop_back();
  for (int i = 0; i < 3; ++i)
    spec.mounts.push_back({.kind = MountKind::RoBindData,
                           .source = std::string(gpubox::SpecLimits::kMaxFileData, 'a'),
                           .dest = "/etc/f" + std::to_string(i)});
  EXPECT_NE(errorOf(spec).find("exceed 8 MiB"), std::string::npos) << errorOf(spec);
}

TEST(ValidateSpec, ModifiersOnlyWhereBwrapTakesThem) {
  SandboxSpec spec = minimalSpec();
  spec.mounts = {{.kind = MountKind::Tmpfs, .dest = "/t", .mode = 01777, .sizeBytes = 4096},
                 {.kind = MountKind::Dir, .dest = "/d", .mode = 0},
                 {.kind = MountKind::Chmod, .dest = "/d", .mode = 0755},
                 {.kind = MountKind::Bind, .source = "/a", .dest = "/b", .ifSourceExists = true},
                 {.kind = MountKind::Mqueue, .dest = "/dev/mqueue"}};
  EXPECT_EQ(errorOf(spec), "");
  auto refused = [&](MountOp op, const std::string& why) {
    SandboxSpec s = minimalSpec();
    s.mounts = {op};
    EXPECT_NE(errorOf(s).find(why), std::string::npos)
        << gpubox::describeMount(op) << ": " << errorOf(s);
  };
  refused({.kind = MountKind::Proc, .dest = "/proc", .mode = 0755}, "has permission bits");
  refused({.kind = MountKind::Dir, .dest = "/d", .mode = 010000}, "above 07777");
  refused({.kind = MountKind::Chmod, .dest = "/d"}, "no permission bits");
  refused({.kind = MountKind::Dir, .dest = "/d", .sizeBytes = 1}, "only --tmpfs takes one");
  refused({.kind = MountKind::Tmpfs, .dest = "/d", .sizeBytes = UINT64_MAX}, "largest tmpfs");
  refused({.kind = MountKind::Tmpfs, .dest = "/d", .ifSourceExists = true}, "can be optional");
  refused({.kind = MountKind::Symlink,
           .source = "x",
           .dest = "/d",
           .sourceInode = gpubox::InodeId{1, 2}},
          "name an inode");
  refused({.kind = MountKind::Mqueue, .source = "/x", .dest = "/d"}, "has a source");
}

TEST(ValidateSpec, SeccompProgramsAreWholeInstructionsWithinTheKernelsLimit) {
  SandboxSpec spec = minimalSpec();
  spec.seccompPrograms = {std::string(8, '\0')};
  EXPECT_EQ(errorOf(spec), "");
  spec.seccompPrograms = {std::string(12, '\0')};
  EXPECT_NE(errorOf(spec).find("not a whole number of 8-byte"), std::string::npos);
  spec.seccompPrograms = {""};
  EXPECT_NE(errorOf(spec).find("is empty"), std::string::npos);
  spec.seccompPrograms = {std::string(4097 * 8, '\0')};
  EXPECT_NE(errorOf(spec).find("more than the kernel's 4096"), std::string::npos);
  spec.seccompPrograms = {std::string(4096 * 8, '\0')};
  EXPECT_EQ(errorOf(spec), "");
  spec.seccompPrograms.assign(17, std::string(8, '\0'));
  EXPECT_NE(errorOf(spec).find("too many seccomp programs"), std::string::npos);
}

TEST(ValidateSpec, LockFilesAreAbsolutePaths) {
  SandboxSpec spec = minimalSpec();
  spec.lockFiles = {"/run/lock/x"};
  EXPECT_EQ(errorOf(spec), "");
  spec.lockFiles = {"run/lock"};
  EXPECT_NE(errorOf(spec).find("--lock-file path"), std::string::npos);
}

TEST(DescribeMount, ShowsModifiersAsBwrapWouldWriteThem) {
  EXPECT_EQ(gpubox::describeMount(
                {.kind = MountKind::Tmpfs, .dest = "/t", .mode = 01777, .sizeBytes = 4096}),
            "--perms 1777 --size 4096 --tmpfs /t");
  EXPECT_EQ(gpubox::describeMount(
                {.kind = MountKind::RoBind, .source = "/a", .dest = "/b", .ifSourceExists = true}),
            "--ro-bind-try /a /b");
  EXPECT_EQ(gpubox::describeMount({.kind = MountKind::Chmod, .dest = "/d", .mode = 0750}),
            "--chmod 0750 /d");
  EXPECT_EQ(gpubox::describeMount({.kind = MountKind::File, .source = "abc", .dest = "/f"}),
            "--file (3 bytes) /f");
}

TEST(ValidateCommand, RequiresArgvAndWellFormedEnv) {
  Command cmd;
  EXPECT_THROW(gpubox::validateCommand(cmd), Error);
  cmd.argv = {"true"};
  EXPECT_NO_THROW(gpubox::validateCommand(cmd));
  cmd.env = {"NOEQUALS"};
  EXPECT_THROW(gpubox::validateCommand(cmd), Error);
  cmd.env = {"=value"};
  EXPECT_THROW(gpubox::validateCommand(cmd), Error);
  cmd.env = {"A=b=c"};
  EXPECT_NO_THROW(gpubox::validateCommand(cmd));
  cmd.cwd = "relative";
  EXPECT_THROW(gpubox::validateCommand(cmd), Error);
}

TEST(ValidateCommand, Argv0AndFallbackDirectories) {
  Command cmd;
  cmd.argv = {"true"};
  cmd.argv0 = "shown-name";
  cmd.cwdFallbacks = {"/home/me/src", "/home/me"};
  EXPECT_NO_THROW(gpubox::validateCommand(cmd));
  cmd.cwdFallbacks = {"home/me"};
  EXPECT_THROW(gpubox::validateCommand(cmd), Error);
  cmd.cwdFallbacks.assign(9, "/a");
  EXPECT_THROW(gpubox::validateCommand(cmd), Error);
  cmd.cwdFallbacks.clear();
  cmd.argv0 = std::string("a\0b", 3);
  EXPECT_THROW(gpubox::validateCommand(cmd), Error);
}

TEST(ValidateCommand, RejectsOversizedArguments) {
  Command cmd;
  cmd.argv = {"echo", std::string(gpubox::SpecLimits::kMaxArgBytes, 'x')};
  EXPECT_THROW(gpubox::validateCommand(cmd), Error);
}

TEST(DefaultPlan, IsReadOnlyRootWithFreshTmpDevProcAndWritableCwd) {
  auto plan = gpubox::defaultPlan("/work/project");
  ASSERT_EQ(plan.size(), 7u);
  EXPECT_EQ(gpubox::describeMount(plan[0]), "--ro-bind / /");
  EXPECT_EQ(gpubox::describeMount(plan[1]), "--dev /dev");
  EXPECT_EQ(gpubox::describeMount(plan[2]), "--proc /proc");
  EXPECT_EQ(gpubox::describeMount(plan[3]), "--tmpfs /tmp");
  EXPECT_EQ(gpubox::describeMount(plan[4]), "--tmpfs /run");
  EXPECT_EQ(gpubox::describeMount(plan[5]), "--ro-bind /sys /sys");
  EXPECT_EQ(gpubox::describeMount(plan[6]), "--bind /work/project /work/project");
}

TEST(DefaultPlan, DoesNotBindRootReadWriteWhenCwdIsRoot) {
  auto plan = gpubox::defaultPlan("/");
  for (const MountOp& op : plan) EXPECT_NE(op.kind, MountKind::Bind);
}

TEST(Spec, SecretPathsUnderTheHome) {
  auto paths = gpubox::secretPaths("/home/u");
  EXPECT_NE(std::find(paths.begin(), paths.end(), "/home/u/.ssh"), paths.end());
  EXPECT_NE(std::find(paths.begin(), paths.end(), "/home/u/.docker/config.json"), paths.end());
  EXPECT_NE(std::find(paths.begin(), paths.end(), "/home/u/.git-credentials"), paths.end());
  EXPECT_TRUE(gpubox::secretPaths("").empty());
  EXPECT_TRUE(gpubox::secretPaths("/").empty()) << "a home of / would hide nothing useful";
  gpubox::SandboxSpec spec;
  spec.cwd = "/w";
  spec.home = "relative/home";
  EXPECT_THROW(gpubox::validateSpec(spec), gpubox::Error);
}

// Found by fuzz_spec_wire: a --proc step whose (unused) source held NUL
// bytes validated, and did not survive re-encoding unchanged.
TEST(ValidateSpec, RejectsASourceOnStepsThatTakeNone) {
  for (MountKind kind :
       {MountKind::Tmpfs, MountKind::Proc, MountKind::Dev, MountKind::Dir, MountKind::RemountRo}) {
    SandboxSpec spec = minimalSpec();
    spec.mounts.push_back({.kind = kind, .source = std::string("\0\0", 2), .dest = "/x"});
    EXPECT_NE(errorOf(spec).find("has a source"), std::string::npos) << errorOf(spec);
    spec.mounts.back().source = "/anything";
    EXPECT_NE(errorOf(spec).find("has a source"), std::string::npos) << errorOf(spec);
    spec.mounts.back().source.clear();
    EXPECT_EQ(errorOf(spec), "");
  }
}
