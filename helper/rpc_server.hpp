// The Cap'n Proto side of the helper: one Helper object per connection,
// bound to that connection's authenticated peer, on that connection's RPC
// thread.
#pragma once

#include <capnp/capability.h>

#include "daemon_context.hpp"
#include "gpubox.capnp.h"
#include "helper_calls.hpp"
#include "home_loop.hpp"
#include "peer.hpp"

#include <memory>
#include <vector>

namespace gpubox {

class ConnectionGuard;

// The bootstrap capability for one connection, made and served on the connection's RPC thread; CTX
// is reached only on the home loop, through HOME (its limits, fixed at start, excepted).
kj::Own<wire::Helper::Server> newHelperServer(DaemonContext& ctx, const HomeLoop& home,
                                              PeerIdentity peer,
                                              HomeShared<ConnectionSandboxes> sandboxes,
                                              std::shared_ptr<ConnectionGuard> guard,
                                              uint64_t acceptedNs = 0);

}  // namespace gpubox
