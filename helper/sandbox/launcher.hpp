// Helper side of sandbox creation: clone the init into its namespaces, map
// the caller's ids, place it in its cgroups, and release it.
#pragma once

#include <sys/types.h>

#include "sandbox_init.hpp"
#include "unique_fd.hpp"

namespace gpubox {

struct LaunchedInit {
  pid_t pid = 0;     // as the helper sees it
  UniqueFd pidfd;    // watched by the event loop; the only handle used to signal
  UniqueFd control;  // helper's end of the control socket (SOCK_SEQPACKET)
};

// Clones the init (clone3: CLONE_PIDFD plus new mount, pid, ipc, uts, a new
// user namespace unless config.newUserNamespace is false, and a net namespace
// unless host network; straight into the cgroup v2 directory `cgroupFd` when
// it is >= 0), writes its uid/gid maps when it has a user namespace of its own
// (the caller's uid and each of its groups mapped 1:1; nothing else, root
// included), then tells it to go on: it runs nothing of its own before that. (cgroup v1 hierarchies
// are joined afterwards, see InitConfig::awaitPlacement.) On any failure the
// child is killed and reaped before this throws gpubox::Error.
LaunchedInit launchInit(const InitConfig& config, int cgroupFd);

// The namespaces launchInit creates, by /proc/PID/ns name.
std::vector<std::string> sandboxNamespaces(bool newUser, bool newNetwork);

}  // namespace gpubox
