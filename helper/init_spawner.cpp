#include "init_spawner.hpp"

#include <fcntl.h>
#include <linux/close_range.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <iterator>

#include "error.hpp"
#include "kj_error.hpp"
#include "sandbox/fd_passing.hpp"

namespace gpubox {

namespace {

struct SpawnRequest {
  uint32_t newUser;
  uint32_t newNetwork;
};

struct SpawnReply {
  int32_t pid;  // > 0: fds [pidfd, control] come with it
  char error[500];
  uint64_t namespaceInodes[kInitNamespaces.size()];  // LaunchedInit::namespaceInodes
};

constexpr int kSpawnerSocket = 3;

[[noreturn]] void runSpawner(int socket, pid_t helper) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  if (::getppid() != helper) _exit(0);
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  ::prctl(PR_SET_NAME, "gpubox-spawner", 0, 0, 0);
  // Nothing of the helper's (its listening socket, its connections) stays
  // here; stdio stay, so a failure can still be logged.
  if (socket != kSpawnerSocket && ::dup2(socket, kSpawnerSocket) != kSpawnerSocket) _exit(1);
  ::syscall(SYS_close_range, kSpawnerSocket + 1, ~0U, 0);
  ::fcntl(kSpawnerSocket, F_SETFD, FD_CLOEXEC);
  for (;;) {
    SpawnRequest request = {};
    std::vector<UniqueFd> fds;
    const ssize_t n = recvRecord(kSpawnerSocket, &request, sizeof(request), &fds, 1);
    if (n <= 0) _exit(0);  // the helper is gone or closed us
    SpawnReply reply = {};
    if (n != static_cast<ssize_t>(sizeof(request))) {
      std::strncpy(reply.error, "malformed spawn request", sizeof(reply.error) - 1);
      sendRecord(kSpawnerSocket, &reply, sizeof(reply), {});
      continue;
    }
    try {
      LaunchedInit init = spawnInit(request.newUser != 0, request.newNetwork != 0,
                                    fds.empty() ? -1 : fds[0].get(), /*sibling=*/true);
      reply.pid = init.pid;
      std::copy(init.namespaceInodes.begin(), init.namespaceInodes.end(), reply.namespaceInodes);
      if (!sendRecord(kSpawnerSocket, &reply, sizeof(reply),
                      {init.pidfd.get(), init.control.get()})) {
        ::syscall(SYS_pidfd_send_signal, init.pidfd.get(), SIGKILL, nullptr, 0);
        _exit(0);
      }
    } catch (const std::exception& e) {
      std::strncpy(reply.error, e.what(), sizeof(reply.error) - 1);
      sendRecord(kSpawnerSocket, &reply, sizeof(reply), {});
    }
  }
}

}  // namespace

InitSpawner::InitSpawner(kj::UnixEventPort& port) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
    throwErrno("spawner socketpair");
  UniqueFd ours(sv[0]), theirs(sv[1]);
  const pid_t helper = ::getpid();
  pid_ = ::fork();
  if (pid_ < 0) throwErrno("fork the init spawner");
  if (pid_ == 0) {
    ours.reset();
    runSpawner(theirs.get(), helper);
  }
  theirs.reset();
  socket_ = std::move(ours);
  ::fcntl(socket_.get(), F_SETFL, ::fcntl(socket_.get(), F_GETFL) | O_NONBLOCK);
  observer_ = kj::heap<kj::UnixEventPort::FdObserver>(port, socket_.get(),
                                                      kj::UnixEventPort::FdObserver::OBSERVE_READ);
  reading_ = readReplies().eagerlyEvaluate([this](kj::Exception&& e) {
    failAll("the init spawner failed: " + std::string(e.getDescription().cStr()));
  });
}

InitSpawner::~InitSpawner() {
  reading_ = nullptr;
  observer_ = nullptr;
  socket_.reset();
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
}

kj::Promise<LaunchedInit> InitSpawner::spawn(bool newUser, bool newNetwork, int cgroupFd) {
  if (!socket_) return callerError("the init spawner has exited");
  SpawnRequest request = {newUser ? 1u : 0u, newNetwork ? 1u : 0u};
  std::vector<int> fds;
  if (cgroupFd >= 0) fds.push_back(cgroupFd);
  // A SOCK_SEQPACKET message this small fits unless hundreds are queued:
  // EAGAIN is reported, never waited for.
  if (!sendRecord(socket_.get(), &request, sizeof(request), fds))
    return callerError(errnoMessage("ask the init spawner", errno));
  auto paf = kj::newPromiseAndFulfiller<LaunchedInit>();
  pending_.push_back({kj::mv(paf.fulfiller), newUser, newNetwork});
  return kj::mv(paf.promise);
}

kj::Promise<void> InitSpawner::readReplies() {
  for (;;) {
    SpawnReply reply = {};
    std::vector<UniqueFd> fds;
    const ssize_t n = recvRecord(socket_.get(), &reply, sizeof(reply), &fds, 2, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      return observer_->whenBecomesReadable().then([this]() { return readReplies(); });
    if (n <= 0) {
      failAll("the init spawner exited");
      socket_.reset();
      return kj::READY_NOW;
    }
    if (pending_.empty()) continue;  // nothing asked: cannot happen; the fds close here
    Pending p = kj::mv(pending_.front());
    pending_.pop_front();
    reply.error[sizeof(reply.error) - 1] = '\0';
    if (n != static_cast<ssize_t>(sizeof(reply)) || reply.pid <= 0 || fds.size() != 2) {
      p.fulfiller->reject(callerError(reply.error[0] ? reply.error : "malformed spawner reply"));
      continue;
    }
    LaunchedInit init{reply.pid, std::move(fds[0]), std::move(fds[1]), p.newUser, p.newNetwork, {}};
    std::copy(std::begin(reply.namespaceInodes), std::end(reply.namespaceInodes),
              init.namespaceInodes.begin());
    p.fulfiller->fulfill(std::move(init));
  }
}

void InitSpawner::failAll(const std::string& why) {
  for (Pending& p : pending_) p.fulfiller->reject(callerError(why));
  pending_.clear();
}

}  // namespace gpubox
