// planBinding(): exactly which nodes, /proc and /sys entries, libraries,
// env and device rules a selection produces, and nothing else.
#include <gtest/gtest.h>

#include "error.hpp"
#include "spec.hpp"
#include "test_util.hpp"

using gpubox::MountKind;
using gpubox::MountOp;
using gpubox::testing::FakeDriverRoot;
using namespace gpubox::gpu;
using namespace gpubox::gpu::test;

namespace {

std::vector<std::string> destsOf(const Binding& b, MountKind kind) {
  std::vector<std::string> out;
  for (const MountOp& m : b.mounts)
    if (m.kind == kind) out.push_back(m.dest);
  return out;
}

const MountOp* opAt(const Binding& b, const std::string& dest, MountKind kind) {
  for (const MountOp& m : b.mounts)
    if (m.dest == dest && m.kind == kind) return &m;
  return nullptr;
}

size_t indexOf(const Binding& b, const std::string& dest, MountKind kind) {
  for (size_t i = 0; i < b.mounts.size(); ++i)
    if (b.mounts[i].dest == dest && b.mounts[i].kind == kind) return i;
  return SIZE_MAX;
}

Selection gpusSel(std::vector<unsigned> idx, bool display = false) {
  Selection s;
  s.gpuIndices = std::move(idx);
  s.display = display;
  return s;
}

using S = std::vector<std::string>;

}  // namespace

TEST(Binding, NoSelectionBindsNothing) {
  GPUBOX_REQUIRE_ROOT();
  FakeDriverRoot fake({.gpus = 2});
  Inventory inv = discoverFake(fake);
  Binding b = planBinding(inv, Selection{});
  EXPECT_TRUE(b.mounts.empty());
  EXPECT_TRUE(b.env.empty());
  EXPECT_TRUE(b.allow.empty());
  EXPECT_TRUE(b.minors.empty());
}

