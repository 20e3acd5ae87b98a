// The bubblewrap-style mount plan, as the sandboxed process sees it, and the
// "no confused deputy" rule: paths are opened with the caller's rights.
// Plans that bind the host's / also mount the sandbox's own /proc over the
// host's: a helper without user namespaces refuses one that leaves the
// host's procfs visible (user_namespace_test.cpp).
#include <sys/stat.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>

#include "harness.hpp"

namespace gpubox::itest {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

class Mounts : public CallerTest {
 protected:
  // A directory owned by the caller, inside a 0755 root-owned temp dir.
  void SetUp() override {
    CallerTest::SetUp();
    if (IsSkipped()) return;
    base_ = std::make_unique<TempDir>(0755);
    mine_ = *base_ / "mine";
    makeDir(mine_, 0755, caller(), caller());
    writeFile(mine_ + "/hello", "hello from the host\n", 0644, caller(), caller());
  }
  void TearDown() override {
    base_.reset();
    CallerTest::TearDown();
  }
  std::unique_ptr<TempDir> base_;
  std::string mine_;
};

TEST_P(Mounts, RoBindRefusesWritesTmpfsAcceptsThem) {
  auto r = runAs({"--ro-bind", "/", "/", "--proc", "/proc", "--tmpfs", "/mnt", "--ro-bind", mine_,
                  "/mnt/ro", "--", "sh", "-c",
                  "cat /mnt/ro/hello; "
                  "echo x > /mnt/ro/new 2>/dev/null || echo ro-new-refused; "
                  "echo x >> /mnt/ro/hello 2>/dev/null || echo ro-append-refused; "
                  "touch /mnt/ro/new 2>&1; "
                  "echo y > /mnt/scratch && cat /mnt/scratch"});
  ASSERT_EQ(r.exitCode, 0) << r.describe();
  EXPECT_THAT(r.out, HasSubstr("hello from the host"));
  EXPECT_THAT(r.out, HasSubstr("ro-new-refused"));
  EXPECT_THAT(r.out, HasSubstr("ro-append-refused"));
  EXPECT_THAT(r.out, HasSubstr("Read-only file system")) << "EROFS, not EACCES: " << r.describe();
  EXPECT_THAT(r.out, HasSubstr("y\n")) << "tmpfs must accept writes: " << r.describe();
  EXPECT_EQ(readFile(mine_ + "/hello"), "hello from the host\n");
  EXPECT_FALSE(pathExists(mine_ + "/new"));
}

TEST_P(Mounts, BindIsWritableAndSharedWithTheHost) {
  auto r =
      runAs({"--ro-bind", "/", "/", "--proc", "/proc", "--tmpfs", "/mnt", "--bind", mine_,
             "/mnt/rw", "--", "sh", "-c", "echo from-inside > /mnt/rw/out && cat /mnt/rw/hello"});
  ASSERT_EQ(r.exitCode, 0) << r.describe();
  EXPECT_EQ(r.out, "hello from the host\n");
  EXPECT_EQ(readFile(mine_ + "/out"), "from-inside\n");
}

TEST_P(Mounts, EmptyRootWithOnlyWhatWasAsked) {
  auto r = runAs({"--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin", "--symlink",
                  "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64", "--proc", "/proc", "--",
                  "/bin/sh", "-c", "ls -A /; test -e /etc/passwd && echo has-etc; true"});
  ASSERT_EQ(r.exitCode, 0) << r.describe();
  auto entries = lines(r.out);
  EXPECT_THAT(entries, ::testing::UnorderedElementsAre("bin", "lib", "lib64", "proc", "usr"))
      << r.describe();
}

TEST_P(Mounts, SymlinkDirRemountRo) {
  auto r = runAs({"--ro-bind",
                  "/",
                  "/",
                  "--proc",
                  "/proc",
                  "--tmpfs",
                  "/mnt",
                  "--dir",
                  "/mnt/a/b/c",
                  "--symlink",
                  "/etc/hostname",
                  "/mnt/link",
                  "--tmpfs",
                  "/mnt/frozen",
                  "--remount-ro",
                  "/mnt/frozen",
                  "--",
                  "sh",
                  "-c",
                  "test -d /mnt/a/b/c && echo dir-ok; readlink /mnt/link; "
                  "touch /mnt/a/b/c/f && echo dir-writable; "
                  "touch /mnt/frozen/f 2>&1 || echo frozen-refused"});
  ASSERT_EQ(r.exitCode, 0) << r.describe();
  EXPECT_THAT(r.out, HasSubstr("dir-ok"));
  EXPECT_THAT(r.out, HasSubstr("/etc/hostname\n"));
  EXPECT_THAT(r.out, HasSubstr("dir-writable"));
  EXPECT_THAT(r.out, HasSubstr("Read-only file system"));
  EXPECT_THAT(r.out, HasSubstr("frozen-refused"));
}

TEST_P(Mounts, RemountRoOfABind) {
  auto r = runAs({"--ro-bind", "/", "/", "--proc", "/proc", "--tmpfs", "/mnt", "--bind", mine_,
                  "/mnt/rw", "--remount-ro", "/mnt/rw", "--", "sh", "-c",
                  "echo x > /mnt/rw/out 2>&1 || echo refused"});
  ASSERT_EQ(r.exitCode, 0) << r.describe();
  EXPECT_THAT(r.out, HasSubstr("refused"));
  EXPECT_FALSE(pathExists(mine_ + "/out"));
}

TEST_P(Mounts, DevIsMinimal) {
  auto r = runAs({"--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "--", "sh", "-c",
                  "ls -A /dev; ls -A /dev/pts; echo z > /dev/null && echo null-ok; "
                  "head -c 4 /dev/zero | od -An -tx1; head -c 16 /dev/urandom | wc -c; "
                  "echo shm > /dev/shm/x && cat /dev/shm/x"});
  ASSERT_EQ(r.exitCode, 0) << r.describe();
  auto l = lines(r.out);
  for (const char* node : {"null", "zero", "full", "random", "urandom", "tty", "pts", "shm"})
    EXPECT_THAT(l, ::testing::Contains(node)) << r.describe();
  for (const auto& e : l) {
    EXPECT_THAT(e, Not(StartsWith("sd"))) << "host disk in /dev: " << r.describe();
    EXPECT_THAT(e, Not(StartsWith("nvidia"))) << "GPU node without --gpu: " << r.describe();
    EXPECT_NE(e, "mem");
    EXPECT_NE(e, "kmsg");
  }
  EXPECT_THAT(r.out, HasSubstr("null-ok"));
  EXPECT_THAT(r.out, HasSubstr(" 00 00 00 00"));
  EXPECT_THAT(r.out, HasSubstr("16\n"));
  EXPECT_THAT(r.out, HasSubstr("shm\n"));
}

TEST_P(Mounts, ProcIsTheSandboxes) {
  auto r = runAs({"--ro-bind", "/", "/", "--proc", "/proc", "--", "sh", "-c",
                  "ls /proc | grep -c '^[0-9]*$'"});
  ASSERT_EQ(r.exitCode, 0) << r.describe();
  // init, sh, ls, grep at most.
  EXPECT_LE(std::stoi(r.out), 4) << r.describe();
}

TEST_P(Mounts, MissingSourceNamesThePath) {
  auto r = runAs({"--ro-bind", "/nonexistent-gpubox-it", "/x", "--", "true"});
  EXPECT_EQ(r.exitCode, 125) << r.describe();
  EXPECT_THAT(r.err, StartsWith("gpubox: ")) << r.describe();
  EXPECT_THAT(r.err, HasSubstr("/nonexistent-gpubox-it")) << r.describe();
}

TEST_P(Mounts, DevBindIsRootOnly) {
  auto r = runAs({"--ro-bind", "/", "/", "--proc", "/proc", "--tmpfs", "/mnt", "--dev-bind",
                  "/dev/null", "/mnt/n", "--", "sh", "-c", "echo x > /mnt/n && echo dev-ok"});
  if (caller() == 0) {
    EXPECT_EQ(r.exitCode, 0) << r.describe();
    EXPECT_EQ(r.out, "dev-ok\n") << r.describe();
  } else {
    EXPECT_EQ(r.exitCode, 125) << r.describe();
    EXPECT_THAT(r.err, StartsWith("gpubox: ")) << r.describe();
    EXPECT_THAT(r.err, HasSubstr("--dev-bind")) << r.describe();
    EXPECT_EQ(r.out, "") << r.describe();
  }
}

GPUBOX_INSTANTIATE_CALLERS(Mounts);

// ------------------------------------------------------ no confused deputy

// Root-only material the unprivileged caller must never see: a 0700 root
// directory holding a 0600 file, and a 0600 root file in a readable dir.
class ConfusedDeputy : public HelperTest {
 protected:
  void SetUp() override {
    HelperTest::SetUp();
    if (IsSkipped()) return;
    base_ = std::make_unique<TempDir>(0755);
    secretDir_ = *base_ / "root-only";
    makeDir(secretDir_, 0700);
    secretFile_ = secretDir_ + "/secret";
    writeFile(secretFile_, kSecret, 0600);
    looseSecret_ = *base_ / "loose-secret";
    writeFile(looseSecret_, kSecret, 0600);
    mine_ = *base_ / "mine";
    makeDir(mine_, 0755, kNobodyUid, kNobodyGid);
    benign_ = mine_ + "/benign";
    writeFile(benign_, "benign\n", 0644, kNobodyUid, kNobodyGid);
  }
  void TearDown() override {
    base_.reset();
    HelperTest::TearDown();
  }
  RunResult runNobody(const std::vector<std::string>& args) {
    RunOptions o;
    o.asUid = kNobodyUid;
    return run(args, o);
  }

