#include "rpc_server.hpp"

#include <signal.h>
#include <sys/utsname.h>

#include <kj/debug.h>

#include <algorithm>

#include "caller_policy.hpp"
#include "connection_guard.hpp"
#include "env.hpp"
#include "error.hpp"
#include "gpu_assignment.hpp"
#include "kernel_features.hpp"
#include "kj_error.hpp"
#include "limit_resolution.hpp"
#include "sandbox_factory.hpp"
#include "sessions.hpp"
#include "spec_wire.hpp"

namespace gpubox {

namespace {

// Turns a gpubox::Error into a Cap'n Proto exception whose text reaches the
// client as is.
template <typename F>
auto guarded(F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const Error& e) {
    return callerError(e.what());
  }
}

wire::EndReason reasonToWire(EndReason r) {
  using W = wire::EndReason;
  switch (r) {
    case EndReason::Exited:
      return W::EXITED;
    case EndReason::Signaled:
      return W::SIGNALED;
    case EndReason::OutOfMemory:
      return W::OUT_OF_MEMORY;
    case EndReason::TimedOut:
      return W::TIMED_OUT;
    case EndReason::NotStarted:
      return W::NOT_STARTED;
    case EndReason::SessionRemoved:
      return W::SESSION_REMOVED;
    case EndReason::SessionExpired:
      return W::SESSION_EXPIRED;
    case EndReason::ClientDisconnected:
      return W::CLIENT_DISCONNECTED;
    case EndReason::HelperError:
      return W::HELPER_ERROR;
  }
  return W::HELPER_ERROR;
}

void fillTexts(capnp::List<capnp::Text>::Builder out, const std::vector<std::string>& in) {
  for (size_t i = 0; i < in.size(); ++i) out.set(i, in[i]);
}

// Every call on a connection's objects goes through its guard (bounds on
// calls in flight, answers queued); BASE is the generated Server class.
#define GPUBOX_GUARDED_DISPATCH(BASE)                                                         \
  DispatchCallResult dispatchCall(uint64_t interfaceId, uint16_t methodId,                    \
                                  capnp::CallContext<capnp::AnyPointer, capnp::AnyPointer> c) \
      override {                                                                              \
    return guard_->run([&] { return BASE::dispatchCall(interfaceId, methodId, c); });         \
  }

class ProcessImpl final : public wire::Process::Server {
 public:
  ProcessImpl(std::shared_ptr<LiveSandbox> live, uint32_t id,
              std::shared_ptr<ConnectionGuard> guard)
      : live_(std::move(live)), id_(id), guard_(std::move(guard)) {}
  GPUBOX_GUARDED_DISPATCH(wire::Process::Server)

  // A session's command whose client went away goes with it (its process
  // group); a one-shot sandbox dies whole when its client goes anyway.
  ~ProcessImpl() {
    if (!live_->session || live_->runtime->ended()) return;
    try {
      if (!finished_) live_->runtime->signal(id_, SIGKILL, initmsg::SignalScope::Group);
    } catch (const Error&) {
    }
  }

  kj::Promise<void> wait(WaitContext context) override {
    // Cap'n Proto 0.9 lets a call outlive its caller unless it opts in to
    // cancellation. A wait must not: when the client's connection goes, this
    // call (and the reference it holds on the sandbox) must go with it, so
    // the sandbox dies.
    context.allowCancellation();
    return live_->runtime->wait(id_).then([this, context](ExecOutcome out) mutable {
      finished_ = true;
      auto status = context.getResults().initStatus();
      status.setPid(out.pid);
      status.setWallNanos(out.wallNanos);
      status.setReason(reasonToWire(out.reason));
      status.setMessage(out.words);
      status.setTimeoutMs(out.timeoutMs);
      status.setSigkillNeeded(out.sigkillNeeded);
      switch (out.kind) {
        case ExecOutcome::Kind::Exited:
          status.setExited(out.value);
          break;
        case ExecOutcome::Kind::Signaled:
          status.setSignaled(out.value);
          break;
        case ExecOutcome::Kind::NotStarted: {
          auto failure = status.initNotStarted();
          failure.setErrno(out.value);
          failure.setMessage(out.message);
          using S = wire::StartFailure::Stage;
          failure.setStage(out.stage == initmsg::StartStage::Exec    ? S::EXEC
                           : out.stage == initmsg::StartStage::Chdir ? S::CHDIR
                                                                     : S::OTHER);
          break;
        }
      }
      // The sandbox's log record says how its last command ended.
      live_->log->record.result = out.words;
    });
  }

  kj::Promise<void> signal(SignalContext context) override {
    return guarded([&]() -> kj::Promise<void> {
      live_->runtime->signal(id_, context.getParams().getSigno());
      return kj::READY_NOW;
    });
  }

