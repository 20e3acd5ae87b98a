// The seccomp filter every sandboxed command runs under, unless the request
// says --seccomp none (root, or a policy rule with seccomp_none = true).
//
// A deny-list on a default-allow filter: real workloads (Python, PyTorch with
// CUDA and the driver's ioctls, compilers, git, Node) keep working, and what
// sandboxed code has no business doing fails with EPERM: kernel modules and
// kexec, bpf, perf_event_open, userfaultfd, the key retention service,
// every mount API, handle-based opens, port I/O, reboot, swap, accounting,
// clock setting, quotas, setns, new user namespaces (unshare/clone with
// CLONE_NEWUSER), personality flags that weaken ASLR, and the TIOCSTI /
// TIOCLINUX ioctls. clone3 gets ENOSYS: its flags live in memory a filter
// cannot read, and libc then falls back to clone, whose flags it checks.
// Other ABIs than the native one (i386 and x32 on x86_64, arm32 on aarch64)
// end the process: their numbers would slip past the native rules. Numbers
// above the highest system call the profile knows (newer kernels' calls)
// fail with ENOSYS, as container runtimes do: a call the profile has never
// been reviewed for is not let through, and libc falls back as it would on
// an older kernel.
//
// "nested-userns" is the same profile with new user namespaces allowed
// (bubblewrap or a container runtime inside the sandbox); root, or a policy
// rule with nested_user_namespaces = true, may ask for it.
#pragma once

#include <linux/filter.h>

#include <cstdint>
#include <string>
#include <vector>

namespace gpubox {

struct SeccompProgram {
  std::string name;  // "default" or "nested-userns"
  std::vector<sock_filter> instructions;
};

// Built once, at helper start, with libseccomp, for ARCH (a SCMP_ARCH_*
// token; 0: the helper's own). Throws gpubox::Error.
SeccompProgram buildDefaultSeccompProfile(bool allowNewUserNamespaces = false, uint32_t arch = 0);

// Installs PROGRAM on the calling thread (no_new_privs must already be set).
// Returns 0 or an errno. Async-signal-safe: called between fork and exec.
int installSeccomp(const std::vector<sock_filter>& program);

}  // namespace gpubox
