// Where sandbox cgroups are made, decided once at helper start: one parent
// directory per hierarchy, and which resources each hierarchy handles.
//
// Each resource (memory, cpu, pids) is handled by cgroup v2 when its
// controller is enabled in the v2 parent's cgroup.subtree_control, else by
// its v1 hierarchy when that is mounted, else not at all. Pure v2 hosts use
// v2 only; pure v1 hosts v1 only; hybrid hosts (v1 controllers plus a
// controller-less cgroup2) v1 for the resources and v2 for the cgroup.kill /
// CLONE_INTO_CGROUP / BPF device program that the v2 directory still offers.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "cgroup_mode.hpp"
#include "resource_limits.hpp"

namespace gpubox::cgroup {

struct Layout {
  Mounts mounts;
  // Absolute dir, e.g. /sys/fs/cgroup/system.slice/gpubox.service/gpubox;
  // "" without cgroup2.
  std::string v2Parent;
  // Of memory/cpu/pids: those enabled in v2Parent's cgroup.subtree_control.
  std::vector<std::string> v2Controllers;
  // v1 controller name ("memory", "cpu", "cpuacct", "pids", "devices") ->
  // absolute parent dir. Co-mounted controllers share a directory.
  std::map<std::string, std::string> v1Parents;
};

// Detects mounts, chooses parents and prepares them (creates them, enables
// controllers).
//  v2: "<own v2 cgroup>/gpubox", or "<v2 mount><configuredParent>" when
//      CONFIGUREDPARENT (a cgroup path such as "/gpubox.slice/sandboxes") is
//      set. cgroup v2 lets a cgroup with processes of its own hand no
//      controller to its children ("no internal processes"), so unless its
//      own cgroup is the hierarchy's root the helper first moves itself into
//      the leaf "<own>/helper" (once per process; under systemd this needs
//      Delegate=yes). Then "+memory +cpu +pids", each that cgroup.controllers
//      offers, go into the subtree_control of every level down to the
//      parent; one that cannot be enabled is just absent from v2Controllers.
//  v1: memory, cpu, cpuacct, pids: "<mount><own path there>/gpubox" (or
//      CONFIGUREDPARENT under the mount), each only when mounted and not
//      handled by v2. devices: "<devices mount>/gpubox", the hierarchy's root
//      and not the helper's own cgroup: a v1 devices cgroup can never allow
//      more than its parent, and systemd may restrict the helper's own
//      (DevicePolicy=).
// Throws gpubox::Error naming what failed.
Layout prepareLayout(const std::string& configuredParent = "");

// One line per resource: where it is enforced, e.g.
// "memory: cgroup v1 (/sys/fs/cgroup/memory/process_api/x/gpubox)",
// "cpu: cgroup v2 (...)", "pids: unavailable".
std::vector<std::string> describeLayout(const Layout& layout);

// "" when LAYOUT can enforce every limit set in LIMITS, else a message naming
// the option, e.g. "--memory: no memory controller is available to the helper
// (cgroup v2: not enabled in /sys/fs/cgroup/x/cgroup.subtree_control; cgroup
// v1: not mounted)".
std::string unsupportedLimit(const Layout& layout, const ResourceLimits& limits);

// Whether LAYOUT handles the resource CONTROLLER ("memory", "cpu", "pids";
// "cpuacct" counts as "cpu") through cgroup v2.
bool handledByV2(const Layout& layout, const std::string& controller);

}  // namespace gpubox::cgroup
