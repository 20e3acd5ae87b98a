#include "listener.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <capnp/rpc-twoparty.h>
#include <kj/debug.h>

#include "connection_guard.hpp"
#include "error.hpp"
#include "guarded_stream.hpp"
#include "kj_error.hpp"
#include "rpc_server.hpp"
#include "systemd_protocol.hpp"
#include "wire_limits.hpp"

namespace gpubox {

namespace {

// Three stdio fds per exec; nothing else may arrive with a message (the
// kernel closes any more that a client sends).
constexpr unsigned kMaxFdsPerMessage = 3;
// Call data (params) of unanswered calls per connection before the helper
// stops reading from it: one largest message, with room to spare.
constexpr size_t kFlowLimitWords = 2 * 1024 * 1024;

// The bootstrap object for a peer the helper refuses: every call fails with
// the reason, so the client prints it instead of seeing a dropped connection.
class RefusedHelper final : public wire::Helper::Server {
 public:
  RefusedHelper(std::string why, std::shared_ptr<ConnectionGuard> guard)
      : why_(std::move(why)), guard_(std::move(guard)) {}
  DispatchCallResult dispatchCall(
      uint64_t interfaceId, uint16_t methodId,
      capnp::CallContext<capnp::AnyPointer, capnp::AnyPointer> context) override {
    return guard_->run(
        [&] { return wire::Helper::Server::dispatchCall(interfaceId, methodId, context); });
  }
  kj::Promise<void> info(InfoContext) override { return refuse(); }
  kj::Promise<void> create(CreateContext) override { return refuse(); }
  kj::Promise<void> gpus(GpusContext) override { return refuse(); }
  kj::Promise<void> createSession(CreateSessionContext) override { return refuse(); }
  kj::Promise<void> openSession(OpenSessionContext) override { return refuse(); }
  kj::Promise<void> removeSession(RemoveSessionContext) override { return refuse(); }
  kj::Promise<void> list(ListContext) override { return refuse(); }

 private:
  kj::Promise<void> refuse() { return callerError(why_); }
  std::string why_;
  std::shared_ptr<ConnectionGuard> guard_;
};

}  // namespace

struct Server::Connection {
  ~Connection() {
    if (guard) guard->attach(nullptr);  // before the members (the network) go
  }
  std::shared_ptr<ConnectionSandboxes> sandboxes = std::make_shared<ConnectionSandboxes>();
  std::shared_ptr<ConnectionGuard> guard;
  kj::Own<kj::AsyncCapabilityStream> stream;
  kj::Own<GuardedMessageStream> messages;
  kj::Own<capnp::TwoPartyVatNetwork> network;
  kj::Own<capnp::RpcSystem<capnp::rpc::twoparty::VatId>> rpc;
};

UniqueFd socketFromSystemd() {
  int n = systemd::listenFds();
  if (n == 0) return UniqueFd();
  if (n != 1) throw Error("systemd passed " + std::to_string(n) + " sockets; expected one");
  int fd = systemd::kListenFdsStart;
  if (!systemd::isListeningUnixStreamSocket(fd))
    throw Error("the socket systemd passed is not a listening AF_UNIX stream socket");
  return UniqueFd(fd);
}

UniqueFd listenOn(const std::string& path, unsigned mode) {
  struct sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path))
    throw Error("--listen path '" + path + "' is empty or too long for a Unix socket");
  path.copy(addr.sun_path, path.size());
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) throw Error("--listen " + path + ": exists and is not a socket");
    ::unlink(path.c_str());
  }
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) throwErrno("socket");
  // Bind under a restrictive umask, then open up to exactly `mode`: no window
  // in which the socket has wider permissions than asked for.
  mode_t old = ::umask(0077);
  int rc = ::bind(fd.get(), reinterpret_cast<struct sockaddr*>(&addr), sizeof(addr));
  int err = errno;
  ::umask(old);
  if (rc != 0) throwErrno("--listen " + path + ": bind", err);
  if (::chmod(path.c_str(), mode) != 0) throwErrno("--listen " + path + ": chmod");
  if (::listen(fd.get(), 128) != 0) throwErrno("listen");
  return fd;
}

