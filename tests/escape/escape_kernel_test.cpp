// Escape attempts against the kernel from inside a sandbox: the mount API
// (old and new), mknod, chroot, other namespaces, host-wide kernel settings
// in /proc/sys and /sys, writes through read-only binds, setuid and
// file-capability binaries, and the calls the seccomp filter closes (the key
// service, bpf, userfaultfd, perf, nested user namespaces, other ABIs).
//
// Which layer stops each attempt, in both user-namespace modes of the helper
// (a user namespace mapping only the caller, or none: the sandbox built as
// root in the initial user namespace):
//   - the mount API, setns, nested user namespaces, keyctl, add_key, bpf,
//     userfaultfd, perf_event_open, open_by_handle_at, kexec, modules: the
//     seccomp filter (EPERM), the same in both modes; beneath it no
//     capability (CapabilityLayerHoldsWithoutSeccomp checks that layer for
//     the calls it covers: a root caller may turn the filter off);
//   - mknod, chroot, unshare of other namespaces, setuid(0): no capability
//     (all dropped, bounding set empty, securebits locked), in both modes;
//   - /proc/sys, /proc/sysrq-trigger, /sys: read-only mounts (EROFS); for a
//     non-root caller also the files' modes (EACCES);
//   - writes under a read-only bind: the mount's read-only flag (EROFS);
//   - setuid and file-capability binaries: nosuid on every bind, and
//     no_new_privs with SECBIT_NOROOT locked.
#include <linux/capability.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "escape_check.hpp"
#include "harness.hpp"

