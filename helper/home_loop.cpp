#include "home_loop.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include "log.hpp"

namespace gpubox {

HomeLoop::HomeLoop(kj::UnixEventPort& port)
    : executor_(kj::getCurrentThreadExecutor().addRef()),
      thread_(std::this_thread::get_id()),
      wake_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)),
      observer_(port, wake_.get(), kj::UnixEventPort::FdObserver::OBSERVE_READ) {
  if (!wake_) throwErrno("eventfd for the home loop");
  watching_ = watch().eagerlyEvaluate([](kj::Exception&& e) {
    logError(std::string("the home loop's queue failed: ") + e.getDescription().cStr());
  });
}

HomeLoop::~HomeLoop() {
  watching_ = nullptr;
  drain();
}

void HomeLoop::post(kj::Function<void()> func) const {
  bool first;
  {
    auto lock = posted_.lockExclusive();
    first = lock->empty();
    lock->push_back(kj::mv(func));
  }
  if (first) {
    const uint64_t one = 1;
    // Cannot fail short of a counter at its maximum, which one write per
    // empty queue never reaches.
    [[maybe_unused]] ssize_t n = ::write(wake_.get(), &one, sizeof(one));
  }
}

void HomeLoop::drain() const {
  for (;;) {
    std::vector<kj::Function<void()>> batch;
    {
      auto lock = posted_.lockExclusive();
      batch.swap(*lock);
    }
    if (batch.empty()) return;
    for (auto& func : batch) func();
  }
}

kj::Promise<void> HomeLoop::watch() {
  return observer_.whenBecomesReadable().then([this]() {
    // One read takes the whole counter (not EFD_SEMAPHORE); a post after it
    // wakes this again.
    uint64_t count;
    [[maybe_unused]] ssize_t n = ::read(wake_.get(), &count, sizeof(count));
    drain();
    return watch();
  });
}

}  // namespace gpubox
