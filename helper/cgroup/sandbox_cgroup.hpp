// The cgroup of one sandbox: one directory per hierarchy, the same NAME in
// each, carrying the sandbox's resource limits and, when asked, its device
// rules. It is also how the helper measures a sandbox (stats()), ends it
// (killAll()) and cleans up after a crashed predecessor (cleanLeftovers()).
//
// Which hierarchy does what is decided once at helper start (Layout, see
// cgroup_layout.hpp). A sandbox gets a v2 directory whenever cgroup2 is
// mounted (CLONE_INTO_CGROUP, cgroup.kill, cpu.stat and the BPF device
// program work there even without controllers), a v1 directory in every
// mounted memory/cpu/cpuacct/pids hierarchy that v2 does not replace (always,
// even without a limit, so statistics work), and a v1 devices directory when
// it has device rules.
//
// Device backends: on hybrid hosts both the v1 devices rules and the v2 BPF
// program are used, each a complete guard on its own; if one of them fails
// there the other still enforces and skipped() says what was not used and
// why. If none works, create() (or finishDevices()) throws: a GPU sandbox
// must never go without.
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cgroup_fs.hpp"
#include "cgroup_layout.hpp"
#include "cgroup_stats.hpp"
#include "device_rules.hpp"
#include "resource_limits.hpp"
#include "unique_fd.hpp"

namespace gpubox::cgroup {

// A cgroup directory's descriptor, shared by the sandbox's cgroup and the
// works planned for it, so a work handed to a worker thread needs no
// dup(2) of its own and the descriptor outlives whichever ends first. The
// last owner closes it; the workers never do (their works come back to
// the loop, and are dropped there).
using SharedFd = std::shared_ptr<const UniqueFd>;

class SandboxCgroup {
 public:
  // Creates NAME (one path component of [A-Za-z0-9._-]; the helper uses
  // sandboxCgroupName(), which cleanLeftovers() recognises) in the v2
  // parent and in each v1 hierarchy the sandbox needs, then writes each limit
  // and the device rules. Refuses an existing directory (never adopts one).
  // On any failure removes what it made and throws gpubox::Error naming the
  // option and file, e.g. "--memory 64M: writing 67108864 to .../memory.max:
  // Device or resource busy". A limit whose controller is unavailable throws;
  // none is ever skipped silently.
  // With DEFERDEVICES, the device rules are not written: their work is put
  // there (planDevices()) for the caller to carry out elsewhere.
  struct DeviceWork;
  static std::unique_ptr<SandboxCgroup> create(const Layout& layout, const std::string& name,
                                               const ResourceLimits& limits,
                                               const DeviceRules* devices = nullptr,
                                               std::unique_ptr<DeviceWork>* deferDevices = nullptr);
  // create() in two steps, for a warm init that joins its cgroup before its
  // request is known (helper/init_pool.hpp): createEmpty() makes the
  // directories, with a v1 devices one when V1DEVICES (and the hierarchy is
  // mounted); applyLimits() writes the limits, and the device rules follow
  // (setUpDevices(), or planDevices() and finishDevices()), once each. A
  // failed step may leave some written: the caller discards the cgroup.
  static std::unique_ptr<SandboxCgroup> createEmpty(const Layout& layout, const std::string& name,
                                                    bool v1Devices);
  // createEmpty() with its system calls made elsewhere (the cgroup worker's
  // thread, helper/cgroup_worker.hpp): planEmpty() says which directories,
  // v2 first (validating NAME; no system call), makeCgroupDir() makes each,
  // adoptEmpty() takes them. If one failed, adoptEmpty() removes those made
  // and throws gpubox::Error as createEmpty() would.
  struct DirToMake {
    std::string parent, path, display;
    std::vector<std::string> controllers;  // v1; empty for the v2 directory
    bool v2 = false;
  };
  static std::vector<DirToMake> planEmpty(const Layout& layout, const std::string& name,
                                          bool v1Devices);
  // planEmpty() in two steps, for the warm pool, which plans a cgroup per
  // init: emptyShape() is the layout's part (each directory's parent,
  // controllers, and its path and display up to the name), the same for
  // every init, so computed once; named() adds one name (validated).
  struct EmptyShape {
    std::vector<DirToMake> dirs;  // path and display end with "/": the name follows
  };
  static EmptyShape emptyShape(const Layout& layout, bool v1Devices);
  static std::vector<DirToMake> named(const EmptyShape& shape, const std::string& name);
  // makeCgroupDir for each of PLAN in order, stopping at the first failure;
  // FDS and RESULTS are sized to PLAN by the caller (it allocates nothing,
  // so the cgroup worker's thread may call it). A directory not tried reads
  // as failed with ECANCELED.
  static void makePlanned(const std::vector<DirToMake>& plan, std::vector<UniqueFd>& fds,
                          std::vector<MakeResult>& results);
  static std::unique_ptr<SandboxCgroup> adoptEmpty(const Layout& layout,
                                                   const std::vector<DirToMake>& plan,
                                                   std::vector<UniqueFd> fds,
                                                   const std::vector<MakeResult>& results);
  void applyLimits(const ResourceLimits& limits);
  // applyLimits() in three steps, like the device rules below, for a warm
  // init's request: planLimits() (on the loop: the checks and the values)
  // hands LimitWork::carryOut() to the device worker while the init builds
  // its root, and finishLimits() (on the loop again) notes what is in force,
  // or throws, before the init is told it may run anything. The writes are
  // a tenth of the event loop's time per sandbox where they are many (six
  // files of three v1 hierarchies; docs/performance.md, eleventh slice).
  struct LimitWork {
    struct Dir {
      std::string path;
      SharedFd dir;  // shared: the sandbox may end while the work waits
      std::vector<PlannedLimit> limits;
    };
    std::vector<Dir> dirs;  // v2 first, as applyLimits() writes them

