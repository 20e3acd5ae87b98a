// Builds the sandbox's filesystem from a bubblewrap-style plan: a fresh
// tmpfs root, each step applied in order, then pivot_root. Runs inside the
// sandbox init, already switched to the caller's uid/gid/groups and holding
// no capability that bypasses file permissions, so every source path is
// resolved with the caller's credentials (no confused deputy).
//
// With a user namespace of its own the init's CAP_SYS_ADMIN is that
// namespace's, and the mounts copied from the host are locked together (the
// kernel will not let them be unmounted or their flags cleared from inside).
// Without one (--user-namespace never) the mount namespace belongs to the
// helper's user namespace and nothing is locked: the read-only, nosuid and
// nodev flags set here hold because the sandboxed command has no capability
// at all (CAP_SYS_ADMIN in the helper's namespace would be needed to unmount
// or remount anything) and the seccomp filter denies the mount calls besides.
//
// Interfaces: open_tree/move_mount/fsopen/fsmount (5.2), openat2 with
// RESOLVE_IN_ROOT (5.6), mount_setattr (5.12).
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "bind_sources.hpp"
#include "spec.hpp"
#include "unique_fd.hpp"

namespace gpubox {

// A socket of the helper that must not be reachable inside: if the plan makes
// this inode visible at `path`, /dev/null is mounted over it.
struct MaskedSocket {
  std::string path;
  dev_t dev = 0;
  ino_t ino = 0;
};

struct MountOutcome {
  std::vector<size_t> skipped;  // indices of optional steps that were skipped
  std::vector<size_t> hidden;   // indices into `hide` of the paths that existed and were hidden
};

// Applies `plan`, hides each path of `hide` that exists in the result (an
// empty read-only tmpfs over a directory, an empty read-only file over
// anything else; symlinks are followed inside the new root), and pivots
// into the result. Steps marked checkSource must satisfy BIND_SOURCES when
// it is given (non-root callers). Without a user namespace of its own
// (inOwnUserNamespace false) a result that shows a procfs the sandbox did
// not mount is refused (see refuseForeignProcfs). Throws gpubox::Error
// naming the step ("--ro-bind /a /b: ...") or the path that failed.
// `procfs`, when given, holds procfs mounts made ahead by a process of
// another pid namespace (newProcfs there; the --as-pid-1 command's, see
// pid1_process.hpp): --proc steps use them, so that /proc shows that
// namespace, before making their own.
MountOutcome buildSandboxRoot(const std::vector<MountOp>& plan,
                              const std::vector<MaskedSocket>& masks,
                              const std::vector<std::string>& hide = {},
                              const BindSourceRule* bindSources = nullptr,
                              bool inOwnUserNamespace = true,
                              std::vector<UniqueFd>* procfs = nullptr);

// A new, detached procfs mount (nosuid, nodev, noexec) of the calling
// process's pid namespace: the kernel ties a procfs to the namespace of the
// process that creates it, whoever attaches it later. Throws gpubox::Error.
UniqueFd newProcfs(const std::string& what);

}  // namespace gpubox
