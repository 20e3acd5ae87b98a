// CDI specs: JSON and YAML, later directory wins, hooks never taken.
#include <gtest/gtest.h>

#include <cstdint>

#include "cdi.hpp"
#include "error.hpp"
#include "test_util.hpp"

using gpubox::testing::FakeDriverRoot;
using namespace gpubox::gpu;
using namespace gpubox::gpu::test;

namespace {

const char* kJsonSpec = R"({
  "cdiVersion": "0.5.0",
  "kind": "nvidia.com/gpu",
  "devices": [
    {"name": "0", "containerEdits": {"deviceNodes": [{"path": "/dev/nvidia0"}]}},
    {"name": "1", "containerEdits": {"deviceNodes": [{"path": "/dev/nvidia1", "major": 195, "minor": 1}]}},
    {"name": "all", "containerEdits": {"deviceNodes": [{"path": "/dev/nvidia0"}, {"path": "/dev/nvidia1"}]}}
  ],
  "containerEdits": {
    "env": ["NVIDIA_VISIBLE_DEVICES=void", "not an env entry"],
    "deviceNodes": [{"path": "/dev/nvidiactl"}, {"path": "/dev/nvidia-uvm"}],
    "mounts": [
      {"hostPath": "/usr/bin/nvidia-smi", "containerPath": "/usr/bin/nvidia-smi",
       "options": ["ro", "nosuid", "nodev", "bind"]},
      {"hostPath": "/usr/../etc/shadow", "containerPath": "/x"},
      {"hostPath": "/usr/lib/x86_64-linux-gnu/libcuda.so.550.54.14", "containerPath": "/t", "type": "tmpfs"}
    ],
    "hooks": [{"hookName": "createContainer", "path": "/usr/bin/nvidia-ctk",
               "args": ["nvidia-ctk", "hook", "update-ldcache"]}]
  }
})";

const char* kYamlSpec = R"(cdiVersion: 0.5.0
kind: nvidia.com/gpu
devices:
- name: "0"
  containerEdits:
    env:
    - FROM_YAML=1
    deviceNodes:
    - path: /dev/nvidia0
      hostPath: /dev/nvidia0
      type: c
      major: 195
      minor: 0
- name: GPU-abc
  containerEdits:
    deviceNodes:
    - path: /dev/nvidia1
      minor: 7
containerEdits:
  deviceNodes:
  - path: /dev/nvidiactl
  mounts:
  - hostPath: /usr/lib/x86_64-linux-gnu/libcuda.so.550.54.14
    containerPath: /usr/lib/x86_64-linux-gnu/libcuda.so.550.54.14
    options: [ro, nosuid, nodev, bind]
)";

const CdiDevice* find(const Inventory& inv, const std::string& name) {
  for (const auto& d : inv.cdi)
    if (d.name == name) return &d;
  return nullptr;
}

std::vector<std::string> dests(const CdiDevice& d) {
  std::vector<std::string> out;
  for (const auto& n : d.nodes) out.push_back(n.sandboxPath);
  return out;
}

}  // namespace

TEST(Cdi, JsonSpec) {
  GPUBOX_REQUIRE_ROOT();
  FakeDriverRoot fake({.gpus = 2, .cdiFiles = {{"etc/cdi/nvidia.json", kJsonSpec}}});
  Inventory inv = discoverFake(fake);
  ASSERT_EQ(inv.cdi.size(), 3u) << joined(inv.warnings);
  const CdiDevice* d0 = find(inv, "nvidia.com/gpu=0");
  ASSERT_NE(d0, nullptr);
  // The device's own edits first, then the spec-wide ones.
  EXPECT_EQ(dests(*d0),
            (std::vector<std::string>{"/dev/nvidia0", "/dev/nvidiactl", "/dev/nvidia-uvm"}));
  EXPECT_EQ(d0->nodes[0].hostPath, fake.path("dev/nvidia0"));  // under the driver root
  EXPECT_EQ(d0->nodes[0].major, 195u);
  EXPECT_EQ(d0->nodes[2].major, FakeDriverRoot::kUvmMajor);
  EXPECT_EQ(d0->env, (std::vector<std::string>{"NVIDIA_VISIBLE_DEVICES=void"}));
  ASSERT_EQ(d0->mounts.size(), 1u);  // the ".." and tmpfs mounts are refused
  EXPECT_EQ(d0->mounts[0].kind, gpubox::MountKind::RoBind);
  EXPECT_EQ(d0->mounts[0].source, fake.path("usr/bin/nvidia-smi"));
  EXPECT_EQ(d0->mounts[0].dest, "/usr/bin/nvidia-smi");
  EXPECT_EQ(d0->hooksIgnored, 1u);
  EXPECT_EQ(d0->specFile, fake.path("etc/cdi/nvidia.json"));
  EXPECT_TRUE(anyContains(inv.warnings, "1 CDI hook(s) ignored")) << joined(inv.warnings);
  EXPECT_TRUE(anyContains(inv.warnings, "/usr/../etc/shadow"));
  EXPECT_TRUE(anyContains(inv.warnings, "not KEY=VALUE"));
}

