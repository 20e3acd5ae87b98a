// The helper's listening socket: from systemd socket activation or created
// for --listen, and the accept loop on the home loop, which identifies each
// client and hands its connection to an RPC thread (rpc_loops.hpp).
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

// Accepts connections until destroyed.
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
