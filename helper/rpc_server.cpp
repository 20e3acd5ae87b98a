#include "rpc_server.hpp"

#include <sys/utsname.h>

#include <kj/debug.h>

#include <algorithm>

#include "env.hpp"
#include "error.hpp"
#include "gpu_assignment.hpp"
#include "kernel_features.hpp"
#include "kj_error.hpp"
#include "sandbox_factory.hpp"
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

class ProcessImpl final : public wire::Process::Server {
 public:
  ProcessImpl(std::shared_ptr<SandboxRuntime> runtime, std::shared_ptr<SandboxLogInfo> log,
              uint32_t id)
      : runtime_(std::move(runtime)), log_(std::move(log)), id_(id) {}

  kj::Promise<void> wait(WaitContext context) override {
    // Cap'n Proto 0.9 lets a call outlive its caller unless it opts in to
    // cancellation. A wait must not: when the client's connection goes, this
    // call (and the reference it holds on the sandbox) must go with it, so
    // the sandbox dies.
    context.allowCancellation();
    return runtime_->wait(id_).then([this, context](ExecOutcome out) mutable {
      auto status = context.getResults().initStatus();
      status.setPid(out.pid);
      status.setWallNanos(out.wallNanos);
      switch (out.kind) {
        case ExecOutcome::Kind::Exited:
          status.setExited(out.value);
          log_->record.result = "exit " + std::to_string(out.value);
          break;
        case ExecOutcome::Kind::Signaled:
          status.setSignaled(out.value);
          log_->record.result = "signal " + std::to_string(out.value);
          break;
        case ExecOutcome::Kind::NotStarted: {
          auto failure = status.initNotStarted();
          failure.setErrno(out.value);
          failure.setMessage(out.message);
          using S = wire::StartFailure::Stage;
          failure.setStage(out.stage == initmsg::StartStage::Exec    ? S::EXEC
                           : out.stage == initmsg::StartStage::Chdir ? S::CHDIR
                                                                     : S::OTHER);
          log_->record.result = "not started: " + out.message;
          break;
        }
      }
    });
  }

  kj::Promise<void> signal(SignalContext context) override {
    return guarded([&]() -> kj::Promise<void> {
      runtime_->signal(id_, context.getParams().getSigno());
      return kj::READY_NOW;
    });
  }

 private:
  std::shared_ptr<SandboxRuntime> runtime_;
  std::shared_ptr<SandboxLogInfo> log_;
  uint32_t id_;
};

class SandboxImpl final : public wire::Sandbox::Server {
 public:
  explicit SandboxImpl(BuiltSandbox built) : built_(std::move(built)) {}

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
            if (built_.log->record.argv0.empty()) built_.log->record.argv0 = cmd.argv[0];
            uint32_t id = built_.runtime->exec(cmd, raw);
            context.getResults().setProcess(kj::heap<ProcessImpl>(built_.runtime, built_.log, id));
            return kj::READY_NOW;
          });
        });
  }

  kj::Promise<void> applied(AppliedContext context) override {
    auto applied = context.getResults().initApplied();
    auto ns = applied.initNamespaces(built_.namespaces.size());
    for (size_t i = 0; i < built_.namespaces.size(); ++i) ns.set(i, built_.namespaces[i]);
    const auto& skipped = built_.runtime->skippedSteps();
    std::vector<std::string> lines;
    for (size_t i = 0; i < built_.plan.size(); ++i) {
      if (std::find(skipped.begin(), skipped.end(), i) == skipped.end())
        lines.push_back(describeMount(built_.plan[i]));
    }
    auto mounts = applied.initMounts(lines.size());
    for (size_t i = 0; i < lines.size(); ++i) mounts.set(i, lines[i]);
    applied.setInitPid(built_.runtime->initPid());
    auto gpus = applied.initGpus(built_.gpuUuids.size());
    for (size_t i = 0; i < built_.gpuUuids.size(); ++i) gpus.set(i, built_.gpuUuids[i]);
    applied.setCgroup(built_.cgroup);
    return kj::READY_NOW;
  }

 private:
  // GPU binding's variables (CUDA_VISIBLE_DEVICES, CDI env) win over the client's.
  void mergeSandboxEnv(Command& cmd) {
    EnvBuilder env(std::move(cmd.env));
    env.merge(built_.extraEnv);
    cmd.env = env.entries();
  }

  BuiltSandbox built_;
};

class HelperImpl final : public wire::Helper::Server {
 public:
  HelperImpl(DaemonContext& ctx, PeerIdentity peer, std::shared_ptr<ConnectionSandboxes> sandboxes)
      : ctx_(ctx), peer_(std::move(peer)), sandboxes_(std::move(sandboxes)) {}

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
    return kj::READY_NOW;
  }

  kj::Promise<void> create(CreateContext context) override {
    context.allowCancellation();  // a client gone mid-setup takes its sandbox with it
    return guarded([&]() -> kj::Promise<void> {
      if (*liveSandboxes_ >= ctx_.limits.maxSandboxesPerConnection)
        throw Error("this connection already holds " +
                    std::to_string(ctx_.limits.maxSandboxesPerConnection) + " sandboxes");
      SandboxSpec spec = specFromWire(context.getParams().getSpec());
      BuiltSandbox built = buildSandbox(ctx_, peer_, spec);
      sandboxes_->add(built.runtime);
      // Counts this sandbox against the connection until its last capability is gone.
      ++*liveSandboxes_;
      built.connectionSlot =
          std::shared_ptr<void>(nullptr, [live = liveSandboxes_](void*) { --*live; });
      auto runtime = built.runtime;
      return runtime->whenReady().then([context, built = std::move(built)]() mutable {
        // Until a command's end is reported, an end means it was cut short.
        built.log->record.result = "closed before its command ended";
        context.getResults().setSandbox(kj::heap<SandboxImpl>(std::move(built)));
      });
    });
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
                                              std::shared_ptr<ConnectionSandboxes> sandboxes) {
  return kj::heap<HelperImpl>(ctx, std::move(peer), std::move(sandboxes));
}

}  // namespace gpubox