TEST(Cdi, YamlSpecAndLaterDirectoryWins) {
  GPUBOX_REQUIRE_ROOT();
  FakeDriverRoot fake(
      {.gpus = 2,
       .cdiFiles = {{"etc/cdi/nvidia.json", kJsonSpec}, {"var/run/cdi/nvidia.yaml", kYamlSpec}}});
  Inventory inv = discoverFake(fake);
  const CdiDevice* d0 = find(inv, "nvidia.com/gpu=0");
  ASSERT_NE(d0, nullptr) << joined(inv.warnings);
  EXPECT_EQ(d0->specFile, fake.path("var/run/cdi/nvidia.yaml"));
  EXPECT_EQ(dests(*d0), (std::vector<std::string>{"/dev/nvidia0", "/dev/nvidiactl"}));
  EXPECT_EQ(d0->env, (std::vector<std::string>{"FROM_YAML=1"}));
  ASSERT_EQ(d0->mounts.size(), 1u);
  EXPECT_EQ(d0->mounts[0].source, fake.path("usr/lib/x86_64-linux-gnu/libcuda.so.550.54.14"));
  EXPECT_EQ(d0->hooksIgnored, 0u);
  // Names only one file defines stay.
  EXPECT_NE(find(inv, "nvidia.com/gpu=1"), nullptr);
  EXPECT_NE(find(inv, "nvidia.com/gpu=all"), nullptr);
  // The YAML device whose node number disagrees with the node loses it.
  const CdiDevice* abc = find(inv, "nvidia.com/gpu=GPU-abc");
  ASSERT_NE(abc, nullptr);
  EXPECT_EQ(dests(*abc), (std::vector<std::string>{"/dev/nvidiactl"}));
  EXPECT_TRUE(anyContains(inv.warnings, fake.path("dev/nvidia1") + " is 195:1 but the spec says"));
}

TEST(Cdi, YamlInEtcLosesToJsonInVarRun) {
  GPUBOX_REQUIRE_ROOT();
  FakeDriverRoot fake(
      {.gpus = 2,
       .cdiFiles = {{"etc/cdi/nvidia.yaml", kYamlSpec}, {"var/run/cdi/nvidia.json", kJsonSpec}}});
  Inventory inv = discoverFake(fake);
  const CdiDevice* d0 = find(inv, "nvidia.com/gpu=0");
  ASSERT_NE(d0, nullptr);
  EXPECT_EQ(d0->specFile, fake.path("var/run/cdi/nvidia.json"));
  EXPECT_NE(find(inv, "nvidia.com/gpu=GPU-abc"), nullptr);  // only the YAML had it
}

