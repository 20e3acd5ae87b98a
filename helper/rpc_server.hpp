// The Cap'n Proto side of the helper: one Helper object per connection,
// bound to that connection's authenticated peer.
#pragma once

#include <capnp/capability.h>

#include "daemon_context.hpp"
#include "gpubox.capnp.h"
#include "peer.hpp"

#include <memory>
#include <vector>

namespace gpubox {

class SandboxRuntime;
class ConnectionGuard;

// The sandboxes one connection created. When the connection closes they are
// killed at once, whatever Cap'n Proto still holds (a call in progress keeps
// its objects alive until it completes; killing the sandbox completes it).
class ConnectionSandboxes {
 public:
  void add(const std::shared_ptr<SandboxRuntime>& runtime);
  void killAll();

 private:
  std::vector<std::weak_ptr<SandboxRuntime>> sandboxes_;
};

// The bootstrap capability for one connection.
kj::Own<wire::Helper::Server> newHelperServer(DaemonContext& ctx, PeerIdentity peer,
                                              std::shared_ptr<ConnectionSandboxes> sandboxes,
                                              std::shared_ptr<ConnectionGuard> guard);

}  // namespace gpubox
