#include "init_spawner.hpp"

#include <fcntl.h>
#include <linux/close_range.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <iterator>

#include "error.hpp"
#include "kj_error.hpp"
#include "log.hpp"
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

[[noreturn]] void runSpawner(int socket, pid_t helper, const char* name) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  if (::getppid() != helper) _exit(0);
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  ::prctl(PR_SET_NAME, name, 0, 0, 0);
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
      LaunchedInit init =
          spawnInit(request.newUser != 0, request.newNetwork != 0, fds.empty() ? -1 : fds[0].get());
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

SpawnerProcess::SpawnerProcess(const char* name) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
    throwErrno("spawner socketpair");
  UniqueFd ours(sv[0]), theirs(sv[1]);
  const pid_t helper = ::getpid();
  pid_ = ::fork();
  if (pid_ < 0) throwErrno("fork an init spawner");
  if (pid_ == 0) {
    ours.reset();
    runSpawner(theirs.get(), helper, name);
  }
  theirs.reset();
  socket_ = std::move(ours);
}

SpawnerProcess::~SpawnerProcess() {
  stop();
}

void SpawnerProcess::stop() {
  socket_.reset();
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
  }
}

bool SpawnerProcess::ask(bool newUser, bool newNetwork, int cgroupFd) {
  if (!socket_) {
    errno = EPIPE;
    return false;
  }
  SpawnRequest request = {newUser ? 1u : 0u, newNetwork ? 1u : 0u};
  std::vector<int> fds;
  if (cgroupFd >= 0) fds.push_back(cgroupFd);
  return sendRecord(socket_.get(), &request, sizeof(request), fds);
}

LaunchedInit SpawnerProcess::initFrom(ssize_t n, const void* data, std::vector<UniqueFd>& fds,
                                      bool newUser, bool newNetwork) {
  SpawnReply reply;
  std::memcpy(&reply, data, sizeof(reply));
  reply.error[sizeof(reply.error) - 1] = '\0';
  if (n != static_cast<ssize_t>(sizeof(reply)) || reply.pid <= 0 || fds.size() != 2)
    throw Error(reply.error[0] ? reply.error : "malformed spawner reply");
  LaunchedInit init{reply.pid, std::move(fds[0]), std::move(fds[1]), newUser, newNetwork, {}};
  std::copy(std::begin(reply.namespaceInodes), std::end(reply.namespaceInodes),
            init.namespaceInodes.begin());
  return init;
}

InitSpawner::Member::Member(kj::UnixEventPort& port) {
  ::fcntl(process.socket(), F_SETFL, ::fcntl(process.socket(), F_GETFL) | O_NONBLOCK);
  observer = kj::heap<kj::UnixEventPort::FdObserver>(port, process.socket(),
                                                     kj::UnixEventPort::FdObserver::OBSERVE_READ);
}

InitSpawner::InitSpawner(kj::UnixEventPort& port, size_t count) {
  for (size_t i = 0; i < std::max<size_t>(count, 1); ++i) {
    members_.push_back(std::make_unique<Member>(port));
    Member& m = *members_.back();
    m.reading = readReplies(m).eagerlyEvaluate([&m](kj::Exception&& e) {
      failAll(m, "the init spawner failed: " + std::string(e.getDescription().cStr()));
    });
  }
}

InitSpawner::~InitSpawner() {
  for (auto& m : members_) {
    m->reading = nullptr;
    m->observer = nullptr;
    m->process.stop();
  }
}

size_t InitSpawner::defaultCount(size_t cpus) {
  return std::clamp<size_t>(cpus / 8, 1, 8);
}

kj::Promise<LaunchedInit> InitSpawner::spawn(bool newUser, bool newNetwork, int cgroupFd) {
  // The one with the fewest requests outstanding; among equals, the next
  // in turn (so that one refill at a time still goes round them all).
  Member* chosen = nullptr;
  size_t at = next_;
  for (size_t i = 0; i < members_.size(); ++i) {
    Member* m = members_[(next_ + i) % members_.size()].get();
    if (!m->exited && (!chosen || m->pending.size() < chosen->pending.size())) {
      chosen = m;
      at = (next_ + i) % members_.size();
    }
  }
  if (!chosen) return callerError("the init spawners have exited");
  next_ = (at + 1) % members_.size();
  // A SOCK_SEQPACKET message this small fits unless hundreds are queued:
  // EAGAIN is reported, never waited for.
  if (!chosen->process.ask(newUser, newNetwork, cgroupFd))
    return callerError(errnoMessage("ask the init spawner", errno));
  auto paf = kj::newPromiseAndFulfiller<LaunchedInit>();
  chosen->pending.push_back({kj::mv(paf.fulfiller), newUser, newNetwork});
  return kj::mv(paf.promise);
}

kj::Promise<void> InitSpawner::readReplies(Member& m) {
  for (;;) {
    SpawnReply reply = {};
    std::vector<UniqueFd> fds;
    const ssize_t n = recvRecord(m.process.socket(), &reply, sizeof(reply), &fds, 2, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      return m.observer->whenBecomesReadable().then([this, &m]() { return readReplies(m); });
    if (n <= 0) {
      failAll(m, "the init spawner exited");
      m.exited = true;
      return kj::READY_NOW;
    }
    if (m.pending.empty()) continue;  // nothing asked: cannot happen; the fds close here
    Pending p = kj::mv(m.pending.front());
    m.pending.pop_front();
    try {
      p.fulfiller->fulfill(SpawnerProcess::initFrom(n, &reply, fds, p.newUser, p.newNetwork));
    } catch (const Error& e) {
      p.fulfiller->reject(callerError(e.what()));
    }
  }
}

void InitSpawner::failAll(Member& m, const std::string& why) {
  for (Pending& p : m.pending) p.fulfiller->reject(callerError(why));
  m.pending.clear();
}

LaunchedInit RequestSpawner::spawn(bool newUser, bool newNetwork, int cgroupFd) {
  if (!broken_.empty()) throw Error(broken_);
  auto fail = [&](std::string why) -> LaunchedInit {
    why +=
        " (" + std::string(kRequestSpawnerName) + ", pid " + std::to_string(process_.pid()) + ")";
    // Its next reply could be taken for another request's: no more.
    process_.stop();
    broken_ = why +
              "; the helper makes no sandbox whose init is cloned for it until it is "
              "restarted";
    logError(broken_);
    throw Error(broken_);
  };
  if (!process_.ask(newUser, newNetwork, cgroupFd))
    return fail(errno == EPIPE || errno == ECONNRESET
                    ? "the init spawner exited"
                    : errnoMessage("ask the init spawner", errno));
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(kReplyTimeoutMs);
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    struct pollfd p = {process_.socket(), POLLIN, 0};
    const int ready = ::poll(&p, 1, static_cast<int>(std::max<int64_t>(left.count(), 0)));
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) return fail(errnoMessage("wait for the init spawner", errno));
    if (ready == 0)
      return fail("the init spawner did not answer within " +
                  std::to_string(kReplyTimeoutMs / 1000) + " s");
    SpawnReply reply = {};
    std::vector<UniqueFd> fds;
    const ssize_t n = recvRecord(process_.socket(), &reply, sizeof(reply), &fds, 2, MSG_DONTWAIT);
    if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) continue;
    if (n == 0) return fail("the init spawner exited");
    if (n < 0) return fail(errnoMessage("read the init spawner's reply", errno));
    return SpawnerProcess::initFrom(n, &reply, fds, newUser, newNetwork);
  }
}

}  // namespace gpubox