TEST(Binding, OneOfFourGpus) {
  GPUBOX_REQUIRE_ROOT();
  FakeDriverRoot fake({.gpus = 4});
  Inventory inv = discoverFake(fake);
  Binding b = planBinding(inv, gpusSel({2}));
  const auto& g2 = fake.gpus()[2];

  // Device nodes: only nvidia2 plus the control nodes; never modeset.
  EXPECT_EQ(destsOf(b, MountKind::DevBind),
            (S{"/dev/nvidia2", "/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools"}));
  for (const MountOp& m : b.mounts)
    if (m.kind == MountKind::DevBind) {
      EXPECT_TRUE(m.hardened) << m.dest;
      EXPECT_EQ(m.source, fake.path(m.dest.substr(1)));
    }

  // /proc/driver: a tmpfs rebuilt with only the granted GPU.
  const MountOp* tmp = opAt(b, "/proc/driver", MountKind::Tmpfs);
  ASSERT_NE(tmp, nullptr);
  EXPECT_TRUE(tmp->optional);
  EXPECT_EQ(tmp->mode, 0755u);
  EXPECT_EQ(destsOf(b, MountKind::Dir), (S{"/proc/driver/nvidia", "/proc/driver/nvidia/gpus"}));
  const MountOp* gpuDir = opAt(b, "/proc/driver/nvidia/gpus/" + g2.busId, MountKind::RoBind);
  ASSERT_NE(gpuDir, nullptr);
  EXPECT_EQ(gpuDir->source, fake.path("proc/driver/nvidia/gpus/" + g2.busId));
  const MountOp* params = opAt(b, "/proc/driver/nvidia/params", MountKind::File);
  ASSERT_NE(params, nullptr);
  EXPECT_NE(params->source.find("ModifyDeviceFiles: 0\n"), std::string::npos);
  EXPECT_EQ(params->source.find("ModifyDeviceFiles: 1"), std::string::npos);
  EXPECT_NE(params->source.find("DeviceFileMode: 438"), std::string::npos);  // rest kept
  EXPECT_EQ(params->mode, 0444u);
  const MountOp* version = opAt(b, "/proc/driver/nvidia/version", MountKind::File);
  ASSERT_NE(version, nullptr);
  EXPECT_NE(version->source.find("550.54.14"), std::string::npos);
  EXPECT_EQ(destsOf(b, MountKind::File),
            (S{"/proc/driver/nvidia/params", "/proc/driver/nvidia/version",
               "/proc/driver/nvidia/registry"}));
  // Read-only after it is filled, and after every step that writes into it.
  size_t ro = indexOf(b, "/proc/driver", MountKind::RemountRo);
  ASSERT_NE(ro, SIZE_MAX);
  EXPECT_GT(ro, indexOf(b, "/proc/driver/nvidia/registry", MountKind::File));
  EXPECT_GT(indexOf(b, "/proc/driver/nvidia", MountKind::Dir),
            indexOf(b, "/proc/driver", MountKind::Tmpfs));

  // /sys: only the granted GPU's PCI link.
  ASSERT_NE(opAt(b, "/sys/bus/pci/devices", MountKind::Tmpfs), nullptr);
  EXPECT_TRUE(opAt(b, "/sys/bus/pci/devices", MountKind::Tmpfs)->optional);
  const MountOp* link = opAt(b, "/sys/bus/pci/devices/" + g2.busId, MountKind::Symlink);
  ASSERT_NE(link, nullptr);
  EXPECT_EQ(link->source, "../../../devices/pci0000:00/" + g2.busId);
  for (const MountOp& m : b.mounts) {
    for (unsigned other : {0u, 1u, 3u}) {
      EXPECT_EQ(m.dest.find(fake.gpus()[other].busId), std::string::npos) << m.dest;
      EXPECT_NE(m.dest, "/dev/nvidia" + std::to_string(other));
    }
    EXPECT_EQ(m.dest.find("0000:00:1f.0"), std::string::npos);
    EXPECT_NE(m.dest, "/dev/nvidia-modeset");
    EXPECT_EQ(m.dest.find("capabilities"), std::string::npos);
  }

  // Device cgroup: the granted minor, nvidiactl, the uvm major. Nothing for
  // the other GPUs or modeset, and no mknod.
  EXPECT_EQ(b.allow, (std::vector<DeviceRule>{{'c', 195, 2, "rw"},
                                              {'c', 195, 255, "rw"},
                                              {'c', int(FakeDriverRoot::kUvmMajor), -1, "rw"}}));
  EXPECT_EQ(b.minors, (std::vector<unsigned>{2}));
  EXPECT_EQ(b.uuids, (S{g2.uuid}));
  EXPECT_EQ(b.env, (S{"CUDA_VISIBLE_DEVICES=" + g2.uuid}));
}

TEST(Binding, OrderOfSelectionIsCudaOrderInside) {
  GPUBOX_REQUIRE_ROOT();
  FakeDriverRoot fake({.gpus = 3});
  Inventory inv = discoverFake(fake);
  Binding b = planBinding(inv, gpusSel({2, 0}));
  EXPECT_EQ(b.minors, (std::vector<unsigned>{2, 0}));
  EXPECT_EQ(b.env, (S{"CUDA_VISIBLE_DEVICES=" + fake.gpus()[2].uuid + "," + fake.gpus()[0].uuid}));
  // Nodes keep their host minor in the name.
  EXPECT_EQ(destsOf(b, MountKind::DevBind)[0], "/dev/nvidia2");
  EXPECT_EQ(destsOf(b, MountKind::DevBind)[1], "/dev/nvidia0");
  EXPECT_EQ(destsOf(b, MountKind::Symlink).size(), 2u + 4u);  // 2 PCI links + 4 sonames
}

TEST(Binding, ModesetOnlyForDisplay) {
  GPUBOX_REQUIRE_ROOT();
  FakeDriverRoot fake({.gpus = 1});
  Inventory inv = discoverFake(fake);
  Binding b = planBinding(inv, gpusSel({0}, true));
  EXPECT_NE(opAt(b, "/dev/nvidia-modeset", MountKind::DevBind), nullptr);
  EXPECT_NE(std::find(b.allow.begin(), b.allow.end(), DeviceRule{'c', 195, 254, "rw"}),
            b.allow.end());
}

