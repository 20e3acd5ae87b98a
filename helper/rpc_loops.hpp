// Where connections are served: on RPC threads, each running an event loop
// of its own and serving the connections handed to it, Cap'n Proto and all
// (reading, decoding, answering, the connection's bounds), so that one event
// loop is not the ceiling of a helper on many cores; or, with none, on the
// home loop itself. What a call does to a sandbox runs on the home loop
// (home_loop.hpp) either way. An RPC thread holds no capability: it reads
// what clients send and asks the home loop for everything else.
#pragma once

#include <atomic>
#include <memory>
#include <vector>

#include <kj/async.h>

#include "connection_set.hpp"
#include "daemon_context.hpp"
#include "home_loop.hpp"

namespace gpubox {

class RpcLoops {
 public:
  // Starts COUNT threads (from the home loop's thread) and returns once each
  // serves; with 0, connections are served on the home loop (HOME_IO).
  RpcLoops(size_t count, DaemonContext& ctx, const HomeLoop& home, kj::AsyncIoContext& homeIo);
  ~RpcLoops();  // after stop() has resolved
  RpcLoops(const RpcLoops&) = delete;
  RpcLoops& operator=(const RpcLoops&) = delete;

  // None below 8 CPUs the helper may use, else one per 8, up to 8
  // (docs/performance.md: a thread's hops cost more than they save where
  // the whole machine, not the home loop, is the limit).
  static size_t defaultCount(size_t cpus);
  size_t count() const { return loops_.size(); }

  // From the home loop: serves CONNECTION on the thread with the fewest
  // connections (the next in turn among equals), or on the home loop.
  void serve(IncomingConnection connection);

  // From the acceptor thread (acceptor_thread.hpp), with threads only: the
  // same, returning once that thread has taken the connection. serve() and
  // this are never both in use (which to use is decided at start), so the
  // choice of thread has one caller.
  void serveFromAcceptor(IncomingConnection connection);

  // From the home loop: closes every connection (their sandboxes are killed
  // through the home loop's queue) and ends the threads. The home loop must
  // keep running until this resolves.
  kj::Promise<void> stop();

 private:
  class Loop;
  Loop& leastBusy();  // by serve() or serveFromAcceptor(): see there
  DaemonContext& ctx_;
  std::vector<std::unique_ptr<Loop>> loops_;
  std::atomic<size_t> localServed_ = 0;      // before the set, which counts it down
  kj::Maybe<kj::Own<ConnectionSet>> local_;  // with no thread
  size_t next_ = 0;
  kj::Own<kj::TaskSet::ErrorHandler> handoffErrors_;  // before the tasks, which use it
  kj::Own<kj::TaskSet> handoffs_;
};

}  // namespace gpubox
