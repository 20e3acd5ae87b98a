// The spawners: small processes of the helper's own that clone every
// sandbox init for it, so that no init is ever cloned from the helper, a
// multi-threaded process, and the clone (about 1 ms) never runs on the
// helper's event loop.
//
// Each is forked at start, after the capability drop and before the
// helper starts any thread, so it is single-threaded and holds no lock any
// other thread could have taken: an init cloned from it inherits a clean
// copy of glibc's state (malloc's arenas, stdio, the loader, the thread
// list). An init cloned by raw clone3 from the multi-threaded helper would
// inherit every lock as another thread held it at that instant
// (architecture.md). It clones each init with CLONE_PARENT, so every init
// is still the helper's own child (reaped through its pidfd, killed with
// the helper through the parent-death signal), and hands back the init's
// pidfd and control socket. The init receives its configuration from the
// helper later (launcher.hpp: startInit), as any init does.
//
// Two kinds: InitSpawner's processes (--pool-spawners) fill the warm pool
// (init_pool.hpp) and never make the loop wait; RequestSpawner's one
// process makes the init of a request that takes none from the pool (an
// empty pool, such as the --net host pool at its first request;
// --warm-inits 0), and the request waits for it,
// as it used to wait for its own clone. Apart, so a request's init never
// queues behind the pool's.
//
// A spawner runs nothing else, keeps only its socket to the helper, is not
// dumpable, and exits when the helper closes that socket or dies.
#pragma once

#include <kj/async-unix.h>

#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "sandbox/launcher.hpp"
#include "unique_fd.hpp"

namespace gpubox {

// Their names in ps (and /proc/PID/comm).
inline constexpr const char* kPoolSpawnerName = "gpubox-spawner";
inline constexpr const char* kRequestSpawnerName = "gpubox-reqspawn";

// One spawner process and the helper's end of its socket.
class SpawnerProcess {
 public:
  // Forks the spawner, named NAME. Throws gpubox::Error. Call while the
  // helper has a single thread.
  explicit SpawnerProcess(const char* name);
  // Closes the socket (the spawner exits) and reaps the spawner.
  ~SpawnerProcess();
  SpawnerProcess(const SpawnerProcess&) = delete;
  SpawnerProcess& operator=(const SpawnerProcess&) = delete;

  int socket() const { return socket_.get(); }
  pid_t pid() const { return pid_; }
  // Sends a request for an init (in the cgroup v2 directory CGROUPFD when
  // >= 0). False, with errno, when it could not be sent.
  bool ask(bool newUser, bool newNetwork, int cgroupFd);
  // The init of the reply just received (N bytes of REPLY, FDS), or a
  // gpubox::Error with the spawner's reason.
  static LaunchedInit initFrom(ssize_t n, const void* reply, std::vector<UniqueFd>& fds,
                               bool newUser, bool newNetwork);
  // Kills and reaps the spawner now; socket() is then -1.
  void stop();

 private:
  UniqueFd socket_;
  pid_t pid_ = -1;
};

// The warm pool's spawners: asynchronous, the loop never waits on them.
// Several processes clone side by side (each clone into new namespaces is
// about 0.7 ms of a CPU, half of it the network namespace), so that the
// pool refills as fast as the host can make namespaces, not as fast as one
// CPU can.
class InitSpawner {
 public:
  // Forks COUNT (at least 1) spawner processes.
  InitSpawner(kj::UnixEventPort& port, size_t count);
  ~InitSpawner();
  InitSpawner(const InitSpawner&) = delete;
  InitSpawner& operator=(const InitSpawner&) = delete;

  // An init waiting for its configuration (as spawnInit() makes one), in
  // the cgroup v2 directory CGROUPFD when >= 0, from the spawner with the
  // fewest requests outstanding (in turn among equals). Never blocks the
  // loop; rejects with the spawner's reason (or when every spawner has
  // exited).
  kj::Promise<LaunchedInit> spawn(bool newUser, bool newNetwork, int cgroupFd);
  size_t count() const { return members_.size(); }

  // The default count for a host with CPUS CPUs: one per 8, from 1 to 8.
  static size_t defaultCount(size_t cpus);

 private:
  struct Pending {
    kj::Own<kj::PromiseFulfiller<LaunchedInit>> fulfiller;
    bool newUser;
    bool newNetwork;
  };
  struct Member {
    explicit Member(kj::UnixEventPort& port);
    SpawnerProcess process{kPoolSpawnerName};
    bool exited = false;
    kj::Own<kj::UnixEventPort::FdObserver> observer;
    std::deque<Pending> pending;
    kj::Promise<void> reading = nullptr;
  };
  kj::Promise<void> readReplies(Member& m);
  static void failAll(Member& m, const std::string& why);

  std::vector<std::unique_ptr<Member>> members_;
  size_t next_ = 0;  // where the search for the least busy starts
};

// The spawner of inits made for their request: the request waits for the
// reply, at most kReplyTimeoutMs (a spawner that does not answer by then is
// killed, and every later request that needs it is refused saying so).
class RequestSpawner {
 public:
  // Forks the spawner; call while the helper has one thread.
  RequestSpawner() : process_(kRequestSpawnerName) {}
  // An init as spawnInit() makes one. Throws gpubox::Error with the
  // spawner's reason.
  LaunchedInit spawn(bool newUser, bool newNetwork, int cgroupFd);
  static constexpr int kReplyTimeoutMs = 10'000;

 private:
  SpawnerProcess process_;
  std::string broken_;  // why no init can be asked for any more ("": none)
};

}  // namespace gpubox
