// Collects sandbox inits after they were told to die, without ever blocking
// the home loop: each pidfd is watched until the kernel says the process
// exited and reaped there, and only then is whatever the sandbox held (its
// cgroups, its GPU leases, its log record) released, on the home loop.
//
// The watching and the reaping run on a thread of their own (`gpubox-reap`,
// no capability: waitid(2) on the helper's own children needs none). The
// reap is where the kernel releases the init's task and the last of its
// pid namespace, which was 6% of the home loop's CPU per sandbox
// (docs/performance.md, sixteenth slice). Before start() and after stop()
// (the helper starting or shutting down) a reap is done in place instead,
// waiting for the process: it has been killed, so the wait is short.
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <thread>
#include <unordered_map>

#include "unique_fd.hpp"

namespace gpubox {

class HomeLoop;

class Reaper {
 public:
  Reaper();   // the epoll instance; no thread yet
  ~Reaper();  // stop()
  Reaper(const Reaper&) = delete;
  Reaper& operator=(const Reaper&) = delete;

  // On the home loop, once it exists: from here on processes are waited for
  // and reaped on the reaper's thread, and each afterReap is posted to HOME,
  // which must outlive stop(). Throws gpubox::Error if the thread cannot
  // start or shed its capabilities.
  void start(const HomeLoop& home);
  // On the home loop: ends the thread, then reaps here whatever is still
  // pending and runs its afterReap. Idempotent.
  void stop();

  // On the home loop. Takes the pidfd of a process that has been (or is
  // about to be) killed; `afterReap` runs on the home loop once it has been
  // reaped. Takes ownership of both, except if it throws (a kj::Exception:
  // the epoll instance refused the pidfd), when the caller still has them.
  void reap(UniqueFd& pidfd, std::function<void()>& afterReap);

  // Processes handed over and not yet released (home loop).
  size_t pending() const { return table_->size(); }

 private:
  struct Entry {
    UniqueFd pidfd;
    std::function<void()> afterReap;
  };
  using Table = std::unordered_map<uint32_t, Entry>;

  void run();  // the thread
  // On the home loop: the thread reaped ID (if TABLE still exists).
  static void released(const std::weak_ptr<Table>& table, uint32_t id);

  std::shared_ptr<Table> table_ = std::make_shared<Table>();  // home loop only
  uint32_t nextId_ = 0;
  UniqueFd epoll_;
  UniqueFd wake_;  // an eventfd in epoll_: stop()
  const HomeLoop* home_ = nullptr;
  std::thread thread_;
};

}  // namespace gpubox
