// CUDA in a root that is not the host's (docs/gpu.md, "what the sandbox
// sees"): a Debian libc tree made here from the archive's libc6 package,
// a fake driver whose libcuda.so.<version> is a real tiny library (cuInit
// returns 0), and a program in the tree that dlopens libcuda.so.1 through
// the tree's own loader. Read-only and writable roots, as root and as uid
// 65534; the writable root must be left exactly as it was.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <map>

#include "fake_driver.hpp"
#include "harness.hpp"

using namespace gpubox::itest;
using gpubox::testing::FakeDriverRoot;
namespace fs = std::filesystem;

namespace {

const std::string kPolicy = R"([[allow]]
users = [65534, 0]
gpus = ["all"]
max_gpus = 4
)";

std::string envPath(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

// The tree: libc6 unpacked (no maintainer scripts run), /run, /proc, /dev
// and /etc/ld.so.conf as the distribution's base files would add them (the
// plan's --proc and --dev need their mount points in a read-only root), a loader
// cache made by ldconfig -r (as every image has one), and the probe.
struct ForeignTree {
  TempDir dir{0755};
  std::string root = dir / "root";
  std::string skipReason;

  ForeignTree() {
    RunResult dl = runProcess({"/usr/bin/apt-get", "download", "-q", "libc6"},
                              {.cwd = dir.path(), .timeout = std::chrono::seconds(180)});
    std::string deb;
    for (const auto& e : fs::directory_iterator(dir.path()))
      if (e.path().extension() == ".deb") deb = e.path();
    if (dl.exitCode != 0 || deb.empty()) {
      skipReason = "apt-get download libc6 failed (no apt or no network?): " + dl.describe();
      return;
    }
    RunResult x = runProcess({"/usr/bin/dpkg", "-x", deb, root});
    if (x.exitCode != 0) throw std::runtime_error("dpkg -x: " + x.describe());
    for (const char* d : {"/run", "/proc", "/dev"}) fs::create_directories(root + d);
    fs::create_directories(root + "/usr/bin");
    writeFile(root + "/etc/ld.so.conf", "include /etc/ld.so.conf.d/*.conf\n");
    RunResult ldconfig = runProcess({"/sbin/ldconfig", "-r", root});
    if (ldconfig.exitCode != 0) throw std::runtime_error("ldconfig -r: " + ldconfig.describe());
    fs::copy_file(envPath("GPUBOX_CUDA_DLOPEN_PROBE"), root + "/usr/bin/cuda-probe");
    // libc-bin's ldconfig (Debian's is static): an independent reader of
    // the cache the init writes, run inside the sandbox.
    fs::create_directories(root + "/sbin");
    fs::copy_file("/sbin/ldconfig", root + "/sbin/ldconfig");
    fs::permissions(root + "/usr/bin/cuda-probe", fs::perms(0755));
  }
};

ForeignTree& tree() {
  static ForeignTree t;
  return t;
}

// A copy of the foreign tree in DIR/root (cp -a: modes, owners and times
// kept); throws if it cannot be made.
std::string copyOfTree(const TempDir& dir) {
  const std::string root = dir / "root";
  RunResult cp = runProcess({"/bin/cp", "-a", tree().root, root});
  if (cp.exitCode != 0) throw std::runtime_error("cp -a: " + cp.describe());
  return root;
}

// Every path under DIR with its type, size, mode, owner and mtime: what a
// sandbox could have left behind or changed.
std::map<std::string, std::string> snapshot(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    struct stat st;
    if (::lstat(e.path().c_str(), &st) != 0) continue;
    out[e.path()] = std::to_string(st.st_mode) + " " + std::to_string(st.st_size) + " " +
                    std::to_string(st.st_uid) + " " + std::to_string(st.st_mtim.tv_sec) + "." +
                    std::to_string(st.st_mtim.tv_nsec);
  }
  return out;
}

bool contains(const std::string& hay, const std::string& needle) {
  return hay.find(needle) != std::string::npos;
}

}  // namespace

class ForeignRootTest : public ::testing::TestWithParam<uid_t> {
 protected:
  void SetUp() override {
    requireRoot();
    if (IsSkipped()) return;
    if (!FakeDriverRoot::canMknod()) GTEST_SKIP() << "cannot mknod fake NVIDIA nodes here";
    if (!tree().skipReason.empty()) GTEST_SKIP() << tree().skipReason;
    fake = std::make_unique<FakeDriverRoot>(
        FakeDriverRoot::Options{.gpus = 1, .libcudaFile = envPath("GPUBOX_FAKE_LIBCUDA")});
    writeFile(config / "helper.toml", kPolicy, 0644);
    helper = std::make_unique<HelperProcess>(HelperOptions{
        .extraArgs = {"--config", config / "helper.toml", "--driver-root", fake->root()}});
  }

  RunResult run(const std::string& bind, const std::string& root) {
    return helper->cli({"run", bind, root, "/", "--proc", "/proc", "--dev", "/dev", "--gpu", "0",
                        "--", "/usr/bin/cuda-probe"},
                       {.asUid = GetParam()});
  }

