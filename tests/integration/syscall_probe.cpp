// Runs inside a sandbox: tries each named system call in a way that is
// harmless whether or not it succeeds, and prints "NAME=ERRNO" (0: allowed
// and succeeded). Tells a seccomp denial (EPERM, ENOSYS) apart from the
// kernel's own answer to the same arguments (EBADF, EINVAL, ENOTTY, ...).
// "i386" and "x32" make a call through another ABI; the filter ends the
// process for those (SIGSYS), so they are run one per invocation.
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <string>

namespace {

long errnoOf(long rc) {
  return rc < 0 ? errno : 0;
}

const std::map<std::string, std::function<long()>>& probes() {
  static const std::map<std::string, std::function<long()>> p = {
    {"keyctl", [] { return errnoOf(::syscall(SYS_keyctl, 1 /*JOIN_SESSION_KEYRING*/, 0)); }},
    {"add_key",
     [] { return errnoOf(::syscall(SYS_add_key, "user", "gpubox", "v", 1, -2 /*process*/)); }},
    {"unshare_user", [] { return errnoOf(::unshare(CLONE_NEWUSER)); }},
    {"clone3", [] { return errnoOf(::syscall(SYS_clone3, nullptr, 0)); }},
    {"mount", [] { return errnoOf(::mount("none", "/", "tmpfs", 0, nullptr)); }},
    // Undoing the plan: making the read-only root writable, uncovering what
    // a mount hides, a mount namespace of one's own (needs CAP_SYS_ADMIN).
    {"remount_rw",
     [] { return errnoOf(::mount(nullptr, "/", nullptr, MS_REMOUNT | MS_BIND, nullptr)); }},
    {"umount_proc", [] { return errnoOf(::umount2("/proc", MNT_DETACH)); }},
    {"unshare_mnt", [] { return errnoOf(::unshare(CLONE_NEWNS)); }},
    {"bpf", [] { return errnoOf(::syscall(SYS_bpf, 0, nullptr, 0)); }},
    {"perf_event_open",
     [] { return errnoOf(::syscall(SYS_perf_event_open, nullptr, 0, -1, -1, 0)); }},
    {"userfaultfd", [] { return errnoOf(::syscall(SYS_userfaultfd, 0)); }},
    {"setns", [] { return errnoOf(::setns(-1, 0)); }},
    // statmount (Linux 6.8; 457 on every architecture): newer than the
    // filter knows, so ENOSYS under it; the kernel itself says EFAULT or,
    // before 6.8, ENOSYS too.
    {"statmount", [] { return errnoOf(::syscall(457, 0, 0, 0, 0)); }},
    {"open_by_handle_at", [] { return errnoOf(::syscall(SYS_open_by_handle_at, -1, nullptr, 0)); }},
    {"personality_aslr_off", [] { return errnoOf(::personality(ADDR_NO_RANDOMIZE)); }},
    {"personality_query", [] { return errnoOf(::personality(0xffffffff)); }},
    {"tiocsti",
     [] {
       char c = 'x';
       return errnoOf(::ioctl(0, TIOCSTI, &c));
     }},
    {"fork",
     [] {
       pid_t pid = ::fork();
       if (pid == 0) ::_exit(0);
       if (pid < 0) return static_cast<long>(errno);
       ::waitpid(pid, nullptr, 0);
       return 0L;
     }},
#if defined(__x86_64__)
    {"x32", [] { return errnoOf(::syscall(0x40000000L | SYS_getpid)); }},
    {"i386",
     [] {
       long rc;
       // getpid through the 32-bit entry point (int 0x80, eax = 20).
       asm volatile("int $0x80" : "=a"(rc) : "a"(20L) : "memory");
       return rc < 0 ? -rc : 0L;
     }},
#endif
  };
  return p;
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    auto it = probes().find(argv[i]);
    if (it == probes().end()) {
      std::printf("%s=unknown\n", argv[i]);
      continue;
    }
    long err = it->second();
    std::printf("%s=%s\n", argv[i], err == 0 ? "0" : ::strerrorname_np(static_cast<int>(err)));
    std::fflush(stdout);
  }
  return 0;
}