 private:
  std::shared_ptr<LiveSandbox> live_;
  uint32_t id_;
  std::shared_ptr<ConnectionGuard> guard_;
  bool finished_ = false;
};

class SandboxImpl final : public wire::Sandbox::Server {
 public:
  SandboxImpl(std::shared_ptr<LiveSandbox> live, std::shared_ptr<ConnectionGuard> guard,
              std::shared_ptr<void> connectionSlot = nullptr)
      : live_(std::move(live)),
        guard_(std::move(guard)),
        held_(guard_->holdSandbox()),
        connectionSlot_(std::move(connectionSlot)) {}
  GPUBOX_GUARDED_DISPATCH(wire::Sandbox::Server)

  kj::Promise<void> exec(ExecContext context) override {
    Command cmd;
    try {
      cmd = commandFromWire(context.getParams().getCommand());
      validateCommand(cmd);
    } catch (const Error& e) {
      return callerError(e.what());
    }
    auto stdio = context.getParams().getStdio();
    auto in = stdio.getStdin().getFd();
    auto out = stdio.getStdout().getFd();
    auto err = stdio.getStderr().getFd();
    return in
        .then([out = kj::mv(out), err = kj::mv(err)](kj::Maybe<int> i) mutable {
          return out.then([i, err = kj::mv(err)](kj::Maybe<int> o) mutable {
            return err.then([i, o](kj::Maybe<int> e) {
              return std::array<kj::Maybe<int>, 3>{i, o, e};
            });
          });
        })
        .then([this, context, cmd = std::move(cmd)](
                  std::array<kj::Maybe<int>, 3> fds) mutable -> kj::Promise<void> {
          int raw[3];
          const char* names[3] = {"stdin", "stdout", "stderr"};
          for (int k = 0; k < 3; ++k) {
            KJ_IF_MAYBE (fd, fds[k]) {
              raw[k] = *fd;
            } else {
              return callerError((std::string(names[k]) + " did not arrive as a file descriptor"));
            }
          }
          return guarded([&]() -> kj::Promise<void> {
            mergeSandboxEnv(cmd);
            if (live_->log->record.argv0.empty()) live_->log->record.argv0 = cmd.argv[0];
            ExecOptions options;
            options.timeoutMs =
                resolveTimeout(live_->maxTimeoutMs, live_->timeoutOrigin, cmd.timeoutMs);
            options.killAfterMs = cmd.killAfterMs ? cmd.killAfterMs : kDefaultKillAfterMs;
            options.timeoutScope =
                live_->session ? initmsg::SignalScope::Group : initmsg::SignalScope::All;
            uint32_t id = live_->runtime->exec(cmd, raw, options);
            context.getResults().setProcess(kj::heap<ProcessImpl>(live_, id, guard_));
            return kj::READY_NOW;
          });
        });
  }

  kj::Promise<void> applied(AppliedContext context) override {
    auto applied = context.getResults().initApplied();
    auto ns = applied.initNamespaces(live_->namespaces.size());
    fillTexts(ns, live_->namespaces);
    const auto& skipped = live_->runtime->skippedSteps();
    std::vector<std::string> lines;
    for (size_t i = 0; i < live_->plan.size(); ++i) {
      if (std::find(skipped.begin(), skipped.end(), i) == skipped.end())
        lines.push_back(describeMount(live_->plan[i]));
    }
    for (size_t i : live_->runtime->hiddenPaths())
      if (i < live_->hide.size()) lines.push_back("--hide " + live_->hide[i]);
    fillTexts(applied.initMounts(lines.size()), lines);
    applied.setInitPid(live_->runtime->initPid());
    fillTexts(applied.initGpus(live_->gpuUuids.size()), live_->gpuUuids);
    applied.setCgroup(live_->cgroup);
    fillTexts(applied.initLimits(live_->limits.size()), live_->limits);
    if (live_->session) applied.setSession(live_->name);
    applied.setSeccomp(live_->seccomp);
    applied.setUserNamespace(live_->userNamespace);
    // A sandbox capability exists only once its sandbox is ready.
    noteCgroupNamespace(*live_);
    auto ids = applied.initNamespaceIds(live_->namespaceIds.size());
    for (size_t i = 0; i < live_->namespaceIds.size(); ++i) {
      ids[i].setName(live_->namespaceIds[i].first);
      ids[i].setInode(live_->namespaceIds[i].second);
    }
    return kj::READY_NOW;
  }