  std::unique_ptr<FakeDriverRoot> fake;
  TempDir config{0755};
  std::unique_ptr<HelperProcess> helper;
};

TEST_P(ForeignRootTest, ReadOnlyRootFindsTheDriverThroughItsLoaderCache) {
  const std::string cache = readFile(tree().root + "/etc/ld.so.cache");
  auto before = snapshot(tree().root);
  RunResult r = run("--ro-bind", tree().root);
  EXPECT_EQ(r.exitCode, 0) << r.describe();
  EXPECT_TRUE(contains(r.out, "cuInit 0")) << r.describe();
  // The root's own cache is untouched: the sandbox saw a copy.
  EXPECT_EQ(readFile(tree().root + "/etc/ld.so.cache"), cache);
  EXPECT_EQ(snapshot(tree().root), before);
}

TEST_P(ForeignRootTest, GlibcsLdconfigReadsTheGeneratedCache) {
  RunResult r = helper->cli({"run", "--ro-bind", tree().root, "/", "--proc", "/proc", "--dev",
                             "/dev", "--gpu", "0", "--", "/sbin/ldconfig", "-p"},
                            {.asUid = GetParam()});
  // The tree's own ldconfig reads the cache the init wrote (an independent
  // reader of the format): the driver's entries and the root's own.
  EXPECT_EQ(r.exitCode, 0) << r.describe();
  EXPECT_TRUE(contains(r.out, "libcuda.so.1 (libc6,x86-64) => /run/gpubox-driver/libcuda.so.1"))
      << r.out;
  EXPECT_TRUE(contains(r.out, "libc.so.6 (libc6,x86-64) => /lib/x86_64-linux-gnu/libc.so.6"))
      << r.out;
}

TEST_P(ForeignRootTest, TheDriverDirectoryIsReadOnly) {
  RunResult r = helper->cli(
      {"run", "--ro-bind", tree().root, "/", "--proc", "/proc", "--dev", "/dev", "--gpu", "0", "--",
       "/sbin/ldconfig", "-C", "/run/gpubox-driver/x", "-f", "/etc/ld.so.conf"},
      {.asUid = GetParam()});
  // ldconfig writes its cache beside the name given (x~, then renames):
  // refused, even for root, because the tmpfs is mounted read-only.
  EXPECT_NE(r.exitCode, 0) << r.describe();
  EXPECT_TRUE(contains(r.err, "Read-only file system")) << r.describe();
}

TEST_P(ForeignRootTest, WritableRootIsLeftAsItWas) {
  // A copy of the tree the caller owns, so the root really is writable to it.
  TempDir copy(0755);
  const std::string root = copyOfTree(copy);
  RunResult own = runProcess({"/bin/chown", "-R", std::to_string(GetParam()), root});
  ASSERT_EQ(own.exitCode, 0) << own.describe();
  auto before = snapshot(root);
  RunResult r = run("--bind", root);
  EXPECT_EQ(r.exitCode, 0) << r.describe();
  EXPECT_TRUE(contains(r.out, "cuInit 0")) << r.describe();
  EXPECT_EQ(snapshot(root), before);
}

TEST_P(ForeignRootTest, AnOwnTmpfsOnRunIsUsedAndOtherMountsBelowRunAreRefused) {
  // --tmpfs /run: the driver directory is made in it.
  RunResult ok = helper->cli({"run", "--ro-bind", tree().root, "/", "--tmpfs", "/run", "--proc",
                              "/proc", "--dev", "/dev", "--gpu", "0", "--", "/usr/bin/cuda-probe"},
                             {.asUid = GetParam()});
  EXPECT_EQ(ok.exitCode, 0) << ok.describe();
  EXPECT_TRUE(contains(ok.out, "cuInit 0")) << ok.describe();
  // A directory of the caller's bound on /run (as the host's /run would
  // be): making the driver directory in it would leave it there, covering
  // it would hide it. Refused, saying what to do instead.
  TempDir mine(0755, GetParam(), GetParam());
  RunResult refused = helper->cli({"run", "--ro-bind", tree().root, "/", "--dev", "/dev", "--bind",
                                   mine.path(), "/run", "--gpu", "0", "--", "/usr/bin/cuda-probe"},
                                  {.asUid = GetParam()});
  EXPECT_NE(refused.exitCode, 0) << refused.describe();
  EXPECT_TRUE(contains(refused.err, "put --tmpfs /run in the plan")) << refused.describe();
}

