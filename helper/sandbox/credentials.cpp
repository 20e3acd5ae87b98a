#include "credentials.hpp"

#include <grp.h>
#include <linux/securebits.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <memory>

#include "error.hpp"

namespace gpubox {

namespace {

struct CapFree {
  void operator()(cap_t c) const { cap_free(c); }
};
using CapHandle = std::unique_ptr<std::remove_pointer_t<cap_t>, CapFree>;

void setCaps(const std::vector<cap_value_t>& keep) {
  CapHandle caps(cap_init());
  if (!caps) throwErrno("cap_init");
  if (!keep.empty()) {
    if (cap_set_flag(caps.get(), CAP_PERMITTED, static_cast<int>(keep.size()), keep.data(),
                     CAP_SET) != 0 ||
        cap_set_flag(caps.get(), CAP_EFFECTIVE, static_cast<int>(keep.size()), keep.data(),
                     CAP_SET) != 0)
      throwErrno("cap_set_flag");
  }
  if (cap_set_proc(caps.get()) != 0) throwErrno("set capabilities");
}

// The raw system calls, not glibc's wrappers: those change every thread of
// the process (__nptl_setxid), and the init is a clone3 child of the
// multi-threaded helper whose copy of glibc's thread list still names the
// helper's threads; one caught being created at the moment of the clone
// left the init waiting for it forever. The init has one thread: the
// system call alone is exactly what it needs.
void setGroups(const std::vector<gid_t>& groups) {
  if (::syscall(SYS_setgroups, groups.size(), groups.data()) != 0) throwErrno("setgroups");
}
void setResGid(gid_t gid) {
  if (::syscall(SYS_setresgid, gid, gid, gid) != 0) throwErrno("setresgid");
}
void setResUid(uid_t uid) {
  if (::syscall(SYS_setresuid, uid, uid, uid) != 0) throwErrno("setresuid");
}

}  // namespace

void becomeCallerForSetup(uid_t uid, gid_t gid, const std::vector<gid_t>& groups) {
  setGroups(groups);
  setResGid(gid);
  // Keep the permitted set across the uid change, then trim it to the three
  // capabilities the rest of the setup needs.
  if (::prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0) throwErrno("PR_SET_KEEPCAPS");
  setResUid(uid);
  try {
    setCaps({CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_SETPCAP});
  } catch (const Error& e) {
    // In a user namespace of its own the init has them all; without one
    // (--user-namespace never) they are the helper's, and a helper started
    // with fewer cannot build sandboxes.
    throw Error(std::string(e.what()) +
                " (the sandbox's setup needs CAP_SYS_ADMIN, CAP_NET_ADMIN and CAP_SETPCAP; "
                "without a user namespace of its own they must be in the helper's permitted "
                "set)");
  }
  if (::prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) != 0) throwErrno("PR_SET_KEEPCAPS");
  // The uid change resets dumpability to the suid_dumpable default; make sure
  // the caller's other processes can never ptrace the init while it holds
  // capabilities. (Between the uid change and this call the kernel's own
  // rule already keeps them out: a tracer without CAP_SYS_PTRACE needs every
  // capability the tracee holds, and the caller's processes hold none of the
  // init's, with or without a user namespace.)
  if (::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) throwErrno("PR_SET_DUMPABLE");
}

void dropAllPrivileges() {
  int last = static_cast<int>(cap_max_bits()) - 1;
  for (int cap = 0; cap <= last; ++cap) {
    if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL)
      throwErrno("drop bounding capability " + std::to_string(cap));
  }
  if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0)
    throwErrno("clear ambient capabilities");
  unsigned long bits = SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP |
                       SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED |
                       SECBIT_NO_CAP_AMBIENT_RAISE | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
  if (::prctl(PR_SET_SECUREBITS, bits, 0, 0, 0) != 0) throwErrno("set securebits");
  setCaps({});
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) throwErrno("set no_new_privs");
}

}  // namespace gpubox
