// What a sandbox's cgroup allows of devices: which device nodes its processes
// may open or create, enforced by the kernel no matter how a node got into
// the sandbox (a bind, a --dev-bind of the host's /dev, a mknod). This is what
// makes "only the granted GPUs" hold even against root's --dev-bind.
//
// Two backends, chosen from what the host mounts (see cgroup_mode.hpp):
//   v1  the devices controller: devices.deny/devices.allow in the sandbox's
//       v1 devices cgroup;
//   v2  a BPF_CGROUP_DEVICE program (raw bpf(2), see device_bpf.hpp) attached
//       to the sandbox's v2 cgroup.
// On hybrid hosts both are used: the kernel runs the v2 program and then the
// v1 rules for every device access, so each is a complete guard on its own.
// SandboxCgroup (sandbox_cgroup.hpp) applies them to the directories it made.
#pragma once

#include <string>
#include <vector>

#include "cgroup_fs.hpp"
#include "device_rule.hpp"

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

struct DeviceRules {
  DevicePolicy policy = DevicePolicy::AllowListed;
  std::vector<DeviceRule> allow;
  std::vector<int> extraDenyMajors;
  DeviceBackend backend = DeviceBackend::Auto;
};

// The rules a policy comes to: ALLOW first (first match allows), then DENY
// (first match denies), else DEFAULTALLOW.
struct ExpandedDeviceRules {
  std::vector<DeviceRule> allow;
  std::vector<DeviceRule> deny;
  bool defaultAllow = false;
};

// Validates every rule; throws gpubox::Error naming a malformed one.
ExpandedDeviceRules expandDeviceRules(const DeviceRules& rules);

// RULES as the writes to make, in order, to a fresh v1 devices cgroup's
// devices.deny and devices.allow. Throws gpubox::Error for rules v1 cannot
// express.
std::vector<ControlWrites> v1DeviceWrites(const ExpandedDeviceRules& rules);

// "allow-list" or "deny-nvidia", for status lines.
const char* policyName(DevicePolicy policy);

}  // namespace gpubox::cgroup