TEST(Binding, WithoutUvm) {
  GPUBOX_REQUIRE_ROOT();
  FakeDriverRoot fake({.gpus = 2, .uvm = false});
  Inventory inv = discoverFake(fake);
  Binding b = planBinding(inv, gpusSel({1}));
  EXPECT_EQ(destsOf(b, MountKind::DevBind), (S{"/dev/nvidia1", "/dev/nvidiactl"}));
  EXPECT_EQ(b.allow, (std::vector<DeviceRule>{{'c', 195, 1, "rw"}, {'c', 195, 255, "rw"}}));
}

TEST(Binding, Libraries) {
  GPUBOX_REQUIRE_ROOT();
  FakeDriverRoot fake({.gpus = 1});
  Inventory inv = discoverFake(fake);
  Binding b = planBinding(inv, gpusSel({0}));
  const std::string dir = "/usr/lib/x86_64-linux-gnu/";
  std::vector<std::string> libBinds;
  for (const MountOp& m : b.mounts)
    if (m.kind == MountKind::RoBind && m.dest.rfind("/usr/", 0) == 0) {
      libBinds.push_back(m.dest);
      EXPECT_TRUE(m.skipIfVisible) << m.dest;
      EXPECT_EQ(m.source, fake.path(m.dest.substr(1)));  // host path = root + dest
    }
  EXPECT_EQ(libBinds,
            (S{dir + "libcuda.so.550.54.14", dir + "libnvidia-ml.so.550.54.14",
               dir + "libnvidia-ptxjitcompiler.so.550.54.14", dir + "libnvidia-nvvm.so.550.54.14",
               dir + "libnvidia-gpucomp.so.550.54.14", "/usr/bin/nvidia-smi"}));
  // The soname links, each right after its library, made only if absent.
  const MountOp* cuda1 = opAt(b, dir + "libcuda.so.1", MountKind::Symlink);
  ASSERT_NE(cuda1, nullptr);
  EXPECT_EQ(cuda1->source, "libcuda.so.550.54.14");
  EXPECT_TRUE(cuda1->skipIfVisible);
  EXPECT_EQ(indexOf(b, dir + "libcuda.so.1", MountKind::Symlink),
            indexOf(b, dir + "libcuda.so.550.54.14", MountKind::RoBind) + 1);
  EXPECT_EQ(opAt(b, dir + "libnvidia-ml.so.1", MountKind::Symlink)->source,
            "libnvidia-ml.so.550.54.14");
  EXPECT_EQ(opAt(b, dir + "libnvidia-nvvm.so.4", MountKind::Symlink)->source,
            "libnvidia-nvvm.so.550.54.14");
  EXPECT_EQ(opAt(b, dir + "libnvidia-ptxjitcompiler.so.1", MountKind::Symlink)->source,
            "libnvidia-ptxjitcompiler.so.550.54.14");
}

TEST(Binding, LibraryLayoutFollowsThePlansRoot) {
  using Plan = std::vector<MountOp>;
  // The default plan (no step on "/") and the host's own root: host paths.
  EXPECT_EQ(libraryLayoutFor(Plan{}), LibraryLayout::HostPaths);
  EXPECT_EQ(libraryLayoutFor(Plan{{.kind = MountKind::Tmpfs, .dest = "/tmp"}}),
            LibraryLayout::HostPaths);
  EXPECT_EQ(libraryLayoutFor(Plan{{.kind = MountKind::RoBind, .source = "/", .dest = "/"},
                                  {.kind = MountKind::RemountRo, .dest = "/"}}),
            LibraryLayout::HostPaths);
  EXPECT_EQ(libraryLayoutFor(Plan{{.kind = MountKind::RoBind, .source = "/", .dest = "/"},
                                  {.kind = MountKind::Dir, .dest = "/"},
                                  {.kind = MountKind::Chmod, .dest = "/", .mode = 0755}}),
            LibraryLayout::HostPaths);
  // Another tree, read-only or writable, or an empty tmpfs root.
  EXPECT_EQ(libraryLayoutFor(Plan{{.kind = MountKind::RoBind, .source = "/srv/deb", .dest = "/"}}),
            LibraryLayout::DriverDir);
  EXPECT_EQ(libraryLayoutFor(Plan{{.kind = MountKind::Bind, .source = "/srv/deb", .dest = "/"}}),
            LibraryLayout::DriverDir);
  EXPECT_EQ(libraryLayoutFor(Plan{{.kind = MountKind::Tmpfs, .dest = "/"}}),
            LibraryLayout::DriverDir);
  // The last step on "/" wins.
  EXPECT_EQ(libraryLayoutFor(Plan{{.kind = MountKind::RoBind, .source = "/", .dest = "/"},
                                  {.kind = MountKind::Bind, .source = "/srv/deb", .dest = "/"}}),
            LibraryLayout::DriverDir);
}