 private:
  // GPU binding's variables (CUDA_VISIBLE_DEVICES, CDI env) win over the
  // client's; a foreign root's nvidia-smi is found through PATH.
  void mergeSandboxEnv(Command& cmd) {
    EnvBuilder env(std::move(cmd.env));
    env.merge(live_->extraEnv);
    if (!live_->pathDir.empty()) {
      const auto& skipped = live_->runtime->skippedSteps();
      if (std::find(skipped.begin(), skipped.end(), live_->pathDirStep) == skipped.end())
        env.appendToPath(live_->pathDir);
    }
    cmd.env = env.entries();
  }

  std::shared_ptr<LiveSandbox> live_;
  std::shared_ptr<ConnectionGuard> guard_;
  std::shared_ptr<void> held_;            // the connection is not idle while this exists
  std::shared_ptr<void> connectionSlot_;  // released when the sandbox's last capability goes
};

SessionOptions sessionOptionsFromWire(wire::SessionOptions::Reader r) {
  SessionOptions o;
  o.name = std::string(r.getName().cStr(), r.getName().size());
  o.ttlMs = r.getTtlMs();
  o.idleTimeoutMs = r.getIdleTimeoutMs();
  return o;
}

class HelperImpl final : public wire::Helper::Server {
 public:
  HelperImpl(DaemonContext& ctx, PeerIdentity peer, std::shared_ptr<ConnectionSandboxes> sandboxes,
             std::shared_ptr<ConnectionGuard> guard)
      : ctx_(ctx),
        peer_(std::move(peer)),
        sandboxes_(std::move(sandboxes)),
        guard_(std::move(guard)) {}
  GPUBOX_GUARDED_DISPATCH(wire::Helper::Server)

  kj::Promise<void> info(InfoContext context) override {
    auto info = context.getResults().initInfo();
    info.setVersion(GPUBOX_VERSION);
    info.setProtocolMajor(wire::PROTOCOL_MAJOR);
    info.setProtocolMinor(wire::PROTOCOL_MINOR);
    struct utsname u;
    ::uname(&u);
    info.setKernel(std::string(u.sysname) + " " + u.release);
    std::vector<std::string> features = kernelFeaturesInUse();
    auto list = info.initFeatures(features.size());
    for (size_t i = 0; i < features.size(); ++i) list.set(i, features[i]);
    info.setCgroupMode(cgroupModeName());
    info.setCallerUid(peer_.uid);
    info.setCallerGid(peer_.gid);
    info.setUserNamespace(userNamespaceWord(ctx_.userNamespace.newPerSandbox));
    info.setUserNamespaceSetting(userNamespaceModeName(ctx_.userNamespace.setting));
    info.setUserNamespaceReason(ctx_.userNamespace.reason);
    const CallerPolicy caller = callerPolicy(ctx_, peer_);
    std::vector<std::string> limits = caller.defaults.describe();
    for (std::string& line : describeGrant(caller.grant, peer_.uid == 0)) limits.push_back(line);
    fillTexts(info.initLimits(limits.size()), limits);
    std::vector<std::string> cgroups = cgroup::describeLayout(ctx_.cgroupLayout);
    fillTexts(info.initCgroups(cgroups.size()), cgroups);
    return kj::READY_NOW;
  }

  kj::Promise<void> create(CreateContext context) override {
    context.allowCancellation();  // a client gone mid-setup takes its sandbox with it
    return guarded([&]() -> kj::Promise<void> {
      if (*liveSandboxes_ >= ctx_.limits.maxSandboxesPerConnection)
        throw Error("this connection already holds " +
                    std::to_string(ctx_.limits.maxSandboxesPerConnection) + " sandboxes");
      SandboxSpec spec = specFromWire(context.getParams().getSpec());
      std::shared_ptr<LiveSandbox> live = buildSandbox(ctx_, peer_, spec);
      sandboxes_->add(live->runtime);
      // Counts this sandbox against the connection until its last capability is gone.
      ++*liveSandboxes_;
      auto slot = std::shared_ptr<void>(nullptr, [live = liveSandboxes_](void*) { --*live; });
      auto runtime = live->runtime;
      return runtime->whenReady().then([context, live, slot, guard = guard_]() mutable {
        // Until a command's end is reported, an end means it was cut short.
        live->log->record.result = "client disconnected before its command ended";
        context.getResults().setSandbox(kj::heap<SandboxImpl>(live, guard, slot));
      });
    });
  }

