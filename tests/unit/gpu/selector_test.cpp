// select(): every --gpu form, its errors, and the policy gate. Synthetic
// inventories: no files, no root.
#include <gtest/gtest.h>

#include <map>

#include "error.hpp"
#include "test_util.hpp"

using namespace gpubox::gpu;

namespace {

Inventory inventory(unsigned n) {
  Inventory inv;
  inv.driverRoot = "/fake";
  inv.driverVersion = "550.54.14";
  const char* uuids[] = {
      "GPU-aaaa1111-0000-0000-0000-000000000000", "GPU-aaaa2222-0000-0000-0000-000000000000",
      "GPU-bbbb3333-0000-0000-0000-000000000000", "GPU-cccc4444-0000-0000-0000-000000000000"};
  for (unsigned i = 0; i < n; ++i) {
    Gpu g;
    g.index = i;
    g.minor = i;
    g.uuid = uuids[i];
    g.busId = "0000:0" + std::to_string(i) + ":00.0";
    g.node = DeviceNode{"/fake/dev/nvidia" + std::to_string(i), "/dev/nvidia" + std::to_string(i),
                        195, i};
    inv.gpus.push_back(g);
  }
  return inv;
}

GpuGrant allowAll(unsigned max = 0) {
  GpuGrant g;
  g.allowed = true;
  g.all = true;
  g.maxGpus = max;
  return g;
}

unsigned idle(unsigned) {
  return 0;
}

std::vector<unsigned> pick(const Inventory& inv, std::vector<std::string> sel,
                           const GpuGrant& grant = allowAll()) {
  return select(inv, sel, grant, idle, 1000).gpuIndices;
}

std::string errorOf(const Inventory& inv, std::vector<std::string> sel, const GpuGrant& grant,
                    uid_t uid = 65534, std::function<unsigned(unsigned)> holders = idle) {
  try {
    select(inv, sel, grant, holders, uid);
  } catch (const gpubox::Error& e) {
    return e.what();
  }
  return "(no error)";
}

using V = std::vector<unsigned>;

}  // namespace

TEST(Select, NoneAndEmptyGiveNothingWithoutPolicy) {
  Inventory inv = inventory(2);
  GpuGrant denied;
  EXPECT_TRUE(select(inv, {}, denied, idle, 65534).gpuIndices.empty());
  EXPECT_TRUE(select(inv, {"none"}, denied, idle, 65534).gpuIndices.empty());
  EXPECT_TRUE(select(inv, {"none", "none"}, denied, idle, 65534).gpuIndices.empty());
  EXPECT_EQ(errorOf(inv, {"none", "0"}, allowAll()), "--gpu none cannot be combined with --gpu 0");
}

TEST(Select, All) {
  Inventory inv = inventory(4);
  EXPECT_EQ(pick(inv, {"all"}), (V{0, 1, 2, 3}));
  // "all" is every GPU this caller may use.
  GpuGrant some;
  some.allowed = true;
  some.indices = {1, 3};
  EXPECT_EQ(pick(inv, {"all"}, some), (V{1, 3}));
  EXPECT_EQ(errorOf(inventory(0), {"all"}, allowAll()), "--gpu all: no GPU (this host has none)");
}

TEST(Select, Indices) {
  Inventory inv = inventory(4);
  EXPECT_EQ(pick(inv, {"0,2"}), (V{0, 2}));
  EXPECT_EQ(pick(inv, {"2,0"}), (V{2, 0}));          // order kept: 2 is CUDA device 0 inside
  EXPECT_EQ(pick(inv, {"3", "1", "3"}), (V{3, 1}));  // duplicates keep their first place
  EXPECT_EQ(errorOf(inventory(2), {"3"}, allowAll()),
            "--gpu 3: no such GPU (this host has 2: 0,1)");
  EXPECT_EQ(errorOf(inventory(4), {"0,7"}, allowAll()),
            "--gpu 0,7: no such GPU (this host has 4: 0-3)");
  EXPECT_EQ(errorOf(inventory(0), {"0"}, allowAll()), "--gpu 0: no such GPU (this host has none)");
  EXPECT_EQ(errorOf(inv, {"0,,1"}, allowAll()), "--gpu 0,,1: empty item in the list");
  EXPECT_NE(errorOf(inv, {"x"}, allowAll()).find("--gpu x: 'x' is not a GPU (expected none, all"),
            std::string::npos);
  EXPECT_NE(errorOf(inv, {"-1"}, allowAll()).find("is not a GPU"), std::string::npos);
  EXPECT_NE(errorOf(inv, {"1 "}, allowAll()).find("is not a GPU"), std::string::npos);
  EXPECT_NE(errorOf(inv, {""}, allowAll()).find("--gpu: empty value"), std::string::npos);
}