namespace gpubox::escape {
namespace {

using itest::kNobodyUid;

const std::vector<std::string> kHostRootPlan = {"--ro-bind", "/",    "/",       "--proc", "/proc",
                                                "--dev",     "/dev", "--tmpfs", "/mnt"};

class KernelEscape : public ProbeEscapeTest {};

TEST_P(KernelEscape, MountApiOldAndNew) {
  const Expect eperm = refused({"EPERM"});
  probeRows({}, {
                    {"mount a tmpfs (old API)", "mount-tmpfs:/tmp", eperm},
                    {"remount the host root read-write (old API)", "remount-rw:/", eperm},
                    {"unmount the sandbox's /proc to uncover the host's", "umount:/proc", eperm},
                    {"unmount the read-only root", "umount:/", eperm},
                    {"fsopen a tmpfs (new API)", "fsopen", eperm},
                    {"fspick the root to reconfigure it", "fspick:/", eperm},
                    {"open_tree a copy of the root", "open_tree:/", eperm},
                    {"move_mount /proc onto /tmp", "move_mount:/proc:/tmp", eperm},
                    {"mount_setattr: clear read-only on /", "mount_setattr-rw:/", eperm},
                    {"pivot_root", "pivot_root:/tmp:/tmp", eperm},
                });
}

TEST_P(KernelEscape, MknodChrootAndOtherNamespaces) {
  const Expect eperm = refused({"EPERM"});
  std::vector<ProbeRow> rows = {
      {"mknod /dev/mem (1:1)", "mknod-char:/tmp/mem:1:1", eperm},
      {"mknod /dev/sda-like block major as char (8:0)", "mknod-char:/tmp/disk:8:0", eperm},
      {"mknod an NVIDIA node (195:0)", "mknod-char:/tmp/nvidia0:195:0", eperm},
      {"chroot", "chroot:/tmp", eperm},
      {"unshare a mount namespace", "unshare-mnt", eperm},
      {"unshare a network namespace", "unshare-net", eperm},
      {"setns into its own mount namespace", "setns:/proc/self/ns/mnt", eperm},
  };
  // Root is uid 0 already; setuid(0) is a no-op for it. For anyone else:
  // EINVAL where uid 0 is not mapped in the sandbox's user namespace, EPERM
  // (no CAP_SETUID) without one.
  if (caller() != 0) rows.push_back({"setuid(0)", "setuid0", refused({"EPERM", "EINVAL"})});
  probeRows({}, rows);
}

TEST_P(KernelEscape, SeccompClosedKernelSurface) {
  const Expect eperm = refused({"EPERM"});
  probeRows({}, {
                    {"keyctl: join a session keyring", "keyctl", eperm},
                    {"add_key", "add_key", eperm},
                    {"bpf", "bpf", eperm},
                    {"userfaultfd", "userfaultfd", eperm},
                    {"perf_event_open", "perf_event_open", eperm},
                    {"nested user namespace (unshare)", "unshare-user", eperm},
                    {"nested user namespace (clone)", "clone-newuser", eperm},
                    {"open_by_handle_at", "open_by_handle_at", eperm},
                    {"kexec_load", "kexec_load", eperm},
                    {"init_module", "init_module", eperm},
                });
}

#if defined(__x86_64__)
TEST_P(KernelEscape, OtherAbisEndTheProcess) {
  for (const char* abi : {"i386", "x32"}) {
    itest::RunOptions opts;
    opts.asUid = caller();
    auto r = helper().cli({"run", "--", probe_, abi}, opts);
    auto results = parseProbeOutput(r.out);
    std::string got = results.count(abi) ? results[abi] : endedAs(r);
    const int host = itest::hostSignalForAbi(probe_, abi);
    check(caller(), std::string(abi) + " system call (getpid through that ABI)",
          exactly("exit " + std::to_string(128 + (host ? host : SIGSYS))), got);
  }
}
#endif

TEST_P(KernelEscape, HostWideSettingsInProcAndSys) {
  // Opening for writing is the attempt; nothing is written.
  const Expect ro = refused({"EROFS", "EACCES"});
  std::vector<ProbeRow> rows = {
      {"open /proc/sys/kernel/core_pattern for writing", "open-write:/proc/sys/kernel/core_pattern",
       ro},
      {"open /proc/sys/vm/drop_caches for writing", "open-write:/proc/sys/vm/drop_caches", ro},
      {"open /proc/sys/kernel/hostname for writing", "open-write:/proc/sys/kernel/hostname", ro},
  };
  // Those the host has (procfs and sysfs show the same kernel inside).
  for (const char* path : {"/proc/sysrq-trigger", "/sys/kernel/mm/transparent_hugepage/enabled",
                           "/sys/power/state", "/sys/kernel/uevent_helper"}) {
    if (itest::pathExists(path))
      rows.push_back(
          {std::string("open ") + path + " for writing", std::string("open-write:") + path, ro});
  }
  // Leaving its own cgroup for the host's root one would leave its limits.
  for (const std::string& controller :
       {std::string("pids"), std::string("memory"), std::string()}) {
    std::string mount = itest::cgroupMount(controller);
    if (mount.empty() || mount.rfind("/sys/", 0) != 0) continue;
    rows.push_back({"move itself into the host's root " +
                        (controller.empty() ? std::string("cgroup2") : controller) + " cgroup",
                    "open-write:" + mount + "/cgroup.procs", ro});
  }
  probeRows({}, rows);
  // The same under a plan of the caller's own that shows the host's root.
  probeRows(kHostRootPlan, {{"open /proc/sys/kernel/core_pattern for writing (host-root plan)",
                             "open-write:/proc/sys/kernel/core_pattern", ro}});
}

TEST_P(KernelEscape, WriteThroughAReadOnlyBind) {
  // A directory and file the caller owns and may write on the host.
  itest::TempDir mine(0777, caller(), caller(), "gpubox-escape-ro");
  itest::writeFile(mine / "file", "original\n", 0666, caller(), caller());
  std::vector<std::string> plan = kHostRootPlan;
  plan.insert(plan.end(), {"--ro-bind", mine.path(), "/mnt/ro"});
  const Expect erofs = refused({"EROFS"});
  probeRows(
      plan,
      {
          {"create a file in a read-only bind", "create:/mnt/ro/new", erofs},
          {"open a file of its own in a read-only bind for writing", "open-write:/mnt/ro/file",
           erofs},
          {"open the same file at its host path under the read-only root",
           "open-write:" + mine.path() + "/file", erofs},
          {"mount_setattr: make the bind writable", "mount_setattr-rw:/mnt/ro", refused({"EPERM"})},
          {"remount the bind read-write (old API)", "remount-rw:/mnt/ro", refused({"EPERM"})},
      });
  check(caller(), "the read-only bind's file is unchanged on the host", exactly("original"),
        itest::lines(itest::readFile(mine / "file")).at(0));
  // The default plan's host root: /var/tmp is world-writable on the host.
  probeRows({}, {{"create a file in the host's /var/tmp under the default plan",
                  "create:/var/tmp/gpubox-escape-probe", erofs}});
}

// The vfs_cap_data xattr granting CAP_SETUID, CAP_DAC_OVERRIDE and
// CAP_SYS_ADMIN, permitted and effective.
std::string fileCapsXattr() {
  vfs_cap_data caps = {};
  caps.magic_etc = VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE;
  caps.data[0].permitted = (1u << CAP_SETUID) | (1u << CAP_DAC_OVERRIDE) | (1u << CAP_SYS_ADMIN);
  return std::string(reinterpret_cast<const char*>(&caps), sizeof caps);
}

TEST_P(KernelEscape, SetuidAndFileCapabilityBinaries) {
  // Root-owned copies of the probe: one setuid root (4755), one carrying
  // file capabilities. Run inside, each reports its ids and capabilities.
  itest::TempDir dir(0755, 0, 0, "gpubox-escape-suid");
  std::string suid = installProbe(dir.path());
  ASSERT_EQ(::chmod(suid.c_str(), 04755), 0);
  std::string capped = dir / "capped_probe";
  itest::writeFile(capped, itest::readFile(suid), 0755);
  std::string xattr = fileCapsXattr();
  bool fileCaps =
      ::setxattr(capped.c_str(), "security.capability", xattr.data(), xattr.size(), 0) == 0;
  std::string me = std::to_string(caller());
  auto unprivileged =
      matching("euid=" + me + ", CapPrm and CapEff 0, NoNewPrivs 1", [me](const std::string& got) {
        return got.find("euid=" + me + " ") != std::string::npos &&
               got.find("CapPrm=0000000000000000") != std::string::npos &&
               got.find("CapEff=0000000000000000") != std::string::npos &&
               got.find("NoNewPrivs=1") != std::string::npos;
      });
  // Bound into the default plan, and at its host path under the host root.
  std::vector<std::string> bound = {"--with-defaults", "--ro-bind", dir.path(), "/tmp/suid"};
  runProbeRows(helper(), caller(), "/tmp/suid/escape_probe", bound,
               {{"exec a setuid-root binary (bound into the default plan)", "ids", unprivileged}});
  runProbeRows(helper(), caller(), suid, kHostRootPlan,
               {{"exec a setuid-root binary (host-root plan)", "ids", unprivileged}});
  if (fileCaps) {
    runProbeRows(helper(), caller(), "/tmp/suid/capped_probe", bound,
                 {{"exec a binary with file capabilities", "ids", unprivileged}});
  } else {
    std::cout << "note: cannot set security.capability on " << capped
              << "; the file-capability attempt is not run\n";
  }
}

// A root caller may turn the seccomp filter off (--seccomp none): the calls
// it closes must then meet the next layer, no capability, and still fail.
TEST_P(KernelEscape, CapabilityLayerHoldsWithoutSeccomp) {
  if (caller() != 0) GTEST_SKIP() << "--seccomp none is root's only";
  const Expect eperm = refused({"EPERM"});
  probeRows(
      {"--seccomp", "none"},
      {
          {"no seccomp: mount a tmpfs", "mount-tmpfs:/tmp", eperm},
          {"no seccomp: unmount /proc", "umount:/proc", eperm},
          {"no seccomp: fsopen", "fsopen", eperm},
          {"no seccomp: open_tree a copy of /", "open_tree:/", eperm},
          {"no seccomp: mount_setattr: clear read-only on /", "mount_setattr-rw:/", eperm},
          {"no seccomp: setns into its own mount namespace", "setns:/proc/self/ns/mnt", eperm},
          {"no seccomp: mknod /dev/mem", "mknod-char:/tmp/mem:1:1", eperm},
          {"no seccomp: chroot", "chroot:/tmp", eperm},
      });
}

GPUBOX_INSTANTIATE_CALLERS(KernelEscape);

}  // namespace
}  // namespace gpubox::escape
