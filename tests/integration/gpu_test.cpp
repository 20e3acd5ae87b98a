// GPU integration tests without a GPU: a fake driver tree (mknod'ed
// /dev/nvidia* nodes, proc/driver/nvidia files, CDI specs) behind a real
// helper, driven by the real CLI as root and as uid 65534. Checks what the
// sandboxed process actually sees and what it may open.
#include <fcntl.h>
#include <linux/bpf.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>

#include "fake_driver.hpp"
#include "harness.hpp"
#include "unique_fd.hpp"

using namespace gpubox::itest;
using gpubox::UniqueFd;
using gpubox::testing::FakeDriverRoot;

namespace {

const std::string kAllowNobody = R"([[allow]]
users = [65534, 0]
gpus = ["all"]
max_gpus = 4
)";

struct GpuHelper {
  explicit GpuHelper(const FakeDriverRoot::Options& options,
                     const std::string& policy = kAllowNobody)
      : fake(options), config(0755) {
    writeFile(config / "helper.toml", policy, 0644);
    helper = std::make_unique<HelperProcess>(HelperOptions{
        .extraArgs = {"--config", config / "helper.toml", "--driver-root", fake.root()}});
  }
  RunResult run(const std::vector<std::string>& args, std::optional<uid_t> uid = kNobodyUid) {
    std::vector<std::string> full = {"run"};
    full.insert(full.end(), args.begin(), args.end());
    return helper->cli(full, {.asUid = uid});
  }
  FakeDriverRoot fake;
  TempDir config;
  std::unique_ptr<HelperProcess> helper;
};

bool contains(const std::string& hay, const std::string& needle) {
  return hay.find(needle) != std::string::npos;
}

}  // namespace

class GpuTest : public ::testing::Test {
 protected:
  void SetUp() override {
    requireRoot();
    if (IsSkipped()) return;
    if (!FakeDriverRoot::canMknod()) GTEST_SKIP() << "cannot mknod fake NVIDIA nodes here";
  }
};

TEST_F(GpuTest, NoGpuByDefault) {
  GpuHelper h({.gpus = 2});
  RunResult r = h.run({"--", "sh", "-c",
                       "ls /dev; ls /proc/driver/nvidia 2>/dev/null || true; "
                       "grep -c ' /proc/driver ' /proc/self/mountinfo"});
  ASSERT_EQ(r.exitCode, 0) << r.describe();
  EXPECT_FALSE(contains(r.out, "nvidia")) << r.out;
  // The driver's information files are covered too, not only the nodes.
  EXPECT_TRUE(contains(r.out, "\n1\n")) << r.out;
}

TEST_F(GpuTest, GrantedGpuOnlyWithControlNodesAsNobody) {
  GpuHelper h({.gpus = 3});
  RunResult r = h.run({"--gpu", "1", "--", "sh", "-c",
                       "ls /dev | grep nvidia; echo ---; ls /proc/driver/nvidia/gpus; echo ---; "
                       "grep ModifyDeviceFiles /proc/driver/nvidia/params; echo ---; "
                       "ls /sys/bus/pci/devices; echo ---; echo $CUDA_VISIBLE_DEVICES"});
  ASSERT_EQ(r.exitCode, 0) << r.describe();
  const auto& gpus = h.fake.gpus();
  EXPECT_TRUE(contains(r.out, "nvidia1\n")) << r.out;
  EXPECT_FALSE(contains(r.out, "nvidia0\n")) << r.out;
  EXPECT_FALSE(contains(r.out, "nvidia2\n")) << r.out;
  EXPECT_TRUE(contains(r.out, "nvidiactl")) << r.out;
  EXPECT_TRUE(contains(r.out, "nvidia-uvm\n")) << r.out;
  EXPECT_TRUE(contains(r.out, "nvidia-uvm-tools")) << r.out;
  EXPECT_FALSE(contains(r.out, "nvidia-modeset")) << r.out;  // no display capability asked
  EXPECT_TRUE(contains(r.out, gpus[1].busId)) << r.out;
  EXPECT_FALSE(contains(r.out, gpus[0].busId)) << r.out;
  EXPECT_FALSE(contains(r.out, gpus[2].busId)) << r.out;
  EXPECT_TRUE(contains(r.out, "ModifyDeviceFiles: 0")) << r.out;
  EXPECT_TRUE(contains(r.out, gpus[1].uuid)) << r.out;  // CUDA_VISIBLE_DEVICES
}

