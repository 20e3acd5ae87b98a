// The Cap'n Proto side of the helper: one Helper object per connection,
// bound to that connection's authenticated peer.
#pragma once

#include <capnp/capability.h>

#include "daemon_context.hpp"
#include "gpubox.capnp.h"
#include "peer.hpp"

namespace gpubox {

// The bootstrap capability for one connection.
kj::Own<wire::Helper::Server> newHelperServer(DaemonContext& ctx, PeerIdentity peer);

}  // namespace gpubox
