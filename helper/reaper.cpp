#include "reaper.hpp"

#include <sys/wait.h>

#include <kj/debug.h>

namespace gpubox {

void Reaper::reap(UniqueFd& pidfd, std::function<void()>& afterReap) {
  // Everything that can throw (it needs a running event loop) happens before
  // ownership moves, so on failure the caller still holds both.
  auto observer = kj::heap<kj::UnixEventPort::FdObserver>(
      port_, pidfd.get(), kj::UnixEventPort::FdObserver::OBSERVE_READ);
  auto readable = observer->whenBecomesReadable();
  entries_.push_back(Entry{UniqueFd(), nullptr, kj::mv(observer), nullptr});
  auto it = std::prev(entries_.end());
  it->task = readable.then([this, it]() { finish(it); }).eagerlyEvaluate([](kj::Exception&& e) {
    KJ_LOG(ERROR, "reaper failed", e);
  });
  it->pidfd = std::move(pidfd);
  it->afterReap = std::move(afterReap);
}

void Reaper::finish(std::list<Entry>::iterator it) {
  siginfo_t info = {};
  while (::waitid(P_PIDFD, static_cast<id_t>(it->pidfd.get()), &info, WEXITED) != 0 &&
         errno == EINTR) {
  }
  std::function<void()> after = std::move(it->afterReap);
  // Destroying the entry destroys the promise that is running this callback;
  // kj allows that only after the callback returns, so defer it.
  kj::evalLater([this, it]() { entries_.erase(it); }).detach([](kj::Exception&&) {});
  if (after) after();
}

}  // namespace gpubox
