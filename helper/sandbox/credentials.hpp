// Identity and privilege changes of the sandbox init.
#pragma once

#include <sys/types.h>

#include <vector>

namespace gpubox {

// Becomes the caller (groups, gid, uid: ids of the init's user namespace,
// which maps them onto the caller's; the caller's host ids themselves
// without one) while keeping exactly CAP_SYS_ADMIN,
// CAP_NET_ADMIN and CAP_SETPCAP for the rest of the setup: capabilities of
// the sandbox's own user namespace, or, without one (--user-namespace never),
// of the helper's, since the init then starts as the helper's root and the
// uid change leaves it no other. Needs CAP_SETUID and CAP_SETGID. From here on
// every path lookup is done as the caller (no CAP_DAC_* is kept). Throws
// gpubox::Error.
void becomeCallerForSetup(uid_t uid, gid_t gid, const std::vector<gid_t>& groups);

// Drops every capability for good: bounding set, ambient set, inheritable,
// permitted and effective sets; locks the securebits so uid 0 (a root
// caller) regains nothing on exec; sets no_new_privs. Throws gpubox::Error.
void dropAllPrivileges();

}  // namespace gpubox