TEST(Select, UuidAndUniquePrefix) {
  Inventory inv = inventory(4);
  EXPECT_EQ(pick(inv, {"GPU-bbbb3333-0000-0000-0000-000000000000"}), (V{2}));
  EXPECT_EQ(pick(inv, {"GPU-cc"}), (V{3}));
  EXPECT_EQ(pick(inv, {"gpu-AAAA2"}), (V{1}));  // case-insensitive
  EXPECT_EQ(pick(inv, {"GPU-cc,0"}), (V{3, 0}));
  EXPECT_EQ(errorOf(inv, {"GPU-aaaa"}, allowAll()),
            "--gpu GPU-aaaa: UUID prefix is ambiguous, it matches GPUs 0,1");
  EXPECT_EQ(errorOf(inv, {"GPU-dd"}, allowAll()),
            "--gpu GPU-dd: no GPU has a UUID starting with GPU-dd");
}

TEST(Select, CountPrefersIdleGpus) {
  Inventory inv = inventory(4);
  std::map<unsigned, unsigned> held = {{0, 2}, {1, 0}, {2, 1}, {3, 0}};
  auto holders = [&](unsigned minor) { return held[minor]; };
  EXPECT_EQ(select(inv, {"count:2"}, allowAll(), holders, 1).gpuIndices, (V{1, 3}));
  EXPECT_EQ(select(inv, {"count:3"}, allowAll(), holders, 1).gpuIndices, (V{1, 3, 2}));
  EXPECT_EQ(select(inv, {"count:1"}, allowAll(), idle, 1).gpuIndices, (V{0}));
  // count picks among GPUs not named explicitly, whatever the order given.
  EXPECT_EQ(select(inv, {"count:1", "1"}, allowAll(), holders, 1).gpuIndices, (V{1, 3}));
  // Only among the granted GPUs.
  GpuGrant some;
  some.allowed = true;
  some.indices = {0, 2};
  EXPECT_EQ(select(inv, {"count:1"}, some, holders, 1).gpuIndices, (V{2}));
  EXPECT_EQ(errorOf(inv, {"count:3"}, some),
            "--gpu count:3: only 2 GPU(s) left to pick from (uid 65534 may use GPUs 0,2)");
  EXPECT_EQ(errorOf(inv, {"count:0"}, allowAll()),
            "--gpu count:0: count must be a whole number of at least 1");
  EXPECT_EQ(errorOf(inv, {"count:x"}, allowAll()),
            "--gpu count:x: count must be a whole number of at least 1");
  EXPECT_EQ(errorOf(inv, {"count:"}, allowAll()),
            "--gpu count:: count must be a whole number of at least 1");
}

TEST(Select, PolicyNoRule) {
  Inventory inv = inventory(2);
  GpuGrant none;
  EXPECT_EQ(errorOf(inv, {"0"}, none),
            "--gpu 0: refused by policy: no [[allow]] rule grants GPUs to uid 65534");
  EXPECT_EQ(errorOf(inv, {"all"}, none, 0),
            "--gpu all: refused by policy: no [[allow]] rule grants GPUs to uid 0");
  EXPECT_EQ(errorOf(inv, {"count:1"}, none),
            "--gpu count:1: refused by policy: no [[allow]] rule grants GPUs to uid 65534");
  EXPECT_EQ(
      errorOf(inv, {"nvidia.com/gpu=0"}, none),
      "--gpu nvidia.com/gpu=0: refused by policy: no [[allow]] rule grants GPUs to uid 65534");
  // Even an out-of-range index is refused by policy first (nothing learnt).
  EXPECT_EQ(errorOf(inv, {"9"}, none),
            "--gpu 9: refused by policy: no [[allow]] rule grants GPUs to uid 65534");
}

TEST(Select, PolicyIndicesAndUuids) {
  Inventory inv = inventory(3);
  GpuGrant g;
  g.allowed = true;
  g.indices = {0};
  EXPECT_EQ(pick(inv, {"0"}, g), (V{0}));
  EXPECT_EQ(errorOf(inv, {"1"}, g), "--gpu 1: refused by policy: uid 65534 may use GPU 0");
  EXPECT_EQ(errorOf(inv, {"0,1"}, g), "--gpu 0,1: refused by policy: uid 65534 may use GPU 0");
  g.indices.clear();
  g.uuids = {"gpu-BBBB3333-0000-0000-0000-000000000000"};
  EXPECT_EQ(pick(inv, {"GPU-bb"}, g), (V{2}));
  EXPECT_EQ(pick(inv, {"all"}, g), (V{2}));
  EXPECT_EQ(errorOf(inv, {"0"}, g), "--gpu 0: refused by policy: uid 65534 may use GPU 2");
  GpuGrant empty;
  empty.allowed = true;  // a rule, but for GPUs this host does not have
  empty.uuids = {"GPU-ffff"};
  EXPECT_EQ(errorOf(inv, {"all"}, empty),
            "--gpu all: refused by policy: uid 65534 may use no GPU of this host");
}

