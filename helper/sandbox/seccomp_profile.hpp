// The seccomp filter every sandboxed command runs under, unless the request
// says --seccomp none (root only until the policy file can allow it).
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
// end the process: their numbers would slip past the native rules.
#pragma once

#include <linux/filter.h>

#include <string>
#include <vector>

namespace gpubox {

struct SeccompProgram {
  std::string name;  // "default"
  std::vector<sock_filter> instructions;
};

// Built once, at helper start, with libseccomp. Throws gpubox::Error.
SeccompProgram buildDefaultSeccompProfile();

// Installs PROGRAM on the calling thread (no_new_privs must already be set).
// Returns 0 or an errno. Async-signal-safe: called between fork and exec.
int installSeccomp(const std::vector<sock_filter>& program);

}  // namespace gpubox