    bool empty() const;
    // System calls only (no allocation, no exception): any thread. Stops at
    // the first write that fails.
    void carryOut() noexcept;
  };
  std::unique_ptr<LimitWork> planLimits(const ResourceLimits& limits);
  // Throws gpubox::Error naming the option and the file that failed.
  void finishLimits(const LimitWork& work);
  // Throws what create(), applyLimits() and the device rules would refuse
  // before touching anything.
  static void checkLimits(const Layout& layout, const ResourceLimits& limits,
                          const DeviceRules* devices);

  // Only create() can make the key, so only it constructs (through
  // make_unique, which needs a public constructor).
  class Key {
    friend class SandboxCgroup;
    Key() = default;
  };
  explicit SandboxCgroup(Key) {}
  SandboxCgroup(const SandboxCgroup&) = delete;
  SandboxCgroup& operator=(const SandboxCgroup&) = delete;
  // tryRemove() once; whatever is still busy is reported on stderr. The
  // helper calls killAll() and tryRemove() (with retries from its event loop)
  // before destroying.
  ~SandboxCgroup();

  // The device rules, in three steps. Writing them takes the kernel's
  // cgroup_mutex (each devices.* write on v1, BPF_PROG_ATTACH on v2), which
  // a v1 migration holds through an RCU grace period: milliseconds, were it
  // done on the event loop. So planDevices() (on the loop: the checks, the
  // values, the program loaded) hands DeviceWork::carryOut() to the device
  // worker (helper/cgroup_worker.hpp) while the init builds its root, and
  // finishDevices() (on the loop again) notes what is in force, or throws,
  // before the init is told it may run anything. Each may be called once.
  struct DeviceWork {
    struct V1 {
      std::string path;
      SharedFd dir;  // shared: the sandbox may end while the work waits
      std::vector<ControlWrites> writes;
      std::string refused;  // rules v1 cannot express: nothing to write
    };
    DevicePolicy policy = DevicePolicy::AllowListed;
    std::vector<V1> v1;  // the devices hierarchy's directory, if used
    SharedFd v2Dir;
    std::shared_ptr<const UniqueFd> program;  // none: programError says why
    std::string programError;
    int attachError = 0;

    // System calls only (no allocation, no exception): any thread.
    void carryOut() noexcept;
  };
  std::unique_ptr<DeviceWork> planDevices(const DeviceRules& devices);
  // Throws gpubox::Error when no backend enforces the rules.
  void finishDevices(const DeviceWork& work);
  // The three steps at once, on the calling thread.
  void setUpDevices(const DeviceRules& devices);

  // O_DIRECTORY fd of the v2 directory, for clone3(CLONE_INTO_CGROUP); -1
  // without cgroup2. The v1 directories still need attachV1().
  int v2Fd() const { return v2_ ? v2_->raw() : -1; }
  // Writes PID to cgroup.procs of every v1 directory. Throws gpubox::Error.
  void attachV1(pid_t pid);
  // The v1 directories and the v2 one. Throws gpubox::Error.
  void attach(pid_t pid);
  // The path of cgroup.procs in every v1 directory: for joining them off the
  // event loop (helper/cgroup_worker.hpp; a v1 migration waits for an RCU
  // grace period, milliseconds). No system call.
  std::vector<std::string> v1ProcsFiles() const;

