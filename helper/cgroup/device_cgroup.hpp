// The device cgroup of one GPU sandbox: which device nodes its processes may
// open or create, enforced by the kernel no matter how a node got into the
// sandbox (a bind, a --dev-bind of the host's /dev, a mknod). This is what
// makes "only the granted GPUs" hold even against root's --dev-bind.
//
// Backends, chosen from what the host mounts (see cgroup_mode.hpp):
//   v1  devices controller: mkdir <devices>/gpubox/<name>, then
//       devices.deny/devices.allow;
//   v2  a cgroup under the helper's v2 cgroup (<own>/gpubox/<name>) with a
//       BPF_CGROUP_DEVICE program (raw bpf(2), see device_bpf.hpp).
// On hybrid hosts both are used: the kernel runs the v2 cgroup's BPF program
// and then the v1 rules for every device access, so each is a complete guard
// on its own. If one of them fails there, the other still enforces and
// skipped() says what was not used and why. If none works, create() throws:
// the caller must treat that as fatal for a GPU sandbox, never skip it.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "device_rule.hpp"
#include "unique_fd.hpp"

namespace gpubox::cgroup {

enum class DevicePolicy {
  // Deny everything except the standard nodes (null zero full random urandom
  // tty ptmx, /dev/pts/*) and the given allow rules. For GPU sandboxes.
  AllowListed,
  // Allow everything except NVIDIA devices (major 195) and the extra majors
  // (nvidia-uvm's and nvidia-caps' are dynamic); allow rules are exceptions
  // to those denials, e.g. the granted /dev/nvidiaN and nvidiactl for a
  // sandbox that --dev-binds the host's /dev.
  DenyNvidia,
};

// Which hierarchies to use; tests force one to check each on its own.
enum class DeviceBackend { Auto, V1Only, BpfOnly };

class DeviceCgroup {
 public:
  // NAME is one path component, unique among live sandboxes of all helpers on
  // the host (e.g. "sb-<helper pid>-<counter>"); an existing cgroup of that
  // name is an error, never reused. Throws gpubox::Error naming what failed.
  static std::unique_ptr<DeviceCgroup> create(const std::string& name, DevicePolicy policy,
                                              const std::vector<DeviceRule>& allow,
                                              const std::vector<int>& extraDenyMajors,
                                              DeviceBackend backend = DeviceBackend::Auto);

  // Only create() can make the key, so only it constructs (through
  // make_unique, which needs a public constructor).
  class Key {
    friend class DeviceCgroup;
    Key() = default;
  };
  explicit DeviceCgroup(Key) {}
  DeviceCgroup(const DeviceCgroup&) = delete;
  DeviceCgroup& operator=(const DeviceCgroup&) = delete;
  // Removes the cgroup directories. Call it after the sandbox's processes are
  // gone; a removal that still fails is reported on stderr, never thrown.
  ~DeviceCgroup();

  // Moves PID (the whole process) into the cgroup of every backend in use.
  // Throws gpubox::Error.
  void attach(pid_t pid);

  // Human-readable, for logs and the JSON status, e.g.
  // "devices:/gpubox/sb-12 + /sys/fs/cgroup/unified/gpubox/sb-12 (bpf)".
  std::string path() const;
  // "" when every available backend is in use, else which was not and why.
  const std::string& skipped() const { return skipped_; }
  bool usesV1() const { return !v1Dir_.empty(); }
  bool usesBpf() const { return !v2Dir_.empty(); }
  // The v2 cgroup directory's fd (or -1 without BPF), e.g. for clone3's
  // CLONE_INTO_CGROUP; on hybrid hosts attach() is still needed for v1.
  int v2Fd() const { return v2Fd_.get(); }
  // The directories this object removes in its destructor.
  std::vector<std::string> directories() const;

 private:
  void setUpV1(const std::string& mount, const std::string& name, DevicePolicy policy,
               const std::vector<DeviceRule>& allow, const std::vector<DeviceRule>& deny);
  void setUpBpf(const std::string& parent, const std::string& name, DevicePolicy policy,
                const std::vector<DeviceRule>& allow, const std::vector<DeviceRule>& deny);

  std::string v1Dir_;  // absolute; empty when v1 is not used
  std::string v1Display_;
  UniqueFd v1Fd_;
  std::string v2Dir_;  // absolute; empty when BPF is not used
  UniqueFd v2Fd_;
  UniqueFd program_;  // keeps the BPF program alive as long as the object
  std::string skipped_;
};

}  // namespace gpubox::cgroup
