#include "helper_calls.hpp"

#include <signal.h>
#include <sys/utsname.h>

#include <algorithm>

#include "caller_policy.hpp"
#include "error.hpp"
#include "init_pool.hpp"
#include "kernel_features.hpp"
#include "limit_resolution.hpp"

namespace gpubox {

void ConnectionSandboxes::add(const std::shared_ptr<SandboxRuntime>& runtime) {
  std::erase_if(sandboxes_, [](const std::weak_ptr<SandboxRuntime>& w) { return w.expired(); });
  sandboxes_.push_back(runtime);
}

void ConnectionSandboxes::killAll() {
  for (auto& weak : sandboxes_) {
    if (auto runtime = weak.lock()) runtime->kill();
  }
  sandboxes_.clear();
}

HelperFacts helperFacts(DaemonContext& ctx, const PeerIdentity& peer) {
  HelperFacts f;
  struct utsname u;
  ::uname(&u);
  f.kernel = std::string(u.sysname) + " " + u.release;
  f.features = kernelFeaturesInUse();
  f.cgroupMode = cgroupModeName();
  f.userNamespace = userNamespaceWord(ctx.userNamespace.newPerSandbox);
  f.userNamespaceSetting = userNamespaceModeName(ctx.userNamespace.setting);
  f.userNamespaceReason = ctx.userNamespace.reason;
  const CallerPolicy caller = callerPolicy(ctx, peer);
  f.limits = caller.defaults.describe();
  for (std::string& line : describeGrant(caller.grant, peer.uid == 0))
    f.limits.push_back(std::move(line));
  f.cgroups = cgroup::describeLayout(ctx.cgroupLayout);
  // Its counters are everyone's requests: not for other users to watch.
  auto countsOf = [](const InitPool& pool) {
    return WarmPoolCounts{
        .size = static_cast<unsigned>(pool.size()),
        .floor = static_cast<unsigned>(pool.floor()),
        .ceiling = static_cast<unsigned>(pool.ceiling()),
        .ready = static_cast<unsigned>(pool.ready()),
        .taken = pool.taken(),
        .missed = pool.missed(),
    };
  };
  if (peer.uid == 0 && ctx.initPool) f.warmPool = countsOf(*ctx.initPool);
  if (peer.uid == 0 && ctx.hostNetPool) f.warmPoolHostNet = countsOf(*ctx.hostNetPool);
  return f;
}

namespace {

// A ready sandbox handed to the thread that serves its capability.
OpenedSandbox opened(const HomeLoop& home, std::shared_ptr<LiveSandbox> live) {
  auto env = commandEnvironment(*live);
  return OpenedSandbox{SandboxRef(home, std::move(live)), std::move(env)};
}

}  // namespace

kj::Promise<OpenedSandbox> createSandbox(DaemonContext& ctx, const HomeLoop& home,
                                         const PeerIdentity& peer, const SandboxSpec& spec,
                                         ConnectionSandboxes& connection,
                                         const SpanOrigin& origin) {
  std::shared_ptr<LiveSandbox> live = buildSandbox(ctx, peer, spec, "", origin);
  connection.add(live->runtime);
  auto runtime = live->runtime;
  return runtime->whenReady().then([&home, live]() mutable {
    // Until a command's end is reported, an end means it was cut short.
    live->log->record.result = "client disconnected before its command ended";
    return opened(home, std::move(live));
  });
}

kj::Promise<CreatedSession> createSession(DaemonContext& ctx, const HomeLoop& home,
                                          const PeerIdentity& peer, const SandboxSpec& spec,
                                          const SessionOptions& options, const SpanOrigin& origin) {
  SessionRegistry::Created created = ctx.sessions->create(peer, spec, options, origin);
  auto live = created.sandbox;
  const uint64_t ttl = created.ttlMs;
  return live->runtime->whenReady().then([&home, live, ttl]() mutable {
    live->log->record.result = "session ended with no command run";
    CreatedSession out;
    out.name = live->name;
    out.ttlMs = ttl;
    out.sandbox = opened(home, std::move(live));
    return out;
  });
}

std::vector<SandboxListing> listSandboxes(DaemonContext& ctx, const PeerIdentity& peer) {
  std::vector<SandboxListing> out;
  const uint64_t now = monotonicMs();
  for (const auto& [id, weak] : ctx.sandboxTable) {
    auto live = weak.lock();
    if (!live || !live->runtime || live->runtime->ended()) continue;
    if (peer.uid != 0 && live->uid != peer.uid) continue;
    const LiveSandbox& l = *live;
    SandboxListing e;
    e.name = l.name;
    e.session = l.session;
    e.uid = l.uid;
    e.ageMs = now - l.startMs;
    if (auto cg = l.cgroupHandle.lock()) {
      cgroup::Stats st = cg->stats();
      e.haveStats = true;
      // The sandbox's own init is not one of the caller's processes.
      e.processes = static_cast<uint32_t>(st.processes > 0 ? st.processes - 1 : 0);
      e.memoryBytes = st.memoryCurrent;
      e.memoryPeakBytes = st.memoryPeak;
      e.cpuNanos = st.cpuUsageNanos;
    }
    e.gpus = l.gpuUuids;
    if (l.session) {
      e.ttlLeftMs = ctx.sessions->ttlLeftMs(l.name).value_or(0);
      e.idleTimeoutMs = ctx.sessions->idleTimeoutMs(l.name).value_or(0);
    }
    e.initPid = l.runtime->initPid();
    e.cgroup = l.cgroup;
    e.command = l.log->record.argv0;
    e.limits = l.limits;
    out.push_back(std::move(e));
  }
  return out;
}

SandboxFacts sandboxFacts(LiveSandbox& live) {
  SandboxFacts f;
  f.namespaces = live.namespaces;
  const auto& skipped = live.runtime->skippedSteps();
  for (size_t i = 0; i < live.plan.size(); ++i) {
    if (std::find(skipped.begin(), skipped.end(), i) == skipped.end())
      f.mounts.push_back(describeMount(live.plan[i]));
  }
  for (size_t i : live.runtime->hiddenPaths())
    if (i < live.hide.size()) f.mounts.push_back("--hide " + live.hide[i]);
  f.initPid = live.runtime->initPid();
  f.gpus = live.gpuUuids;
  f.cgroup = live.cgroup;
  f.limits = live.limits;
  if (live.session) f.session = live.name;
  f.seccomp = live.seccomp;
  f.userNamespace = live.userNamespace;
  // A sandbox capability exists only once its sandbox is ready.
  noteCgroupNamespace(live);
  f.namespaceIds = live.namespaceIds;
  return f;
}

kj::Promise<OpenedSandbox> openSession(DaemonContext& ctx, const HomeLoop& home,
                                       const PeerIdentity& peer, const std::string& name) {
  std::shared_ptr<LiveSandbox> live = ctx.sessions->open(peer, name);
  auto runtime = live->runtime;
  return runtime->whenReady().then(
      [&home, live]() mutable { return opened(home, std::move(live)); });
}

uint32_t execInSandbox(LiveSandbox& live, const CommandToSend& cmd, const int (&stdio)[3]) {
  if (live.log->record.argv0.empty()) live.log->record.argv0 = cmd.argv0;
  ExecOptions options;
  options.timeoutMs = resolveTimeout(live.maxTimeoutMs, live.timeoutOrigin, cmd.timeoutMs);
  options.killAfterMs = cmd.killAfterMs ? cmd.killAfterMs : kDefaultKillAfterMs;
  options.timeoutScope = live.session ? initmsg::SignalScope::Group : initmsg::SignalScope::All;
  int raw[3] = {stdio[0], stdio[1], stdio[2]};
  return live.runtime->exec(cmd.memfd, raw, options);
}

kj::Promise<ExecOutcome> waitForCommand(const SandboxRef& live, uint32_t id) {
  return live->runtime->wait(id).then([live](ExecOutcome out) {
    // The sandbox's log record says how its last command ended.
    live->log->record.result = out.words;
    return out;
  });
}

void dropCommand(LiveSandbox& live, uint32_t id) {
  if (!live.session || live.runtime->ended()) return;
  try {
    live.runtime->signal(id, SIGKILL, initmsg::SignalScope::Group);
  } catch (const Error&) {
  }
}

}  // namespace gpubox
