// The RPC threads: each runs an event loop of its own and serves the
// connections handed to it, Cap'n Proto and all (reading, decoding,
// answering, the connection's bounds), so that one event loop is not the
// ceiling of a helper on many cores. What a call does to a sandbox runs on
// the home loop (home_loop.hpp). An RPC thread holds no capability: it
// reads what clients send and asks the home loop for everything else.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <kj/async.h>

#include "daemon_context.hpp"
#include "home_loop.hpp"
#include "peer.hpp"
#include "unique_fd.hpp"

namespace gpubox {

// An accepted connection, checked on the home loop.
struct IncomingConnection {
  UniqueFd fd;
  uid_t uid = 0;                     // SO_PEERCRED's, for the log
  std::optional<PeerIdentity> peer;  // empty: refused, for `refusal`
  std::string refusal;
};

class RpcLoops {
 public:
  // Starts COUNT threads (made on the home loop's thread, which they need
  // not outlive); returns once each serves.
  RpcLoops(size_t count, DaemonContext& ctx, const HomeLoop& home);
  ~RpcLoops();  // after stop() has resolved
  RpcLoops(const RpcLoops&) = delete;
  RpcLoops& operator=(const RpcLoops&) = delete;

  // One per 4 CPUs the helper may use, from 1 to 8 (docs/performance.md).
  static size_t defaultCount(size_t cpus);
  size_t count() const { return loops_.size(); }

  // From the home loop: serves CONNECTION on the thread with the fewest
  // connections (the next in turn among equals).
  void serve(IncomingConnection connection);

  // From the home loop: closes every connection (their sandboxes are killed
  // through the home loop's queue) and ends the threads. The home loop must
  // keep running until this resolves.
  kj::Promise<void> stop();

 private:
  class Loop;
  std::vector<std::unique_ptr<Loop>> loops_;
  size_t next_ = 0;
  kj::Own<kj::TaskSet> handoffs_;
  kj::Own<kj::TaskSet::ErrorHandler> handoffErrors_;
};

}  // namespace gpubox