  // A handful of small reads, no directory walk. Never throws (a missing
  // file reads as 0).
  Stats stats() const;
  // Only what a command's start and end need: one or two reads each.
  uint64_t oomKills() const;
  uint64_t processes() const;  // pids.current, else the members counted

  // SIGKILLs every process in the cgroup (cgroup.kill where the v2 directory
  // has it, else each pid of cgroup.procs, repeated until empty: at most 100
  // rounds 1 ms apart, so it returns within about 0.1 s even when a process
  // hangs in the kernel). Returns how many pids it signalled (best effort).
  size_t killAll();

  // rmdir of every directory still there, once: no sleeping, no retries (the
  // caller retries from its event loop). True when all are gone.
  bool tryRemove();
  // The directories it made that still exist, in the order tryRemove()
  // takes them.
  std::vector<std::string> directories() const;
  // After rmdir of some of directories() elsewhere (off the event loop,
  // helper/cgroup_worker.hpp): ERRORS[i] is rmdir's errno for PATHS[i], 0
  // when it was removed. True when all are gone.
  bool noteRemoval(const std::vector<std::string>& paths, const std::vector<int>& errors);

  // One line for humans and the JSON status, e.g.
  // "/sys/fs/cgroup/unified/gpubox/sb-1-2 + memory:/process_api/x/gpubox/sb-1-2 + ...".
  std::string path() const;
  // One line per limit or device rule set written, e.g.
  // "memory.limit_in_bytes = 67108864 (cgroup v1)",
  // "devices: allow-list (cgroup v1 + bpf)".
  std::vector<std::string> applied() const { return applied_; }
  // The device backend not used and why; "" otherwise.
  const std::string& skipped() const { return skipped_; }
  // Which device backends enforce this sandbox's device rules.
  bool usesV1Devices() const { return v1Devices_; }
  bool usesBpf() const { return program_ != nullptr; }

 private:
  struct Dir {
    std::string path;                      // absolute
    std::string display;                   // "memory:/process_api/x/gpubox/sb-1-2"
    std::vector<std::string> controllers;  // v1: the hierarchy's controllers in use
    SharedFd fd;  // shared with the works planned for it (LimitWork, DeviceWork)
    // The descriptor, -1 once the directory is removed (its fd dropped).
    int raw() const { return fd ? fd->get() : -1; }
    bool removed = false;
    int removeError = 0;  // errno of the last failed rmdir
  };

  // DIR's descriptor for a work planned for it; throws gpubox::Error (WHAT:
  // ...) once the directory is removed.
  static SharedFd shared(const Dir& dir, const char* what);
  // Every directory, the v2 one first.
  std::vector<const Dir*> dirs() const;
  std::vector<Dir*> dirs();

  Layout layout_;
  std::optional<Dir> v2_;
  std::vector<Dir> v1_;
  bool limitsApplied_ = false;
  bool devicesPlanned_ = false;
  bool v1Devices_ = false;
  // The attached BPF program (shared with other sandboxes granted the same
  // devices), held as long as the object.
  std::shared_ptr<const UniqueFd> program_;
  std::vector<std::string> applied_;
  std::string skipped_;
};

// The default liveness test of cleanLeftovers(): /proc/PID/comm is
// "gpubox-helper".
bool isGpuboxHelper(pid_t pid);

// The name this helper gives sandbox ID's cgroup: "sb-<helper pid>-<id>-ns<the
// helper's pid namespace inode>", so that a later helper can tell a dead
// predecessor's leftovers from a live helper's sandboxes, also across
// containers (cleanLeftovers).
std::string sandboxCgroupName(uint64_t id);
uint64_t ownPidNamespace();

// Crash recovery, run once at helper start before serving: under every
// parent of LAYOUT, each directory named "sb-<pid>-<n>[-ns<inode>]" made in
// this pid namespace whose <pid> is not a live helper (ISLIVEHELPER false;
// default isGpuboxHelper) is a leftover of a dead helper: its processes are
// killed and it is removed. One made in another pid namespace (another
// container sharing the hierarchy) is a leftover only when cgroup v2 reports
// it unpopulated and it is over a minute old. Directories of live helpers
// (several may share a parent) are left alone. Returns one line
// per directory handled, e.g. "removed leftover cgroup .../gpubox/sb-123-4 of
// dead helper 123 (killed 2 processes)", or why it could not be removed.
std::vector<std::string> cleanLeftovers(const Layout& layout,
                                        const std::function<bool(pid_t)>& isLiveHelper = {});

}  // namespace gpubox::cgroup
