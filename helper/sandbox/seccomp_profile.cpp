#include "seccomp_profile.hpp"

#include <errno.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <memory>

#include "error.hpp"
#include "unique_fd.hpp"

namespace gpubox {

namespace {

struct FilterFree {
  void operator()(scmp_filter_ctx ctx) const { seccomp_release(ctx); }
};
using Filter = std::unique_ptr<void, FilterFree>;

// Calls that fail with EPERM whatever their arguments.
constexpr const char* kDenied[] = {
    // kernel code and kernel state
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "iopl",
    "ioperm",
    "reboot",
    "swapon",
    "swapoff",
    "acct",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "quotactl",
    "quotactl_fd",
    "lookup_dcookie",
    "vhangup",
    "nfsservctl",
    // the key retention service (not namespaced)
    "keyctl",
    "add_key",
    "request_key",
    // the mount API, old and new
    "mount",
    "umount",
    "umount2",
    "pivot_root",
    "move_mount",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "open_tree",
    "mount_setattr",
    // handle-based opens bypass path checks
    "open_by_handle_at",
    "name_to_handle_at",
    // no way into another namespace
    "setns",
};

void add(scmp_filter_ctx ctx, uint32_t action, const char* name, unsigned count,
         const scmp_arg_cmp* cmp = nullptr) {
  const int nr = seccomp_syscall_resolve_name(name);
  // A call this architecture does not have (umount on aarch64, ioperm
  // outside x86) needs no rule.
  if (nr == __NR_SCMP_ERROR) return;
  const int rc = count ? seccomp_rule_add_array(ctx, action, nr, count, cmp)
                       : seccomp_rule_add(ctx, action, nr, 0);
  if (rc != 0) throwErrno(std::string("seccomp rule for ") + name, -rc);
}

}  // namespace

SeccompProgram buildDefaultSeccompProfile() {
  Filter filter(seccomp_init(SCMP_ACT_ALLOW));
  if (!filter) throw Error("seccomp_init failed");
  scmp_filter_ctx ctx = filter.get();
  // Other ABIs: their syscall numbers mean other calls; end the process.
  if (int rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS); rc != 0)
    throwErrno("seccomp bad-arch action", -rc);
  const uint32_t eperm = SCMP_ACT_ERRNO(EPERM);
  for (const char* name : kDenied) add(ctx, eperm, name, 0);

  // New user namespaces: the way into most kernel attack surface.
  const scmp_arg_cmp newUser = SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER);
  add(ctx, eperm, "unshare", 1, &newUser);
  add(ctx, eperm, "clone", 1, &newUser);  // flags are the first argument on x86_64 and aarch64
  add(ctx, SCMP_ACT_ERRNO(ENOSYS), "clone3", 0);

  // Terminal injection into whatever reads the caller's terminal.
  for (unsigned long request : {static_cast<unsigned long>(TIOCSTI), 0x541CUL /* TIOCLINUX */}) {
    const scmp_arg_cmp cmp = SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffUL, request);
    add(ctx, eperm, "ioctl", 1, &cmp);
  }
  // personality() flags that turn ASLR or NX off. Querying (0xffffffff) and
  // PER_LINUX / PER_LINUX32 stay allowed: no personality value uses bit 31,
  // so "flag set and bit 31 clear" is exactly "sets the flag".
  constexpr unsigned long kQueryBit = 0x80000000UL;
  for (unsigned long flag : {static_cast<unsigned long>(ADDR_NO_RANDOMIZE),
                             static_cast<unsigned long>(READ_IMPLIES_EXEC),
                             static_cast<unsigned long>(ADDR_COMPAT_LAYOUT),
                             static_cast<unsigned long>(MMAP_PAGE_ZERO)}) {
    const scmp_arg_cmp cmp = SCMP_A0(SCMP_CMP_MASKED_EQ, flag | kQueryBit, flag);
    add(ctx, eperm, "personality", 1, &cmp);
  }

  // Export the classic BPF program through a memfd (libseccomp 2.5 writes to an fd).
  UniqueFd mem(::memfd_create("gpubox-seccomp", MFD_CLOEXEC));
  if (!mem) throwErrno("memfd for the seccomp program");
  if (int rc = seccomp_export_bpf(ctx, mem.get()); rc != 0) throwErrno("seccomp_export_bpf", -rc);
  struct stat st;
  if (::fstat(mem.get(), &st) != 0) throwErrno("fstat seccomp program");
  SeccompProgram program{"default", {}};
  program.instructions.resize(static_cast<size_t>(st.st_size) / sizeof(sock_filter));
  const size_t bytes = program.instructions.size() * sizeof(sock_filter);
  if (program.instructions.empty() ||
      ::pread(mem.get(), program.instructions.data(), bytes, 0) != static_cast<ssize_t>(bytes))
    throw Error("cannot read back the seccomp program");
  return program;
}

int installSeccomp(const std::vector<sock_filter>& program) {
  sock_fprog prog{static_cast<unsigned short>(program.size()),
                  const_cast<sock_filter*>(program.data())};
  if (::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) == 0) return 0;
  return errno;
}

}  // namespace gpubox
