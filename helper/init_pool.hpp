// Warm inits: sandbox inits cloned into fresh namespaces and joined to fresh
// cgroups before any request needs them, so a request skips the clone
// (~1 ms), the cgroup directories and, on cgroup v1 hosts, the migration into
// each v1 hierarchy (1 ms at the median, 5-15 ms when the kernel waits for
// an RCU grace period; docs/performance.md).
//
// A warm init has run nothing but its own start: it waits for ToInit::Go
// with its configuration (launcher.hpp), and until then it has no uid/gid
// maps, no mounts of its own, no limits and no caller. Everything that
// depends on the request (the maps, the limits and device rules written to
// its cgroup, the mount plan, the seccomp filter, the GPU) is applied when a
// request takes it, exactly as for an init cloned for that request; each
// init serves one sandbox and is never reused. The user-namespace mode is
// the helper's, fixed at start; the network namespace is the pool's: the
// helper keeps two pools, one of inits in network namespaces of their own
// (--warm-inits) and one of inits in the host's, for --net host
// (--warm-inits-host-net, by default empty until such requests come; a
// bwrap-based agent with network access asks for it through gpubox-bwrap).
//
// A warm init's mount namespace is a copy of the helper's taken at its
// clone: when the helper's mount table changes (mount_table_watch.hpp) every
// waiting init is killed, so a sandbox never shows an older host than an
// init cloned for its request would; the pool is made again once the table
// has been still for kQuietMs (a host that mounts in a loop gets no pool,
// rather than a helper that clones in that loop).
//
// The pool refills itself after each take: the spawner process
// (init_spawner.hpp) clones the inits and the cgroup worker makes their
// directories, so refilling costs the event loop a message per init, never
// a clone. A request that finds the pool empty gets an init cloned for it
// by the requests' spawner, and waits for it (about 1 ms, and its cgroup
// directories on the loop): so the pool's size
// follows demand. Each such miss raises it by one, up to --warm-inits-max
// (by default kGrowth times the configured size, and at least
// kDefaultCeiling); after kShrinkInterval without a miss it goes back down
// by one, to the configured size (not while takes keep emptying it: then
// it is the size the load uses). The ceiling must reach the load's
// concurrency: an init taken is replaced only once its sandbox has run its
// command (refillAfter), so under a steady load about as many inits are
// owed as sandboxes run at once (32 clients on the 2-core VM: 40% of runs
// missed a pool capped at 16, 2% with room to grow; docs/performance.md).
#pragma once

#include <kj/async.h>

#include <algorithm>
#include <deque>
#include <memory>
#include <optional>
#include <string>

#include "cgroup/sandbox_cgroup.hpp"
#include "mount_table_watch.hpp"
#include "sandbox/launcher.hpp"

namespace gpubox {

struct DaemonContext;
class InitSpawner;

// Where a warm init stands with its cgroup v1 hierarchies (joined off the
// loop by the CgroupWorker while it waits).
struct WarmPlacement {
  bool done = true;  // also when there is nothing to join (cgroup v2, no cgroups)
  bool failed = false;
};

struct WarmInit {
  uint64_t id = 0;          // the sandbox id it was made for (its cgroup's name)
  uint64_t generation = 0;  // the helper's mount table it copied (InitPool::generation_)
  LaunchedInit init;
  std::shared_ptr<cgroup::SandboxCgroup> cgroup;  // null when the helper has no cgroups
  // Set by the cgroup worker's promise; shared with it, so never holding it.
  std::shared_ptr<WarmPlacement> placement;
  std::optional<kj::ForkedPromise<void>> placed;  // while !placement->done: resolves once joined
};

class InitPool : private kj::TaskSet::ErrorHandler {
 public:
  // Keeps SIZE warm inits, cloned by SPAWNER (which must outlive the pool),
  // each in a network namespace of its own when NEWNETWORK, else in the
  // host's. SIZE (--warm-inits, --warm-inits-host-net) is the least it
  // keeps, 0 included; it grows on demand (above), up to MAXSIZE
  // (--warm-inits-max; not below SIZE).
  InitPool(DaemonContext& ctx, InitSpawner& spawner, bool newNetwork, size_t size, size_t maxSize);
  // Kills the warm inits left and waits for them (short: they are SIGKILLed).
  ~InitPool();
  InitPool(const InitPool&) = delete;
  InitPool& operator=(const InitPool&) = delete;