Server::Server(DaemonContext& ctx, kj::AsyncIoContext& io, UniqueFd listenFd)
    : ctx_(ctx),
      io_(io),
      listenFd_(std::move(listenFd)),
      observer_(io.unixEventPort, listenFd_.get(), kj::UnixEventPort::FdObserver::OBSERVE_READ),
      tasks_(*this) {
  // systemd hands the socket over in blocking mode.
  int flags = ::fcntl(listenFd_.get(), F_GETFL);
  ::fcntl(listenFd_.get(), F_SETFL, flags | O_NONBLOCK);
}

Server::~Server() {
  // The helper is stopping: every sandbox dies now, not whenever Cap'n Proto
  // lets go of its objects.
  for (auto& conn : connections_) conn->sandboxes->killAll();
}

kj::Promise<void> Server::run() {
  for (;;) {
    int fd = ::accept4(listenFd_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd >= 0) {
      accepted(UniqueFd(fd));
      continue;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK)
      return observer_.whenBecomesReadable().then([this]() { return run(); });
    if (errno == EINTR || errno == ECONNABORTED) continue;
    if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
      // Out of resources: back off instead of spinning; existing clients go on.
      logError(errnoMessage("accept", errno));
      return io_.provider->getTimer().afterDelay(100 * kj::MILLISECONDS).then([this]() {
        return run();
      });
    }
    throwErrno("accept");
  }
}

void Server::accepted(UniqueFd fd) {
  kj::Own<wire::Helper::Server> bootstrap;
  auto conn = kj::heap<Connection>();
  struct ucred cred = {};
  socklen_t credLen = sizeof(cred);
  const int credErr =
      ::getsockopt(fd.get(), SOL_SOCKET, SO_PEERCRED, &cred, &credLen) == 0 ? 0 : errno;
  conn->guard = std::make_shared<ConnectionGuard>(ctx_, cred.uid);
  try {
    if (credErr != 0) throw Error(errnoMessage("SO_PEERCRED", credErr));
    if (ctx_.liveConnections >= ctx_.limits.maxConnections)
      throw Error("the helper is serving its maximum number of connections; try again later");
    PeerIdentity peer = readPeerIdentity(fd.get(), cred);
    checkPeerPlacement(peer, fd.get(), ctx_.sandboxNamespaces);
    bootstrap = newHelperServer(ctx_, std::move(peer), conn->sandboxes, conn->guard);
  } catch (const Error& e) {
    logError(std::string("refused a connection: ") + e.what());
    bootstrap = kj::heap<RefusedHelper>(e.what(), conn->guard);
  }
  const int rawFd = fd.get();
  conn->stream = io_.lowLevelProvider->wrapUnixSocketFd(
      fd.release(), kj::LowLevelAsyncIoProvider::TAKE_OWNERSHIP |
                        kj::LowLevelAsyncIoProvider::ALREADY_CLOEXEC |
                        kj::LowLevelAsyncIoProvider::ALREADY_NONBLOCK);
  conn->messages = kj::heap<GuardedMessageStream>(*conn->stream, rawFd, conn->guard);
  conn->network = kj::heap<capnp::TwoPartyVatNetwork>(*conn->messages, kMaxFdsPerMessage,
                                                      capnp::rpc::twoparty::Side::SERVER,
                                                      clientReaderOptions());
  conn->guard->attach(conn->network.get());
  conn->rpc =
      kj::heap(capnp::makeRpcServer(*conn->network, capnp::Capability::Client(kj::mv(bootstrap))));
  conn->rpc->setFlowLimit(kFlowLimitWords);
  ++ctx_.liveConnections;
  Connection* raw = conn.get();
  connections_.push_back(kj::mv(conn));
  auto it = std::prev(connections_.end());
  // The connection ends when the client goes (or sends what the helper
  // cannot read: Cap'n Proto then aborts it), when its guard closes it
  // (flooding, not reading its answers), or when it has idled too long.
  // Either way its capabilities are dropped, which closes its sandboxes
  // (killing everything in them).
  auto ended = raw->network->onDisconnect()
                   .catch_([](kj::Exception&&) {})
                   .exclusiveJoin(raw->guard->whenClosed())
                   .exclusiveJoin(raw->guard->whenIdle());
  tasks_.add(ended.then([this, it]() {
    (*it)->sandboxes->killAll();
    connections_.erase(it);
    --ctx_.liveConnections;
  }));
}

void Server::taskFailed(kj::Exception&& e) {
  logError(std::string("connection error: ") + e.getDescription().cStr());
}

}  // namespace gpubox
