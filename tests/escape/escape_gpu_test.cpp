// Escape attempts at GPUs that were not granted: a non-granted /dev/nvidia*
// node brought in by a bind, a --dev-bind, or mknod. No GPU needed: a fake
// driver tree (tests/support/fake_driver.hpp) with real mknod'ed major-195
// nodes behind a helper that grants GPU 1 only.
//
// Which layer stops them, in both user-namespace modes:
//   - a node reached through --bind / --ro-bind: nodev on every bind (EACCES);
//   - --dev-bind: root only (refused at request time for anyone else); for
//     root, the device rules of the sandbox's cgroup deny every NVIDIA minor
//     not granted (EPERM), with or without a GPU in the request;
//   - mknod: no CAP_MKNOD (EPERM); the device rules besides.
// A control row opens the granted node: it passes the rules and reaches the
// (absent) driver, so the denials above are not a blanket refusal.
#include <gtest/gtest.h>

#include <memory>

#include "escape_check.hpp"
#include "fake_driver.hpp"
#include "harness.hpp"

namespace gpubox::escape {
namespace {

using gpubox::testing::FakeDriverRoot;
using itest::kNobodyUid;

const std::string kPolicy = R"([[allow]]
users = [65534, 0]
gpus = ["all"]
max_gpus = 4
)";

class GpuEscape : public ::testing::TestWithParam<uid_t> {
 protected:
  void SetUp() override {
    itest::requireRoot();
    if (IsSkipped()) return;
    if (!FakeDriverRoot::canMknod()) GTEST_SKIP() << "cannot mknod fake NVIDIA nodes here";
    fake_ = std::make_unique<FakeDriverRoot>(FakeDriverRoot::Options{.gpus = 2});
    config_ = std::make_unique<itest::TempDir>(0755);
    itest::writeFile(*config_ / "helper.toml", kPolicy, 0644);
    helper_ = std::make_unique<itest::HelperProcess>(itest::HelperOptions{
        .extraArgs = {"--config", *config_ / "helper.toml", "--driver-root", fake_->root()}});
    probe_ = installProbe(helper_->workDir());
  }
  uid_t caller() const { return GetParam(); }
  itest::RunResult probeRows(const std::vector<std::string>& plan,
                             const std::vector<ProbeRow>& rows) {
    return runProbeRows(*helper_, caller(), probe_, plan, rows);
  }

  std::unique_ptr<FakeDriverRoot> fake_;
  std::unique_ptr<itest::TempDir> config_;
  std::unique_ptr<itest::HelperProcess> helper_;
  std::string probe_;
};

TEST_P(GpuEscape, NonGrantedNodes) {
  const std::string dev = fake_->path("dev");
  const Expect denied = refused({"EACCES", "EPERM"});
  const Expect control = refused({"ENXIO", "ENODEV"});
  probeRows({"--with-defaults", "--gpu", "1", "--ro-bind", dev + "/nvidia0", "/tmp/nv0", "--bind",
             dev, "/tmp/fakedev"},
            {
                {"control: open the granted /dev/nvidia1", "open-rw:/dev/nvidia1", control},
                {"open a non-granted node brought in by --ro-bind", "open-rw:/tmp/nv0", denied},
                {"open a non-granted node in a --bind of the driver's /dev",
                 "open-rw:/tmp/fakedev/nvidia0", denied},
                {"open nvidia-modeset (not asked for) in that --bind",
                 "open-rw:/tmp/fakedev/nvidia-modeset", denied},
                {"mknod the non-granted GPU's node (195:0)", "mknod-char:/tmp/nvidia0:195:0",
                 refused({"EPERM"})},
            });
  auto devBind = helper_->cli({"run", "--with-defaults", "--gpu", "1", "--dev-bind", dev,
                               "/tmp/fakedev", "--", probe_, "open-rw:/tmp/fakedev/nvidia0"},
                              {.asUid = caller()});
  auto results = parseProbeOutput(devBind.out);
  std::string got = results.count("open-rw:/tmp/fakedev/nvidia0")
                        ? results["open-rw:/tmp/fakedev/nvidia0"]
                        : endedAs(devBind) + (devBind.out.empty() ? ", nothing ran" : "");
  // Root may --dev-bind; the device cgroup must still deny the other GPU.
  check(caller(), "open a non-granted node in a --dev-bind of the driver's /dev",
        caller() == 0 ? refused({"EPERM"}) : exactly("exit 125, nothing ran"), got);
  if (caller() == 0) {
    auto noGpu =
        helper_->cli({"run", "--with-defaults", "--dev-bind", dev, "/tmp/fakedev", "--", probe_,
                      "open-rw:/tmp/fakedev/nvidia0", "open-rw:/tmp/fakedev/nvidiactl"},
                     {.asUid = 0});
    auto seen = parseProbeOutput(noGpu.out);
    for (const char* node : {"nvidia0", "nvidiactl"}) {
      std::string attempt = std::string("open-rw:/tmp/fakedev/") + node;
      check(0, std::string("--dev-bind with no GPU asked: open ") + node, refused({"EPERM"}),
            seen.count(attempt) ? seen[attempt] : "no result (" + endedAs(noGpu) + ")");
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Callers, GpuEscape, ::testing::Values(uid_t{0}, kNobodyUid),
                         itest::callerName);

}  // namespace
}  // namespace gpubox::escape
