// Google Benchmark micro-benchmarks of what the helper's event loop does for
// every request before any process exists (issue 8: "nothing blocking on the
// event loop"; docs/performance.md): decoding and validating a request, the
// caller's policy, the init's configuration as bytes and back, and the
// device program of a GPU grant; and one step of the init's own (its mount
// table, read to find the procfs mounts a bind of / brings along).
// Whole-process timings are bench_startup's.
//
//   build/tests/bench/request_path_bench            (any user; no helper needed)
#include <benchmark/benchmark.h>
#include <capnp/message.h>
#include <capnp/serialize.h>

#include <string>
#include <vector>

#include "caller_policy.hpp"
#include "cgroup/device_bpf.hpp"
#include "cgroup/device_rules.hpp"
#include "cgroup/sandbox_cgroup.hpp"
#include "fake_driver.hpp"
#include "gpu/gpu.hpp"
#include "policy.hpp"
#include "sandbox/init_config_codec.hpp"
#include "sandbox/mountinfo.hpp"
#include "spec.hpp"
#include "spec_wire.hpp"

namespace gpubox {
namespace {

// What `gpubox run` sends for the default plan with a GPU and a few options.
SandboxSpec typicalSpec() {
  SandboxSpec spec;
  spec.cwd = "/home/user/project";
  spec.home = "/home/user";
  spec.gpus = {"0"};
  spec.mounts = {{.kind = MountKind::RoBind, .source = "/opt/data", .dest = "/data"},
                 {.kind = MountKind::Tmpfs, .dest = "/scratch"}};
  spec.hide = {"/run/user/1000/ssh-agent.sock"};
  spec.limits.memoryBytes = 8ull << 30;
  spec.limits.pids = 1024;
  return spec;
}

void BM_DecodeAndValidateSpec(benchmark::State& state) {
  capnp::MallocMessageBuilder message;
  specToWire(typicalSpec(), message.initRoot<wire::SandboxSpec>());
  kj::Array<capnp::word> words = capnp::messageToFlatArray(message);
  for (auto _ : state) {
    capnp::FlatArrayMessageReader reader(words);
    SandboxSpec spec = specFromWire(reader.getRoot<wire::SandboxSpec>());
    validateSpec(spec);
    benchmark::DoNotOptimize(spec);
  }
}
BENCHMARK(BM_DecodeAndValidateSpec);

void BM_DefaultPlanAndSecrets(benchmark::State& state) {
  for (auto _ : state) {
    std::vector<MountOp> plan = defaultPlan("/home/user/project");
    std::vector<std::string> hide = secretPaths("/home/user");
    benchmark::DoNotOptimize(plan);
    benchmark::DoNotOptimize(hide);
  }
}
BENCHMARK(BM_DefaultPlanAndSecrets);

// A policy of RULES rules, the caller matching the last.
void BM_CallerPolicy(benchmark::State& state) {
  std::string text = "[defaults]\nmemory = \"16G\"\npids = 4096\n";
  for (int i = 0; i < state.range(0); ++i)
    text += "[[allow]]\nusers = [" + std::to_string(2000 + i) +
            "]\ngpus = [\"all\"]\nmax_gpus = 2\nmax_memory = \"64G\"\n";
  const policy::Policy p = policy::Policy::parse(text, "bench.toml");
  const SandboxDefaults wide = helperWideDefaults(p, {});
  const policy::Caller caller{static_cast<uid_t>(2000 + state.range(0) - 1), 100, {100, 27}};
  for (auto _ : state) benchmark::DoNotOptimize(callerPolicy(p, wide, caller));
}
BENCHMARK(BM_CallerPolicy)->Arg(1)->Arg(16)->Arg(256);

// The configuration sent to an init with Go: a default plan, the secrets,
// a seccomp-sized program.
void BM_InitConfigRoundTrip(benchmark::State& state) {
  InitConfig c;
  c.uid = c.gid = c.sandboxUid = c.sandboxGid = 1000;
  c.groups = {100, 27};
  c.plan = defaultPlan("/home/user/project");
  c.hide = secretPaths("/home/user");
  c.seccomp.resize(300, sock_filter{0x15, 0, 1, 42});
  c.defaultCwd = "/home/user/project";
  for (auto _ : state) {
    std::string bytes = encodeInitConfig(c);
    InitConfig back = decodeInitConfig(bytes);
    benchmark::DoNotOptimize(back);
  }
}
BENCHMARK(BM_InitConfigRoundTrip);

// The cgroup v2 device program of a one-GPU grant, built (not loaded: that
// needs root and is cached per rule set, loadDeviceProgramShared).
void BM_DeviceProgramForOneGpu(benchmark::State& state) {
  const cgroup::DeviceRules rules{
      cgroup::DevicePolicy::AllowListed,
      {{'c', 195, 0, "rw"}, {'c', 195, 255, "rw"}, {'c', 508, 0, "rw"}, {'c', 508, 1, "rw"}},
      {}};
  for (auto _ : state) {
    cgroup::ExpandedDeviceRules e = cgroup::expandDeviceRules(rules);
    benchmark::DoNotOptimize(cgroup::buildDeviceProgram(e.allow, e.deny, e.defaultAllow));
  }
}
BENCHMARK(BM_DeviceProgramForOneGpu);

// What a `--gpu 0` sandbox adds to its plan (the nodes, /proc/driver,
// /sys, the driver's libraries and nvidia-smi), from an inventory of a
// fake driver tree with one GPU discovered once, as the helper's is.
void BM_PlanBindingForOneGpu(benchmark::State& state) {
  testing::FakeDriverRoot fake(testing::FakeDriverRoot::Options{.gpus = 1});
  const gpu::Inventory inventory = gpu::discover(fake.root());
  const gpu::Selection selection{.gpuIndices = {0}};
  for (auto _ : state)
    benchmark::DoNotOptimize(gpu::planBinding(inventory, selection, gpu::LibraryLayout::HostPaths));
}
BENCHMARK(BM_PlanBindingForOneGpu);

// A warm init's cgroup planned on a hybrid host (a v2 directory, four v1
// hierarchies): from the layout each time (planEmpty), and from the shape
// the pool computes once plus the init's name (named), as InitPool does.
cgroup::Layout hybridHostLayout() {
  cgroup::Layout l;
  l.mounts.v2Mount = "/sys/fs/cgroup/unified";
  for (const char* c : {"memory", "cpu", "cpuacct", "pids", "devices"}) {
    const std::string mount =
        std::string("/sys/fs/cgroup/") + (std::string(c).starts_with("cpu") ? "cpu,cpuacct" : c);
    l.mounts.v1[c] = {mount, "/"};
    l.v1Parents[c] = mount + "/system.slice/gpubox.service/gpubox";
  }
  l.v2Parent = "/sys/fs/cgroup/unified/system.slice/gpubox.service/gpubox";
  return l;
}

void BM_PlanWarmCgroupFromLayout(benchmark::State& state) {
  const cgroup::Layout layout = hybridHostLayout();
  uint64_t id = 0;
  for (auto _ : state)
    benchmark::DoNotOptimize(
        cgroup::SandboxCgroup::planEmpty(layout, cgroup::sandboxCgroupName(++id), true));
}
BENCHMARK(BM_PlanWarmCgroupFromLayout);

void BM_PlanWarmCgroupFromShape(benchmark::State& state) {
  const cgroup::SandboxCgroup::EmptyShape shape =
      cgroup::SandboxCgroup::emptyShape(hybridHostLayout(), true);
  uint64_t id = 0;
  for (auto _ : state)
    benchmark::DoNotOptimize(cgroup::SandboxCgroup::named(shape, cgroup::sandboxCgroupName(++id)));
}
BENCHMARK(BM_PlanWarmCgroupFromShape);

// A mount table of N lines as a busy host writes it (containers, snaps,
// cgroups): what a sandbox's init parses once for `--ro-bind / /`
// (coverForeignProcfs) on such a host.
std::string mountTableOf(int lines) {
  std::string text = "28 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw\n";
  for (int i = 0; i + 1 < lines; ++i) {
    const std::string id = std::to_string(100 + i);
    text += id + " 28 0:" + std::to_string(50 + i) + " / /var/lib/containers/storage/overlay/" +
            id + "/merged rw,relatime shared:" + id +
            " - overlay overlay rw,lowerdir=/var/lib/containers/l/" + id +
            ",upperdir=/var/lib/containers/u/" + id + ",workdir=/var/lib/containers/w/" + id + "\n";
  }
  return text;
}

void BM_ParseMountInfo(benchmark::State& state) {
  const std::string text = mountTableOf(static_cast<int>(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(parseMountInfo(text));
}
BENCHMARK(BM_ParseMountInfo)->Arg(30)->Arg(300);

// This process's own table, read and parsed, as the init does.
void BM_ReadOwnMountInfo(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(readOwnMountInfo("bench"));
}
BENCHMARK(BM_ReadOwnMountInfo);

}  // namespace
}  // namespace gpubox

BENCHMARK_MAIN();