TEST_P(ForeignRootTest, WithoutALoaderCacheLdLibraryPathFindsTheDriver) {
  // A bare tree without /etc/ld.so.cache: the cache step is skipped (there
  // is nothing to bind over without writing into the tree), the directory
  // is still there for LD_LIBRARY_PATH.
  TempDir copy(0755);
  const std::string root = copyOfTree(copy);
  fs::remove(root + "/etc/ld.so.cache");
  std::vector<std::string> base = {"run",   "--ro-bind", root,   "/",     "--proc",
                                   "/proc", "--dev",     "/dev", "--gpu", "0"};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = base;
    args.insert(args.end(), extra.begin(), extra.end());
    return helper->cli(args, {.asUid = GetParam()});
  };
  RunResult plain = with({"--", "/usr/bin/cuda-probe"});
  EXPECT_NE(plain.exitCode, 0) << plain.describe();
  EXPECT_TRUE(contains(plain.out, "dlopen failed")) << plain.describe();
  RunResult env =
      with({"--setenv", "LD_LIBRARY_PATH", "/run/gpubox-driver", "--", "/usr/bin/cuda-probe"});
  EXPECT_EQ(env.exitCode, 0) << env.describe();
  EXPECT_TRUE(contains(env.out, "cuInit 0")) << env.describe();
}

TEST_P(ForeignRootTest, NvidiaSmiIsOnPath) {
  // The command's PATH gains the driver directory's bin/ (where nvidia-smi
  // is bound), after what the caller set; a PATH-less command keeps none.
  RunResult r = helper->cli(
      {"run", "--ro-bind", tree().root, "/", "--proc", "/proc", "--dev", "/dev", "--gpu", "0",
       "--setenv", "PATH", "/usr/bin:/bin", "--", "/usr/bin/cuda-probe", "--which", "nvidia-smi"},
      {.asUid = GetParam()});
  EXPECT_EQ(r.exitCode, 0) << r.describe();
  EXPECT_EQ(r.out, "which nvidia-smi: /run/gpubox-driver/bin/nvidia-smi\n") << r.describe();
  // Without --gpu nothing is added, and the host's directories are not there.
  RunResult none =
      helper->cli({"run", "--ro-bind", tree().root, "/", "--proc", "/proc", "--setenv", "PATH",
                   "/usr/bin:/bin", "--", "/usr/bin/cuda-probe", "--which", "nvidia-smi"},
                  {.asUid = GetParam()});
  EXPECT_EQ(none.out, "which nvidia-smi: not found\n") << none.describe();
}

TEST_P(ForeignRootTest, TheDriversNvidiaSmiRunsByNameWhereTheHostsIsAShellWrapper) {
  // As on a GPU cloud host (docs/gpu.md, the H200 run): the driver in
  // /usr/local/nvidia/{lib64,bin}, and /usr/bin/nvidia-smi a #!/bin/sh
  // wrapper. The foreign root has no shell, so the wrapper cannot run there;
  // the driver's own program must be the one bound. A static test program
  // stands in for it (it prints "clone3=<errno>").
  FakeDriverRoot image({.gpus = 1,
                        .libcudaFile = envPath("GPUBOX_FAKE_LIBCUDA"),
                        .libraryDir = "usr/local/nvidia/lib64",
                        .nvidiaSmiProgram = envPath("GPUBOX_SYSCALL_PROBE")});
  ASSERT_EQ(readFile(image.path("usr/bin/nvidia-smi")).rfind("#!/bin/sh", 0), 0u);
  HelperProcess own(HelperOptions{
      .extraArgs = {"--config", config / "helper.toml", "--driver-root", image.root()}});
  RunResult r =
      own.cli({"run", "--ro-bind", tree().root, "/", "--proc", "/proc", "--dev", "/dev", "--gpu",
               "0", "--setenv", "PATH", "/usr/bin:/bin", "--", "nvidia-smi", "clone3"},
              {.asUid = GetParam()});
  EXPECT_EQ(r.exitCode, 0) << r.describe();
  EXPECT_TRUE(contains(r.out, "clone3=")) << r.describe();
  // CUDA still finds the driver's libraries from their new directory.
  RunResult cuda = own.cli({"run", "--ro-bind", tree().root, "/", "--proc", "/proc", "--dev",
                            "/dev", "--gpu", "0", "--", "/usr/bin/cuda-probe"},
                           {.asUid = GetParam()});
  EXPECT_EQ(cuda.exitCode, 0) << cuda.describe();
  EXPECT_TRUE(contains(cuda.out, "cuInit 0")) << cuda.describe();
}

TEST_P(ForeignRootTest, TheBwrapFrontGetsTheSameLayout) {
  // What an agent's bubblewrap command line over an image looks like, with
  // GPUBOX_GPU as tools whose command line cannot change would set it.
  RunResult r = helper->bwrap({"--ro-bind", tree().root, "/", "--proc", "/proc", "--dev", "/dev",
                               "--unshare-all", "--die-with-parent", "--", "/usr/bin/cuda-probe"},
                              {.asUid = GetParam(), .env = {"GPUBOX_GPU=0"}});
  EXPECT_EQ(r.exitCode, 0) << r.describe();
  EXPECT_TRUE(contains(r.out, "cuInit 0")) << r.describe();
}

GPUBOX_INSTANTIATE_CALLERS(ForeignRootTest);
