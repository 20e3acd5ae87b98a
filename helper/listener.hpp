// The helper's listening socket: from systemd socket activation or created
// for --listen; identifying a client; and the accept loop on the home loop,
// for a helper without RPC threads (rpc_loops.hpp).
#pragma once

#include <kj/async-io.h>

#include <string>

#include "daemon_context.hpp"
#include "rpc_loops.hpp"
#include "unique_fd.hpp"

namespace gpubox {

// The socket systemd passed (exactly one AF_UNIX stream socket), or an
// invalid fd if none was passed. Throws if systemd passed something else.
UniqueFd socketFromSystemd();

// Creates, binds and listens on `path` with permissions `mode`. A stale
// socket at `path` is replaced; any other file there is an error.
UniqueFd listenOn(const std::string& path, unsigned mode);

// Who the client on FD is and where it runs (SO_PEERCRED, SO_PEERGROUPS, the
// placement check against the live sandboxes' namespaces): a refused client
// carries its refusal, answered once it is served. Counted in
// ctx.liveConnections. Needs CAP_SYS_PTRACE and CAP_KILL for a client of
// another uid (its /proc/PID/ns, a signal 0 through its pidfd).
IncomingConnection identifyClient(DaemonContext& ctx, UniqueFd fd);

// What a listener does when accept4 fails with ERR: accept again at once
// (EINTR, ECONNABORTED), wait for the next connection (the backlog is
// empty), back off for kAcceptBackOffMs (out of descriptors or memory: the
// clients already connected go on; logged), or stop accepting (logged).
enum class AcceptFailure { Again, Empty, BackOff, Fatal };
AcceptFailure acceptFailure(int err);
inline constexpr int kAcceptBackOffMs = 100;

// Accepts connections on the home loop until destroyed (no RPC thread; with
// them, the acceptor thread does: acceptor_thread.hpp).
class Server {
 public:
  Server(DaemonContext& ctx, kj::AsyncIoContext& io, UniqueFd listenFd, RpcLoops& rpc);
  kj::Promise<void> run();

 private:
  void accepted(UniqueFd fd);

  DaemonContext& ctx_;
  kj::AsyncIoContext& io_;
  UniqueFd listenFd_;
  kj::UnixEventPort::FdObserver observer_;
  RpcLoops& rpc_;
};

}  // namespace gpubox
