// FakeDriverRoot: a throw-away NVIDIA driver tree for tests that have no GPU.
//
// It builds, under a fresh temporary directory, what gpubox reads from a
// real driver (see helper/gpu): proc/driver/nvidia/{version,params,registry,
// gpus/<bus>/information}, proc/devices, the device nodes dev/nvidia<N>,
// nvidiactl, nvidia-modeset, nvidia-uvm(-tools) (real character devices made
// with mknod: root only), optional MIG capabilities, sysfs PCI links,
// optional CDI specs, fake driver libraries and nvidia-smi. Pass root() to
// gpubox::gpu::discover() or to the helper's --driver-root.
//
// The destructor removes the whole tree. The tree is world-readable so a
// helper can serve an unprivileged (uid 65534) client from it.
//
//   gpubox::testing::FakeDriverRoot fake({.gpus = 3, .migOnGpu = 0});
//   auto inv = gpubox::gpu::discover(fake.root());
//
// Plain C++ (no GoogleTest) so integration tests and tools can use it; all
// failures throw std::runtime_error naming the path.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gpubox::testing {

struct FakeGpu {
  unsigned minor = 0;  // /dev/nvidia<minor>; equals the GPU's position
  std::string busId;   // "0000:3b:00.0"
  std::string uuid;    // "GPU-…"
  std::string model;   // "NVIDIA Fake H100 0"
};

class FakeDriverRoot {
 public:
  static constexpr unsigned kNvidiaMajor = 195;
  static constexpr unsigned kUvmMajor = 511;   // as listed in the fake proc/devices
  static constexpr unsigned kCapsMajor = 510;  // "nvidia-caps"
  // MIG instance gi1/ci0 on `migOnGpu`: these cap minors (access files and
  // dev/nvidia-caps/nvidia-cap<N>). Also created: the host-wide
  // capabilities/mig/config (cap 1) and mig/monitor (cap 2) that must never
  // reach a sandbox.
  static constexpr unsigned kMigGiCapMinor = 12;
  static constexpr unsigned kMigCiCapMinor = 13;

  struct Options {
    unsigned gpus = 2;    // 0..8; minors 0..gpus-1, bus ids from a fixed table
    bool uvm = true;      // nvidia-uvm in proc/devices + dev/nvidia-uvm(-tools)
    bool ctl = true;      // dev/nvidiactl
    bool modeset = true;  // dev/nvidia-modeset
    std::optional<unsigned> migOnGpu = std::nullopt;      // MIG gi1/ci0 on this GPU position
    std::optional<unsigned> wrongRdevGpu = std::nullopt;  // dev/nvidia<N> made as 195:<N+100>
    std::string driverVersion = "550.54.14";
    bool libraries = true;  // libcuda.so.<v>, libnvidia-ml.so.<v>, … (+ a decoy other version)
    bool nvidiaSmi = true;  // usr/bin/nvidia-smi (a shell script printing the GPUs)
    // When set, libcuda.so.<driverVersion> is a copy of this file (a real
    // shared library, e.g. the integration tests' fake_libcuda with SONAME
    // libcuda.so.1) instead of a text placeholder.
    std::string libcudaFile = {};
    // Put the libraries in usr/lib/x86_64-linux-gnu/nvidia/current (not a
    // standard directory) and write an etc/ld.so.cache that lists them, as
    // Debian's packaging does.
    bool ldCache = false;
    // Put the libraries here instead (relative to the root), listed in
    // etc/ld.so.cache, as GPU cloud images install the driver
    // ("usr/local/nvidia/lib64").
    std::string libraryDir = {};
    // When set, a copy of this program (an ELF file) is the driver's own
    // nvidia-smi, in bin/ beside libraryDir (usr/local/nvidia/bin), while
    // usr/bin/nvidia-smi stays a shell script (a wrapper, as on such images).
    std::string nvidiaSmiProgram = {};
    // CDI specs: (path relative to the root, contents), e.g.
    // {"etc/cdi/nvidia.yaml", "..."}. Written as given.
    std::vector<std::pair<std::string, std::string>> cdiFiles = {};
    // Make device nodes (needs root). Without it the tree has no dev/.
    bool nodes = true;
  };

  FakeDriverRoot() : FakeDriverRoot(Options{}) {}
  explicit FakeDriverRoot(const Options& options);
  ~FakeDriverRoot();
  FakeDriverRoot(const FakeDriverRoot&) = delete;
  FakeDriverRoot& operator=(const FakeDriverRoot&) = delete;

  // Absolute path of the tree (no trailing slash).
  const std::string& root() const { return root_; }
  // root() + "/" + rel.
  std::string path(std::string_view rel) const;
  const std::vector<FakeGpu>& gpus() const { return gpus_; }
  const Options& options() const { return options_; }

  // Editing helpers for tests that need a particular defect. `rel` is
  // relative to the root; parent directories are created.
  void writeFile(std::string_view rel, std::string_view contents, unsigned mode = 0644);
  void mknodChar(std::string_view rel, unsigned major, unsigned minor, unsigned mode = 0666);
  void symlink(std::string_view target, std::string_view rel);
  void mkdirs(std::string_view rel);
  void remove(std::string_view rel);  // file, link or whole directory

  // mknod of character devices needs root (CAP_MKNOD in the init namespace).
  static bool canMknod();

  // The glibc-ld.so.cache1.1 image listing (soname, absolute path) pairs.
  static std::string ldCacheImage(const std::vector<std::pair<std::string, std::string>>& entries);

 private:
  void build();

  Options options_;
  std::string root_;
  std::vector<FakeGpu> gpus_;
};

}  // namespace gpubox::testing
