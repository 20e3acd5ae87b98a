#include "privileges.hpp"

#include <sys/prctl.h>

#include <algorithm>
#include <memory>

#include "error.hpp"

namespace gpubox {

namespace {

struct CapFree {
  void operator()(void* p) const { cap_free(p); }
};

std::string capName(cap_value_t cap) {
  std::unique_ptr<char, CapFree> name(cap_to_name(cap));
  return name ? std::string(name.get()) : "cap_" + std::to_string(cap);
}

}  // namespace

const std::vector<cap_value_t>& keptCapabilities() {
  // Each one's reason is in docs/security.md; the short form:
  static const std::vector<cap_value_t> kept = {
      CAP_SYS_ADMIN,   // device cgroup (v1 devices.allow, BPF); the no-userns init: mounts,
                       // pivot_root
      CAP_NET_ADMIN,   // that init brings up lo in its netns; BPF_PROG_ATTACH on older kernels
      CAP_SETUID,      // uid_map naming the caller's uid; that init's setresuid to the caller
      CAP_SETGID,      // gid_map with the caller's groups; that init's setgroups/setresgid
      CAP_SETFCAP,     // a uid_map that maps uid 0 (a root caller's sandbox), since Linux 5.12
      CAP_SETPCAP,     // that init empties its bounding set and locks its securebits
      CAP_SYS_PTRACE,  // /proc/PID/ns/* of the client (peer placement check)
      CAP_KILL,        // signal 0 to a client of another uid (auth); that init's processes
  };
  return kept;
}

CapabilityDrop dropToKeptCapabilities() {
  const std::vector<cap_value_t>& kept = keptCapabilities();
  auto isKept = [&](cap_value_t c) { return std::find(kept.begin(), kept.end(), c) != kept.end(); };
  std::unique_ptr<std::remove_pointer_t<cap_t>, CapFree> current(cap_get_proc());
  if (!current) throwErrno("read the helper's capabilities");

  CapabilityDrop report;
  std::vector<cap_value_t> held;
  for (cap_value_t c : kept) {
    cap_flag_value_t permitted = CAP_CLEAR;
    cap_get_flag(current.get(), c, CAP_PERMITTED, &permitted);
    if (permitted == CAP_SET) {
      held.push_back(c);
      report.kept.push_back(capName(c));
    } else {
      report.missing.push_back(capName(c));
    }
  }

  // The bounding set first: dropping from it needs CAP_SETPCAP, which the
  // helper still has in full here (or systemd already trimmed the set).
  const int last = static_cast<int>(cap_max_bits()) - 1;
  for (int c = 0; c <= last; ++c) {
    if (isKept(c) || ::prctl(PR_CAPBSET_READ, c, 0, 0, 0) != 1) continue;
    if (::prctl(PR_CAPBSET_DROP, c, 0, 0, 0) != 0)
      throwErrno("drop " + capName(c) +
                 " from the bounding set (the helper needs CAP_SETPCAP at start, or a "
                 "bounding set already limited to what it keeps)");
  }
  if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0)
    throwErrno("clear the ambient capabilities");
  // Inheritable stays empty: the helper never execs, and the sandbox init
  // drops everything before its commands do. With no thread started yet,
  // this thread's sets are the helper's.
  keepThreadCapabilities(held);
  return report;
}

void keepThreadCapabilities(const std::vector<cap_value_t>& keep) {
  std::unique_ptr<std::remove_pointer_t<cap_t>, CapFree> next(cap_init());
  if (!next) throwErrno("cap_init");
  if (!keep.empty() && (cap_set_flag(next.get(), CAP_PERMITTED, static_cast<int>(keep.size()),
                                     keep.data(), CAP_SET) != 0 ||
                        cap_set_flag(next.get(), CAP_EFFECTIVE, static_cast<int>(keep.size()),
                                     keep.data(), CAP_SET) != 0))
    throwErrno("cap_set_flag");
  // capset(2) changes the calling thread only (libcap without libpsx); it
  // fails with EPERM if KEEP names one this thread does not hold.
  if (cap_set_proc(next.get()) != 0) throwErrno("reduce the capabilities");
}

void dropThreadCapabilities() {
  keepThreadCapabilities({});
}

}  // namespace gpubox
