#include "acceptor_thread.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "error.hpp"
#include "listener.hpp"
#include "log.hpp"
#include "named_thread.hpp"

namespace gpubox {

AcceptorThread::AcceptorThread(DaemonContext& ctx, UniqueFd listenFd, RpcLoops& rpc)
    : ctx_(ctx), rpc_(rpc), listenFd_(std::move(listenFd)) {
  // systemd hands the socket over in blocking mode.
  const int flags = ::fcntl(listenFd_.get(), F_GETFL);
  if (flags < 0 || ::fcntl(listenFd_.get(), F_SETFL, flags | O_NONBLOCK) != 0)
    throwErrno("make the listening socket non-blocking");
  wake_ = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake_) throwErrno("eventfd");
  thread_ = startNamedThread("gpubox-accept", {CAP_SYS_PTRACE, CAP_KILL}, [this] {
    main();
    ended_ = true;
  });
}

AcceptorThread::~AcceptorThread() {
  if (!thread_.joinable()) return;
  requestStop();
  thread_.join();
}

void AcceptorThread::requestStop() {
  stopping_ = true;  // seen even where poll() fails (main)
  const uint64_t one = 1;
  if (::write(wake_.get(), &one, sizeof(one)) != sizeof(one))
    logError(errnoMessage("stop the acceptor thread: eventfd", errno));
}

void AcceptorThread::main() {
  bool pause = false;
  while (!stopping_) {
    // While paused the listening socket is still readable: wait on
    // requestStop() alone, for the back-off, then try again.
    struct pollfd fds[2] = {{wake_.get(), POLLIN, 0}, {listenFd_.get(), POLLIN, 0}};
    const int n = ::poll(fds, pause ? 1 : 2, pause ? kAcceptBackOffMs : -1);
    if (n < 0 && errno != EINTR) {
      // EINVAL: more fds asked about than RLIMIT_NOFILE allows now; ENOMEM.
      // Both pass; ending here would leave the helper deaf for good.
      logError(errnoMessage("accept: poll", errno));
      std::this_thread::sleep_for(std::chrono::milliseconds(kAcceptBackOffMs));
      continue;
    }
    if (n > 0 && fds[0].revents != 0) return;
    bool failed = false;
    pause = !acceptAll(failed);
    if (failed) return;
  }
}

bool AcceptorThread::acceptAll(bool& failed) {
  for (;;) {
    const int fd = ::accept4(listenFd_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd >= 0) {
      rpc_.serveFromAcceptor(identifyClient(ctx_, UniqueFd(fd)));
      continue;
    }
    switch (acceptFailure(errno)) {
      case AcceptFailure::Again:
        continue;
      case AcceptFailure::Empty:
        return true;
      case AcceptFailure::BackOff:
        return false;
      case AcceptFailure::Fatal:
        failed = true;
        return false;
    }
  }
}

}  // namespace gpubox