TEST(Binding, ForeignRootGetsTheDriverDirectoryAndALoaderCache) {
  GPUBOX_REQUIRE_ROOT();
  FakeDriverRoot fake({.gpus = 1});
  Inventory inv = discoverFake(fake);
  Binding b = planBinding(inv, gpusSel({0}), LibraryLayout::DriverDir);
  // Nothing at the host's paths (a writable root would keep the files).
  for (const MountOp& m : b.mounts) EXPECT_NE(m.dest.rfind("/usr/", 0), 0u) << m.dest;
  const MountOp* dir = opAt(b, kDriverDir, MountKind::DriverDir);
  ASSERT_NE(dir, nullptr);
  EXPECT_TRUE(dir->optional);
  const std::string lib = fake.path("usr/lib/x86_64-linux-gnu/");
  EXPECT_EQ(dir->source,
            lib + "libcuda.so.550.54.14\tlibcuda.so.1\n" + lib +
                "libnvidia-ml.so.550.54.14\tlibnvidia-ml.so.1\n" + lib +
                "libnvidia-ptxjitcompiler.so.550.54.14\tlibnvidia-ptxjitcompiler.so.1\n" + lib +
                "libnvidia-nvvm.so.550.54.14\tlibnvidia-nvvm.so.4\n" + lib +
                "libnvidia-gpucomp.so.550.54.14\t\n" + fake.path("usr/bin/nvidia-smi") + "\t");
  const MountOp* cache = opAt(b, "/etc/ld.so.cache", MountKind::LoaderCache);
  ASSERT_NE(cache, nullptr);
  EXPECT_EQ(cache->source, kDriverDir);
  EXPECT_TRUE(cache->optional);
  EXPECT_EQ(indexOf(b, "/etc/ld.so.cache", MountKind::LoaderCache),
            indexOf(b, kDriverDir, MountKind::DriverDir) + 1);
}

TEST(Binding, MigCapsAndCapabilitiesOfTheGrantedGpuOnly) {
  GPUBOX_REQUIRE_ROOT();
  FakeDriverRoot fake({.gpus = 2, .migOnGpu = 1});
  Inventory inv = discoverFake(fake);
  {
    Binding b = planBinding(inv, gpusSel({0}));
    for (const MountOp& m : b.mounts) {
      EXPECT_EQ(m.dest.find("nvidia-caps"), std::string::npos) << m.dest;
      EXPECT_EQ(m.dest.find("capabilities"), std::string::npos) << m.dest;
    }
  }
  Binding b = planBinding(inv, gpusSel({1}));
  EXPECT_EQ(destsOf(b, MountKind::DevBind),
            (S{"/dev/nvidia1", "/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools",
               "/dev/nvidia-caps/nvidia-cap12", "/dev/nvidia-caps/nvidia-cap13"}));
  const MountOp* caps = opAt(b, "/proc/driver/nvidia/capabilities/gpu1", MountKind::RoBind);
  ASSERT_NE(caps, nullptr);
  EXPECT_EQ(caps->source, fake.path("proc/driver/nvidia/capabilities/gpu1"));
  EXPECT_NE(opAt(b, "/proc/driver/nvidia/capabilities", MountKind::Dir), nullptr);
  // Never the host-wide MIG config/monitor caps (cap1, cap2).
  for (const MountOp& m : b.mounts) {
    EXPECT_NE(m.dest, "/dev/nvidia-caps/nvidia-cap1");
    EXPECT_NE(m.dest, "/dev/nvidia-caps/nvidia-cap2");
    EXPECT_EQ(m.source.find("capabilities/mig"), std::string::npos);
  }
  int caps510 = 0;
  for (const DeviceRule& r : b.allow)
    if (r.major == int(FakeDriverRoot::kCapsMajor)) {
      ++caps510;
      EXPECT_TRUE(r.minor == 12 || r.minor == 13);
    }
  EXPECT_EQ(caps510, 2);
  // CUDA wants MIG-<uuid> names for MIG GPUs: no GPU UUID list then.
  EXPECT_TRUE(b.env.empty());
}

