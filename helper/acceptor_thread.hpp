// With RPC threads, connections are accepted and their clients identified on
// a thread of its own (`gpubox-accept`), not on the home loop: accept4, the
// peer's credentials, groups and pidfd, and the placement check's stat(2)s of
// its /proc/PID/ns were about a tenth of the home loop's time per sandbox
// (docs/performance.md, sixteenth slice), and the home loop is the one part
// of the helper every sandbox passes through in turn. The thread then hands
// the connection to an RPC thread itself, so the home loop takes no part in
// a new connection at all.
//
// It reads nothing a client sends, only what the kernel says of the client,
// and keeps of the helper's capabilities only the two that takes:
// CAP_SYS_PTRACE (another uid's /proc/PID/ns) and CAP_KILL (signal 0 through
// another uid's pidfd). It blocks every signal.
#pragma once

#include <atomic>
#include <string>
#include <thread>

#include "daemon_context.hpp"
#include "rpc_loops.hpp"
#include "unique_fd.hpp"

namespace gpubox {

class AcceptorThread {
 public:
  // Starts accepting on LISTEN_FD (non-blocking mode is set here) and
  // returns once the thread runs with its capabilities reduced; throws
  // gpubox::Error if it cannot. RPC must have threads and outlive this.
  AcceptorThread(DaemonContext& ctx, UniqueFd listenFd, RpcLoops& rpc);
  // Stops accepting and joins the thread. In an orderly shutdown the home
  // loop has run until ended() first (see there); otherwise (the helper
  // failing on its way up) this blocks until the thread has ended.
  ~AcceptorThread();
  AcceptorThread(const AcceptorThread&) = delete;
  AcceptorThread& operator=(const AcceptorThread&) = delete;

  // Asks the thread to accept no more; it ends once the connection it may
  // be handing over has been taken.
  void requestStop();
  // Whether it has ended. The home loop keeps running until then, before it
  // stops the RPC threads: the thread may be waiting for an RPC thread to
  // take a connection, and an RPC thread that is tearing down its loop may
  // be waiting for the home loop.
  bool ended() const { return ended_; }

 private:
  void main();
  // Accepts until the backlog is empty; false when accepting must pause
  // (out of file descriptors or memory) or has failed for good (FAILED).
  bool acceptAll(bool& failed);

  DaemonContext& ctx_;
  RpcLoops& rpc_;
  UniqueFd listenFd_;
  UniqueFd wake_;  // an eventfd: stop()
  std::atomic<bool> stopping_ = false;
  std::atomic<bool> ended_ = false;
  std::thread thread_;
};

}  // namespace gpubox
