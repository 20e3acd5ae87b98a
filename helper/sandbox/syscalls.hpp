// Thin wrappers for the kernel interfaces glibc 2.36 does not wrap (openat2,
// clone3, pivot_root). Kernel versions: clone3 5.3, openat2 5.6.
#pragma once

#include <sys/types.h>

#include <cstdint>

namespace gpubox::sys {

// openat2(2) with the given RESOLVE_* flags; returns the fd or -1/errno.
int openat2(int dirfd, const char* path, uint64_t flags, uint64_t mode, uint64_t resolve);

// clone3(2) in fork-like form: returns 0 in the child, the child's pid in the
// parent (with *pidfd set), or -1/errno. With cgroupFd >= 0 the child starts
// in that cgroup v2 directory (CLONE_INTO_CGROUP, 5.7): it never runs a
// single instruction anywhere else.
pid_t clone3(uint64_t flags, int* pidfd, int cgroupFd = -1);

int pivotRoot(const char* newRoot, const char* putOld);

// glibc 2.36's <sys/pidfd.h> lacks C++ linkage, so these go through syscall(2).
int pidfdOpen(pid_t pid);                   // 5.3
int pidfdSendSignal(int pidfd, int signo);  // 5.1

}  // namespace gpubox::sys