TEST(Binding, CdiDeviceEdits) {
  GPUBOX_REQUIRE_ROOT();
  FakeDriverRoot fake({.gpus = 2});
  fake.mknodChar("dev/dri/card1", 226, 1);
  fake.writeFile("etc/cdi/nvidia.json", R"({
    "cdiVersion": "0.5.0", "kind": "nvidia.com/gpu",
    "devices": [{"name": "0", "containerEdits": {
        "deviceNodes": [{"path": "/dev/nvidia0"}, {"path": "/dev/dri/card1"}],
        "env": ["GPU_FROM_CDI=0"]}}],
    "containerEdits": {"mounts": [{"hostPath": "/usr/bin/nvidia-smi", "containerPath": "/opt/nvidia-smi"}]}
  })");
  Inventory inv = discoverFake(fake);
  Selection sel = select(
      inv, {"nvidia.com/gpu=0"}, GpuGrant{.allowed = true, .all = true},
      [](unsigned) { return 0u; }, 0);
  EXPECT_EQ(sel.gpuIndices, (std::vector<unsigned>{0}));
  Binding b = planBinding(inv, sel);
  // /dev/nvidia0 only once, plus the CDI's extra node.
  EXPECT_EQ(destsOf(b, MountKind::DevBind), (S{"/dev/nvidia0", "/dev/nvidiactl", "/dev/nvidia-uvm",
                                               "/dev/nvidia-uvm-tools", "/dev/dri/card1"}));
  EXPECT_TRUE(opAt(b, "/dev/dri/card1", MountKind::DevBind)->hardened);
  EXPECT_NE(std::find(b.allow.begin(), b.allow.end(), DeviceRule{'c', 226, 1, "rw"}),
            b.allow.end());
  const MountOp* smi = opAt(b, "/opt/nvidia-smi", MountKind::RoBind);
  ASSERT_NE(smi, nullptr);
  EXPECT_EQ(smi->source, fake.path("usr/bin/nvidia-smi"));
  EXPECT_EQ(b.env, (S{"CUDA_VISIBLE_DEVICES=" + fake.gpus()[0].uuid, "GPU_FROM_CDI=0"}));
}

TEST(Binding, EveryDestIsAValidSandboxPath) {
  GPUBOX_REQUIRE_ROOT();
  FakeDriverRoot fake({.gpus = 4, .migOnGpu = 3, .ldCache = true});
  Inventory inv = discoverFake(fake);
  Binding b = planBinding(inv, gpusSel({0, 1, 2, 3}, true));
  for (const MountOp& m : b.mounts) {
    EXPECT_NO_THROW(gpubox::validateAbsolutePath(m.dest, "dest")) << m.dest;
    if (m.kind == MountKind::RoBind || m.kind == MountKind::DevBind) {
      EXPECT_EQ(m.source.rfind(fake.root() + "/", 0), 0u) << m.source;  // under the driver root
    }
  }
  EXPECT_NE(
      opAt(b, "/usr/lib/x86_64-linux-gnu/nvidia/current/libcuda.so.550.54.14", MountKind::RoBind),
      nullptr);
}

TEST(Binding, IndexOutsideTheInventoryThrows) {
  Inventory inv;
  EXPECT_THROW(planBinding(inv, gpusSel({0})), gpubox::Error);
}
