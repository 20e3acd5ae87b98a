#include "gpubox/client.hpp"

#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <capnp/rpc-twoparty.h>
#include <kj/async-io.h>
#include <kj/async-unix.h>

#include <cstdlib>
#include <functional>

#include "error.hpp"
#include "gpubox.capnp.h"
#include "spec_wire.hpp"
#include "trace_spans.hpp"
#include "unique_fd.hpp"

namespace gpubox::client {

namespace {

constexpr const char* kDefaultSocket = "/run/gpubox/gpubox.sock";

// Lends one of the caller's fds to the helper; the fd stays the caller's.
class FdLoan final : public wire::Fd::Server {
 public:
  explicit FdLoan(int fd) : fd_(fd) {}
  kj::Maybe<int> getFd() override { return fd_; }

 private:
  int fd_;
};

std::string describe(const kj::Exception& e) {
  std::string text = e.getDescription().cStr();
  const std::string remote = "remote exception: ";
  if (text.rfind(remote, 0) == 0) text = text.substr(remote.size());
  if (e.getType() == kj::Exception::Type::DISCONNECTED)
    return "the helper closed the connection (" + text + ")";
  return text;
}

UniqueFd connectTo(const std::string& path) {
  struct sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) throw Error("socket path is too long: " + path);
  path.copy(addr.sun_path, path.size());
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) throwErrno("socket");
  if (::connect(fd.get(), reinterpret_cast<struct sockaddr*>(&addr), sizeof(addr)) != 0) {
    int err = errno;
    throw Error(errnoMessage("cannot reach the helper at " + path, err) +
                " (is gpubox.socket running? set --socket or GPUBOX_SOCKET)");
  }
  return fd;
}

template <typename T>
std::vector<std::string> strings(T list) {
  std::vector<std::string> out;
  for (auto t : list) out.emplace_back(t.cStr(), t.size());
  return out;
}

}  // namespace

std::string defaultSocketPath(const std::string& explicitPath) {
  if (!explicitPath.empty()) return explicitPath;
  if (const char* env = std::getenv("GPUBOX_SOCKET"); env && *env) return env;
  return kDefaultSocket;
}

struct Connection::Impl {
  kj::AsyncIoContext io = kj::setupAsyncIo();
  kj::Own<kj::AsyncCapabilityStream> stream;
  kj::Own<capnp::TwoPartyClient> rpc;
  wire::Helper::Client helper = nullptr;

  explicit Impl(const std::string& path) {
    UniqueFd fd = connectTo(path);
    stream = io.lowLevelProvider->wrapUnixSocketFd(
        fd.release(),
        kj::LowLevelAsyncIoProvider::TAKE_OWNERSHIP | kj::LowLevelAsyncIoProvider::ALREADY_CLOEXEC);
    // The helper never sends fds back, but a limit of 0 would make capnp use
    // a stream that cannot send fds either, so allow one.
    rpc = kj::heap<capnp::TwoPartyClient>(*stream, 1);
    helper = rpc->bootstrap().castAs<wire::Helper>();
    spans::mark("connected");
  }

  // A helper older than protocol 1.4 ignores SandboxSpec.sandboxUid/Gid and
  // would run the command as the caller's own ids: refuse before anything
  // runs rather than let it run as another id than asked. Asking for one's
  // own ids needs no check (and no round trip).
  void requireSandboxIds(const SandboxSpec& spec) {
    const bool otherUid = spec.sandboxUid && *spec.sandboxUid != ::geteuid();
    const bool otherGid = spec.sandboxGid && *spec.sandboxGid != ::getegid();
    if (!otherUid && !otherGid) return;
    // The response owns the message the reader points into: keep it.
    auto response = helper.infoRequest().send().wait(io.waitScope);
    auto info = response.getInfo();
    constexpr uint32_t kSandboxIdsMinor = 4;
    if (info.getProtocolMajor() == wire::PROTOCOL_MAJOR &&
        info.getProtocolMinor() >= kSandboxIdsMinor)
      return;
    throw Error(std::string(otherUid ? "--uid" : "--gid") + ": the helper speaks protocol " +
                std::to_string(info.getProtocolMajor()) + "." +
                std::to_string(info.getProtocolMinor()) +
                ", which would ignore it and run the command as your own ids; another id "
                "inside needs a 1.4 helper or later");
  }

