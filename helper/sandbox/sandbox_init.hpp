// The sandbox's pid 1. The helper clones it straight into new mount, pid,
// ipc, uts (and net) namespaces, and a new user namespace unless the helper
// runs with --user-namespace never; it then finishes the setup from inside,
// drops every privilege, and runs the commands the helper sends it, reaping
// everything and reporting each command's end over the control socket.
//
// Without a user namespace of its own the init starts as real root of the
// helper's user namespace (with the helper's capabilities) instead of root
// of a fresh one. The steps are the same: it becomes the caller keeping only
// CAP_SYS_ADMIN, CAP_NET_ADMIN and CAP_SETPCAP (credentials.hpp), makes every
// mount private before it mounts anything (mount_engine.cpp), and drops
// everything before Ready. What that changes for the security argument is in
// docs/security.md ("Without a user namespace").
#pragma once

#include <linux/filter.h>
#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "mount_engine.hpp"
#include "spec.hpp"

namespace gpubox {

struct InitConfig {
  // The caller, as the host sees it.
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;
  // What the commands run as inside: the caller's own ids, or those the
  // request asked for (bwrap's --uid, --gid), which the new user namespace
  // maps onto the caller's (id_maps.hpp). Without a user namespace of its
  // own they are always uid and gid (sandbox_ids.hpp refuses others).
  uid_t sandboxUid = 0;
  gid_t sandboxGid = 0;
  std::string hostname;  // empty: keep
  bool newNetwork = true;
  // false: --user-namespace never (or auto on a kernel that refuses one).
  bool newUserNamespace = true;
  std::vector<MountOp> plan;
  std::vector<MaskedSocket> masks;
  std::string defaultCwd;  // where a command without --chdir starts
  // setrlimit before each command's exec, in this order (validated by the
  // helper: names known, never above the helper's own hard limits).
  std::vector<RlimitSetting> rlimits;
  // Wait for ToInit::Placed before entering a cgroup namespace and running
  // anything: the helper joins the init to its cgroup v1 hierarchies while
  // the init builds its root (cgroup v2 placed it at birth).
  bool awaitPlacement = false;
  // Attached by the init to itself at the end of its setup, so that every
  // command inherits it (--as-pid-1's process, made before, attaches it
  // itself right before exec); empty: --seccomp none.
  std::vector<sock_filter> seccomp;
  // The caller's own programs, installed after `seccomp` (they can only
  // refuse more).
  std::vector<std::vector<sock_filter>> callerSeccomp;
  // Paths inside the new root the init holds a read lock on while it lives.
  std::vector<std::string> lockFiles;
  // Paths hidden after the plan if they exist (the caller's secrets).
  std::vector<std::string> hide;
  // Where the caller's own binds may come from (non-root callers only).
  std::optional<BindSourceRule> bindSources;
  // bwrap's --as-pid-1: the sandbox's one command runs as pid 1 of a pid
  // namespace of its own, made at setup (pid1_process.hpp).
  bool asPid1 = false;
};

// Never returns. `controlFd` is the init's end of the control socketpair;
// `newNetwork` says whether it was born in a network namespace of its own.
// Brings its loopback up (it needs no request), then waits for
// ToInit::Go and the InitConfig sent with it.
[[noreturn]] void runSandboxInit(int controlFd, bool newNetwork);

}  // namespace gpubox
