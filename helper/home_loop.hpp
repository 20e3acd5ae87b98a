// The home loop: the main thread's event loop, which owns everything a
// sandbox is made of (the pool, the spawners' sockets, the runtimes, the
// sessions, the cgroups, the policy). Connections are served on RPC threads
// (rpc_loops.hpp): they decode a call, run its work here with call(), and
// encode the answer. Nothing owned here is touched from another thread; a
// handle to it crosses threads only inside a HomeShared, whose last copy
// hands the object back here to be released.
#pragma once

#include <kj/async-unix.h>
#include <kj/async.h>
#include <kj/function.h>
#include <kj/mutex.h>

#include <memory>
#include <thread>
#include <type_traits>
#include <vector>

#include "error.hpp"
#include "kj_error.hpp"
#include "unique_fd.hpp"

namespace gpubox {

class HomeLoop {
 public:
  // On the main thread, inside its event loop.
  explicit HomeLoop(kj::UnixEventPort& port);
  ~HomeLoop();
  HomeLoop(const HomeLoop&) = delete;
  HomeLoop& operator=(const HomeLoop&) = delete;

  bool onHome() const { return std::this_thread::get_id() == thread_; }

  // From an event loop: runs FUNC on the home loop and resolves on the
  // caller's loop with its result (FUNC may return a value or a promise).
  // A gpubox::Error thrown by FUNC reaches the caller with its text as is.
  // Dropping the promise cancels FUNC's work (kj::Executor::executeAsync).
  template <typename Func>
  kj::PromiseForResult<Func, void> call(Func&& func) const {
    using Result = kj::PromiseForResult<Func, void>;
    auto run = [func = kj::fwd<Func>(func)]() mutable -> Result {
      return guarded([&]() -> Result {
        if constexpr (std::is_void_v<decltype(func())>) {
          func();
          return kj::READY_NOW;
        } else {
          return func();
        }
      });
    };
    // Connections served on the home loop itself (--rpc-threads 0) call
    // straight in, as when the helper had one loop.
    if (onHome()) return kj::evalNow(kj::mv(run));
    return executor_->executeAsync(kj::mv(run));
  }

  // From any thread: runs FUNC on the home loop soon, without waiting for
  // it. For handing back what must be released here; FUNC must not throw.
  void post(kj::Function<void()> func) const;

  // Runs whatever is posted and not run yet (shutdown, once no thread can
  // post any more).
  void drain() const;

 private:
  kj::Promise<void> watch();

  kj::Own<const kj::Executor> executor_;
  std::thread::id thread_;
  UniqueFd wake_;  // an eventfd: written when the first post arrives
  kj::UnixEventPort::FdObserver observer_;
  kj::MutexGuarded<std::vector<kj::Function<void()>>> posted_;
  kj::Promise<void> watching_ = nullptr;
};

// A home-loop object (a sandbox, a connection's list of sandboxes) held from
// any thread. Copies share it; it is dereferenced only on the home loop, and
// when the last copy goes on another thread the object is released on the
// home loop, never there.
template <typename T>
class HomeShared {
 public:
  HomeShared() = default;
  HomeShared(const HomeLoop& home, std::shared_ptr<T> object)
      : holder_(std::make_shared<Holder>(home, std::move(object))) {}

  T& operator*() const { return *get(); }
  T* operator->() const { return get(); }
  explicit operator bool() const { return holder_ && holder_->object; }

 private:
  struct Holder {
    Holder(const HomeLoop& h, std::shared_ptr<T> o) : home(h), object(std::move(o)) {}
    ~Holder() {
      if (!object || home.onHome()) return;
      home.post([object = std::move(object)]() mutable { object.reset(); });
    }
    const HomeLoop& home;
    std::shared_ptr<T> object;
  };
  T* get() const {
    KJ_ASSERT(holder_ != nullptr && holder_->home.onHome(),
              "a home-loop object touched from another thread");
    return holder_->object.get();
  }
  std::shared_ptr<Holder> holder_;
};

}  // namespace gpubox
