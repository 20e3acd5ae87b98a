// Joins sandbox inits to their cgroup v1 hierarchies off the event loop.
//
// Writing a pid to a v1 cgroup.procs migrates the process, and a migration
// takes the kernel's cgroup_threadgroup_rwsem for writing, which waits for an
// RCU grace period: about 10 ms on an idle host (measured on this project's
// 2-core CI machine; docs/performance.md). On the event loop that would stall
// every client. cgroup v2 needs none of this (clone3 with CLONE_INTO_CGROUP
// places the init at birth); only v1 and hybrid hosts use the attacher.
//
// The worker thread only calls read(2) and write(2) on pipes and cgroup
// files: it never allocates, so it holds no lock a freshly cloned init could
// need (inits are made with raw clone3, which skips glibc's fork handlers).
#pragma once

#include <kj/async-unix.h>

#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "unique_fd.hpp"

namespace gpubox {

class CgroupAttacher {
 public:
  explicit CgroupAttacher(kj::UnixEventPort& port);
  ~CgroupAttacher();  // stops the worker; pending attaches are dropped
  CgroupAttacher(const CgroupAttacher&) = delete;
  CgroupAttacher& operator=(const CgroupAttacher&) = delete;

  // Writes PID to each (path, open cgroup.procs) on the worker thread.
  // Rejects with a gpubox message naming the file that failed.
  kj::Promise<void> attach(pid_t pid, std::vector<std::pair<std::string, UniqueFd>> procs);

 private:
  struct Job;
  void work();
  kj::Promise<void> collect();

  struct Pipes {
    Pipes();
    UniqueFd requestRead, requestWrite;  // loop -> worker: Job*
    UniqueFd resultRead, resultWrite;    // worker -> loop: Job*, read non-blocking
  };
  Pipes pipes_;
  // Owned here, on the loop's thread; the worker only borrows them.
  std::map<Job*, std::unique_ptr<Job>> pending_;
  kj::UnixEventPort::FdObserver observer_;
  kj::Promise<void> collecting_ = nullptr;
  std::thread worker_;
};

}  // namespace gpubox
