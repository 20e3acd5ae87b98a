// The helper's own RLIMIT_NOFILE. Every connection and every live sandbox
// holds descriptors of the helper's (a socket; a pidfd, a control socket and
// cgroup directories per sandbox, six of them on v1; the warm pool's inits),
// and the soft limit systemd gives services, 1024, is kept low for select(2)'s
// sake, which the helper never calls. So the helper raises its soft limit to
// its hard one at start, after the spawners are forked: they, and through
// them every sandbox, keep the limits the helper was started with.
#pragma once

#include <sys/resource.h>

namespace gpubox {

struct DescriptorLimit {
  rlim_t softBefore = 0, soft = 0;  // soft: the hard limit, now
};

// Raises the soft limit to the hard one and grows the descriptor table to
// min(soft, kDescriptorTableAtStart) entries now. Growing it later, once the
// helper has threads, makes the kernel wait for an RCU grace period
// (expand_fdtable) while every thread that opens a descriptor waits behind
// it: call this before the first thread. Throws gpubox::Error if the limit
// cannot be raised.
DescriptorLimit raiseDescriptorLimit();

inline constexpr rlim_t kDescriptorTableAtStart = 4096;

}  // namespace gpubox
