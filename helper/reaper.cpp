#include "reaper.hpp"

#include <sys/wait.h>

#include <kj/debug.h>

namespace gpubox {

void Reaper::reap(UniqueFd pidfd, std::function<void()> afterReap) {
  entries_.push_back(Entry{std::move(pidfd), std::move(afterReap), {}, nullptr});
  auto it = std::prev(entries_.end());
  it->observer = kj::heap<kj::UnixEventPort::FdObserver>(
      port_, it->pidfd.get(), kj::UnixEventPort::FdObserver::OBSERVE_READ);
  it->task = it->observer->whenBecomesReadable()
                 .then([this, it]() { finish(it); })
                 .eagerlyEvaluate([](kj::Exception&& e) {
                   KJ_LOG(ERROR, "reaper failed", e);
                 });
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