  template <typename F>
  auto guard(F&& f) -> decltype(f()) {
    try {
      return f();
    } catch (const kj::Exception& e) {
      // The helper's own exceptions arrive as "remote exception: ...",
      // whatever their type; only a local DISCONNECTED is this socket gone.
      const bool remote =
          std::string_view(e.getDescription().cStr()).starts_with("remote exception: ");
      if (e.getType() == kj::Exception::Type::DISCONNECTED && !remote)
        throw ConnectionLost(describe(e));
      throw Error(describe(e));
    }
  }
};

Connection::Connection(const std::string& socketPath) : impl_(std::make_unique<Impl>(socketPath)) {}
Connection::~Connection() = default;

namespace {

const char* reasonName(wire::EndReason r) {
  using W = wire::EndReason;
  switch (r) {
    case W::EXITED:
      return "exited";
    case W::SIGNALED:
      return "signaled";
    case W::OUT_OF_MEMORY:
      return "out_of_memory";
    case W::TIMED_OUT:
      return "timed_out";
    case W::NOT_STARTED:
      return "not_started";
    case W::SESSION_REMOVED:
      return "session_removed";
    case W::SESSION_EXPIRED:
      return "session_expired";
    case W::CLIENT_DISCONNECTED:
      return "client_disconnected";
    case W::HELPER_ERROR:
      return "helper_error";
  }
  return "helper_error";
}

void readStatus(wire::ExitStatus::Reader status, RunResult& result) {
  result.commandPid = status.getPid();
  result.wallNanos = status.getWallNanos();
  result.reason = reasonName(status.getReason());
  result.message = status.getMessage().cStr();
  result.timeoutMs = status.getTimeoutMs();
  result.sigkillNeeded = status.getSigkillNeeded();
  switch (status.which()) {
    case wire::ExitStatus::EXITED:
      result.exitCode = status.getExited();
      break;
    case wire::ExitStatus::SIGNALED:
      result.signal = status.getSignaled();
      break;
    case wire::ExitStatus::NOT_STARTED: {
      auto f = status.getNotStarted();
      StartFailure failure;
      failure.err = f.getErrno();
      failure.message = f.getMessage().cStr();
      failure.stage = f.getStage() == wire::StartFailure::Stage::EXEC ? StartFailure::Stage::Exec
                      : f.getStage() == wire::StartFailure::Stage::CHDIR
                          ? StartFailure::Stage::Chdir
                          : StartFailure::Stage::Other;
      result.notStarted = failure;
      break;
    }
  }
}

void readApplied(wire::Applied::Reader a, RunResult& result) {
  result.namespaces = strings(a.getNamespaces());
  result.mounts = strings(a.getMounts());
  result.gpus = strings(a.getGpus());
  result.sandboxPid = a.getInitPid();
  result.cgroup = a.getCgroup().cStr();
  result.limits = strings(a.getLimits());
  result.session = a.getSession().cStr();
  result.seccomp = a.getSeccomp().cStr();
  result.userNamespace = a.getUserNamespace().cStr();
  result.namespaceIds.clear();
  for (auto id : a.getNamespaceIds())
    result.namespaceIds.push_back({id.getName().cStr(), id.getInode()});
}

wire::Stdio::Builder lendStdio(wire::Stdio::Builder stdio, int in, int out, int err) {
  stdio.setStdin(kj::heap<FdLoan>(in));
  stdio.setStdout(kj::heap<FdLoan>(out));
  stdio.setStderr(kj::heap<FdLoan>(err));
  return stdio;
}

}  // namespace

struct Process::Impl {
  Connection::Impl& conn;
  wire::Process::Client process;
  kj::Maybe<capnp::RemotePromise<wire::Process::WaitResults>> waited;
  kj::Maybe<capnp::RemotePromise<wire::Sandbox::AppliedResults>> applied;
  bool forwardSignals = false;
};

