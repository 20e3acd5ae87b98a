#include "rpc_server.hpp"

#include <kj/debug.h>

#include <array>

#include "connection_guard.hpp"
#include "error.hpp"
#include "helper_calls.hpp"
#include "kj_error.hpp"
#include "span_clock.hpp"
#include "span_trace.hpp"
#include "spec_wire.hpp"

namespace gpubox {

namespace {

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

// A connection's objects live on its RPC thread; what they do to a sandbox
// runs on the home loop (helper_calls.hpp), reached through HOME.

class ProcessImpl final : public wire::Process::Server {
 public:
  ProcessImpl(const HomeLoop& home, SandboxRef live, bool session, uint32_t id,
              std::shared_ptr<ConnectionGuard> guard)
      : home_(home), live_(std::move(live)), session_(session), id_(id), guard_(std::move(guard)) {}
  GPUBOX_GUARDED_DISPATCH(wire::Process::Server)

  // A session's command whose client went away goes with it; a one-shot
  // sandbox dies whole when its client goes anyway.
  ~ProcessImpl() {
    if (session_ && !finished_) home_.post([live = live_, id = id_]() { dropCommand(*live, id); });
  }

  kj::Promise<void> wait(WaitContext context) override {
    // Cap'n Proto 0.9 lets a call outlive its caller unless it opts in to
    // cancellation. A wait must not: when the client's connection goes, this
    // call (and the reference it holds on the sandbox) must go with it, so
    // the sandbox dies.
    context.allowCancellation();
    return home_.call([live = live_, id = id_]() { return waitForCommand(live, id); })
        .then([this, context](ExecOutcome out) mutable {
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
        });
  }

  kj::Promise<void> signal(SignalContext context) override {
    const int signo = context.getParams().getSigno();
    return home_.call([live = live_, id = id_, signo]() { live->runtime->signal(id, signo); });
  }

 private:
  const HomeLoop& home_;
  SandboxRef live_;
  bool session_;
  uint32_t id_;
  std::shared_ptr<ConnectionGuard> guard_;
  bool finished_ = false;
};

class SandboxImpl final : public wire::Sandbox::Server {
 public:
  SandboxImpl(const HomeLoop& home, OpenedSandbox opened, bool session,
              std::shared_ptr<ConnectionGuard> guard,
              std::shared_ptr<void> connectionSlot = nullptr)
      : home_(home),
        live_(std::move(opened.ref)),
        env_(std::move(opened.env)),
        session_(session),
        guard_(std::move(guard)),
        held_(guard_->holdSandbox()),
        connectionSlot_(std::move(connectionSlot)) {}
  GPUBOX_GUARDED_DISPATCH(wire::Sandbox::Server)

