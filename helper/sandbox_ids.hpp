// The uid and gid a sandbox's commands run as inside it: the caller's own,
// or those the request asks for (bwrap's --uid, --gid). Another id than the
// caller's is only a label that the sandbox's own user namespace maps onto
// the caller (sandbox/id_maps.hpp); without a user namespace of its own
// (--user-namespace never, or auto on a kernel that refuses one) it would
// really be another user, so it is refused, never quietly replaced.
#pragma once

#include <sys/types.h>

#include "spec.hpp"
#include "user_namespace_mode.hpp"

namespace gpubox {

struct SandboxIds {
  uid_t uid = 0;
  gid_t gid = 0;
};

// Throws gpubox::Error naming the option, the ids and why.
SandboxIds resolveSandboxIds(const SandboxSpec& spec, uid_t callerUid, gid_t callerGid,
                             const UserNamespaceChoice& userNamespace);

}  // namespace gpubox
