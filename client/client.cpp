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
  }

  template <typename F>
  auto guard(F&& f) -> decltype(f()) {
    try {
      return f();
    } catch (const kj::Exception& e) {
      throw Error(describe(e));
    }
  }
};

Connection::Connection(const std::string& socketPath) : impl_(std::make_unique<Impl>(socketPath)) {}
Connection::~Connection() = default;

RunResult Connection::run(const RunRequest& request) {
  validateSpec(request.spec);
  validateCommand(request.command);
  return impl_->guard([&]() {
    auto& ws = impl_->io.waitScope;
    auto create = impl_->helper.createRequest();
    specToWire(request.spec, create.initSpec());
    auto sandbox = create.send().getSandbox();

    auto exec = sandbox.execRequest();
    commandToWire(request.command, exec.initCommand());
    auto stdio = exec.initStdio();
    stdio.setStdin(kj::heap<FdLoan>(request.stdinFd));
    stdio.setStdout(kj::heap<FdLoan>(request.stdoutFd));
    stdio.setStderr(kj::heap<FdLoan>(request.stderrFd));
    auto process = exec.send().getProcess();
    auto waited = process.waitRequest().send();
    auto applied = sandbox.appliedRequest().send();

    // Declared out here: the re-arming handlers below refer to it for as
    // long as the run lasts.
    std::function<kj::Promise<void>(int)> forward;
    kj::Promise<void> forwarding = kj::NEVER_DONE;
    if (request.forwardSignals) {
      forward = [&](int sig) -> kj::Promise<void> {
        return impl_->io.unixEventPort.onSignal(sig).then([&, sig, process](siginfo_t) mutable {
          auto req = process.signalRequest();
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

    auto response = waited.wait(ws);
    RunResult result;
    auto status = response.getStatus();
    result.commandPid = status.getPid();
    result.wallNanos = status.getWallNanos();
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
    auto a = applied.wait(ws).getApplied();
    result.namespaces = strings(a.getNamespaces());
    result.mounts = strings(a.getMounts());
    result.gpus = strings(a.getGpus());
    result.sandboxPid = a.getInitPid();
    result.cgroup = a.getCgroup().cStr();
    return result;
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