TEST_F(GpuTest, GrantedNodeOpensButOthersAreDeniedByTheDeviceCgroup) {
  GpuHelper h({.gpus = 2});
  // As root, bind the whole fake /dev in with --dev-bind: nvidia0 appears
  // inside although only GPU 1 was granted. The device cgroup must stop it.
  std::string dev = h.fake.path("dev");
  RunResult r =
      h.run({"--with-defaults", "--dev-bind", dev, "/tmp/fakedev", "--gpu", "1", "--", "sh", "-c",
             "cat /tmp/fakedev/nvidia0 2>&1; cat /dev/nvidia1 2>&1; "
             "cat /dev/null && echo null-ok"},
            0);
  ASSERT_EQ(r.exitCode, 0) << r.describe();
  // The non-granted GPU: EPERM from the device cgroup.
  EXPECT_TRUE(contains(r.out, "/tmp/fakedev/nvidia0: Operation not permitted")) << r.out;
  // The granted one passes the cgroup and reaches the (absent) driver.
  EXPECT_FALSE(contains(r.out, "/dev/nvidia1: Operation not permitted")) << r.out;
  EXPECT_TRUE(contains(r.out, "null-ok")) << r.out;
}

TEST_F(GpuTest, DeviceBindWithoutGpuStillDeniesNvidia) {
  GpuHelper h({.gpus = 1});
  std::string dev = h.fake.path("dev");
  RunResult r = h.run({"--with-defaults", "--dev-bind", dev, "/tmp/fakedev", "--", "sh", "-c",
                       "cat /tmp/fakedev/nvidia0 2>&1; cat /tmp/fakedev/nvidiactl 2>&1; true"},
                      0);
  ASSERT_EQ(r.exitCode, 0) << r.describe();
  EXPECT_TRUE(contains(r.out, "/tmp/fakedev/nvidia0: Operation not permitted")) << r.out;
  EXPECT_TRUE(contains(r.out, "/tmp/fakedev/nvidiactl: Operation not permitted")) << r.out;
}

