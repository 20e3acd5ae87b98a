#include "syscalls.hpp"

#include <linux/openat2.h>
#include <linux/sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace gpubox::sys {

int openat2(int dirfd, const char* path, uint64_t flags, uint64_t mode, uint64_t resolve) {
  struct open_how how = {};
  how.flags = flags;
  how.mode = mode;
  how.resolve = resolve;
  return static_cast<int>(::syscall(SYS_openat2, dirfd, path, &how, sizeof(how)));
}

pid_t clone3(uint64_t flags, int* pidfd, int cgroupFd) {
  struct clone_args args = {};
  args.flags = flags | CLONE_PIDFD;
  if (cgroupFd >= 0) {
    args.flags |= CLONE_INTO_CGROUP;
    args.cgroup = static_cast<uint64_t>(cgroupFd);
  }
  args.pidfd = reinterpret_cast<uint64_t>(pidfd);
  // CLONE_PARENT takes the caller's own exit signal; the kernel refuses one here.
  args.exit_signal = (flags & CLONE_PARENT) ? 0 : SIGCHLD;
  return static_cast<pid_t>(::syscall(SYS_clone3, &args, sizeof(args)));
}

int pivotRoot(const char* newRoot, const char* putOld) {
  return static_cast<int>(::syscall(SYS_pivot_root, newRoot, putOld));
}

int pidfdOpen(pid_t pid) {
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
}

int pidfdSendSignal(int pidfd, int signo) {
  return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, signo, nullptr, 0));
}

}  // namespace gpubox::sys
