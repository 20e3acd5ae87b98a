#include "sandbox_factory.hpp"

#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <optional>

#include "caller_policy.hpp"
#include "cgroup_janitor.hpp"
#include "cgroup_worker.hpp"
#include "error.hpp"
#include "gpu_assignment.hpp"
#include "init_pool.hpp"
#include "init_spawner.hpp"
#include "kj_error.hpp"
#include "limit_resolution.hpp"
#include "sandbox/launcher.hpp"
#include "sandbox_ids.hpp"
#include "span_clock.hpp"
#include "span_trace.hpp"

namespace gpubox {

namespace {

// How long after a pool-served sandbox is ready its init is made again when
// its first command has not ended by then (or there is none yet: a session).
constexpr auto kRefillAfterReady = 10 * kj::MILLISECONDS;

// Requests only root may make, unless the caller's policy rule allows them.
void checkPrivilegedOptions(const PeerIdentity& peer, const policy::Grant& grant,
                            const SandboxSpec& spec) {
  if (peer.uid == 0) return;
  auto refuse = [&](const std::string& what, const char* key) {
    throw Error(what + ": refused: uid " + std::to_string(peer.uid) + " may not use it (" +
                (grant.rule.empty()
                     ? std::string("no policy rule matches the caller")
                     : "its policy rule " + grant.rule + " does not set " + key + " = true") +
                ")");
  };
  for (const MountOp& op : spec.mounts) {
    if (op.kind == MountKind::DevBind && !grant.devBind)
      refuse("--dev-bind " + op.source + " " + op.dest, "dev_bind");
  }
  if (spec.seccomp == "none" && !grant.seccompNone) refuse("--seccomp none", "seccomp_none");
  if (spec.seccomp == "nested-userns" && !grant.nestedUserNamespaces)
    refuse("--seccomp nested-userns", "nested_user_namespaces");
  if (spec.network == Network::Host && !grant.hostNetwork) refuse("--net host", "host_network");
}

void checkCapacity(DaemonContext& ctx, const PeerIdentity& peer, const SandboxDefaults& d) {
  if (ctx.liveSandboxes >= ctx.limits.maxSandboxesTotal)
    throw Error("the helper runs its maximum of " + std::to_string(ctx.limits.maxSandboxesTotal) +
                " sandboxes; try again later");
  auto it = ctx.sandboxesPerUid.find(peer.uid);
  size_t mine = it == ctx.sandboxesPerUid.end() ? 0 : it->second;
  if (mine >= d.sandboxesPerUid)
    throw Error("uid " + std::to_string(peer.uid) + " already runs " + std::to_string(mine) +
                " sandboxes, the most allowed (" + d.origin.sandboxesPerUid + ": " +
                std::to_string(d.sandboxesPerUid) + "); end one (gpubox ps, gpubox session rm) " +
                "and try again");
}

// The caller's secrets under its home (built in) and the policy's hide list
// ("~/" there is the caller's home).
std::vector<std::string> hiddenPaths(const policy::Policy& policy, const std::string& home) {
  std::vector<std::string> paths = secretPaths(home);
  const bool haveHome = !home.empty() && home != "/";
  for (const std::string& p : policy.hide()) {
    if (!p.starts_with("~/"))
      paths.push_back(p);
    else if (haveHome)
      paths.push_back(home + p.substr(1));
  }
  return paths;
}

// The caller's seccomp programs as instructions (validateSpec checked that
// each is a whole number of them, at most BPF_MAXINSNS). The kernel checks
// the program itself when the command installs it.
std::vector<std::vector<sock_filter>> callerSeccompPrograms(const SandboxSpec& spec) {
  std::vector<std::vector<sock_filter>> programs;
  for (const std::string& bytes : spec.seccompPrograms) {
    std::vector<sock_filter> program(bytes.size() / sizeof(sock_filter));
    std::memcpy(program.data(), bytes.data(), program.size() * sizeof(sock_filter));
    programs.push_back(std::move(program));
  }
  return programs;
}

// The inode of each namespace the init was cloned into (the cgroup one it
// enters later is read by noteCgroupNamespace): as its cloner read them
// (LaunchedInit::namespaceInodes), else from /proc. An init whose setup
// already failed has none left to read: its own error is what the caller
// hears, so this stays quiet.
std::vector<std::pair<std::string, uint64_t>> namespaceIdsOf(
    pid_t initPid, const LaunchedInit::NamespaceInodes& known,
    const std::vector<std::string>& names) {
  std::vector<std::pair<std::string, uint64_t>> ids;
  for (const std::string& ns : names) {
    if (ns == "cgroup") continue;
    const auto at = std::find(kInitNamespaces.begin(), kInitNamespaces.end(), ns);
    const uint64_t inode = at == kInitNamespaces.end() ? 0 : known[at - kInitNamespaces.begin()];
    if (inode != 0) {
      ids.emplace_back(ns, inode);
      continue;
    }
    try {
      ids.emplace_back(ns, static_cast<uint64_t>(namespaceInode(initPid, ns.c_str())));
    } catch (const Error&) {
      return {};
    }
  }
  return ids;
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
  std::shared_ptr<cgroup::SandboxCgroup> cgroup;
  DaemonContext* ctx = nullptr;
  uid_t uid = 0;
  uint64_t id = 0;
  ino_t pidNs = 0;
  ino_t userNs = 0;
  ~Holdings() {
    if (!ctx) return;
    ctx->sandboxNamespaces.remove(pidNs, userNs);
    ctx->sandboxTable.erase(id);
    --ctx->liveSandboxes;
    if (--ctx->sandboxesPerUid[uid] == 0) ctx->sandboxesPerUid.erase(uid);
    if (cgroup) removeCgroupLater(*ctx, std::move(cgroup));
  }
};

}  // namespace

void noteCgroupNamespace(LiveSandbox& live) {
  // Not read at all (the init failed early), not asked for, or read already.
  if (live.namespaceIds.empty() || !live.runtime) return;
  if (std::find(live.namespaces.begin(), live.namespaces.end(), "cgroup") == live.namespaces.end())
    return;
  for (const auto& [name, inode] : live.namespaceIds)
    if (name == "cgroup") return;
  // Until the runtime has seen the init's end, its pid is not reaped, so it
  // cannot name another process.
  if (live.runtime->ended()) return;
  try {
    live.namespaceIds.emplace_back(
        "cgroup", static_cast<uint64_t>(namespaceInode(live.runtime->initPid(), "cgroup")));
  } catch (const Error&) {
    // A zombie's namespaces are gone: nothing to report.
  }
}

std::vector<std::string> rlimitLines(const std::vector<RlimitSetting>& rlimits) {
  std::vector<std::string> lines;
  for (const RlimitSetting& r : rlimits)
    lines.push_back("rlimit " + r.name + " = " +
                    (r.soft == kRlimUnlimited ? "unlimited" : std::to_string(r.soft)) + ":" +
                    (r.hard == kRlimUnlimited ? "unlimited" : std::to_string(r.hard)));
  return lines;
}

// What the device worker carried out (DONE: a warm init's limits, or the
// device rules), noted on the loop: FINISH (SandboxCgroup::finishLimits or
// finishDevices) checks it into the sandbox's cgroup, and the status's
// limits lines are made again (RLIMITS stay last). A failure rejects, and
// so ends the sandbox before it runs anything.
template <typename Work, typename Finish>
kj::Promise<void> noteInForce(kj::Promise<std::unique_ptr<Work>> done,
                              std::weak_ptr<cgroup::SandboxCgroup> weakCg,
                              std::weak_ptr<LiveSandbox> weakLive, std::vector<std::string> rlimits,
                              Finish finish) {
  return done.then([weakCg = std::move(weakCg), weakLive = std::move(weakLive),
                    rlimits = std::move(rlimits), finish](std::unique_ptr<Work> work) {
    auto cg = weakCg.lock();
    auto live = weakLive.lock();
    if (!cg || !live) return;  // the sandbox is gone already
    try {
      finish(*cg, *work);
    } catch (const Error& e) {
      throw callerError(e.what());
    }
    live->limits = cg->applied();
    live->limits.insert(live->limits.end(), rlimits.begin(), rlimits.end());
  });
}

// The device rules: the status gains the devices line; a backend that could
// not be used (the other enforcing alone) is logged.
kj::Promise<void> devicesInForce(DaemonContext& ctx,
                                 std::unique_ptr<cgroup::SandboxCgroup::DeviceWork> work,
                                 std::weak_ptr<cgroup::SandboxCgroup> weakCg,
                                 std::weak_ptr<LiveSandbox> weakLive,
                                 std::vector<std::string> rlimits) {
  return noteInForce(ctx.deviceWorker->setUpDevices(std::move(work)), std::move(weakCg),
                     std::move(weakLive), std::move(rlimits),
                     [](cgroup::SandboxCgroup& cg, const cgroup::SandboxCgroup::DeviceWork& done) {
                       cg.finishDevices(done);
                       if (!cg.skipped().empty())
                         logEventInfo("cgroup " + cg.path() + ": " + cg.skipped());
                     });
}

// A warm init's limits, written while the init builds its root
// (SandboxCgroup::planLimits): the status gains their lines.
kj::Promise<void> warmLimitsInForce(DaemonContext& ctx,
                                    std::unique_ptr<cgroup::SandboxCgroup::LimitWork> work,
                                    std::weak_ptr<cgroup::SandboxCgroup> weakCg,
                                    std::weak_ptr<LiveSandbox> weakLive,
                                    std::vector<std::string> rlimits) {
  return noteInForce(ctx.deviceWorker->writeLimits(std::move(work)), std::move(weakCg),
                     std::move(weakLive), std::move(rlimits),
                     [](cgroup::SandboxCgroup& cg, const cgroup::SandboxCgroup::LimitWork& done) {
                       cg.finishLimits(done);
                     });
}

uint64_t monotonicMs() {
  return monotonicNs() / 1000000;
}

std::shared_ptr<LiveSandbox> buildSandbox(DaemonContext& ctx, const PeerIdentity& peer,
                                          const SandboxSpec& spec, const std::string& sessionName,
                                          const SpanOrigin& origin) {
  std::shared_ptr<SpanTrace> spans = SpanTrace::startIfEnabled(origin);
  validateSpec(spec);
  // Its pid namespace dies with its one command: nothing could run after it.
  if (spec.asPid1 && !sessionName.empty())
    throw Error("--as-pid-1: a session runs more than one command; use it with gpubox run");
  const CallerPolicy caller = callerPolicy(ctx, peer);
  checkPrivilegedOptions(peer, caller.grant, spec);
  checkCapacity(ctx, peer, caller.defaults);
  const SandboxIds ids = resolveSandboxIds(spec, peer.uid, peer.gid, ctx.userNamespace);
  ResolvedLimits limits = resolveLimits(caller.defaults, spec.limits);
  const cgroup::ResourceLimits& r = limits.resources;
  if (!ctx.cgroupsUnavailable.empty() && (r.memoryBytes || r.cpuMillis || r.pids))
    throw Error(std::string(r.memoryBytes ? "--memory"
                            : r.cpuMillis ? "--cpus"
                                          : "--pids") +
                ": refused: the helper has no cgroups to enforce it (" + ctx.cgroupsUnavailable +
                ")");
  if (std::string why = cgroup::unsupportedLimit(ctx.cgroupLayout, r);
      ctx.cgroupsUnavailable.empty() && !why.empty())
    throw Error(why);

  if (spans) spans->mark("checked");
  bool newNetwork = spec.network == Network::None;
  // A warm init when one is ready (init_pool.hpp): the same namespaces and
  // cgroup a fresh one would get, made ahead of time. Discarded if this
  // request fails before handing it its configuration.
  std::optional<WarmInit> warm;
  InitPool* pool = newNetwork ? ctx.initPool.get() : ctx.hostNetPool.get();
  if (pool) warm = pool->take();
  // The pool makes the taken init again once this sandbox no longer waits on
  // the machine (InitPool::refillAfter, below), or at once if this request
  // fails before it has a runtime to wait on.
  struct RefillLater {
    InitPool* pool;
    ~RefillLater() {
      if (pool) pool->refillAfter(kj::READY_NOW);
    }
  } refillLater{warm ? pool : nullptr};
  struct DiscardUnused {
    InitPool* pool;
    std::optional<WarmInit>& warm;
    ~DiscardUnused() {
      if (warm && warm->init.pidfd) pool->discard(std::move(*warm));
    }
  } discardUnused{pool, warm};
  auto live = std::make_shared<LiveSandbox>();
  live->id = warm ? warm->id : ++ctx.sandboxCounter;
  live->session = !sessionName.empty();
  live->name = live->session ? sessionName : "run-" + std::to_string(live->id);
  if (spans) spans->setName(live->name);
  live->uid = peer.uid;
  live->startMs = monotonicMs();
  live->maxTimeoutMs = caller.defaults.maxTimeoutMs;
  live->timeoutOrigin = caller.defaults.origin.maxTimeout;
  live->plan = spec.useDefaultPlan ? defaultPlan(spec.cwd) : std::vector<MountOp>{};
  live->plan.insert(live->plan.end(), spec.mounts.begin(), spec.mounts.end());
  // Every bind so far is the caller's choice (its own, and the default
  // plan's working directory): the policy's bind-source rule applies.
  for (MountOp& op : live->plan)
    if (isBind(op.kind) && !op.source.empty()) op.checkSource = true;

  auto holdings = std::make_shared<Holdings>();
  std::optional<GpuAssignment> gpus;
  // A request that names no GPU gets its policy rule's default_gpus, judged
  // like any request ("--gpu none" asks for none and gets none).
  const bool byDefault = spec.gpus.empty() && !caller.grant.defaultGpus.empty();
  const std::vector<std::string>& selectors = byDefault ? caller.grant.defaultGpus : spec.gpus;
  if (asksForGpus(selectors)) {
    try {
      gpus = assignGpus(ctx, peer, selectors, live->plan);
    } catch (const Error& e) {
      if (!byDefault) throw;
      throw Error("default_gpus of policy rule " + caller.grant.rule + ": " + e.what());
    }
    const gpu::Binding& b = gpus->binding;
    live->plan.insert(live->plan.end(), b.mounts.begin(), b.mounts.end());
    live->extraEnv = b.env;
    if (!b.pathDir.empty()) {
      for (size_t i = 0; i < live->plan.size(); ++i)
        if (live->plan[i].kind == MountKind::DriverDir) {
          live->pathDir = b.pathDir;
          live->pathDirStep = i;
        }
    }
    live->gpuUuids = b.uuids;
  } else if (driverInfoVisible(ctx)) {
    // No GPU granted: the sandbox's own procfs would still list every GPU
    // under /proc/driver/nvidia. Show it none (fail-closed for information
    // too); skipped when the plan has no /proc.
    live->plan.push_back({.kind = MountKind::Tmpfs, .dest = "/proc/driver", .optional = true});
    live->plan.push_back({.kind = MountKind::RemountRo, .dest = "/proc/driver", .optional = true});
  }
  bool bindsDevices = std::any_of(spec.mounts.begin(), spec.mounts.end(),
                                  [](const MountOp& op) { return op.kind == MountKind::DevBind; });
  // The helper's pid in the name lets a later helper tell its dead
  // predecessor's leftovers from a live sibling's (cgroup::cleanLeftovers).
  std::string name = cgroup::sandboxCgroupName(live->id);
  std::optional<cgroup::DeviceRules> devices =
      deviceRulesFor(ctx, gpus ? &*gpus : nullptr, bindsDevices);
  if (spans) spans->mark("planned");
  // The device rules are put in force by the device worker while the init
  // builds its root (SandboxCgroup::planDevices); the init runs nothing
  // before they are (its placement waits for them, below).
  std::unique_ptr<cgroup::SandboxCgroup::DeviceWork> deviceWork;
  // A warm init's limits likewise (SandboxCgroup::planLimits).
  std::unique_ptr<cgroup::SandboxCgroup::LimitWork> limitWork;
  if (ctx.cgroupsUnavailable.empty()) {
    if (warm && warm->cgroup) {
      // Each checks what it is given; a refusal discards the warm init and
      // its cgroup (DiscardUnused).
      limitWork = warm->cgroup->planLimits(limits.resources);
      if (limitWork->empty()) limitWork.reset();
      if (devices) deviceWork = warm->cgroup->planDevices(*devices);
      holdings->cgroup = warm->cgroup;
    } else {
      holdings->cgroup = cgroup::SandboxCgroup::create(ctx.cgroupLayout, name, limits.resources,
                                                       devices ? &*devices : nullptr, &deviceWork);
    }
    live->cgroup = holdings->cgroup->path();
    live->limits = holdings->cgroup->applied();
  } else if (devices) {
    // Fail closed: a GPU (or device-binding) sandbox without its device
    // cgroup would see more than it was granted.
    throw Error(std::string(gpus ? "--gpu" : "--dev-bind") +
                ": refused: the helper has no cgroups for the device rules (" +
                ctx.cgroupsUnavailable + ")");
  }
  const std::vector<std::string> rlimits = rlimitLines(limits.rlimits);
  live->limits.insert(live->limits.end(), rlimits.begin(), rlimits.end());
  live->cgroupHandle = holdings->cgroup;
  if (gpus) holdings->lease = std::move(gpus->lease);
  live->defaultCwd = spec.useDefaultPlan ? spec.cwd : "/";
  const bool newUser = ctx.userNamespace.newPerSandbox;
  live->namespaces = sandboxNamespaces(newUser, newNetwork);
  live->userNamespace = userNamespaceWord(newUser);

  InitConfig config;
  config.uid = peer.uid;
  config.gid = peer.gid;
  config.groups = peer.groups;
  config.sandboxUid = ids.uid;
  config.sandboxGid = ids.gid;
  config.hostname = spec.hostname;
  config.newNetwork = newNetwork;
  config.newUserNamespace = newUser;
  config.plan = live->plan;
  config.masks = ctx.helperSockets;
  config.defaultCwd = live->defaultCwd;
  config.rlimits = limits.rlimits;
  // The default plan shows the host's / (and so the caller's home): hide
  // the caller's credentials in it. A plan of the caller's own shows only
  // what it names, as with bwrap.
  if (spec.useDefaultPlan) config.hide = hiddenPaths(ctx.policy, spec.home);
  config.hide.insert(config.hide.end(), spec.hide.begin(), spec.hide.end());
  live->hide = config.hide;
  if (peer.uid != 0) {
    const policy::BindSources& b = caller.grant.binds;
    config.bindSources = BindSourceRule{b.readable, b.writable, b.where};
  }
  const SeccompProgram* filter = spec.seccomp == "none"            ? nullptr
                                 : spec.seccomp == "nested-userns" ? &ctx.seccompNestedUserns
                                                                   : &ctx.seccomp;
  if (filter) config.seccomp = filter->instructions;
  live->seccomp = filter ? filter->name : "none";
  config.callerSeccomp = callerSeccompPrograms(spec);
  if (!config.callerSeccomp.empty())
    live->seccomp += " + " + std::to_string(config.callerSeccomp.size()) + " of the caller's";
  config.lockFiles = spec.lockFiles;
  config.asPid1 = spec.asPid1;

  cgroup::SandboxCgroup* cg = holdings->cgroup.get();
  // cgroup v2: the init is born in its cgroup. v1 hierarchies are joined off
  // the event loop while the init builds its root, after the device rules
  // are in force; the init waits for both before it enters its cgroup
  // namespace or runs anything.
  const bool joinV1 = !warm && cg && !cg->v1ProcsFiles().empty();
  std::optional<kj::Promise<void>> warmPlaced;
  if (warm && !warm->placement->done) warmPlaced = warm->placed->addBranch();
  config.awaitPlacement =
      warmPlaced.has_value() || joinV1 || deviceWork != nullptr || limitWork != nullptr;
  if (spans) spans->mark("cgroup");
  LaunchedInit init;
  if (warm) {
    init = std::move(warm->init);
    warm.reset();
  } else {
    // Cloned by the request spawner (init_spawner.hpp), never by this
    // multi-threaded process; the request waits for it as it would for
    // its own clone.
    init =
        ctx.requestSpawner->spawn(config.newUserNamespace, config.newNetwork, cg ? cg->v2Fd() : -1);
  }
  // startInit kills and reaps the init itself if it fails.
  startInit(init, config);
  if (spans) spans->mark("cloned");
  auto log = std::make_shared<SandboxLogInfo>();
  log->record.uid = peer.uid;
  log->record.pid = peer.pid;
  log->record.result = "setup failed";
  for (const std::string& uuid : live->gpuUuids)
    log->record.gpus += (log->record.gpus.empty() ? "" : ",") + uuid;
  log->startMs = monotonicMs();
  live->log = log;
  pid_t initPid = init.pid;
  const LaunchedInit::NamespaceInodes knownInodes = init.namespaceInodes;
  CgroupWatch watch;
  std::weak_ptr<cgroup::SandboxCgroup> weakCg = holdings->cgroup;
  watch.oomKills = [weakCg]() -> uint64_t {
    auto c = weakCg.lock();
    return c ? c->oomKills() : 0;
  };
  watch.processes = [weakCg]() -> uint64_t {
    auto c = weakCg.lock();
    return c ? c->processes() : 0;
  };
  watch.oomWords = oomWords(limits, gpus.has_value());
  // From here on the runtime owns the init: any later failure kills and reaps it.
  live->runtime = std::make_shared<SandboxRuntime>(
      ctx.port, ctx.timer, ctx.reaper, std::move(init), holdings, std::move(watch), [log]() {
        log->record.durationMs = monotonicMs() - log->startMs;
        logSandbox(log->record);
      });
  live->runtime->traceSpans(spans);
  if (refillLater.pool) {
    // Once its first command has ended (a `run`), or kRefillAfterReady after
    // it is ready (a longer command, a session with none yet): not while the
    // caller waits for the setup and the command's start.
    kj::Timer& timer = ctx.timer;
    refillLater.pool->refillAfter(
        live->runtime->whenFirstEnded().exclusiveJoin(live->runtime->whenReady().then(
            [&timer]() { return timer.afterDelay(kRefillAfterReady); })));
    refillLater.pool = nullptr;
  }
  if (config.awaitPlacement) {
    kj::Promise<void> placed = kj::READY_NOW;
    if (limitWork)
      placed = warmLimitsInForce(ctx, std::move(limitWork), holdings->cgroup, live, rlimits);
    if (deviceWork) {
      // Queued now, behind the limits on the same worker: both are carried
      // out while the init builds its root.
      kj::Promise<void> devicesDone =
          devicesInForce(ctx, std::move(deviceWork), holdings->cgroup, live, rlimits);
      placed = placed.then(
          [devicesDone = kj::mv(devicesDone)]() mutable { return kj::mv(devicesDone); });
    }
    if (warmPlaced)
      placed = placed.then([warm = std::move(*warmPlaced)]() mutable { return std::move(warm); });
    if (joinV1) {
      std::weak_ptr<cgroup::SandboxCgroup> weak = holdings->cgroup;
      placed = placed.then([&ctx, weak, initPid]() -> kj::Promise<void> {
        // After the device rules: a v1 devices directory they could not
        // use is gone by now, and is not joined.
        auto c = weak.lock();
        return c ? ctx.cgroupWorker->attach(initPid, c->v1ProcsFiles()) : kj::READY_NOW;
      });
    }
    live->runtime->placeWhen(std::move(placed));
  }
  live->namespaceIds = namespaceIdsOf(initPid, knownInodes, live->namespaces);
  // Read once above; read again only if that found nothing (an init that
  // already failed: then this throws, as the caller expects).
  auto inodeOfNs = [&](const char* name) -> ino_t {
    for (const auto& [ns, inode] : live->namespaceIds)
      if (ns == name) return static_cast<ino_t>(inode);
    return namespaceInode(initPid, name);
  };
  holdings->pidNs = inodeOfNs("pid");
  // Without its own user namespace the init's is the helper's: not a mark
  // of this sandbox (peer.hpp).
  if (newUser) holdings->userNs = inodeOfNs("user");
  holdings->uid = peer.uid;
  holdings->id = live->id;
  holdings->ctx = &ctx;
  ctx.sandboxNamespaces.add(holdings->pidNs, holdings->userNs);
  ++ctx.liveSandboxes;
  ++ctx.sandboxesPerUid[peer.uid];
  ctx.sandboxTable[live->id] = live;
  return live;
}

}  // namespace gpubox
