// The connections one event loop serves: an RPC thread's, or the home
// loop's itself with --rpc-threads 0. Each gets its Cap'n Proto network,
// its ConnectionGuard and its Helper object (or, for a refused client, one
// that answers every call with the reason); when it ends, its sandboxes are
// killed on the home loop. Made, used and destroyed on that loop's thread.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <list>
#include <optional>
#include <string>

#include <kj/async-io.h>

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
  uint64_t acceptedNs = 0;  // CLOCK_MONOTONIC, with --trace-spans only
};

class ConnectionSet {
 public:
  // SERVED counts the connections served (RpcLoops::serve counts one up
  // when it hands one over; this set counts it down when it ends).
  ConnectionSet(DaemonContext& ctx, const HomeLoop& home, kj::AsyncIoContext& io,
                std::atomic<size_t>& served);
  ~ConnectionSet();
  ConnectionSet(const ConnectionSet&) = delete;
  ConnectionSet& operator=(const ConnectionSet&) = delete;

  // Serves IN until it ends. A connection that cannot be set up (no memory,
  // no fd) is dropped and logged.
  void accept(IncomingConnection in);
  // Ends every connection.
  void closeAll();

 private:
  struct Connection;
  using Connections = std::list<kj::Own<Connection>>;
  void serve(IncomingConnection in);
  void close(Connections::iterator it);
  void dropped(const std::string& why);

  DaemonContext& ctx_;
  const HomeLoop& home_;
  kj::AsyncIoContext& io_;
  std::atomic<size_t>& served_;
  Connections connections_;
  kj::Own<kj::TaskSet::ErrorHandler> errors_;
  kj::Own<kj::TaskSet> tasks_;  // each connection's end
};

}  // namespace gpubox
