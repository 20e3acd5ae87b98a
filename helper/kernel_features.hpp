// What the helper needs from the kernel, checked once at start-up so an old
// kernel gets a clear refusal instead of half-working sandboxes.
#pragma once

#include <string>
#include <vector>

namespace gpubox {

// Throws gpubox::Error naming the missing interface and the kernel version
// that brings it. Linux 5.12 is the floor (mount_setattr).
void checkKernelSupport();

// Whether the kernel lets this process create a user namespace: "" when it
// does, else why not ("unshare(CLONE_NEWUSER): No space left on device
// (user.max_user_namespaces = 0)"). Forks a short-lived child to try; call
// it at start-up, never on the request path.
std::string userNamespaceRefusal();

// Human-readable list of the kernel interfaces gpubox uses on this host.
std::vector<std::string> kernelFeaturesInUse();

// "v1", "v2" or "hybrid".
std::string cgroupModeName();

}  // namespace gpubox