TEST(Select, PolicyMaxGpus) {
  Inventory inv = inventory(4);
  EXPECT_EQ(errorOf(inv, {"all"}, allowAll(2)),
            "--gpu all: 4 GPUs asked, policy allows at most 2 per sandbox");
  EXPECT_EQ(errorOf(inv, {"0", "count:2"}, allowAll(2)),
            "--gpu 0 --gpu count:2: 3 GPUs asked, policy allows at most 2 per sandbox");
  EXPECT_EQ(pick(inv, {"0,1"}, allowAll(2)), (V{0, 1}));
  EXPECT_EQ(pick(inv, {"0", "0"}, allowAll(1)), (V{0}));
}

TEST(Select, CdiNamesWithoutSpecsFallBackToIndexUuidAll) {
  Inventory inv = inventory(3);
  auto s = select(inv, {"nvidia.com/gpu=1"}, allowAll(), idle, 1);
  EXPECT_EQ(s.gpuIndices, (V{1}));
  EXPECT_TRUE(s.cdiNames.empty());
  EXPECT_EQ(pick(inv, {"nvidia.com/gpu=all"}), (V{0, 1, 2}));
  EXPECT_EQ(pick(inv, {"nvidia.com/gpu=GPU-bb"}), (V{2}));
  EXPECT_EQ(errorOf(inv, {"nvidia.com/gpu=7"}, allowAll()),
            "--gpu nvidia.com/gpu=7: no such GPU (this host has 3: 0-2)");
  EXPECT_EQ(errorOf(inv, {"nvidia.com/gpu=mygpu"}, allowAll()),
            "--gpu nvidia.com/gpu=mygpu: no CDI device of that name (no CDI spec defines any)");
  EXPECT_EQ(errorOf(inv, {"vendor.com/fpga=0"}, allowAll()),
            "--gpu vendor.com/fpga=0: only nvidia.com/gpu CDI devices can be requested");
}

TEST(Select, CdiDevicesCountAsTheGpusTheyBind) {
  Inventory inv = inventory(3);
  CdiDevice d1;
  d1.name = "nvidia.com/gpu=mygpu";
  d1.nodes = {inv.gpus[1].node, DeviceNode{"/fake/dev/nvidiactl", "/dev/nvidiactl", 195, 255}};
  CdiDevice other;
  other.name = "nvidia.com/gpu=dri";
  other.nodes = {DeviceNode{"/fake/dev/dri/card1", "/dev/dri/card1", 226, 1}};
  inv.cdi = {other, d1};
  auto s = select(inv, {"nvidia.com/gpu=mygpu"}, allowAll(), idle, 1);
  EXPECT_EQ(s.gpuIndices, (V{1}));
  EXPECT_EQ(s.cdiNames, (std::vector<std::string>{"nvidia.com/gpu=mygpu"}));
  // The policy still applies to the GPU behind the CDI name.
  GpuGrant g0;
  g0.allowed = true;
  g0.indices = {0};
  EXPECT_EQ(errorOf(inv, {"nvidia.com/gpu=mygpu"}, g0),
            "--gpu nvidia.com/gpu=mygpu: refused by policy: uid 65534 may use GPU 0");
  // A CDI device that binds no GPU needs a grant of all GPUs.
  EXPECT_NE(errorOf(inv, {"nvidia.com/gpu=dri"}, g0).find("binds no GPU of this host"),
            std::string::npos);
  EXPECT_EQ(select(inv, {"nvidia.com/gpu=dri"}, allowAll(), idle, 1).cdiNames,
            (std::vector<std::string>{"nvidia.com/gpu=dri"}));
  EXPECT_EQ(errorOf(inv, {"nvidia.com/gpu=nope"}, allowAll()),
            "--gpu nvidia.com/gpu=nope: no CDI device of that name (CDI specs define: "
            "nvidia.com/gpu=dri, nvidia.com/gpu=mygpu)");
}

TEST(Select, RequestLimits) {
  Inventory inv = inventory(1);
  std::vector<std::string> many(65, "0");
  EXPECT_NE(errorOf(inv, many, allowAll()).find("at most 64"), std::string::npos);
  EXPECT_NE(errorOf(inv, {std::string(300, '1')}, allowAll()).find("longer than 256"),
            std::string::npos);
}
