#include "cgroup_janitor.hpp"

#include <kj/async.h>

#include "log.hpp"

namespace gpubox {

namespace {

constexpr int kAttempts = 250;
constexpr auto kInterval = 20 * kj::MILLISECONDS;

kj::Promise<void> retry(kj::Timer& timer, std::shared_ptr<cgroup::SandboxCgroup> cg, int left) {
  return timer.afterDelay(kInterval).then([&timer, cg = std::move(cg), left]() mutable {
    if (cg->tryRemove()) return kj::Promise<void>(kj::READY_NOW);
    if (left == 0) {
      std::string dirs;
      for (const std::string& d : cg->directories()) dirs += " " + d;
      logError("cannot remove the cgroup of an ended sandbox (still busy after 5 s):" + dirs);
      return kj::Promise<void>(kj::READY_NOW);
    }
    return retry(timer, std::move(cg), left - 1);
  });
}

}  // namespace

void removeCgroupLater(DaemonContext& ctx, std::shared_ptr<cgroup::SandboxCgroup> cg) {
  if (cg->tryRemove()) return;
  try {
    retry(ctx.timer, std::move(cg), kAttempts).detach([](kj::Exception&& e) {
      logError(std::string("cgroup removal failed: ") + e.getDescription().cStr());
    });
  } catch (const kj::Exception&) {
    // No event loop any more (shutdown): the cgroup's destructor tries once
    // more, and the next helper's start-up removes whatever is left.
  }
}

}  // namespace gpubox
