// cgroup v2 device control: a BPF_PROG_TYPE_CGROUP_DEVICE program generated
// from the rules, loaded and attached with raw bpf(2) syscalls. No libbpf: the
// program is a few dozen instructions written out here, so a library (and its
// version skew across distributions) buys nothing.
#pragma once

#include <linux/bpf.h>

#include <memory>
#include <string>
#include <vector>

#include "device_rule.hpp"
#include "unique_fd.hpp"

namespace gpubox::cgroup {

// The program checks ALLOW rules first (first match allows), then DENY rules
// (first match denies), then returns DEFAULTALLOW. A device the program
// denies fails open()/mknod() with EPERM.
std::vector<bpf_insn> buildDeviceProgram(const std::vector<DeviceRule>& allow,
                                         const std::vector<DeviceRule>& deny, bool defaultAllow);

// BPF_PROG_LOAD; the error includes the verifier's log. Throws gpubox::Error.
UniqueFd loadDeviceProgram(const std::vector<bpf_insn>& program);

// loadDeviceProgram() once per distinct program: the verifier's run is most
// of the cost of a GPU sandbox's device rules (docs/performance.md), and
// sandboxes granted the same GPUs get the same program. One loaded program
// may be attached to any number of cgroups. The last 32 distinct programs
// stay loaded. Throws gpubox::Error.
std::shared_ptr<const UniqueFd> loadDeviceProgramShared(const std::vector<bpf_insn>& program);

// BPF_PROG_ATTACH as BPF_CGROUP_DEVICE to the cgroup directory CGROUPFD.
// The kernel detaches it when the cgroup is removed. Returns 0 or the errno;
// a system call only, so the cgroup worker's thread may make it.
int attachDeviceProgram(int cgroupFd, int programFd) noexcept;
// The words for attachDeviceProgram()'s errno ERR.
std::string attachFailure(int err);

}  // namespace gpubox::cgroup