  static constexpr const char* kSecret = "gpubox-it-TOP-SECRET-4242\n";
  std::unique_ptr<TempDir> base_;
  std::string secretDir_, secretFile_, looseSecret_, mine_, benign_;
};

TEST_F(ConfusedDeputy, NobodyCannotBindAFileFromARoot0700Dir) {
  for (const char* opt : {"--ro-bind", "--bind"}) {
    auto r = runNobody({"--ro-bind", "/", "/", "--proc", "/proc", "--tmpfs", "/mnt", opt,
                        secretFile_, "/mnt/s", "--", "cat", "/mnt/s"});
    EXPECT_EQ(r.exitCode, 125) << opt << ": " << r.describe();
    EXPECT_THAT(r.err, StartsWith("gpubox: ")) << r.describe();
    EXPECT_THAT(r.err, HasSubstr(secretFile_))
        << "the message must name the path: " << r.describe();
    EXPECT_THAT(r.out + r.err, Not(HasSubstr("TOP-SECRET"))) << r.describe();
  }
  // The directory itself, too.
  auto d = runNobody({"--ro-bind", "/", "/", "--proc", "/proc", "--tmpfs", "/mnt", "--ro-bind",
                      secretDir_, "/mnt/d", "--", "cat", "/mnt/d/secret"});
  EXPECT_THAT(d.out + d.err, Not(HasSubstr("TOP-SECRET"))) << d.describe();
  EXPECT_NE(d.exitCode, 0) << d.describe();
  // Root may.
  auto root = run({"--ro-bind", "/", "/", "--proc", "/proc", "--tmpfs", "/mnt", "--ro-bind",
                   secretFile_, "/mnt/s", "--", "cat", "/mnt/s"});
  EXPECT_EQ(root.exitCode, 0) << root.describe();
  EXPECT_EQ(root.out, kSecret);
}

TEST_F(ConfusedDeputy, SymlinkToRootOnlyFilesChangesNothing) {
  ::symlink(secretFile_.c_str(), (mine_ + "/to-secret").c_str());
  ::symlink(secretDir_.c_str(), (mine_ + "/to-secret-dir").c_str());
  ::symlink(looseSecret_.c_str(), (mine_ + "/to-loose").c_str());
  for (const std::string link : {"/to-secret", "/to-secret-dir", "/to-loose"}) {
    std::string path = mine_ + link;
    auto r = runNobody({"--ro-bind", "/", "/", "--proc", "/proc", "--tmpfs", "/mnt", "--ro-bind",
                        path, "/mnt/s", "--", "sh", "-c", "cat /mnt/s /mnt/s/secret 2>&1; true"});
    EXPECT_THAT(r.out + r.err, Not(HasSubstr("TOP-SECRET"))) << link << ": " << r.describe();
    // Binding the 65534-owned directory that holds the links shows nothing either.
    auto whole = runNobody({"--ro-bind", "/", "/", "--proc", "/proc", "--tmpfs", "/mnt",
                            "--ro-bind", mine_, "/mnt/m", "--", "sh", "-c",
                            "cat /mnt/m" + link + " /mnt/m" + link + "/secret 2>&1; true"});
    EXPECT_THAT(whole.out + whole.err, Not(HasSubstr("TOP-SECRET")))
        << link << ": " << whole.describe();
  }
}

TEST_F(ConfusedDeputy, SymlinkSwappedDuringSetupChangesNothing) {
  // A thread flips the link between a benign file and the root-only one
  // while nobody keeps asking for it to be bound. Whatever the timing, the
  // secret never shows up inside.
  std::string link = mine_ + "/flip";
  std::string tmpLink = mine_ + "/flip.tmp";
  ASSERT_EQ(::symlink(benign_.c_str(), link.c_str()), 0);
  std::atomic<bool> stop{false};
  std::thread flipper([&] {
    bool toSecret = true;
    while (!stop.load()) {
      ::unlink(tmpLink.c_str());
      if (::symlink((toSecret ? secretFile_ : benign_).c_str(), tmpLink.c_str()) == 0)
        ::rename(tmpLink.c_str(), link.c_str());
      toSecret = !toSecret;
    }
  });
  int benignSeen = 0;
  for (int i = 0; i < 25; ++i) {
    auto r = runNobody({"--ro-bind", "/", "/", "--proc", "/proc", "--tmpfs", "/mnt", "--ro-bind",
                        link, "/mnt/f", "--", "cat", "/mnt/f"});
    EXPECT_THAT(r.out + r.err, Not(HasSubstr("TOP-SECRET")))
        << "iteration " << i << ": " << r.describe();
    if (r.exitCode == 0) {
      EXPECT_EQ(r.out, "benign\n") << r.describe();
      ++benignSeen;
    } else {
      EXPECT_EQ(r.exitCode, 125) << r.describe();
    }
  }
  stop = true;
  flipper.join();
  RecordProperty("benign_binds", benignSeen);
}

TEST_F(ConfusedDeputy, NobodyCannotBindThroughAnUnsearchableDir) {
  // The path goes through a root 0700 directory to a world-readable file.
  std::string inner = secretDir_ + "/readable";
  writeFile(inner, "gpubox-it-TOP-SECRET-readable\n", 0644);
  auto r = runNobody({"--ro-bind", "/", "/", "--proc", "/proc", "--tmpfs", "/mnt", "--ro-bind",
                      inner, "/mnt/s", "--", "cat", "/mnt/s"});
  EXPECT_EQ(r.exitCode, 125) << r.describe();
  EXPECT_THAT(r.err, HasSubstr(inner)) << r.describe();
  EXPECT_THAT(r.out, Not(HasSubstr("TOP-SECRET"))) << r.describe();
}

TEST_F(ConfusedDeputy, ChdirIntoARootOnlyDirIsRefused) {
  auto r = runNobody(
      {"--ro-bind", "/", "/", "--proc", "/proc", "--chdir", secretDir_, "--", "cat", "secret"});
  EXPECT_NE(r.exitCode, 0) << r.describe();
  EXPECT_THAT(r.out, Not(HasSubstr("TOP-SECRET"))) << r.describe();
}

}  // namespace
}  // namespace gpubox::itest
