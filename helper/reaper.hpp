// Collects sandbox inits after they were told to die, without ever blocking
// the event loop: each pidfd is watched until the kernel says the process
// exited, then reaped, and only then is whatever the sandbox held (its
// cgroups, its GPU leases, its log record) released.
#pragma once

#include <kj/async-unix.h>

#include <functional>
#include <list>
#include <memory>

#include "unique_fd.hpp"

namespace gpubox {

class Reaper {
 public:
  explicit Reaper(kj::UnixEventPort& port) : port_(port) {}

  // Takes the pidfd of a process that has been (or is about to be) killed;
  // `afterReap` runs once it has been reaped. Takes ownership of both only
  // on success: if it throws (no event loop), the caller still has them.
  void reap(UniqueFd& pidfd, std::function<void()>& afterReap);

  size_t pending() const { return entries_.size(); }

 private:
  struct Entry {
    UniqueFd pidfd;
    std::function<void()> afterReap;
    kj::Own<kj::UnixEventPort::FdObserver> observer;
    kj::Promise<void> task = nullptr;
  };
  void finish(std::list<Entry>::iterator it);

  kj::UnixEventPort& port_;
  std::list<Entry> entries_;
};

}  // namespace gpubox
