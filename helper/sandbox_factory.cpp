#include "sandbox_factory.hpp"

#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <optional>

#include "error.hpp"
#include "gpu_assignment.hpp"
#include "sandbox/launcher.hpp"

namespace gpubox {

namespace {

uint64_t monotonicMs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}

// Requests only root may make (host network also when the policy says so).
void checkPrivilegedOptions(DaemonContext& ctx, const PeerIdentity& peer, const SandboxSpec& spec) {
  if (peer.uid == 0) return;
  for (const MountOp& op : spec.mounts) {
    if (op.kind == MountKind::DevBind)
      throw Error("--dev-bind " + op.source + " " + op.dest +
                  ": refused: only root may bind devices");
  }
  if (spec.network == Network::Host &&
      !ctx.policy.grantFor({peer.uid, peer.gid, peer.groups}).hostNetwork)
    throw Error("--net host: refused: uid " + std::to_string(peer.uid) +
                " may not share the host network (no policy rule sets host_network = true)");
}

// Whether the NVIDIA driver publishes anything under /proc/driver/nvidia.
bool driverInfoVisible(const DaemonContext& ctx) {
  struct stat st;
  std::string path = ctx.driverRoot + "/proc/driver/nvidia";
  return ::stat(path.c_str(), &st) == 0;
}

// Everything that must be released once the sandbox's init is gone.
struct Holdings {
  // Destroyed in reverse order: the cgroup goes once its processes are gone,
  // then the GPU lease.
  leases::Lease lease;
  std::unique_ptr<cgroup::DeviceCgroup> cgroup;
  DaemonContext* ctx = nullptr;
  ino_t pidNs = 0;
  ino_t userNs = 0;
  ~Holdings() {
    if (ctx) {
      ctx->sandboxNamespaces.remove(pidNs, userNs);
      --ctx->liveSandboxes;
    }
  }
};

}  // namespace

BuiltSandbox buildSandbox(DaemonContext& ctx, const PeerIdentity& peer, const SandboxSpec& spec) {
  validateSpec(spec);
  checkPrivilegedOptions(ctx, peer, spec);
  if (ctx.liveSandboxes >= ctx.limits.maxSandboxesTotal)
    throw Error("the helper runs its maximum of " + std::to_string(ctx.limits.maxSandboxesTotal) +
                " sandboxes; try again later");

  BuiltSandbox built;
  built.plan = spec.useDefaultPlan ? defaultPlan(spec.cwd) : std::vector<MountOp>{};
  built.plan.insert(built.plan.end(), spec.mounts.begin(), spec.mounts.end());

  auto holdings = std::make_shared<Holdings>();
  std::optional<GpuAssignment> gpus;
  if (asksForGpus(spec.gpus)) {
    gpus = assignGpus(ctx, peer, spec.gpus);
    const gpu::Binding& b = gpus->binding;
    built.plan.insert(built.plan.end(), b.mounts.begin(), b.mounts.end());
    built.extraEnv = b.env;
    built.gpuUuids = b.uuids;
  } else if (driverInfoVisible(ctx)) {
    // No GPU granted: the sandbox's own procfs would still list every GPU
    // under /proc/driver/nvidia. Show it none (fail-closed for information
    // too); skipped when the plan has no /proc.
    built.plan.push_back({.kind = MountKind::Tmpfs, .dest = "/proc/driver", .optional = true});
    built.plan.push_back({.kind = MountKind::RemountRo, .dest = "/proc/driver", .optional = true});
  }
  bool bindsDevices = std::any_of(spec.mounts.begin(), spec.mounts.end(),
                                  [](const MountOp& op) { return op.kind == MountKind::DevBind; });
  std::string name =
      "sb-" + std::to_string(::getpid()) + "-" + std::to_string(++ctx.sandboxCounter);
  holdings->cgroup = deviceCgroupFor(ctx, name, gpus ? &*gpus : nullptr, bindsDevices);
  if (holdings->cgroup) built.cgroup = holdings->cgroup->path();
  if (gpus) holdings->lease = std::move(gpus->lease);
  built.defaultCwd = spec.useDefaultPlan ? spec.cwd : "/";
  bool newNetwork = spec.network == Network::None;
  built.namespaces = sandboxNamespaces(newNetwork);

  InitConfig config;
  config.uid = peer.uid;
  config.gid = peer.gid;
  config.groups = peer.groups;
  config.hostname = spec.hostname;
  config.newNetwork = newNetwork;
  config.plan = built.plan;
  config.masks = ctx.helperSockets;
  config.defaultCwd = built.defaultCwd;

  cgroup::DeviceCgroup* cg = holdings->cgroup.get();
  LaunchedInit init = launchInit(config, [cg](pid_t pid) {
    if (cg) cg->attach(pid);
  });
  auto log = std::make_shared<SandboxLogInfo>();
  log->record.uid = peer.uid;
  log->record.pid = peer.pid;
  log->record.result = "setup failed";
  for (const std::string& uuid : built.gpuUuids)
    log->record.gpus += (log->record.gpus.empty() ? "" : ",") + uuid;
  log->startMs = monotonicMs();
  built.log = log;
  pid_t initPid = init.pid;
  // From here on the runtime owns the init: any later failure kills and reaps it.
  built.runtime =
      std::make_shared<SandboxRuntime>(ctx.port, ctx.reaper, std::move(init), holdings, [log]() {
        log->record.durationMs = monotonicMs() - log->startMs;
        logSandbox(log->record);
      });
  holdings->pidNs = namespaceInode(initPid, "pid");
  holdings->userNs = namespaceInode(initPid, "user");
  holdings->ctx = &ctx;
  ctx.sandboxNamespaces.add(holdings->pidNs, holdings->userNs);
  ++ctx.liveSandboxes;
  return built;
}

}  // namespace gpubox
