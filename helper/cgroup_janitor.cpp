#include "cgroup_janitor.hpp"

#include <kj/async.h>

#include "cgroup_worker.hpp"
#include "log.hpp"

namespace gpubox {

namespace {

constexpr int kAttempts = 250;
constexpr auto kInterval = 20 * kj::MILLISECONDS;

void reportStillBusy(const cgroup::SandboxCgroup& cg) {
  std::string dirs;
  for (const std::string& d : cg.directories()) dirs += " " + d;
  logError("cannot remove the cgroup of an ended sandbox (still busy after 5 s):" + dirs);
}

// rmdir on the cgroup worker's thread (it can wait on the kernel's
// cgroup_mutex; see cgroup_worker.hpp), then again every kInterval while a
// directory is busy (its last process not yet reaped by the kernel).
kj::Promise<void> removeOffLoop(DaemonContext& ctx, std::shared_ptr<cgroup::SandboxCgroup> cg,
                                int left) {
  std::vector<std::string> dirs = cg->directories();
  return ctx.cgroupWorker->remove(dirs).then(
      [&ctx, cg = std::move(cg), dirs, left](std::vector<int> errors) mutable -> kj::Promise<void> {
        if (cg->noteRemoval(dirs, errors)) return kj::READY_NOW;
        if (left == 0) {
          reportStillBusy(*cg);
          return kj::READY_NOW;
        }
        return ctx.timer.afterDelay(kInterval).then([&ctx, cg = std::move(cg), left]() mutable {
          return removeOffLoop(ctx, std::move(cg), left - 1);
        });
      });
}

// Without a worker (a context made without one): rmdir on the loop.
kj::Promise<void> retryOnLoop(kj::Timer& timer, std::shared_ptr<cgroup::SandboxCgroup> cg,
                              int left) {
  return timer.afterDelay(kInterval).then([&timer, cg = std::move(cg), left]() mutable {
    if (cg->tryRemove()) return kj::Promise<void>(kj::READY_NOW);
    if (left == 0) {
      reportStillBusy(*cg);
      return kj::Promise<void>(kj::READY_NOW);
    }
    return retryOnLoop(timer, std::move(cg), left - 1);
  });
}

}  // namespace

void removeCgroupLater(DaemonContext& ctx, std::shared_ptr<cgroup::SandboxCgroup> cg) {
  try {
    kj::Promise<void> removal = nullptr;
    if (ctx.cgroupWorker) {
      removal = removeOffLoop(ctx, std::move(cg), kAttempts);
    } else {
      if (cg->tryRemove()) return;
      removal = retryOnLoop(ctx.timer, std::move(cg), kAttempts);
    }
    removal.detach([](kj::Exception&& e) {
      logError(std::string("cgroup removal failed: ") + e.getDescription().cStr());
    });
  } catch (const kj::Exception&) {
    // No event loop any more (shutdown): the cgroup's destructor tries once
    // more, and the next helper's start-up removes whatever is left.
  }
}

}  // namespace gpubox
