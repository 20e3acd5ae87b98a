// The helper's thread for cgroupfs work that can wait, kept off the event
// loop.
//
// Joins: writing a pid to a v1 cgroup.procs migrates the process, and a
// migration takes the kernel's cgroup_threadgroup_rwsem for writing, which
// waits for an RCU grace period: about 10 ms on an idle host (measured on
// this project's 2-core CI machine; docs/performance.md). cgroup v2 needs
// none of this (clone3 with CLONE_INTO_CGROUP places the init at birth);
// only v1 and hybrid hosts ask for joins.
//
// Device rules: a GPU sandbox's writes to devices.allow/deny and its BPF
// program's attachment take cgroup_mutex too; done by a second instance,
// the device worker, while the init builds its root
// (SandboxCgroup::planDevices), so they never queue behind joins. The same
// instance writes a warm init's limits (SandboxCgroup::planLimits): cheap
// writes, but a tenth of the loop's time per sandbox were they made there.
//
// Removals and makings: rmdir and mkdir of a cgroup directory take the
// kernel's cgroup_mutex, which a migration holds through its grace period.
// On the loop, the removals of ended sandboxes (one directory per
// hierarchy: six on a v1 hybrid host) took 0.35 ms each on average and up
// to 18 ms (perf trace, 200 runs), every client waiting; the warm pool's
// mkdirs waited the same way. Every host uses them (a sandbox made for its
// request, with no warm init, still makes its directories on the loop).
//
// The worker thread only calls read(2), write(2), mkdir(2), open(2),
// rmdir(2), close(2), bpf(2) and futex(2), and never allocates; jobs are made and
// freed on the loop's thread. (Inits are cloned by the spawner processes,
// never from the helper, so its threads cannot hand one a held lock.)
//
// Jobs cross in lists under a mutex, not through pipes: the loop wakes the
// worker only when it sleeps (a futex), and the worker wakes the loop (an
// eventfd) only when its list of finished jobs was empty, so under load a
// wake carries several jobs. With pipes the loop made a write(2) per job and
// two read(2)s per finished one, about a tenth of its system calls per
// sandbox (docs/performance.md, seventeenth slice).
#pragma once

#include <kj/async-unix.h>

#include <condition_variable>
#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "cgroup/sandbox_cgroup.hpp"
#include "unique_fd.hpp"

namespace gpubox {

struct MadeDirs;

class CgroupWorker {
 public:
  explicit CgroupWorker(kj::UnixEventPort& port);
  ~CgroupWorker();  // the worker carries out what is queued, then stops; no promise settles
  CgroupWorker(const CgroupWorker&) = delete;
  CgroupWorker& operator=(const CgroupWorker&) = delete;

  // Opens each cgroup.procs file and writes PID to it, on the worker thread.
  // Rejects with a gpubox message naming the file that failed.
  kj::Promise<void> attach(pid_t pid, std::vector<std::string> procsFiles);

  // rmdir(2) of each directory, in order, on the worker thread; resolves to
  // the errno of each (0: removed). Never rejects for the kernel's answer;
  // a queue that cannot take the job resolves to EAGAIN for each.
  kj::Promise<std::vector<int>> remove(std::vector<std::string> dirs);

  // The directories of PLAN made (cgroup::makeCgroupDir, in order, stopping
  // at the first failure) on the worker thread, then adopted on the loop
  // (SandboxCgroup::adoptEmpty): a warm init's empty cgroup. Rejects with
  // adoptEmpty's error. LAYOUT must outlive the promise (the helper's is
  // decided once, at start).
  kj::Promise<std::unique_ptr<cgroup::SandboxCgroup>> makeEmpty(
      const cgroup::Layout& layout, std::vector<cgroup::SandboxCgroup::DirToMake> plan);

  // WORK carried out (the writes to devices.* and BPF_PROG_ATTACH, each of
  // which takes cgroup_mutex) on the worker thread; resolves to it, for
  // SandboxCgroup::finishDevices on the loop. Rejects only when the queue
  // cannot take it.
  using DeviceWork = cgroup::SandboxCgroup::DeviceWork;
  kj::Promise<std::unique_ptr<DeviceWork>> setUpDevices(std::unique_ptr<DeviceWork> work);

  // WORK carried out (a warm init's limits: writes to memory.*, cpu.* and
  // pids.max) on the worker thread; resolves to it, for
  // SandboxCgroup::finishLimits on the loop. Rejects only when the queue
  // cannot take it.
  using LimitWork = cgroup::SandboxCgroup::LimitWork;
  kj::Promise<std::unique_ptr<LimitWork>> writeLimits(std::unique_ptr<LimitWork> work);

 private:
  struct Job;
  // Jobs waiting for the worker or for the loop, oldest first, linked
  // through Job::next so the worker never allocates to queue one.
  struct JobList {
    Job* head = nullptr;
    Job* tail = nullptr;
    size_t size = 0;
    void push(Job* job);
    Job* pop();
  };
  void work();
  // Hands JOB to the worker (pending_ owns it from then on); EAGAIN, JOB
  // untouched, when kMaxQueued jobs already wait (a wedged worker: requests
  // fail rather than queue without end).
  int queue(std::unique_ptr<Job>& job);
  kj::Promise<void> collect();
  void finish(std::unique_ptr<Job> job);

  static constexpr size_t kMaxQueued = 8192;
  std::mutex mutex_;
  std::condition_variable wake_;  // the worker sleeps on it
  JobList requests_;              // loop -> worker, under mutex_
  JobList results_;               // worker -> loop, under mutex_
  bool stopping_ = false;         // under mutex_
  UniqueFd resultsReady_;         // an eventfd: written when results_ stops being empty
  // Owned here, on the loop's thread; the worker only borrows them.
  std::map<Job*, std::unique_ptr<Job>> pending_;
  kj::UnixEventPort::FdObserver observer_;
  kj::Promise<void> collecting_ = nullptr;
  std::thread worker_;
};

}  // namespace gpubox
