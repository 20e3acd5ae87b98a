// discover() against fake driver trees.
#include <gtest/gtest.h>

#include <filesystem>

#include "error.hpp"
#include "test_util.hpp"

using gpubox::testing::FakeDriverRoot;
using namespace gpubox::gpu;
using namespace gpubox::gpu::test;
namespace fs = std::filesystem;

namespace {

std::vector<std::string> nodePaths(const std::vector<DeviceNode>& nodes) {
  std::vector<std::string> out;
  for (const auto& n : nodes) out.push_back(n.sandboxPath);
  return out;
}

}  // namespace

class DiscoverCount : public ::testing::TestWithParam<unsigned> {};

TEST_P(DiscoverCount, FindsEveryGpuWithItsDriverData) {
  GPUBOX_REQUIRE_ROOT();
  FakeDriverRoot fake({.gpus = GetParam()});
  Inventory inv = discoverFake(fake);
  EXPECT_EQ(inv.driverRoot, fake.root());
  EXPECT_EQ(inv.driverVersion, "550.54.14");
  ASSERT_EQ(inv.gpus.size(), GetParam()) << joined(inv.warnings);
  for (unsigned i = 0; i < GetParam(); ++i) {
    const Gpu& g = inv.gpus[i];
    const auto& want = fake.gpus()[i];
    EXPECT_EQ(g.index, i);
    EXPECT_EQ(g.minor, want.minor);
    EXPECT_EQ(g.uuid, want.uuid);
    EXPECT_EQ(g.model, want.model);
    EXPECT_EQ(g.busId, want.busId);
    EXPECT_EQ(g.procDir, fake.path("proc/driver/nvidia/gpus/" + want.busId));
    EXPECT_EQ(g.node.hostPath, fake.path("dev/nvidia" + std::to_string(i)));
    EXPECT_EQ(g.node.sandboxPath, "/dev/nvidia" + std::to_string(i));
    EXPECT_EQ(g.node.major, 195u);
    EXPECT_EQ(g.node.minor, i);
    EXPECT_EQ(g.sysfsLink, "../../../devices/pci0000:00/" + want.busId);
    EXPECT_TRUE(g.mig.empty());
  }
  EXPECT_EQ(
      nodePaths(inv.controlNodes),
      (std::vector<std::string>{"/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools"}));
  EXPECT_EQ(inv.uvmMajor, FakeDriverRoot::kUvmMajor);
  EXPECT_EQ(inv.controlNodes[1].major, FakeDriverRoot::kUvmMajor);
  EXPECT_EQ(inv.controlNodes[2].minor, 1u);
  ASSERT_TRUE(inv.modeset.has_value());
  EXPECT_EQ(inv.modeset->minor, 254u);
  EXPECT_TRUE(inv.warnings.empty()) << joined(inv.warnings);
  EXPECT_NE(inv.paramsText.find("ModifyDeviceFiles: 1"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(TwoToFour, DiscoverCount, ::testing::Values(2u, 3u, 4u));

TEST(Discover, NoDriverMeansNoGpuAndNoError) {
  FakeDriverRoot fake({.gpus = 0, .libraries = false, .nvidiaSmi = false, .nodes = false});
  fake.remove("proc/driver");
  Inventory inv = discoverFake(fake);
  EXPECT_EQ(inv.driverVersion, "");
  EXPECT_TRUE(inv.gpus.empty());
  EXPECT_TRUE(inv.controlNodes.empty());
  EXPECT_TRUE(inv.libraries.empty());
}

TEST(Discover, RootMustBeAbsolute) {
  EXPECT_THROW(discover("relative/root", {.useNvml = false}), gpubox::Error);
  EXPECT_THROW(discover("/a/../b", {.useNvml = false}), gpubox::Error);
}

TEST(Discover, MissingUvmIsNotBound) {
  GPUBOX_REQUIRE_ROOT();
  FakeDriverRoot fake({.gpus = 2, .uvm = false});
  Inventory inv = discoverFake(fake);
  EXPECT_EQ(inv.uvmMajor, 0u);
  EXPECT_EQ(nodePaths(inv.controlNodes), (std::vector<std::string>{"/dev/nvidiactl"}));
  EXPECT_EQ(inv.gpus.size(), 2u);
}

TEST(Discover, UvmNodeWithoutProcDevicesMajorIsRefused) {
  GPUBOX_REQUIRE_ROOT();
  FakeDriverRoot fake({.gpus = 1, .uvm = false});
  fake.mknodChar("dev/nvidia-uvm", 511, 0);
  Inventory inv = discoverFake(fake);
  EXPECT_EQ(nodePaths(inv.controlNodes), (std::vector<std::string>{"/dev/nvidiactl"}));
  EXPECT_TRUE(anyContains(inv.warnings, fake.path("dev/nvidia-uvm"))) << joined(inv.warnings);
}

TEST(Discover, WrongRdevNodeIsRejectedWithAWarningNamingIt) {
  GPUBOX_REQUIRE_ROOT();
  FakeDriverRoot fake({.gpus = 3, .wrongRdevGpu = 1});
  Inventory inv = discoverFake(fake);
  ASSERT_EQ(inv.gpus.size(), 2u);
  EXPECT_EQ(inv.gpus[0].minor, 0u);
  EXPECT_EQ(inv.gpus[1].minor, 2u);
  EXPECT_EQ(inv.gpus[1].index, 1u);  // indices are positions among usable GPUs
  EXPECT_TRUE(anyContains(inv.warnings,
                          fake.path("dev/nvidia1") + ": device number 195:101, expected 195:1"))
      << joined(inv.warnings);
}

TEST(Discover, NonDeviceInPlaceOfANodeIsRejected) {
  GPUBOX_REQUIRE_ROOT();
  FakeDriverRoot fake({.gpus = 2});
  fake.remove("dev/nvidia0");
  fake.writeFile("dev/nvidia0", "not a device");
  fake.remove("dev/nvidiactl");
  fake.symlink("/dev/null", "dev/nvidiactl");
  fake.remove("dev/nvidia-uvm");
  fake.mknodChar("dev/nvidia-uvm", 1, 3);  // /dev/null's number
  Inventory inv = discoverFake(fake);
  ASSERT_EQ(inv.gpus.size(), 1u);
  EXPECT_EQ(inv.gpus[0].minor, 1u);
  EXPECT_EQ(nodePaths(inv.controlNodes), (std::vector<std::string>{"/dev/nvidia-uvm-tools"}));
  EXPECT_TRUE(anyContains(inv.warnings, fake.path("dev/nvidia0") + ": not a character device"));
  EXPECT_TRUE(anyContains(inv.warnings, fake.path("dev/nvidiactl") + ": not a character device"));
  EXPECT_TRUE(anyContains(inv.warnings, fake.path("dev/nvidia-uvm") + ": device number 1:3"));
}

TEST(Discover, MissingNodeSkipsTheGpu) {
  GPUBOX_REQUIRE_ROOT();
  FakeDriverRoot fake({.gpus = 2});
  fake.remove("dev/nvidia1");
  Inventory inv = discoverFake(fake);
  ASSERT_EQ(inv.gpus.size(), 1u);
  EXPECT_TRUE(anyContains(inv.warnings, "no usable " + fake.path("dev/nvidia1")));
}

TEST(Discover, ExcludedGpuIsNotOffered) {
  GPUBOX_REQUIRE_ROOT();
  FakeDriverRoot fake({.gpus = 2});
  std::string info = "proc/driver/nvidia/gpus/" + fake.gpus()[0].busId + "/information";
  fake.writeFile(info, "Device Minor: \t 0\nGPU Excluded:\t Yes\n");
  Inventory inv = discoverFake(fake);
  ASSERT_EQ(inv.gpus.size(), 1u);
  EXPECT_EQ(inv.gpus[0].minor, 1u);
}

TEST(Discover, MalformedDriverFilesThrowNamingTheFile) {
  GPUBOX_REQUIRE_ROOT();
  {
    FakeDriverRoot fake({.gpus = 2});
    std::string info = "proc/driver/nvidia/gpus/" + fake.gpus()[1].busId + "/information";
    fake.writeFile(info, "Model: x\nDevice Minor: banana\n");
    try {
      discoverFake(fake);
      FAIL() << "accepted a malformed information file";
    } catch (const gpubox::Error& e) {
      EXPECT_NE(std::string(e.what()).find(fake.path(info)), std::string::npos) << e.what();
    }
  }
  {
    FakeDriverRoot fake({.gpus = 1});
    fake.writeFile("proc/driver/nvidia/version", "garbage\n");
    EXPECT_THROW(discoverFake(fake), gpubox::Error);
  }
  {
    // Two GPUs claiming one minor.
    FakeDriverRoot fake({.gpus = 2});
    std::string info = "proc/driver/nvidia/gpus/" + fake.gpus()[1].busId + "/information";
    fake.writeFile(info, "Device Minor: 0\nBus Location: " + fake.gpus()[1].busId + "\n");
    EXPECT_THROW(discoverFake(fake), gpubox::Error);
  }
  {
    // Oversized file (a driver file is never 64 KiB).
    FakeDriverRoot fake({.gpus = 1});
    std::string info = "proc/driver/nvidia/gpus/" + fake.gpus()[0].busId + "/information";
    fake.writeFile(info, std::string(70 * 1024, 'x'));
    EXPECT_THROW(discoverFake(fake), gpubox::Error);
  }
}

TEST(Discover, OddEntriesInGpusDirAreIgnored) {
  GPUBOX_REQUIRE_ROOT();
  FakeDriverRoot fake({.gpus = 2});
  fake.mkdirs("proc/driver/nvidia/gpus/not-a-bus");
  fake.mkdirs("proc/driver/nvidia/gpus/0000:99:00.0");  // no information file
  Inventory inv = discoverFake(fake);
  EXPECT_EQ(inv.gpus.size(), 2u);
  EXPECT_TRUE(anyContains(inv.warnings, "not-a-bus"));
}

TEST(Discover, Mig) {
  GPUBOX_REQUIRE_ROOT();
  FakeDriverRoot fake({.gpus = 2, .migOnGpu = 1});
  Inventory inv = discoverFake(fake);
  ASSERT_EQ(inv.gpus.size(), 2u) << joined(inv.warnings);
  EXPECT_EQ(inv.capsMajor, FakeDriverRoot::kCapsMajor);
  EXPECT_TRUE(inv.gpus[0].mig.empty());
  ASSERT_EQ(inv.gpus[1].mig.size(), 1u);
  const MigInstance& m = inv.gpus[1].mig[0];
  EXPECT_EQ(m.gi, 1u);
  EXPECT_EQ(m.ci, 0u);
  ASSERT_EQ(m.caps.size(), 2u);
  EXPECT_EQ(m.caps[0].sandboxPath, "/dev/nvidia-caps/nvidia-cap12");
  EXPECT_EQ(m.caps[0].major, FakeDriverRoot::kCapsMajor);
  EXPECT_EQ(m.caps[0].minor, FakeDriverRoot::kMigGiCapMinor);
  EXPECT_EQ(m.caps[1].sandboxPath, "/dev/nvidia-caps/nvidia-cap13");
  EXPECT_EQ(inv.gpus[1].capsDir, fake.path("proc/driver/nvidia/capabilities/gpu1"));
  EXPECT_TRUE(inv.warnings.empty()) << joined(inv.warnings);
}

TEST(Discover, MigWithWrongCapNodeIsNotUsable) {
  GPUBOX_REQUIRE_ROOT();
  FakeDriverRoot fake({.gpus = 1, .migOnGpu = 0});
  fake.mknodChar("dev/nvidia-caps/nvidia-cap13", FakeDriverRoot::kCapsMajor, 77);
  Inventory inv = discoverFake(fake);
  ASSERT_EQ(inv.gpus.size(), 1u);
  EXPECT_TRUE(inv.gpus[0].mig.empty());
  EXPECT_TRUE(anyContains(inv.warnings, fake.path("dev/nvidia-caps/nvidia-cap13")));
}

TEST(Discover, LibrariesMatchTheKernelDriverVersion) {
  GPUBOX_REQUIRE_ROOT();
  FakeDriverRoot fake({.gpus = 1});
  Inventory inv = discoverFake(fake);
  std::string dir = fake.path("usr/lib/x86_64-linux-gnu/");
  EXPECT_EQ(inv.libraries,
            (std::vector<std::string>{
                dir + "libcuda.so.550.54.14", dir + "libnvidia-ml.so.550.54.14",
                dir + "libnvidia-ptxjitcompiler.so.550.54.14", dir + "libnvidia-nvvm.so.550.54.14",
                dir + "libnvidia-gpucomp.so.550.54.14"}));
  // The stale 535 libraries in usr/lib64 are not taken.
  EXPECT_FALSE(anyContains(inv.libraries, "535"));
  ASSERT_TRUE(inv.nvidiaSmi.has_value());
  EXPECT_EQ(*inv.nvidiaSmi, fake.path("usr/bin/nvidia-smi"));
}

TEST(Discover, NvidiaSmiIsTheDriversProgramNotAShellWrapper) {
  GPUBOX_REQUIRE_ROOT();
  // As on GPU cloud images: the driver in usr/local/nvidia/{lib64,bin}, and
  // usr/bin/nvidia-smi a script that execs the real one. A foreign root has
  // no shell to run the script, so the program beside the libraries wins.
  FakeDriverRoot fake(
      {.gpus = 1, .libraryDir = "usr/local/nvidia/lib64", .nvidiaSmiProgram = "/bin/true"});
  Inventory inv = discoverFake(fake);
  ASSERT_FALSE(inv.libraries.empty());
  EXPECT_EQ(inv.libraries[0], fake.path("usr/local/nvidia/lib64/libcuda.so.550.54.14"));
  ASSERT_TRUE(inv.nvidiaSmi.has_value());
  EXPECT_EQ(*inv.nvidiaSmi, fake.path("usr/local/nvidia/bin/nvidia-smi"));
}

TEST(Discover, AProgramInUsrBinBeatsAScriptBesideTheLibraries) {
  GPUBOX_REQUIRE_ROOT();
  FakeDriverRoot fake({.gpus = 1, .libraryDir = "usr/local/nvidia/lib64"});
  fake.writeFile("usr/local/nvidia/bin/nvidia-smi", "#!/bin/sh\nexec /usr/bin/nvidia-smi\n", 0755);
  fake.remove("usr/bin/nvidia-smi");
  fs::copy_file("/bin/true", fake.path("usr/bin/nvidia-smi"));
  Inventory inv = discoverFake(fake);
  ASSERT_TRUE(inv.nvidiaSmi.has_value());
  EXPECT_EQ(*inv.nvidiaSmi, fake.path("usr/bin/nvidia-smi"));
}

TEST(Discover, AScriptIsTakenWhenNoCandidateIsAProgram) {
  GPUBOX_REQUIRE_ROOT();
  // It still runs in a root with its interpreter (the host's own).
  FakeDriverRoot fake({.gpus = 1, .libraryDir = "usr/local/nvidia/lib64"});
  Inventory inv = discoverFake(fake);
  ASSERT_TRUE(inv.nvidiaSmi.has_value());
  EXPECT_EQ(*inv.nvidiaSmi, fake.path("usr/bin/nvidia-smi"));
  fake.remove("usr/bin/nvidia-smi");
  EXPECT_FALSE(discoverFake(fake).nvidiaSmi.has_value());
}

TEST(Discover, LibrariesOfAnotherVersionAreNotTaken) {
  GPUBOX_REQUIRE_ROOT();
  FakeDriverRoot fake({.gpus = 1});
  fake.writeFile("proc/driver/nvidia/version",
                 "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  Sat Aug 19\n");
  Inventory inv = discoverFake(fake);
  EXPECT_EQ(inv.driverVersion, "535.104.05");
  EXPECT_EQ(inv.libraries,
            (std::vector<std::string>{fake.path("usr/lib64/libcuda.so.535.104.05"),
                                      fake.path("usr/lib64/libnvidia-cfg.so.535.104.05")}));
}

TEST(Discover, LibrariesFoundThroughTheLdCache) {
  GPUBOX_REQUIRE_ROOT();
  FakeDriverRoot fake({.gpus = 1, .ldCache = true});
  Inventory inv = discoverFake(fake);
  ASSERT_FALSE(inv.libraries.empty());
  EXPECT_EQ(inv.libraries[0],
            fake.path("usr/lib/x86_64-linux-gnu/nvidia/current/libcuda.so.550.54.14"));
  EXPECT_EQ(inv.libraries.size(), 5u);
}

TEST(Discover, NoLibrariesWithoutTheLdCacheInANonStandardDir) {
  GPUBOX_REQUIRE_ROOT();
  FakeDriverRoot fake({.gpus = 1, .ldCache = true});
  fake.remove("etc/ld.so.cache");
  Inventory inv = discoverFake(fake);
  EXPECT_TRUE(inv.libraries.empty()) << joined(inv.libraries);
}

TEST(Discover, WorksWithoutNodesAsNonRoot) {
  // A tree without dev/: the GPUs are described but not usable, and that is
  // said, not hidden.
  FakeDriverRoot fake({.gpus = 2, .nodes = false});
  Inventory inv = discoverFake(fake);
  EXPECT_TRUE(inv.gpus.empty());
  EXPECT_TRUE(anyContains(inv.warnings, "no usable " + fake.path("dev/nvidia0")));
  EXPECT_EQ(inv.driverVersion, "550.54.14");
}
