#include "device_rules.hpp"

#include <array>

#include "cgroup_fs.hpp"
#include "error.hpp"

namespace gpubox::cgroup {

namespace {

constexpr int kNvidiaMajor = 195;
// NVIDIA's minor space: 0..253 GPUs, 254 nvidia-modeset, 255 nvidiactl.
constexpr int kNvidiaMinors = 256;

// The nodes of bwrap's minimal /dev (plus the pty master and slaves): what
// every program expects to open.
const std::array<DeviceRule, 8> kStandardNodes = {{
    {'c', 1, 3, "rwm"},     // null
    {'c', 1, 5, "rwm"},     // zero
    {'c', 1, 7, "rwm"},     // full
    {'c', 1, 8, "rwm"},     // random
    {'c', 1, 9, "rwm"},     // urandom
    {'c', 5, 0, "rwm"},     // tty
    {'c', 5, 2, "rwm"},     // ptmx
    {'c', 136, -1, "rwm"},  // pts/*
}};

unsigned maskOf(const std::string& access) {
  unsigned mask = 0;
  for (char c : access) mask |= c == 'r' ? 1u : c == 'w' ? 2u : c == 'm' ? 4u : 0u;
  return mask;
}

std::string accessOf(unsigned mask) {
  std::string s;
  if (mask & 1u) s += 'r';
  if (mask & 2u) s += 'w';
  if (mask & 4u) s += 'm';
  return s;
}

}  // namespace

ExpandedDeviceRules expandDeviceRules(const DeviceRules& rules) {
  ExpandedDeviceRules out;
  out.defaultAllow = rules.policy == DevicePolicy::DenyNvidia;
  if (rules.policy == DevicePolicy::AllowListed) {
    out.allow.assign(kStandardNodes.begin(), kStandardNodes.end());
  } else {
    out.deny.push_back({'c', kNvidiaMajor, -1, "rwm"});
    for (int major : rules.extraDenyMajors) out.deny.push_back({'c', major, -1, "rwm"});
  }
  for (const DeviceRule& rule : rules.allow) {
    validate(rule);
    // Under DenyNvidia everything else is allowed already; a wildcard-major
    // exception would only undo the denials.
    if (rules.policy == DevicePolicy::DenyNvidia && rule.major < 0)
      throw Error("device rule '" + toString(rule) +
                  "' is not a valid exception to the NVIDIA denial (name a major)");
    out.allow.push_back(rule);
  }
  for (const DeviceRule& rule : out.deny) validate(rule);
  return out;
}

std::vector<ControlWrites> v1DeviceWrites(const ExpandedDeviceRules& rules) {
  if (!rules.defaultAllow) {
    std::vector<std::string> allow;
    for (const DeviceRule& rule : rules.allow) allow.push_back(toString(rule));
    return {{.file = "devices.deny", .values = {"a"}},
            {.file = "devices.allow", .values = std::move(allow)}};
  }
  // Default allow (fails unless the parent allows all), then the denials. v1
  // cannot carve an allowed minor out of a denied "195:*" (an allow write only
  // removes an identical deny entry), so with exceptions the NVIDIA minors
  // 0..255 are denied one by one. Minors above 255 of major 195 are then not
  // denied by v1; the driver never uses them, and where BPF is also in use it
  // denies them.
  std::vector<std::string> deny;
  for (const DeviceRule& d : rules.deny) {
    unsigned whole = 0;     // access allowed on every minor of this major
    bool specific = false;  // some exception names single minors
    for (const DeviceRule& a : rules.allow) {
      if (a.type != 'c' || a.major != d.major) continue;
      if (a.minor < 0)
        whole |= maskOf(a.access);
      else
        specific = true;
    }
    if (whole == 7u) continue;  // the whole major is allowed after all
    if (!specific) {
      deny.push_back(toString({'c', d.major, -1, accessOf(7u & ~whole)}));
      continue;
    }
    if (d.major != kNvidiaMajor)
      throw Error("cgroup v1 cannot deny major " + std::to_string(d.major) +
                  " except for single minors");
    for (int minor = 0; minor < kNvidiaMinors; ++minor) {
      unsigned mask = whole;
      for (const DeviceRule& a : rules.allow)
        if (a.type == 'c' && a.major == d.major && a.minor == minor) mask |= maskOf(a.access);
      if (mask != 7u) deny.push_back(toString({'c', d.major, minor, accessOf(7u & ~mask)}));
    }
  }
  return {{.file = "devices.allow", .values = {"a"}},
          {.file = "devices.deny", .values = std::move(deny)}};
}

const char* policyName(DevicePolicy policy) {
  return policy == DevicePolicy::AllowListed ? "allow-list" : "deny-nvidia";
}

}  // namespace gpubox::cgroup
