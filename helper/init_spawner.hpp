// The spawner: a small process of the helper's own that clones warm inits
// (init_pool.hpp) for it, so that neither the clone (about 1 ms) nor the
// copy of a multi-threaded process happens on the helper's event loop.
//
// It is forked once at start, after the capability drop and before the
// helper starts any thread, so it is single-threaded and holds no lock any
// other thread could have taken: an init cloned from it inherits a clean
// copy of glibc's state. It clones each init with CLONE_PARENT, so every
// init is still the helper's own child (reaped through its pidfd, killed
// with the helper through the parent-death signal), and hands back the
// init's pidfd and control socket. The init receives its configuration
// from the helper later (launcher.hpp: startInit), as any init does.
//
// The spawner runs nothing else, keeps only its socket to the helper, is
// not dumpable, and exits when the helper closes that socket or dies.
#pragma once

#include <kj/async-unix.h>

#include <deque>
#include <memory>

#include "sandbox/launcher.hpp"
#include "unique_fd.hpp"

namespace gpubox {

class InitSpawner {
 public:
  // Forks the spawner. Throws gpubox::Error. Call while the helper has a
  // single thread.
  explicit InitSpawner(kj::UnixEventPort& port);
  // Closes the socket (the spawner exits) and reaps the spawner.
  ~InitSpawner();
  InitSpawner(const InitSpawner&) = delete;
  InitSpawner& operator=(const InitSpawner&) = delete;

  // An init waiting for its configuration (as spawnInit() makes one), in
  // the cgroup v2 directory CGROUPFD when >= 0. Never blocks the loop;
  // rejects with the spawner's reason.
  kj::Promise<LaunchedInit> spawn(bool newUser, bool newNetwork, int cgroupFd);
  pid_t pid() const { return pid_; }

 private:
  struct Pending {
    kj::Own<kj::PromiseFulfiller<LaunchedInit>> fulfiller;
    bool newUser;
    bool newNetwork;
  };
  kj::Promise<void> readReplies();
  void failAll(const std::string& why);

  UniqueFd socket_;
  pid_t pid_ = -1;
  kj::Own<kj::UnixEventPort::FdObserver> observer_;
  std::deque<Pending> pending_;
  kj::Promise<void> reading_ = nullptr;
};

}  // namespace gpubox
