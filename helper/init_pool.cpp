#include "init_pool.hpp"

#include <signal.h>
#include <sys/wait.h>

#include "cgroup_attacher.hpp"
#include "cgroup_janitor.hpp"
#include "daemon_context.hpp"
#include "error.hpp"
#include "log.hpp"
#include "sandbox/syscalls.hpp"

namespace gpubox {

InitPool::InitPool(DaemonContext& ctx, size_t size) : ctx_(ctx), size_(size) {
  scheduleRefill();
}

InitPool::~InitPool() {
  refill_ = nullptr;
  for (WarmInit& w : warm_) {
    sys::pidfdSendSignal(w.init.pidfd.get(), SIGKILL);
    siginfo_t info;
    while (::waitid(P_PIDFD, static_cast<id_t>(w.init.pidfd.get()), &info, WEXITED) != 0 &&
           errno == EINTR) {
    }
    if (w.cgroup) w.cgroup->tryRemove();
  }
}

std::optional<WarmInit> InitPool::take() {
  while (!warm_.empty()) {
    WarmInit w = std::move(warm_.front());
    warm_.pop_front();
    scheduleRefill();
    // An init that died while it waited (killed by an administrator, the
    // OOM killer), or whose cgroup v1 migration failed, is of no use: the
    // request gets a live one, or one cloned for it.
    siginfo_t info = {};
    const bool died = ::waitid(P_PIDFD, static_cast<id_t>(w.init.pidfd.get()), &info,
                               WEXITED | WNOHANG | WNOWAIT) == 0 &&
                      info.si_pid != 0;
    if (died || w.placement->failed) {
      discard(std::move(w));
      continue;
    }
    return w;
  }
  scheduleRefill();
  return std::nullopt;
}

void InitPool::discard(WarmInit w) {
  sys::pidfdSendSignal(w.init.pidfd.get(), SIGKILL);
  std::function<void()> release = [cg = std::move(w.cgroup), ctx = &ctx_]() mutable {
    if (cg) removeCgroupLater(*ctx, std::move(cg));
  };
  try {
    ctx_.reaper.reap(w.init.pidfd, release);
  } catch (const kj::Exception&) {
    siginfo_t info;
    while (::waitid(P_PIDFD, static_cast<id_t>(w.init.pidfd.get()), &info, WEXITED) != 0 &&
           errno == EINTR) {
    }
    release();
  }
}

void InitPool::scheduleRefill() {
  if (refilling_ || warm_.size() >= size_) return;
  refilling_ = true;
  // Through the timer, not evalLater: the loop polls its sockets between two
  // timer events, so requests are served between two spawns. After a
  // failure, wait longer each time (up to 10 s) instead of spinning.
  const uint64_t backoffMs =
      failuresInARow_ == 0
          ? 0
          : std::min<uint64_t>(10000, uint64_t{50} << std::min<uint64_t>(failuresInARow_, 8));
  refill_ = ctx_.timer.afterDelay(backoffMs * kj::MILLISECONDS)
                .then([this]() {
                  refilling_ = false;
                  refillOne();
                })
                .eagerlyEvaluate(nullptr);
}

void InitPool::refillOne() {
  if (warm_.size() >= size_) return;
  try {
    warm_.push_back(spawn());
    failuresInARow_ = 0;
  } catch (const std::exception& e) {
    if (failuresInARow_++ == 0) logError(std::string("warm init pool: ") + e.what());
  }
  scheduleRefill();
}

WarmInit InitPool::spawn() {
  WarmInit w;
  w.id = ++ctx_.sandboxCounter;
  w.placement = std::make_shared<WarmPlacement>();
  if (ctx_.cgroupsUnavailable.empty()) {
    // With a v1 devices directory whatever the request turns out to be: a
    // request for a GPU needs it, and one without is no worse off in it (it
    // starts with its parent's rules, which allow what the helper's own
    // cgroup allows; device_rules.hpp).
    w.cgroup =
        cgroup::SandboxCgroup::createEmpty(ctx_.cgroupLayout, cgroup::sandboxCgroupName(w.id),
                                           ctx_.cgroupLayout.v1Parents.contains("devices"));
  }
  try {
    w.init = spawnInit(ctx_.userNamespace.newPerSandbox, /*newNetwork=*/true,
                       w.cgroup ? w.cgroup->v2Fd() : -1);
  } catch (...) {
    if (w.cgroup) w.cgroup->tryRemove();
    throw;
  }
  if (w.cgroup) {
    try {
      auto procs = w.cgroup->openV1Procs();
      if (!procs.empty()) {
        w.placement->done = false;
        auto state = w.placement;
        w.placed = ctx_.cgroupAttacher->attach(w.init.pid, std::move(procs))
                       .then([state]() { state->done = true; },
                             [state](kj::Exception&& e) {
                               state->failed = true;
                               kj::throwFatalException(kj::mv(e));
                             })
                       .fork();
      }
    } catch (...) {
      discard(std::move(w));
      throw;
    }
  }
  return w;
}

}  // namespace gpubox