Process::Process(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Process::Process(Process&&) noexcept = default;
Process& Process::operator=(Process&&) noexcept = default;
Process::~Process() = default;

void Process::signal(int signo) {
  impl_->conn.guard([&]() {
    auto req = impl_->process.signalRequest();
    req.setSigno(signo);
    req.send().wait(impl_->conn.io.waitScope);
  });
}

RunResult Process::wait() {
  return impl_->conn.guard([&]() {
    Impl& p = *impl_;
    auto& ws = p.conn.io.waitScope;
    // Declared out here: the re-arming handlers below refer to it for as
    // long as the wait lasts.
    std::function<kj::Promise<void>(int)> forward;
    kj::Promise<void> forwarding = kj::NEVER_DONE;
    if (p.forwardSignals) {
      forward = [&](int sig) -> kj::Promise<void> {
        return p.conn.io.unixEventPort.onSignal(sig).then([&, sig](siginfo_t) {
          auto req = p.process.signalRequest();
          req.setSigno(sig);
          return req.send().ignoreResult().catch_([](kj::Exception&&) {}).then([&, sig]() {
            return forward(sig);
          });
        });
      };
      forwarding = forward(SIGINT)
                       .exclusiveJoin(forward(SIGTERM))
                       .exclusiveJoin(forward(SIGHUP))
                       .exclusiveJoin(forward(SIGQUIT))
                       .eagerlyEvaluate(nullptr);
    }
    RunResult result;
    KJ_IF_MAYBE (w, p.waited) {
      readStatus(w->wait(ws).getStatus(), result);
    } else {
      readStatus(p.process.waitRequest().send().wait(ws).getStatus(), result);
    }
    p.waited = nullptr;
    spans::mark("status");
    KJ_IF_MAYBE (a, p.applied) {
      readApplied(a->wait(ws).getApplied(), result);
      p.applied = nullptr;
    }
    spans::emit();
    return result;
  });
}

RunResult Connection::run(const RunRequest& request) {
  validateSpec(request.spec);
  validateCommand(request.command);
  auto process = impl_->guard([&]() {
    impl_->requireSandboxIds(request.spec);
    auto create = impl_->helper.createRequest();
    specToWire(request.spec, create.initSpec());
    auto sandbox = create.send().getSandbox();
    if (request.beforeExec) {
      // The sandbox must exist before the hook runs: wait for it here (a
      // refused create throws now).
      RunResult made;
      readApplied(sandbox.appliedRequest().send().wait(impl_->io.waitScope).getApplied(), made);
      request.beforeExec({made.sandboxPid, made.namespaceIds});
    }

    auto exec = sandbox.execRequest();
    commandToWire(request.command, exec.initCommand());
    lendStdio(exec.initStdio(), request.stdinFd, request.stdoutFd, request.stderrFd);
    auto started = exec.send().getProcess();
    auto impl = std::make_unique<Process::Impl>(
        Process::Impl{*impl_, started, nullptr, nullptr, request.forwardSignals});
    impl->waited = started.waitRequest().send();
    if (request.sandboxFacts) impl->applied = sandbox.appliedRequest().send();
    spans::mark("sent");
    return Process(std::move(impl));
  });
  return process.wait();
}

SessionInfo Connection::createSession(const SessionRequest& request) {
  validateSpec(request.spec);
  return impl_->guard([&]() {
    auto& ws = impl_->io.waitScope;
    impl_->requireSandboxIds(request.spec);
    auto create = impl_->helper.createSessionRequest();
    specToWire(request.spec, create.initSpec());
    auto options = create.initOptions();
    options.setName(request.name);
    options.setTtlMs(request.ttlMs);
    options.setIdleTimeoutMs(request.idleTimeoutMs);
    auto created = create.send();
    auto applied = created.getSandbox().appliedRequest().send();
    auto response = created.wait(ws);
    SessionInfo info;
    info.name = response.getName().cStr();
    info.ttlMs = response.getTtlMs();
    auto appliedResponse = applied.wait(ws);  // owns what `a` reads
    auto a = appliedResponse.getApplied();
    info.initPid = a.getInitPid();
    info.cgroup = a.getCgroup().cStr();
    info.gpus = strings(a.getGpus());
    info.limits = strings(a.getLimits());
    info.namespaces = strings(a.getNamespaces());
    info.mounts = strings(a.getMounts());
    return info;
  });
}

Process Connection::exec(const ExecRequest& request) {
  validateCommand(request.command);
  return impl_->guard([&]() {
    auto open = impl_->helper.openSessionRequest();
    open.setName(request.session);
    auto sandbox = open.send().getSandbox();
    auto exec = sandbox.execRequest();
    commandToWire(request.command, exec.initCommand());
    lendStdio(exec.initStdio(), request.stdinFd, request.stdoutFd, request.stderrFd);
    auto sent = exec.send();
    auto started = sent.getProcess();
    auto impl = std::make_unique<Process::Impl>(
        Process::Impl{*impl_, started, nullptr, nullptr, request.forwardSignals});
    impl->waited = started.waitRequest().send();
    if (request.sandboxFacts) impl->applied = sandbox.appliedRequest().send();
    spans::mark("sent");
    // One round trip: when exec() returns, the command runs (and a refusal,
    // such as another user's session, is thrown here rather than at wait()).
    sent.wait(impl_->io.waitScope);
    spans::mark("started");
    return Process(std::move(impl));
  });
}

void Connection::removeSession(const std::string& name) {
  impl_->guard([&]() {
    auto req = impl_->helper.removeSessionRequest();
    req.setName(name);
    req.send().wait(impl_->io.waitScope);
  });
}

std::vector<SandboxListing> Connection::list() {
  return impl_->guard([&]() {
    auto response = impl_->helper.listRequest().send().wait(impl_->io.waitScope);
    std::vector<SandboxListing> out;
    for (auto e : response.getSandboxes()) {
      SandboxListing l;
      l.name = e.getName().cStr();
      l.session = e.getSession();
      l.uid = e.getUid();
      l.ageMs = e.getAgeMs();
      l.processes = e.getProcesses();
      l.memoryBytes = e.getMemoryBytes();
      l.memoryPeakBytes = e.getMemoryPeakBytes();
      l.cpuNanos = e.getCpuNanos();
      l.gpus = strings(e.getGpus());
      l.ttlLeftMs = e.getTtlLeftMs();
      l.idleTimeoutMs = e.getIdleTimeoutMs();
      l.initPid = e.getInitPid();
      l.cgroup = e.getCgroup().cStr();
      l.command = e.getCommand().cStr();
      l.limits = strings(e.getLimits());
      out.push_back(std::move(l));
    }
    return out;
  });
}

HelperInfo Connection::info() {
  return impl_->guard([&]() {
    auto response = impl_->helper.infoRequest().send().wait(impl_->io.waitScope);
    auto i = response.getInfo();
    HelperInfo info;
    info.version = i.getVersion().cStr();
    info.protocolMajor = i.getProtocolMajor();
    info.protocolMinor = i.getProtocolMinor();
    info.kernel = i.getKernel().cStr();
    info.features = strings(i.getFeatures());
    info.cgroupMode = i.getCgroupMode().cStr();
    info.callerUid = i.getCallerUid();
    info.callerGid = i.getCallerGid();
    info.limits = strings(i.getLimits());
    info.cgroups = strings(i.getCgroups());
    info.userNamespace = i.getUserNamespace().cStr();
    info.userNamespaceSetting = i.getUserNamespaceSetting().cStr();
    info.userNamespaceReason = i.getUserNamespaceReason().cStr();
    auto countsOf = [](wire::WarmPool::Reader p) {
      return WarmPoolCounts{.size = p.getSize(),
                            .floor = p.getFloor(),
                            .ceiling = p.getCeiling(),
                            .ready = p.getReady(),
                            .taken = p.getTaken(),
                            .missed = p.getMissed()};
    };
    if (i.hasWarmPool()) info.warmPool = countsOf(i.getWarmPool());
    if (i.hasWarmPoolHostNet()) info.warmPoolHostNet = countsOf(i.getWarmPoolHostNet());
    return info;
  });
}

std::vector<GpuInfo> Connection::gpus() {
  return impl_->guard([&]() {
    auto response = impl_->helper.gpusRequest().send().wait(impl_->io.waitScope);
    std::vector<GpuInfo> out;
    for (auto g : response.getGpus()) {
      GpuInfo info;
      info.index = g.getIndex();
      info.uuid = g.getUuid().cStr();
      info.model = g.getModel().cStr();
      info.busId = g.getBusId().cStr();
      info.minor = g.getMinor();
      info.mig = strings(g.getMig());
      info.holders = g.getHolders();
      info.allowed = g.getAllowed();
      out.push_back(std::move(info));
    }
    return out;
  });
}

}  // namespace gpubox::client