  kj::Promise<void> exec(ExecContext context) override {
    // Made ready here, on this thread: the home loop only hands it over.
    std::shared_ptr<PreparedCommand> prepared;
    try {
      Command cmd = commandFromWire(context.getParams().getCommand());
      validateCommand(cmd);
      prepared = std::make_shared<PreparedCommand>(std::move(cmd), *env_);
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
        .then([this, context,
               prepared](std::array<kj::Maybe<int>, 3> fds) mutable -> kj::Promise<void> {
          std::array<int, 3> raw;
          const char* names[3] = {"stdin", "stdout", "stderr"};
          for (int k = 0; k < 3; ++k) {
            KJ_IF_MAYBE (fd, fds[k]) {
              raw[k] = *fd;
            } else {
              return callerError((std::string(names[k]) + " did not arrive as a file descriptor"));
            }
          }
          // The fds belong to the call's message, which lives until this
          // call's answer, and the command's memfd to PREPARED, which this
          // thread holds as long: the home loop hands them to the init
          // before that, and closes none of them.
          return home_
              .call([live = live_, cmd = prepared->toSend(), raw]() mutable {
                return execInSandbox(*live, cmd, {raw[0], raw[1], raw[2]});
              })
              .then([this, context, prepared](uint32_t id) mutable {
                context.getResults().setProcess(
                    kj::heap<ProcessImpl>(home_, live_, session_, id, guard_));
              });
        });
  }

  kj::Promise<void> applied(AppliedContext context) override {
    return home_.call([live = live_]() { return sandboxFacts(*live); })
        .then([context](SandboxFacts f) mutable {
          auto applied = context.getResults().initApplied();
          fillTexts(applied.initNamespaces(f.namespaces.size()), f.namespaces);
          fillTexts(applied.initMounts(f.mounts.size()), f.mounts);
          applied.setInitPid(f.initPid);
          fillTexts(applied.initGpus(f.gpus.size()), f.gpus);
          applied.setCgroup(f.cgroup);
          fillTexts(applied.initLimits(f.limits.size()), f.limits);
          if (!f.session.empty()) applied.setSession(f.session);
          applied.setSeccomp(f.seccomp);
          applied.setUserNamespace(f.userNamespace);
          auto ids = applied.initNamespaceIds(f.namespaceIds.size());
          for (size_t i = 0; i < f.namespaceIds.size(); ++i) {
            ids[i].setName(f.namespaceIds[i].first);
            ids[i].setInode(f.namespaceIds[i].second);
          }
        });
  }

 private:
  const HomeLoop& home_;
  SandboxRef live_;
  std::shared_ptr<const CommandEnvironment> env_;
  bool session_;
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
  HelperImpl(DaemonContext& ctx, const HomeLoop& home, PeerIdentity peer,
             HomeShared<ConnectionSandboxes> sandboxes, std::shared_ptr<ConnectionGuard> guard,
             uint64_t acceptedNs)
      : ctx_(ctx),
        home_(home),
        peer_(std::make_shared<const PeerIdentity>(std::move(peer))),
        sandboxes_(std::move(sandboxes)),
        guard_(std::move(guard)),
        acceptedNs_(acceptedNs) {}
  GPUBOX_GUARDED_DISPATCH(wire::Helper::Server)

  kj::Promise<void> info(InfoContext context) override {
    return home_.call([&ctx = ctx_, peer = peer_]() { return helperFacts(ctx, *peer); })
        .then([context, peer = peer_](HelperFacts f) mutable {
          auto info = context.getResults().initInfo();
          info.setVersion(GPUBOX_VERSION);
          info.setProtocolMajor(wire::PROTOCOL_MAJOR);
          info.setProtocolMinor(wire::PROTOCOL_MINOR);
          info.setKernel(f.kernel);
          fillTexts(info.initFeatures(f.features.size()), f.features);
          info.setCgroupMode(f.cgroupMode);
          info.setCallerUid(peer->uid);
          info.setCallerGid(peer->gid);
          info.setUserNamespace(f.userNamespace);
          info.setUserNamespaceSetting(f.userNamespaceSetting);
          info.setUserNamespaceReason(f.userNamespaceReason);
          fillTexts(info.initLimits(f.limits.size()), f.limits);
          fillTexts(info.initCgroups(f.cgroups.size()), f.cgroups);
          auto fillPool = [](wire::WarmPool::Builder pool, const WarmPoolCounts& counts) {
            pool.setSize(counts.size);
            pool.setFloor(counts.floor);
            pool.setCeiling(counts.ceiling);
            pool.setReady(counts.ready);
            pool.setTaken(counts.taken);
            pool.setMissed(counts.missed);
          };
          if (f.warmPool) fillPool(info.initWarmPool(), *f.warmPool);
          if (f.warmPoolHostNet) fillPool(info.initWarmPoolHostNet(), *f.warmPoolHostNet);
        });
  }

  kj::Promise<void> create(CreateContext context) override {
    context.allowCancellation();  // a client gone mid-setup takes its sandbox with it
    return guarded([&]() -> kj::Promise<void> {
      if (*liveSandboxes_ >= ctx_.limits.maxSandboxesPerConnection)
        throw Error("this connection already holds " +
                    std::to_string(ctx_.limits.maxSandboxesPerConnection) + " sandboxes");
      SandboxSpec spec = specFromWire(context.getParams().getSpec());
      // Counts this sandbox against the connection until its last capability is gone.
      ++*liveSandboxes_;
      auto slot = std::shared_ptr<void>(nullptr, [live = liveSandboxes_](void*) { --*live; });
      return home_
          .call([&ctx = ctx_, &home = home_, peer = peer_, spec = std::move(spec),
                 sandboxes = sandboxes_, origin = spanOrigin()]() {
            return createSandbox(ctx, home, *peer, spec, *sandboxes, origin);
          })
          .then([this, context, slot](OpenedSandbox opened) mutable {
            context.getResults().setSandbox(
                kj::heap<SandboxImpl>(home_, std::move(opened), false, guard_, slot));
          });
    });
  }

  kj::Promise<void> createSession(CreateSessionContext context) override {
    context.allowCancellation();
    return guarded([&]() -> kj::Promise<void> {
      SandboxSpec spec = specFromWire(context.getParams().getSpec());
      SessionOptions options = sessionOptionsFromWire(context.getParams().getOptions());
      return home_
          .call([&ctx = ctx_, &home = home_, peer = peer_, spec = std::move(spec),
                 options = std::move(options), origin = spanOrigin()]() {
            return gpubox::createSession(ctx, home, *peer, spec, options, origin);
          })
          .then([this, context](CreatedSession created) mutable {
            auto results = context.getResults();
            results.setName(created.name);
            results.setTtlMs(created.ttlMs);
            results.setSandbox(
                kj::heap<SandboxImpl>(home_, std::move(created.sandbox), true, guard_));
          });
    });
  }

  kj::Promise<void> openSession(OpenSessionContext context) override {
    auto text = context.getParams().getName();
    return home_
        .call([&ctx = ctx_, &home = home_, peer = peer_,
               name = std::string(text.cStr(), text.size())]() {
          return gpubox::openSession(ctx, home, *peer, name);
        })
        .then([this, context](OpenedSandbox opened) mutable {
          context.getResults().setSandbox(
              kj::heap<SandboxImpl>(home_, std::move(opened), true, guard_));
        });
  }

  kj::Promise<void> removeSession(RemoveSessionContext context) override {
    auto text = context.getParams().getName();
    return home_.call([&ctx = ctx_, peer = peer_, name = std::string(text.cStr(), text.size())]() {
      ctx.sessions->remove(*peer, name);
    });
  }

  kj::Promise<void> list(ListContext context) override {
    return home_.call([&ctx = ctx_, peer = peer_]() { return listSandboxes(ctx, *peer); })
        .then([context](std::vector<SandboxListing> mine) mutable {
          auto out = context.getResults().initSandboxes(mine.size());
          for (size_t i = 0; i < mine.size(); ++i) {
            const SandboxListing& l = mine[i];
            auto e = out[i];
            e.setName(l.name);
            e.setSession(l.session);
            e.setUid(l.uid);
            e.setAgeMs(l.ageMs);
            if (l.haveStats) {
              e.setProcesses(l.processes);
              e.setMemoryBytes(l.memoryBytes);
              e.setMemoryPeakBytes(l.memoryPeakBytes);
              e.setCpuNanos(l.cpuNanos);
            }
            fillTexts(e.initGpus(l.gpus.size()), l.gpus);
            if (l.session) {
              e.setTtlLeftMs(l.ttlLeftMs);
              e.setIdleTimeoutMs(l.idleTimeoutMs);
            }
            e.setInitPid(l.initPid);
            e.setCgroup(l.cgroup);
            e.setCommand(l.command);
            fillTexts(e.initLimits(l.limits.size()), l.limits);
          }
        });
  }

  kj::Promise<void> gpus(GpusContext context) override {
    return home_.call([&ctx = ctx_, peer = peer_]() { return listGpus(ctx, *peer); })
        .then([context](std::vector<GpuListing> list) mutable {
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
        });
  }

 private:
  // --trace-spans: this call's arrival, and the connection's accept for its
  // first sandbox only (a later one's would be long before its request).
  SpanOrigin spanOrigin() {
    if (!SpanTrace::enabled()) return {};
    return {std::exchange(acceptedNs_, 0), monotonicNs()};
  }

  DaemonContext& ctx_;  // reached only on the home loop, except its limits
  const HomeLoop& home_;
  std::shared_ptr<const PeerIdentity> peer_;
  HomeShared<ConnectionSandboxes> sandboxes_;
  std::shared_ptr<ConnectionGuard> guard_;
  std::shared_ptr<size_t> liveSandboxes_ = std::make_shared<size_t>(0);
  uint64_t acceptedNs_;  // this connection's thread only
};

}  // namespace

kj::Own<wire::Helper::Server> newHelperServer(DaemonContext& ctx, const HomeLoop& home,
                                              PeerIdentity peer,
                                              HomeShared<ConnectionSandboxes> sandboxes,
                                              std::shared_ptr<ConnectionGuard> guard,
                                              uint64_t acceptedNs) {
  return kj::heap<HelperImpl>(ctx, home, std::move(peer), std::move(sandboxes), std::move(guard),
                              acceptedNs);
}

}  // namespace gpubox