namespace {

// Where no sandbox can get its device rules, without touching what other
// helpers on the host use. v1: the helper's devices parent is always
// "<devices mount>/gpubox"; the test's helper runs in a mount namespace of
// its own (wrapper()) where the devices hierarchy's mount shows only the
// test's own subtree, whose top denies the NVIDIA major (a child cannot
// allow what its parent denies). v2: the test's --cgroup-parent holds a
// device program attached without BPF_F_ALLOW_OVERRIDE/MULTI (the kernel
// then refuses any program below it).
class DeviceRulesRefused {
 public:
  DeviceRulesRefused() : rel_("/gpubox-it-devices-" + std::to_string(::getpid())) {
    for (const auto& m : cgroupMounts()) ::mkdir((m + rel_).c_str(), 0755);
    if (std::string v1 = cgroupMount("devices"); !v1.empty()) {
      v1Mount_ = v1;
      UniqueFd f(::open((v1 + rel_ + "/devices.deny").c_str(), O_WRONLY | O_CLOEXEC));
      const std::string rule = "c 195:* rwm";
      if (f && ::write(f.get(), rule.data(), rule.size()) == static_cast<ssize_t>(rule.size()))
        locked_ = true;
      else
        why_ = "cannot deny the NVIDIA major in " + v1 + rel_ + ": " + std::strerror(errno);
    }
    if (std::string v2 = cgroupMount(""); !v2.empty()) {
      UniqueFd dir(::open((v2 + rel_).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
      UniqueFd program = loadAllowAllDeviceProgram();
      bpf_attr attr;
      std::memset(&attr, 0, sizeof attr);
      attr.target_fd = static_cast<uint32_t>(dir.get());
      attr.attach_bpf_fd = static_cast<uint32_t>(program.get());
      attr.attach_type = BPF_CGROUP_DEVICE;
      if (dir && program && ::syscall(__NR_bpf, BPF_PROG_ATTACH, &attr, sizeof attr) == 0)
        locked_ = true;
      else
        why_ = std::string("cannot attach a device program to ") + v2 + rel_ + ": " +
               std::strerror(errno);
    }
  }
  ~DeviceRulesRefused() {
    // The helper removed its sandboxes' directories; what is left is its
    // devices parent (v1) and the test's own.
    if (!v1Mount_.empty()) ::rmdir((v1Mount_ + rel_ + "/gpubox").c_str());
    for (const auto& m : cgroupMounts()) ::rmdir((m + rel_).c_str());
  }
  // The helper's command prefix: a mount namespace of its own in which the
  // devices hierarchy's mount point shows the test's subtree.
  std::vector<std::string> wrapper() const {
    if (v1Mount_.empty()) return {};
    return {"/usr/bin/unshare",
            "--mount",
            "--propagation",
            "private",
            "/bin/sh",
            "-c",
            "mount --bind " + v1Mount_ + rel_ + " " + v1Mount_ + " && exec \"$@\"",
            "sh"};
  }
  const std::string& rel() const { return rel_; }
  // Whether every device backend the host has is refused here.
  bool locked() const { return locked_ && why_.empty(); }
  const std::string& why() const { return why_; }

 private:
  static UniqueFd loadAllowAllDeviceProgram() {
    bpf_insn program[2] = {};
    program[0].code = BPF_ALU64 | BPF_MOV | BPF_K;  // r0 = 1: allow
    program[0].dst_reg = BPF_REG_0;
    program[0].imm = 1;
    program[1].code = BPF_JMP | BPF_EXIT;
    bpf_attr attr;
    std::memset(&attr, 0, sizeof attr);
    attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
    attr.insns = reinterpret_cast<uint64_t>(program);
    attr.insn_cnt = 2;
    attr.license = reinterpret_cast<uint64_t>("GPL");
    return UniqueFd(static_cast<int>(::syscall(__NR_bpf, BPF_PROG_LOAD, &attr, sizeof attr)));
  }
  std::string rel_;
  std::string v1Mount_;
  bool locked_ = false;
  std::string why_;
};

}  // namespace

// The device rules are put in force off the event loop while the init builds
// the root; the command must still never run without them.
TEST_F(GpuTest, DeviceRulesThatCannotBeSetKeepTheCommandFromRunning) {
  DeviceRulesRefused parent;
  if (!parent.locked()) GTEST_SKIP() << "cannot refuse device rules here: " << parent.why();
  FakeDriverRoot fake({.gpus = 1});
  TempDir config(0755);
  writeFile(config / "helper.toml", kAllowNobody, 0644);
  HelperProcess h({.extraArgs = {"--config", config / "helper.toml", "--driver-root", fake.root(),
                                 "--cgroup-parent", parent.rel()},
                   .wrapper = parent.wrapper()});
  // The helper serves clients of its own mount namespace only: the client
  // joins it (as root), then becomes UID.
  auto cli = [&](uid_t uid, const std::vector<std::string>& args) {
    std::vector<std::string> argv{"/usr/bin/nsenter",
                                  "--mount=/proc/" + std::to_string(h.pid()) + "/ns/mnt",
                                  "--",
                                  "/usr/bin/setpriv",
                                  "--reuid",
                                  std::to_string(uid),
                                  "--regid",
                                  std::to_string(uid),
                                  "--clear-groups",
                                  cliPath(),
                                  "--socket",
                                  h.socketPath()};
    argv.insert(argv.end(), args.begin(), args.end());
    return runProcess(argv, {.cwd = "/"});
  };
  const std::vector<std::string> plan{"--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"};
  for (uid_t uid : {kNobodyUid, uid_t{0}}) {
    std::vector<std::string> gpuRun{"run", "--gpu", "0"};
    gpuRun.insert(gpuRun.end(), plan.begin(), plan.end());
    gpuRun.insert(gpuRun.end(), {"--", "sh", "-c", "echo the-command-ran"});
    RunResult r = cli(uid, gpuRun);
    EXPECT_NE(r.exitCode, 0) << r.describe();
    EXPECT_FALSE(contains(r.out, "the-command-ran")) << r.describe();
    EXPECT_TRUE(contains(r.err, "device cgroup")) << r.describe();
    // The helper serves on: a sandbox without devices to guard runs.
    std::vector<std::string> plainRun{"run"};
    plainRun.insert(plainRun.end(), plan.begin(), plan.end());
    plainRun.insert(plainRun.end(), {"--", "echo", "plain-ok"});
    RunResult plain = cli(uid, plainRun);
    EXPECT_EQ(plain.exitCode, 0) << plain.describe();
    EXPECT_TRUE(contains(plain.out, "plain-ok")) << plain.describe();
  }
}

TEST_F(GpuTest, PolicyDenialNamesTheRequest) {
  GpuHelper h({.gpus = 2}, "[[allow]]\nusers = [\"root\"]\ngpus = [0]\n");
  RunResult r = h.run({"--gpu", "0", "--", "true"});
  EXPECT_EQ(r.exitCode, 125) << r.describe();
  EXPECT_TRUE(contains(r.err, "gpubox: ")) << r.err;
  EXPECT_TRUE(contains(r.err, "--gpu 0")) << r.err;
  EXPECT_TRUE(contains(r.err, "65534")) << r.err;
  // Root is allowed GPU 0 but not GPU 1.
  RunResult r1 = h.run({"--gpu", "1", "--", "true"}, 0);
  EXPECT_EQ(r1.exitCode, 125) << r1.describe();
  EXPECT_TRUE(contains(r1.err, "--gpu 1")) << r1.err;
  EXPECT_EQ(h.run({"--gpu", "0", "--", "true"}, 0).exitCode, 0);
}

TEST_F(GpuTest, NoConfigMeansNoGpuEvenForRoot) {
  FakeDriverRoot fake({.gpus = 1});
  TempDir config(0755);
  writeFile(config / "empty.toml", "# no rules\n", 0644);
  HelperProcess helper(
      {.extraArgs = {"--config", config / "empty.toml", "--driver-root", fake.root()}});
  RunResult r = helper.cli({"run", "--gpu", "all", "--", "true"}, {.asUid = 0});
  EXPECT_EQ(r.exitCode, 125) << r.describe();
  EXPECT_TRUE(contains(r.err, "refused by policy")) << r.err;
}

TEST_F(GpuTest, SelectorErrorsAreClear) {
  GpuHelper h({.gpus = 2});
  RunResult r = h.run({"--gpu", "7", "--", "true"});
  EXPECT_EQ(r.exitCode, 125);
  EXPECT_TRUE(contains(r.err, "--gpu 7")) << r.err;
  RunResult bad = h.run({"--gpu", "count:x", "--", "true"});
  EXPECT_EQ(bad.exitCode, 125);
  EXPECT_TRUE(contains(bad.err, "count:x")) << bad.err;
  RunResult uuid = h.run({"--gpu", h.fake.gpus()[0].uuid.substr(0, 12), "--", "sh", "-c",
                          "ls /dev | grep -c '^nvidia[0-9]'"});
  EXPECT_EQ(uuid.exitCode, 0) << uuid.describe();
  EXPECT_EQ(uuid.out, "1\n");
}

TEST_F(GpuTest, GpusListingAndHolders) {
  GpuHelper h({.gpus = 2});
  RunResult list = h.helper->cli({"gpus", "--json"}, {.asUid = kNobodyUid});
  ASSERT_EQ(list.exitCode, 0) << list.describe();
  EXPECT_TRUE(contains(list.out, h.fake.gpus()[0].uuid)) << list.out;
  EXPECT_TRUE(contains(list.out, h.fake.gpus()[1].uuid)) << list.out;
  auto holder = h.helper->spawnCli({"run", "--gpu", "0", "--", "sleep", "30"}, {.asUid = 0});
  bool held = pollUntil(
      [&] {
        RunResult l = h.helper->cli({"gpus"}, {.asUid = 0});
        return contains(l.out, "held by 1");
      },
      std::chrono::seconds(20));
  EXPECT_TRUE(held);
  holder->kill(SIGKILL);
  holder->finish();
  // The client is gone: its sandbox dies and the lease is released.
  bool released = pollUntil(
      [&] {
        RunResult l = h.helper->cli({"gpus"}, {.asUid = 0});
        return !contains(l.out, "held by 1");
      },
      std::chrono::seconds(20));
  EXPECT_TRUE(released) << h.helper->log();
}

TEST_F(GpuTest, ExclusiveLeasesAcrossConcurrentSandboxes) {
  GpuHelper h({.gpus = 2}, "[[allow]]\nusers = [0, 65534]\ngpus = [\"all\"]\nexclusive = true\n");
  auto first = h.helper->spawnCli({"run", "--gpu", "0", "--", "sleep", "30"}, {.asUid = 0});
  ASSERT_TRUE(pollUntil([&] { return contains(h.helper->cli({"gpus"}).out, "held by 1"); },
                        std::chrono::seconds(20)));
  RunResult second = h.run({"--gpu", "0", "--", "true"});
  EXPECT_EQ(second.exitCode, 125) << second.describe();
  EXPECT_TRUE(contains(second.err, "exclusive")) << second.err;
  // count:1 picks the idle GPU instead.
  RunResult other = h.run({"--gpu", "count:1", "--", "sh", "-c", "ls /dev | grep '^nvidia[0-9]'"});
  EXPECT_EQ(other.exitCode, 0) << other.describe();
  EXPECT_EQ(other.out, "nvidia1\n");
  first->kill(SIGKILL);
  first->finish();
  // Once the first sandbox is gone, GPU 0 is free again.
  EXPECT_TRUE(pollUntil(
      [&] {
        return h.run({"--gpu", "0", "--", "true"}).exitCode == 0;
      },
      std::chrono::seconds(20)))
      << h.helper->log();
}

TEST_F(GpuTest, LeaseFreedWhenSandboxEnds) {
  GpuHelper h({.gpus = 1}, "[[allow]]\nusers = [65534]\ngpus = [\"all\"]\nexclusive = true\n");
  for (int i = 0; i < 3; ++i) {
    RunResult r = h.run({"--gpu", "0", "--", "true"});
    EXPECT_EQ(r.exitCode, 0) << "run " << i << ": " << r.describe();
    // The lease is released when the init is reaped, which can trail the
    // client's exit by a moment. (Listed as uid 65534: the policy shows
    // GPUs only to the users it grants them to.)
    EXPECT_TRUE(pollUntil(
        [&] {
          RunResult list = h.helper->cli({"gpus"}, {.asUid = kNobodyUid});
          return list.exitCode == 0 && contains(list.out, "held by 0");
        },
        std::chrono::seconds(10)))
        << h.helper->cli({"gpus"}, {.asUid = kNobodyUid}).describe();
  }
}

TEST_F(GpuTest, CdiJsonAndYamlDevices) {
  const std::string json = R"({"cdiVersion":"0.6.0","kind":"nvidia.com/gpu",
    "devices":[{"name":"first","containerEdits":{"deviceNodes":[{"path":"/dev/nvidia0"}],
    "env":["FROM_JSON=1"]}}],
    "containerEdits":{"deviceNodes":[{"path":"/dev/nvidiactl"}]}})";
  const std::string yaml =
      "cdiVersion: 0.6.0\nkind: nvidia.com/gpu\ndevices:\n- name: second\n  containerEdits:\n"
      "    deviceNodes:\n    - path: /dev/nvidia1\n    env:\n    - FROM_YAML=1\n";
  GpuHelper h(
      {.gpus = 2, .cdiFiles = {{"etc/cdi/nvidia.json", json}, {"var/run/cdi/nvidia.yaml", yaml}}});
  RunResult a = h.run({"--gpu", "nvidia.com/gpu=first", "--", "sh", "-c",
                       "ls /dev | grep '^nvidia[0-9]'; echo $FROM_JSON"});
  ASSERT_EQ(a.exitCode, 0) << a.describe();
  EXPECT_EQ(a.out, "nvidia0\n1\n");
  RunResult b = h.run({"--gpu", "nvidia.com/gpu=second", "--", "sh", "-c",
                       "ls /dev | grep '^nvidia[0-9]'; echo $FROM_YAML"});
  ASSERT_EQ(b.exitCode, 0) << b.describe();
  EXPECT_EQ(b.out, "nvidia1\n1\n");
}

TEST_F(GpuTest, MigCapsOfAGrantedMigGpu) {
  GpuHelper h({.gpus = 2, .migOnGpu = 0});
  RunResult r = h.run({"--gpu", "0", "--", "sh", "-c", "ls /dev/nvidia-caps"});
  ASSERT_EQ(r.exitCode, 0) << r.describe();
  EXPECT_TRUE(contains(r.out, "nvidia-cap")) << r.out;
  RunResult other = h.run({"--gpu", "1", "--", "sh", "-c", "ls /dev/nvidia-caps 2>&1 || true"});
  EXPECT_FALSE(contains(other.out, "nvidia-cap1")) << other.out;
}

TEST_F(GpuTest, JsonStatusNamesGrantedGpusAndCgroup) {
  GpuHelper h({.gpus = 2});
  RunResult r = h.run({"--json-status", "1", "--gpu", "0", "--", "true"});
  ASSERT_EQ(r.exitCode, 0) << r.describe();
  EXPECT_TRUE(contains(r.out, h.fake.gpus()[0].uuid)) << r.out;
  EXPECT_TRUE(contains(r.out, "\"cgroup\":\"")) << r.out;
  EXPECT_FALSE(contains(r.out, "\"cgroup\":\"\"")) << r.out;
}
