// The helper's listening socket: from systemd socket activation or created
// for --listen, and the accept loop that turns each connection into an
// authenticated Cap'n Proto session.
#pragma once

#include <kj/async-io.h>

#include <list>
#include <string>

#include "daemon_context.hpp"
#include "unique_fd.hpp"

namespace gpubox {

// The socket systemd passed (exactly one AF_UNIX stream socket), or an
// invalid fd if none was passed. Throws if systemd passed something else.
UniqueFd socketFromSystemd();

// Creates, binds and listens on `path` with permissions `mode`. A stale
// socket at `path` is replaced; any other file there is an error.
UniqueFd listenOn(const std::string& path, unsigned mode);

// Serves connections until destroyed.
class Server : private kj::TaskSet::ErrorHandler {
 public:
  Server(DaemonContext& ctx, kj::AsyncIoContext& io, UniqueFd listenFd);
  ~Server();
  kj::Promise<void> run();

 private:
  struct Connection;
  void accepted(UniqueFd fd);
  void taskFailed(kj::Exception&& exception) override;

  DaemonContext& ctx_;
  kj::AsyncIoContext& io_;
  UniqueFd listenFd_;
  kj::UnixEventPort::FdObserver observer_;
  std::list<kj::Own<Connection>> connections_;
  kj::TaskSet tasks_;
};

}  // namespace gpubox