TEST(Cdi, MalformedAndForeignSpecsAreSkipped) {
  GPUBOX_REQUIRE_ROOT();
  FakeDriverRoot fake({.gpus = 1,
                       .cdiFiles = {{"etc/cdi/a-broken.json", "{\"kind\": \"nvidia.com/gpu\", "},
                                    {"etc/cdi/b-broken.yaml", "kind: [unclosed\n"},
                                    {"etc/cdi/c-nodevices.json", R"({"kind": "nvidia.com/gpu"})"},
                                    {"etc/cdi/d-other.json",
                                     R"({"kind": "vendor.com/fpga", "devices": [{"name": "x"}]})"},
                                    {"etc/cdi/e-notes.txt", "ignored"},
                                    {"etc/cdi/f-good.json", kJsonSpec}}});
  Inventory inv = discoverFake(fake);
  EXPECT_EQ(inv.cdi.size(), 3u) << joined(inv.warnings);
  EXPECT_TRUE(
      anyContains(inv.warnings, fake.path("etc/cdi/a-broken.json") + ": not a valid CDI spec"));
  EXPECT_TRUE(
      anyContains(inv.warnings, fake.path("etc/cdi/b-broken.yaml") + ": not a valid CDI spec"));
  EXPECT_TRUE(anyContains(inv.warnings, "c-nodevices.json: CDI spec has no devices list"));
  EXPECT_EQ(inv.gpus.size(), 1u);
}

TEST(Cdi, YamlAliasBombIsBounded) {
  // Each level doubles the expansion; the converter must stop, not explode.
  std::string bomb = "kind: nvidia.com/gpu\na0: &a0 [x, x]\n";
  for (int i = 1; i < 40; ++i)
    bomb += "a" + std::to_string(i) + ": &a" + std::to_string(i) + " [*a" + std::to_string(i - 1) +
            ", *a" + std::to_string(i - 1) + "]\n";
  bomb += "devices: [*a39]\n";
  std::vector<std::string> warnings;
  EXPECT_THROW(parseCdiSpec(bomb, true, "bomb.yaml", "/nonexistent", warnings), gpubox::Error);
}

TEST(Cdi, InvalidDeviceNamesAreRefused) {
  std::vector<std::string> warnings;
  auto devs = parseCdiSpec(
      R"({"kind": "nvidia.com/gpu", "devices": [{"name": "../x"}, {"name": ""}, {"name": "ok-1"}]})",
      false, "s.json", "/nonexistent", warnings);
  ASSERT_EQ(devs.size(), 1u);
  EXPECT_EQ(devs[0].name, "nvidia.com/gpu=ok-1");
  EXPECT_EQ(warnings.size(), 2u);
}

TEST(Cdi, GarbageNeverCrashes) {
  // Deterministic mutations of valid specs, wrong types everywhere, and
  // pathological nesting: each is either parsed or refused with an Error.
  std::vector<std::string> inputs = {
      std::string(512 * 1024, '[') + std::string(512 * 1024, ']'),
      std::string(100000, '[') + "1",
      R"({"kind": "nvidia.com/gpu", "devices": "x"})",
      R"({"kind": "nvidia.com/gpu", "devices": [1, null, {"name": 5},
          {"name": "a", "containerEdits": {"deviceNodes": 3, "mounts": [7], "env": [1, "A=b"],
           "hooks": {"x": 1}}}], "containerEdits": []})",
      R"({"kind": "nvidia.com/gpu", "devices": [{"name": "a", "containerEdits":
          {"deviceNodes": [{"path": "/dev/nvidia0", "major": -1, "minor": 1e99}]}}]})",
      "kind: nvidia.com/gpu\ndevices:\n- name: a\n  containerEdits:\n    deviceNodes: {x: y}\n",
      "kind: nvidia.com/gpu\n? [a, b]\n: c\ndevices: []\n",
      std::string(4000, '{'),
      std::string(4000, '-') + " x",
  };
  uint32_t seed = 12345;
  auto rnd = [&] { return seed = seed * 1103515245u + 12345u; };
  for (const char* base : {kJsonSpec, kYamlSpec}) {
    for (int i = 0; i < 300; ++i) {
      std::string s = base;
      for (int k = 0; k < 4; ++k) s[(rnd() >> 8) % s.size()] = static_cast<char>(rnd() >> 16);
      inputs.push_back(s);
    }
  }
  for (size_t i = 0; i < inputs.size(); ++i) {
    for (bool yaml : {false, true}) {
      std::vector<std::string> warnings;
      try {
        parseCdiSpec(inputs[i], yaml, "g", "/nonexistent", warnings);
      } catch (const gpubox::Error&) {
      }
    }
  }
}