  kj::Promise<void> createSession(CreateSessionContext context) override {
    context.allowCancellation();
    return guarded([&]() -> kj::Promise<void> {
      SandboxSpec spec = specFromWire(context.getParams().getSpec());
      SessionOptions options = sessionOptionsFromWire(context.getParams().getOptions());
      SessionRegistry::Created created = ctx_.sessions->create(peer_, spec, options);
      auto live = created.sandbox;
      uint64_t ttl = created.ttlMs;
      return live->runtime->whenReady().then([context, live, ttl, guard = guard_]() mutable {
        live->log->record.result = "session ended with no command run";
        auto results = context.getResults();
        results.setName(live->name);
        results.setTtlMs(ttl);
        results.setSandbox(kj::heap<SandboxImpl>(live, guard));
      });
    });
  }

  kj::Promise<void> openSession(OpenSessionContext context) override {
    return guarded([&]() -> kj::Promise<void> {
      auto name = context.getParams().getName();
      auto live = ctx_.sessions->open(peer_, std::string(name.cStr(), name.size()));
      context.getResults().setSandbox(kj::heap<SandboxImpl>(live, guard_));
      return kj::READY_NOW;
    });
  }

  kj::Promise<void> removeSession(RemoveSessionContext context) override {
    return guarded([&]() -> kj::Promise<void> {
      auto name = context.getParams().getName();
      ctx_.sessions->remove(peer_, std::string(name.cStr(), name.size()));
      return kj::READY_NOW;
    });
  }

  kj::Promise<void> list(ListContext context) override {
    std::vector<std::shared_ptr<LiveSandbox>> mine;
    for (const auto& [id, weak] : ctx_.sandboxTable) {
      auto live = weak.lock();
      if (!live || !live->runtime || live->runtime->ended()) continue;
      if (peer_.uid != 0 && live->uid != peer_.uid) continue;
      mine.push_back(std::move(live));
    }
    auto out = context.getResults().initSandboxes(mine.size());
    const uint64_t now = monotonicMs();
    for (size_t i = 0; i < mine.size(); ++i) {
      const LiveSandbox& l = *mine[i];
      auto e = out[i];
      e.setName(l.name);
      e.setSession(l.session);
      e.setUid(l.uid);
      e.setAgeMs(now - l.startMs);
      if (auto cg = l.cgroupHandle.lock()) {
        cgroup::Stats st = cg->stats();
        // The sandbox's own init is not one of the caller's processes.
        e.setProcesses(static_cast<uint32_t>(st.processes > 0 ? st.processes - 1 : 0));
        e.setMemoryBytes(st.memoryCurrent);
        e.setMemoryPeakBytes(st.memoryPeak);
        e.setCpuNanos(st.cpuUsageNanos);
      }
      fillTexts(e.initGpus(l.gpuUuids.size()), l.gpuUuids);
      if (l.session) {
        e.setTtlLeftMs(ctx_.sessions->ttlLeftMs(l.name).value_or(0));
        e.setIdleTimeoutMs(ctx_.sessions->idleTimeoutMs(l.name).value_or(0));
      }
      e.setInitPid(l.runtime->initPid());
      e.setCgroup(l.cgroup);
      e.setCommand(l.log->record.argv0);
      fillTexts(e.initLimits(l.limits.size()), l.limits);
    }
    return kj::READY_NOW;
  }

  kj::Promise<void> gpus(GpusContext context) override {
    return guarded([&]() -> kj::Promise<void> {
      std::vector<GpuListing> list = listGpus(ctx_, peer_);
      auto out = context.getResults().initGpus(list.size());
      for (size_t i = 0; i < list.size(); ++i) {
        const gpu::Gpu& g = list[i].gpu;
        out[i].setIndex(g.index);
        out[i].setUuid(g.uuid);
        out[i].setModel(g.model);
        out[i].setBusId(g.busId);
        out[i].setMinor(g.minor);
        auto mig = out[i].initMig(g.mig.size());
        for (size_t m = 0; m < g.mig.size(); ++m)
          mig.set(m, std::to_string(g.mig[m].gi) + "/" + std::to_string(g.mig[m].ci));
        out[i].setHolders(list[i].holders);
        out[i].setAllowed(list[i].allowed);
      }
      return kj::READY_NOW;
    });
  }

 private:
  DaemonContext& ctx_;
  PeerIdentity peer_;
  std::shared_ptr<ConnectionSandboxes> sandboxes_;
  std::shared_ptr<ConnectionGuard> guard_;
  std::shared_ptr<size_t> liveSandboxes_ = std::make_shared<size_t>(0);
};

}  // namespace

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

kj::Own<wire::Helper::Server> newHelperServer(DaemonContext& ctx, PeerIdentity peer,
                                              std::shared_ptr<ConnectionSandboxes> sandboxes,
                                              std::shared_ptr<ConnectionGuard> guard) {
  return kj::heap<HelperImpl>(ctx, std::move(peer), std::move(sandboxes), std::move(guard));
}

}  // namespace gpubox