  // A warm init (with a network namespace as newNetwork() says), or none
  // (the pool is empty).
  // If that leaves the pool empty, it refills at once (the next turn of the
  // loop); otherwise the caller says when with refillAfter.
  std::optional<WarmInit> take();
  // Refills once EVENT settles (resolved or rejected): the caller's choice
  // of a moment when the taken init's sandbox no longer waits on the
  // machine (sandbox_factory.cpp: its first command ended, or a while after
  // it became ready). The clone into new namespaces, made at the take, ran
  // beside that sandbox's setup and start and slowed them: a back-to-back
  // `run` was 1.20x bwrap's then, 1.03x after (2-core VM,
  // docs/performance.md).
  void refillAfter(kj::Promise<void> event);
  // Kills and reaps W's init, then removes its cgroup: for a warm init taken
  // by a request that then failed before using it. Schedules a refill.
  void discard(WarmInit w);

  bool newNetwork() const { return newNetwork_; }
  size_t size() const { return size_; }  // now; between the floor and the ceiling
  size_t floor() const { return floor_; }
  size_t ceiling() const { return ceiling_; }
  // Since start: requests that took a warm init, and requests that found
  // none ready and had one cloned for them (a miss). gpubox info shows them
  // to root: whether --warm-inits fits the load.
  uint64_t taken() const { return taken_; }
  uint64_t missed() const { return missed_; }
  static constexpr size_t kGrowth = 4;
  static constexpr size_t kDefaultCeiling = 64;  // about 0.5 MiB of memory per waiting init
  // --warm-inits-max when not given, for --warm-inits FLOOR.
  static size_t defaultCeiling(size_t floor) { return std::max(kGrowth * floor, kDefaultCeiling); }
  static constexpr auto kShrinkInterval = 10 * kj::SECONDS;
  size_t ready() const { return warm_.size(); }

  // The helper's mount table changed: kills every waiting init (their copies
  // are out of date, and may pin what the host unmounted) and makes new ones.
  void mountsChanged();

 private:
  void refill();
  void requestOne();
  void scheduleRefill();
  void refillWhenQuiet();
  void spawned(uint64_t id, uint64_t generation, std::shared_ptr<cgroup::SandboxCgroup> cgroup,
               LaunchedInit init);
  void failed(const std::string& why);
  // A take found no init: one more is kept from now on (up to the ceiling).
  void grow();
  void shrinkLater();
  void taskFailed(kj::Exception&& e) override;

  DaemonContext& ctx_;
  InitSpawner& spawner_;
  bool newNetwork_;
  std::string logName_;  // "warm inits", and which pool
  size_t size_;
  size_t floor_;                                            // --warm-inits
  size_t ceiling_;                                          // --warm-inits-max
  kj::TimePoint lastChange_ = kj::origin<kj::TimePoint>();  // the last miss or shrink
  bool shrinkArmed_ = false;
  bool ranDry_ = false;  // since lastChange_, a take left no init ready
  std::deque<WarmInit> warm_;
  size_t inFlight_ = 0;
  // Each warm init's cgroup directories but for its name (requestOne).
  std::optional<cgroup::SandboxCgroup::EmptyShape> cgroupShape_;
  uint64_t taken_ = 0;
  uint64_t missed_ = 0;
  uint64_t failuresInARow_ = 0;
  bool backingOff_ = false;
  bool refillScheduled_ = false;
  uint64_t generation_ = 0;  // one more after each change of the mount table
  static constexpr uint64_t kQuietMs = 100;
  bool waitingForQuiet_ = false;  // a change was seen; refill once the table is still
  kj::Promise<void> backoff_ = nullptr;
  std::optional<MountTableWatch> mountWatch_;
  kj::TaskSet tasks_{*this};  // last: destroyed first, so no callback outlives the rest
};

}  // namespace gpubox
