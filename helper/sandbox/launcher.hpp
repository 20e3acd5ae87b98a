// Helper side of sandbox creation: clone the init into its namespaces, map
// the caller's ids, place it in its cgroups, and release it.
#pragma once

#include <sys/types.h>

#include <array>
#include <cstdint>

#include "sandbox_init.hpp"
#include "unique_fd.hpp"

namespace gpubox {

// The namespaces an init is cloned into (its user and net ones may be the
// helper's), in the order of LaunchedInit::namespaceInodes.
inline constexpr std::array<const char*, 6> kInitNamespaces = {"user", "mnt", "pid",
                                                               "ipc",  "uts", "net"};

struct LaunchedInit {
  pid_t pid = 0;   // as the helper sees it
  UniqueFd pidfd;  // watched by the event loop; the only handle used to signal
  // The helper's end of the control socket (SOCK_SEQPACKET), O_NONBLOCK
  // from spawnInit() on; the init's end blocks.
  UniqueFd control;
  bool newUserNamespace = true;
  bool newNetwork = true;
  // The inode of each of kInitNamespaces, read by whoever cloned the init,
  // right after the clone (for a warm init, the spawner: off the event loop);
  // 0 where it could not be read.
  using NamespaceInodes = std::array<uint64_t, kInitNamespaces.size()>;
  NamespaceInodes namespaceInodes = {};
};

// Clones an init (clone3: CLONE_PIDFD plus new mount, pid, ipc, uts, a new
// user namespace when NEWUSER, and a net namespace when NEWNETWORK; straight
// into the cgroup v2 directory `cgroupFd` when it is >= 0). The init runs
// nothing of its own until startInit() sends it its configuration: it may
// wait in the warm pool (init_pool.hpp) for a request. Throws gpubox::Error.
// Called only in a spawner process (init_spawner.hpp), which is
// single-threaded: the init is made a child of the spawner's parent, the
// helper (CLONE_PARENT).
LaunchedInit spawnInit(bool newUser, bool newNetwork, int cgroupFd);

// Gives INIT the sandbox CONFIG describes: writes its uid/gid maps when it
// has a user namespace of its own (the caller's uid and each of its groups
// mapped 1:1; nothing else, root included), then sends ToInit::Go with the
// configuration (cgroup v1 hierarchies may be joined afterwards, see
// InitConfig::awaitPlacement). CONFIG's namespaces must be INIT's. On any
// failure the init is killed and reaped before this throws gpubox::Error.
void startInit(LaunchedInit& init, const InitConfig& config);

// The namespaces a sandbox's init is cloned into, by /proc/PID/ns name.
std::vector<std::string> sandboxNamespaces(bool newUser, bool newNetwork);

}  // namespace gpubox
