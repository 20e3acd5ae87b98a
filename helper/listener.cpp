#include "listener.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <kj/debug.h>

#include "error.hpp"
#include "log.hpp"
#include "peer.hpp"
#include "span_clock.hpp"
#include "span_trace.hpp"
#include "systemd_protocol.hpp"

namespace gpubox {

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

Server::Server(DaemonContext& ctx, kj::AsyncIoContext& io, UniqueFd listenFd, RpcLoops& rpc)
    : ctx_(ctx),
      io_(io),
      listenFd_(std::move(listenFd)),
      observer_(io.unixEventPort, listenFd_.get(), kj::UnixEventPort::FdObserver::OBSERVE_READ),
      rpc_(rpc) {
  // systemd hands the socket over in blocking mode.
  int flags = ::fcntl(listenFd_.get(), F_GETFL);
  ::fcntl(listenFd_.get(), F_SETFL, flags | O_NONBLOCK);
}

AcceptFailure acceptFailure(int err) {
  if (err == EINTR || err == ECONNABORTED) return AcceptFailure::Again;
  if (err == EAGAIN || err == EWOULDBLOCK) return AcceptFailure::Empty;
  if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
    logError(errnoMessage("accept", err));
    return AcceptFailure::BackOff;
  }
  logError("listener failed: " + errnoMessage("accept", err));
  return AcceptFailure::Fatal;
}

kj::Promise<void> Server::run() {
  for (;;) {
    int fd = ::accept4(listenFd_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd >= 0) {
      accepted(UniqueFd(fd));
      continue;
    }
    switch (acceptFailure(errno)) {
      case AcceptFailure::Again:
        continue;
      case AcceptFailure::Empty:
        return observer_.whenBecomesReadable().then([this]() { return run(); });
      case AcceptFailure::BackOff:
        return io_.provider->getTimer()
            .afterDelay(kAcceptBackOffMs * kj::MILLISECONDS)
            .then([this]() { return run(); });
      case AcceptFailure::Fatal:
        return kj::READY_NOW;  // logged; the helper keeps serving who is connected
    }
  }
}

IncomingConnection identifyClient(DaemonContext& ctx, UniqueFd fd) {
  IncomingConnection in;
  if (SpanTrace::enabled()) in.acceptedNs = monotonicNs();
  struct ucred cred = {};
  socklen_t credLen = sizeof(cred);
  const int credErr =
      ::getsockopt(fd.get(), SOL_SOCKET, SO_PEERCRED, &cred, &credLen) == 0 ? 0 : errno;
  in.uid = cred.uid;
  try {
    if (credErr != 0) throw Error(errnoMessage("SO_PEERCRED", credErr));
    if (ctx.liveConnections >= ctx.limits.maxConnections)
      throw Error("the helper is serving its maximum number of connections; try again later");
    PeerIdentity peer = readPeerIdentity(fd.get(), cred);
    checkPeerPlacement(peer, fd.get(), ctx.sandboxNamespaces);
    in.peer = std::move(peer);
  } catch (const Error& e) {
    logEventError(std::string("refused a connection: ") + e.what());
    in.refusal = e.what();
  }
  in.fd = std::move(fd);
  ++ctx.liveConnections;
  return in;
}

void Server::accepted(UniqueFd fd) {
  rpc_.serve(identifyClient(ctx_, std::move(fd)));
}

}  // namespace gpubox
