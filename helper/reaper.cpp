#include "reaper.hpp"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <kj/debug.h>

#include <string>
#include <vector>

#include "error.hpp"
#include "home_loop.hpp"
#include "log.hpp"
#include "named_thread.hpp"

namespace gpubox {

namespace {

// An epoll event's data: the entry's id and its pidfd's number, so that the
// thread never touches the home loop's table.
constexpr uint64_t kWake = ~uint64_t{0};
uint64_t pack(uint32_t id, int fd) {
  return (uint64_t{id} << 32) | static_cast<uint32_t>(fd);
}
uint32_t idOf(uint64_t data) {
  return static_cast<uint32_t>(data >> 32);
}
int fdOf(uint64_t data) {
  return static_cast<int>(static_cast<uint32_t>(data));
}

void waitForExit(int pidfd) {
  siginfo_t info = {};
  while (::waitid(P_PIDFD, static_cast<id_t>(pidfd), &info, WEXITED) != 0 && errno == EINTR) {
  }
}

}  // namespace

Reaper::Reaper()
    : epoll_(::epoll_create1(EPOLL_CLOEXEC)), wake_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  if (!epoll_) throwErrno("epoll_create1");
  if (!wake_) throwErrno("eventfd");
  struct epoll_event ev = {};
  ev.events = EPOLLIN;
  ev.data.u64 = kWake;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, wake_.get(), &ev) != 0) throwErrno("epoll_ctl");
}

Reaper::~Reaper() {
  stop();
}

void Reaper::start(const HomeLoop& home) {
  if (thread_.joinable()) return;
  home_ = &home;
  try {
    thread_ = startNamedThread("gpubox-reap", {}, [this] { run(); });
  } catch (const Error&) {
    home_ = nullptr;
    throw;
  }
}

void Reaper::stop() {
  if (thread_.joinable()) {
    const uint64_t one = 1;
    if (::write(wake_.get(), &one, sizeof(one)) != sizeof(one))
      logError(errnoMessage("stop the reaper thread: eventfd", errno));
    thread_.join();
  }
  home_ = nullptr;
  // What the thread had not reaped, or had and whose release is still
  // queued on the home loop (that post will find nothing): reaped here.
  Table left = std::move(*table_);
  table_->clear();
  for (auto& [id, entry] : left) {
    waitForExit(entry.pidfd.get());  // ECHILD if the thread already reaped it
    entry.pidfd.reset();
    if (entry.afterReap) entry.afterReap();
  }
}

void Reaper::reap(UniqueFd& pidfd, std::function<void()>& afterReap) {
  if (!home_) {
    // Starting or shutting down: no thread to hand it to.
    waitForExit(pidfd.get());
    pidfd.reset();
    std::function<void()> after = std::move(afterReap);
    if (after) after();
    return;
  }
  const uint32_t id = nextId_++;
  struct epoll_event ev = {};
  // Once: the thread reaps it, and its release here closes the pidfd.
  ev.events = EPOLLIN | EPOLLONESHOT;
  ev.data.u64 = pack(id, pidfd.get());
  // The entry first: the thread may reap it and post its release at once
  // (which runs here, on a later turn of the loop).
  Entry& entry = (*table_)[id];
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, pidfd.get(), &ev) != 0) {
    const int err = errno;
    table_->erase(id);
    KJ_FAIL_SYSCALL("epoll_ctl(the reaper's)", err);
  }
  entry.pidfd = std::move(pidfd);
  entry.afterReap = std::move(afterReap);
}

void Reaper::run() {
  std::weak_ptr<Table> table = table_;
  struct epoll_event events[64];
  for (;;) {
    const int n = ::epoll_wait(epoll_.get(), events, 64, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      logError(errnoMessage("the reaper thread: epoll_wait", errno));
      return;
    }
    std::vector<uint32_t> reaped;
    for (int i = 0; i < n; ++i) {
      if (events[i].data.u64 == kWake) return;
      waitForExit(fdOf(events[i].data.u64));
      reaped.push_back(idOf(events[i].data.u64));
    }
    home_->post([table, reaped = std::move(reaped)]() {
      for (uint32_t id : reaped) released(table, id);
    });
  }
}

void Reaper::released(const std::weak_ptr<Table>& table, uint32_t id) {
  auto t = table.lock();
  if (!t) return;
  auto it = t->find(id);
  if (it == t->end()) return;  // stop() released it already
  std::function<void()> after = std::move(it->second.afterReap);
  t->erase(it);  // closes the pidfd
  if (after) after();
}

}  // namespace gpubox
