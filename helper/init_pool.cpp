#include "init_pool.hpp"

#include <signal.h>
#include <sys/wait.h>

#include <algorithm>

#include "cgroup_janitor.hpp"
#include "cgroup_worker.hpp"
#include "daemon_context.hpp"
#include "error.hpp"
#include "init_spawner.hpp"
#include "log.hpp"
#include "sandbox/syscalls.hpp"

namespace gpubox {

InitPool::InitPool(DaemonContext& ctx, InitSpawner& spawner, bool newNetwork, size_t size,
                   size_t maxSize)
    : ctx_(ctx),
      spawner_(spawner),
      newNetwork_(newNetwork),
      logName_(newNetwork ? "warm inits" : "warm inits (host network)"),
      size_(size),
      floor_(size),
      ceiling_(std::max(size, maxSize)) {
  try {
    mountWatch_.emplace(ctx_.port, [this]() { mountsChanged(); });
  } catch (const std::exception& e) {
    // Without the watch a warm init could show an old mount table: every
    // sandbox gets an init cloned for it instead.
    logError(logName_ + ": off: " + e.what());
    size_ = floor_ = ceiling_ = 0;
  }
  refill();
}

InitPool::~InitPool() {
  backoff_ = nullptr;
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
  std::optional<WarmInit> out;
  // A mount the caller made just before asking may not have reached the
  // loop yet (mountsChanged empties the pool then).
  if (mountWatch_) mountWatch_->checkNow();
  while (!out && !warm_.empty()) {
    WarmInit w = std::move(warm_.front());
    warm_.pop_front();
    // An init that died while it waited (killed by an administrator, the
    // OOM killer), or whose cgroup v1 migration failed, is of no use: the
    // request gets a live one, or one cloned for it.
    siginfo_t info = {};
    const bool died = ::waitid(P_PIDFD, static_cast<id_t>(w.init.pidfd.get()), &info,
                               WEXITED | WNOHANG | WNOWAIT) == 0 &&
                      info.si_pid != 0;
    if (died || w.placement->failed)
      discard(std::move(w));
    else
      out = std::move(w);
  }
  ++(out ? taken_ : missed_);
  // In use down to its last init: not a pool to shrink (shrinkLater).
  if (warm_.empty()) ranDry_ = true;
  // A miss (not while the pool is being remade after a mount change, nor
  // when the pool is off). A pool whose floor is 0 starts growing here.
  if (!out && !waitingForQuiet_ && ceiling_ > 0) grow();
  if (warm_.empty()) scheduleRefill();
  return out;
}

void InitPool::grow() {
  lastChange_ = ctx_.timer.now();
  ranDry_ = false;
  if (size_ < ceiling_) ++size_;
  shrinkLater();
}

// kShrinkInterval after the last miss (or the last shrink), one init fewer,
// unless a take left the pool without a ready init in that time: then
// every init it keeps was used, and the interval starts again. Without
// that rule a pool kept busy just below its size lost an init every
// interval and missed again: the --net host pool (floor 0) under one
// request every few seconds missed every other one.
void InitPool::shrinkLater() {
  if (shrinkArmed_ || size_ <= floor_) return;
  shrinkArmed_ = true;
  tasks_.add(ctx_.timer.atTime(lastChange_ + kShrinkInterval).then([this]() {
    shrinkArmed_ = false;
    const bool idleLongEnough = ctx_.timer.now() - lastChange_ >= kShrinkInterval;
    if (idleLongEnough && ranDry_) {
      ranDry_ = false;
      lastChange_ = ctx_.timer.now();
    } else if (idleLongEnough && size_ > floor_) {
      --size_;
      lastChange_ = ctx_.timer.now();
      if (warm_.size() > size_) {
        WarmInit w = std::move(warm_.back());
        warm_.pop_back();
        discard(std::move(w));
      }
    }
    shrinkLater();
  }));
}

void InitPool::refillAfter(kj::Promise<void> event) {
  tasks_.add(
      event.then([this]() { scheduleRefill(); }, [this](kj::Exception&&) { scheduleRefill(); }));
}

// After the current turn of the loop, not in it: the new inits' cgroup
// directories (a few mkdirs) are no business of the request being served.
void InitPool::scheduleRefill() {
  if (refillScheduled_) return;
  refillScheduled_ = true;
  tasks_.add(kj::evalLater([this]() {
    refillScheduled_ = false;
    refill();
  }));
}

void InitPool::mountsChanged() {
  ++generation_;
  std::deque<WarmInit> stale;
  stale.swap(warm_);
  for (WarmInit& w : stale) discard(std::move(w));
  refillWhenQuiet();
}

// The pool is remade once the mount table has been still for a moment
// (kQuietMs after its last change), not at each change: a host whose mounts
// change in a loop (a user's FUSE mounts, a busy container host) must not
// make the helper clone and kill inits in that loop. Meanwhile requests get
// inits cloned for them, which see the table as it is.
void InitPool::refillWhenQuiet() {
  if (waitingForQuiet_) return;  // the pending wait looks at the generation again
  waitingForQuiet_ = true;
  const uint64_t seen = generation_;
  tasks_.add(ctx_.timer.afterDelay(kQuietMs * kj::MILLISECONDS).then([this, seen]() {
    waitingForQuiet_ = false;
    if (generation_ != seen)
      refillWhenQuiet();
    else
      refill();
  }));
}

void InitPool::discard(WarmInit w) {
  scheduleRefill();
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

void InitPool::refill() {
  if (waitingForQuiet_) return;  // refillWhenQuiet refills
  while (!backingOff_ && warm_.size() + inFlight_ < size_) requestOne();
}

void InitPool::requestOne() {
  const uint64_t id = ++ctx_.sandboxCounter;
  ++inFlight_;
  const uint64_t generation = generation_;
  kj::Promise<std::shared_ptr<cgroup::SandboxCgroup>> cgroupMade = nullptr;
  if (ctx_.cgroupsUnavailable.empty()) {
    // With a v1 devices directory whatever the request turns out to be: a
    // request for a GPU needs it, and one without is no worse off in it
    // (it starts with its parent's rules). Made on the cgroup worker's
    // thread: a mkdir on cgroupfs can wait for the kernel's cgroup_mutex.
    std::vector<cgroup::SandboxCgroup::DirToMake> plan;
    try {
      // The layout's part once (it is decided at start), the name each time.
      if (!cgroupShape_)
        cgroupShape_ = cgroup::SandboxCgroup::emptyShape(
            ctx_.cgroupLayout, ctx_.cgroupLayout.v1Parents.contains("devices"));
      plan = cgroup::SandboxCgroup::named(*cgroupShape_, cgroup::sandboxCgroupName(id));
    } catch (const std::exception& e) {
      --inFlight_;
      failed(e.what());
      return;
    }
    cgroupMade = ctx_.cgroupWorker->makeEmpty(ctx_.cgroupLayout, std::move(plan))
                     .then([](std::unique_ptr<cgroup::SandboxCgroup> cg) {
                       return std::shared_ptr<cgroup::SandboxCgroup>(std::move(cg));
                     });
  } else {
    cgroupMade = std::shared_ptr<cgroup::SandboxCgroup>();
  }
  tasks_.add(cgroupMade
                 .then([this](std::shared_ptr<cgroup::SandboxCgroup> cg) {
                   return spawner_
                       .spawn(ctx_.userNamespace.newPerSandbox, newNetwork_, cg ? cg->v2Fd() : -1)
                       .then(
                           [cg](LaunchedInit init) mutable {
                             return std::make_pair(std::move(cg), std::move(init));
                           },
                           [this, cg](kj::Exception&& e)
                               -> std::pair<std::shared_ptr<cgroup::SandboxCgroup>, LaunchedInit> {
                             if (cg) removeCgroupLater(ctx_, std::move(cg));
                             kj::throwFatalException(kj::mv(e));
                           });
                 })
                 .then(
                     [this, id, generation](
                         std::pair<std::shared_ptr<cgroup::SandboxCgroup>, LaunchedInit> made) {
                       --inFlight_;
                       spawned(id, generation, std::move(made.first), std::move(made.second));
                     },
                     [this](kj::Exception&& e) {
                       --inFlight_;
                       failed(e.getDescription().cStr());
                     }));
}

void InitPool::spawned(uint64_t id, uint64_t generation, std::shared_ptr<cgroup::SandboxCgroup> cg,
                       LaunchedInit init) {
  WarmInit w;
  w.id = id;
  w.generation = generation;
  w.init = std::move(init);
  w.cgroup = std::move(cg);
  w.placement = std::make_shared<WarmPlacement>();
  if (w.cgroup) {
    try {
      auto procs = w.cgroup->v1ProcsFiles();
      if (!procs.empty()) {
        w.placement->done = false;
        auto state = w.placement;
        w.placed = ctx_.cgroupWorker->attach(w.init.pid, std::move(procs))
                       .then([state]() { state->done = true; },
                             [state](kj::Exception&& e) {
                               state->failed = true;
                               kj::throwFatalException(kj::mv(e));
                             })
                       .fork();
      }
    } catch (const std::exception& e) {
      discard(std::move(w));
      failed(e.what());
      return;
    }
  }
  failuresInARow_ = 0;
  // Asked for before the mount table last changed: it may have copied the
  // old one.
  if (generation != generation_) {
    discard(std::move(w));
    scheduleRefill();
    return;
  }
  warm_.push_back(std::move(w));
}

void InitPool::failed(const std::string& why) {
  if (failuresInARow_++ == 0) logError(logName_ + ": " + why);
  if (backingOff_) return;
  // Wait longer after each failure in a row (up to 10 s) instead of spinning.
  backingOff_ = true;
  const uint64_t ms =
      std::min<uint64_t>(10000, uint64_t{50} << std::min<uint64_t>(failuresInARow_, 8));
  backoff_ = ctx_.timer.afterDelay(ms * kj::MILLISECONDS)
                 .then([this]() {
                   backingOff_ = false;
                   refill();
                 })
                 .eagerlyEvaluate(nullptr);
}

void InitPool::taskFailed(kj::Exception&& e) {
  failed(e.getDescription().cStr());
}

}  // namespace gpubox
