// Tells when the helper's mount table changes. The kernel marks
// /proc/self/mountinfo readable-with-priority (POLLPRI|POLLERR) whenever a
// mount or unmount happens in the reader's mount namespace; the watch turns
// that into a callback on the event loop, and costs nothing in between.
//
// Warm inits need it (init_pool.hpp): each holds a copy of the helper's
// mount namespace taken when it was cloned. Where the host's mounts are
// shared (systemd hosts) that copy keeps receiving the host's mounts and
// unmounts as a slave until the request, but where they are private
// (containers, pods, hosts without systemd) nothing reaches it: a
// filesystem mounted after the clone would be missing from the sandbox and
// one unmounted would stay pinned by the waiting init.
#pragma once

#include <kj/async-unix.h>

#include <functional>

#include "unique_fd.hpp"

namespace gpubox {

class MountTableWatch {
 public:
  // Calls ON_CHANGE on the loop after each change (several changes in a row
  // may come as one call). Throws gpubox::Error when /proc/self/mountinfo
  // cannot be opened.
  MountTableWatch(kj::UnixEventPort& port, std::function<void()> onChange);
  MountTableWatch(const MountTableWatch&) = delete;
  MountTableWatch& operator=(const MountTableWatch&) = delete;

  // Whether the table changed since the last look (one poll(2), no wait),
  // and if so calls ON_CHANGE now. For callers that cannot wait for the
  // loop's next turn: a change made just before a request may not have been
  // reported yet when the request is served.
  bool checkNow();

 private:
  kj::Promise<void> watch();

  UniqueFd fd_;
  std::function<void()> onChange_;
  kj::UnixEventPort::FdObserver observer_;
  kj::Promise<void> watching_ = nullptr;  // last: cancelled before the rest goes
};

}  // namespace gpubox
