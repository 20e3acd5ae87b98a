// State the whole helper shares across connections.
#pragma once

#include <kj/async-unix.h>
#include <kj/timer.h>

#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cgroup/sandbox_cgroup.hpp"
#include "sandbox/seccomp_profile.hpp"

#include "gpu_inventory_cache.hpp"
#include "lease_table.hpp"
#include "log.hpp"
#include "peer.hpp"
#include "policy.hpp"
#include "reaper.hpp"
#include "sandbox/mount_engine.hpp"
#include "sandbox_defaults.hpp"
#include "user_namespace_mode.hpp"

namespace gpubox {

struct HelperLimits {
  size_t maxSandboxesPerConnection = 64;
  size_t maxSandboxesTotal = 1024;
  size_t maxConnections = 512;
  // Calls whose answer is not ready yet. A `gpubox run` has 3 (create, exec,
  // wait); a program driving a session's commands has one wait per command.
  size_t maxCallsPerConnection = 256;  // --max-calls-per-connection
  size_t maxCallsTotal = 8192;         // all connections together
  // Answers the client has not read yet (waiting in the helper to be
  // written): a client past either bound is disconnected. An answer is at
  // most a few hundred KiB (a long `ps`).
  size_t maxQueuedAnswers = 256;
  size_t maxQueuedAnswerBytes = 8 * 1024 * 1024;
  // Answers a client has not finished (Cap'n Proto keeps each, results
  // included, until the client's Finish); calls in flight are among them.
  size_t maxOpenAnswersPerConnection = 1024;
  // A connection with no call in flight and no sandbox for this long is
  // closed (--idle-connection-timeout; 0: never).
  uint64_t idleConnectionTimeoutMs = 60 * 1000;
};

class SessionRegistry;
class CgroupWorker;
class InitPool;
class InitSpawner;
class RequestSpawner;
struct LiveSandbox;

struct DaemonContext {
  DaemonContext(kj::UnixEventPort& p, kj::Timer& t);
  ~DaemonContext();
  kj::UnixEventPort& port;
  kj::Timer& timer;
  SandboxNamespaces sandboxNamespaces;
  std::vector<MaskedSocket> helperSockets;  // hidden inside every sandbox
  HelperLimits limits;
  policy::Policy policy = policy::Policy::empty();
  std::string driverRoot = "/";
  // The GPUs under driverRoot, discovered off the event loop (made in main,
  // after the capability drop, like cgroupWorker).
  std::unique_ptr<GpuInventoryCache> gpuInventory;
  leases::LeaseTable leases;
  uint64_t sandboxCounter = 0;
  size_t liveSandboxes = 0;
  std::atomic<size_t> liveConnections = 0;  // counted down on the RPC threads
  // Helper-wide: built-ins, the policy's [defaults], then the flags given
  // (flagLimits, kept so that a policy reload can apply them again). A
  // caller's own come from caller_policy.
  // Over all connections (HelperLimits::maxCallsTotal), on every RPC thread.
  std::atomic<size_t> callsInFlight = 0;
  SandboxDefaults defaults;
  policy::LimitSettings flagLimits;
  SeccompProgram seccomp;              // the default profile, built once at start
  SeccompProgram seccompNestedUserns;  // the same, new user namespaces allowed
  // Whether sandboxes get their own user namespace: the setting
  // (--user-namespace, else the policy's user_namespace, else auto) is
  // decided against the kernel once at start (main.cpp), never per request.
  UserNamespaceChoice userNamespace;
  cgroup::Layout cgroupLayout;  // decided once at start
  // Why the helper has no cgroups to give sandboxes (e.g. a read-only
  // /sys/fs/cgroup in a pod), or "" when it has. Without them, requests for
  // limits or GPUs are refused; nothing else needs a cgroup.
  std::string cgroupsUnavailable;
  // Live sandboxes (until reaped) per uid, for --max-sandboxes-per-uid.
  std::map<uid_t, size_t> sandboxesPerUid;
  // Every sandbox that still runs, runs and sessions alike (gpubox ps).
  std::map<uint64_t, std::weak_ptr<LiveSandbox>> sandboxTable;
  std::unique_ptr<SessionRegistry> sessions;
  // Joins inits to v1 hierarchies off the loop. Made in main, like
  // gpuInventory, once the helper has dropped the capabilities it does not
  // keep: a thread starts with those of the thread that makes it.
  std::unique_ptr<CgroupWorker> cgroupWorker;
  // A second one for the device rules of GPU (and --dev-bind) sandboxes
  // (SandboxCgroup::planDevices): their request waits on them, so they must
  // not queue behind the pool's v1 joins, each of which waits for an RCU
  // grace period.
  std::unique_ptr<CgroupWorker> deviceWorker;
  // Inits made ahead of requests (--warm-inits; null: none) by the spawner
  // process. After the cgroup worker, so it goes first: its inits' placements
  // use the cgroup worker.
  std::unique_ptr<InitSpawner> initSpawner;
  // Clones the init of a request that takes none from the pool; every
  // helper has one (made in main before any thread, like initSpawner).
  std::unique_ptr<RequestSpawner> requestSpawner;
  // The two pools (init_pool.hpp), both null with --warm-inits 0: inits in
  // network namespaces of their own, and inits in the host's (--net host).
  std::unique_ptr<InitPool> initPool;
  std::unique_ptr<InitPool> hostNetPool;
  // Last, so it is destroyed first: what it still holds refers to the rest.
  Reaper reaper;
};

}  // namespace gpubox
