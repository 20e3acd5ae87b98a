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

#include <cstddef>
#include <cstdlib>
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

void add(scmp_filter_ctx ctx, uint32_t arch, uint32_t action, const char* name, unsigned count,
         const scmp_arg_cmp* cmp = nullptr) {
  // A call this architecture does not have (umount on aarch64, ioperm
  // outside x86) needs no rule.
  if (seccomp_syscall_resolve_name_arch(arch, name) == __NR_SCMP_ERROR) return;
  // Rules take libseccomp's own number for the call, which it translates for
  // every architecture in the filter.
  const int nr = seccomp_syscall_resolve_name(name);
  if (nr == __NR_SCMP_ERROR) return;
  const int rc = count ? seccomp_rule_add_array(ctx, action, nr, count, cmp)
                       : seccomp_rule_add(ctx, action, nr, 0);
  if (rc != 0) throwErrno(std::string("seccomp rule for ") + name, -rc);
}

// x32 system calls are numbered from here on x86_64; libseccomp's own
// program ends them (the bad-arch action), so the unknown-number check must
// leave them to it.
constexpr uint32_t kX32SyscallBit = 0x40000000;

// One past the highest system call number libseccomp knows on ARCH.
uint32_t firstUnknownSyscall(uint32_t arch) {
  uint32_t first = 0;
  for (int nr = 0; nr < 4096; ++nr) {
    if (char* name = seccomp_syscall_resolve_num_arch(arch, nr)) {
      ::free(name);
      first = static_cast<uint32_t>(nr) + 1;
    }
  }
  return first;
}

// Put before libseccomp's program: for the native ABI, a number above every
// known call gets ENOSYS; everything else goes on to libseccomp's program,
// which checks the architecture again itself.
std::vector<sock_filter> unknownSyscallPrefix(uint32_t arch, uint32_t firstUnknown) {
  return {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, arch, 0, 4),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, kX32SyscallBit, 2, 0),
      BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, firstUnknown, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA)),
  };
}

}  // namespace

SeccompProgram buildDefaultSeccompProfile(bool allowNewUserNamespaces, uint32_t arch) {
  if (arch == 0) arch = seccomp_arch_native();
  Filter filter(seccomp_init(SCMP_ACT_ALLOW));
  if (!filter) throw Error("seccomp_init failed");
  scmp_filter_ctx ctx = filter.get();
  if (arch != seccomp_arch_native()) {
    if (int rc = seccomp_arch_add(ctx, arch); rc != 0) throwErrno("seccomp arch", -rc);
    if (int rc = seccomp_arch_remove(ctx, SCMP_ARCH_NATIVE); rc != 0)
      throwErrno("seccomp arch", -rc);
  }
  // Other ABIs: their syscall numbers mean other calls; end the process.
  if (int rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS); rc != 0)
    throwErrno("seccomp bad-arch action", -rc);
  // Rules as a binary tree of system call numbers, not a chain: the kernel
  // walks the program for every call number when it attaches it (to cache
  // the calls it always allows), and the sandbox's calls each take a few
  // comparisons instead of one per rule. Attaching it (once per sandbox,
  // by its init) measured 47 µs against 88 for the chain
  // (docs/performance.md).
  if (int rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2); rc != 0)
    throwErrno("seccomp binary tree", -rc);
  const uint32_t eperm = SCMP_ACT_ERRNO(EPERM);
  for (const char* name : kDenied) add(ctx, arch, eperm, name, 0);

  // New user namespaces: the way into most kernel attack surface.
  if (!allowNewUserNamespaces) {
    const scmp_arg_cmp newUser = SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER);
    add(ctx, arch, eperm, "unshare", 1, &newUser);
    // flags are the first argument on x86_64 and aarch64
    add(ctx, arch, eperm, "clone", 1, &newUser);
  }
  add(ctx, arch, SCMP_ACT_ERRNO(ENOSYS), "clone3", 0);

  // Terminal injection into whatever reads the caller's terminal.
  for (unsigned long request : {static_cast<unsigned long>(TIOCSTI), 0x541CUL /* TIOCLINUX */}) {
    const scmp_arg_cmp cmp = SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffUL, request);
    add(ctx, arch, eperm, "ioctl", 1, &cmp);
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
    add(ctx, arch, eperm, "personality", 1, &cmp);
  }

  // Export the classic BPF program through a memfd (libseccomp 2.5 writes to an fd).
  UniqueFd mem(::memfd_create("gpubox-seccomp", MFD_CLOEXEC));
  if (!mem) throwErrno("memfd for the seccomp program");
  if (int rc = seccomp_export_bpf(ctx, mem.get()); rc != 0) throwErrno("seccomp_export_bpf", -rc);
  struct stat st;
  if (::fstat(mem.get(), &st) != 0) throwErrno("fstat seccomp program");
  SeccompProgram program{allowNewUserNamespaces ? "nested-userns" : "default",
                         unknownSyscallPrefix(arch, firstUnknownSyscall(arch))};
  const size_t prefix = program.instructions.size();
  program.instructions.resize(prefix + static_cast<size_t>(st.st_size) / sizeof(sock_filter));
  const size_t bytes = (program.instructions.size() - prefix) * sizeof(sock_filter);
  if (bytes == 0 || ::pread(mem.get(), program.instructions.data() + prefix, bytes, 0) !=
                        static_cast<ssize_t>(bytes))
    throw Error("cannot read back the seccomp program");
  if (program.instructions.size() > BPF_MAXINSNS) throw Error("the seccomp program is too long");
  return program;
}

int installSeccomp(const std::vector<sock_filter>& program) {
  sock_fprog prog{static_cast<unsigned short>(program.size()),
                  const_cast<sock_filter*>(program.data())};
  if (::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) == 0) return 0;
  return errno;
}

}  // namespace gpubox
