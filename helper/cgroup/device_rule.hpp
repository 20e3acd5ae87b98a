// One device access rule, in the terms both cgroup v1 (devices.allow) and the
// v2 BPF device program understand.
#pragma once

#include <string>

namespace gpubox::cgroup {

struct DeviceRule {
  char type = 'c';             // 'c' char, 'b' block, 'a' every device (then major = minor = -1)
  int major = -1;              // -1 = '*'
  int minor = -1;              // -1 = '*'
  std::string access = "rwm";  // non-empty subset of "rwm" (read, write, mknod)

  bool operator==(const DeviceRule&) const = default;
};

// Throws gpubox::Error when the rule is malformed.
void validate(const DeviceRule& rule);
// "c 195:0 rwm" -- the cgroup v1 devices.allow syntax, also used in messages.
std::string toString(const DeviceRule& rule);

}  // namespace gpubox::cgroup
