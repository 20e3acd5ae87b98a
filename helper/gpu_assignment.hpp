// Decides what GPUs a sandbox gets and what holds them there: the policy
// grant, the selection, the binding plan, the leases and the device cgroup.
// Fail-closed throughout: anything that cannot be done is an error for the
// caller, never a quieter sandbox.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "daemon_context.hpp"
#include "gpu.hpp"
#include "lease_table.hpp"
#include "peer.hpp"
#include "sandbox_cgroup.hpp"

namespace gpubox {

struct GpuAssignment {
  gpu::Binding binding;
  leases::Lease lease;
};

// Whether `selectors` ask for any GPU at all ("none" and no selector don't).
bool asksForGpus(const std::vector<std::string>& selectors);

// Grants the GPUs `selectors` ask for, or throws gpubox::Error saying what
// was asked and why it was refused. `plan` (the sandbox's own mount plan)
// decides where the driver's libraries go (gpu::libraryLayoutFor).
GpuAssignment assignGpus(DaemonContext& ctx, const PeerIdentity& peer,
                         const std::vector<std::string>& selectors,
                         const std::vector<MountOp>& plan);

// The device rules of a sandbox's cgroup: for a GPU sandbox, only the
// standard nodes and the granted NVIDIA devices; for a sandbox that binds
// host devices (root's --dev-bind), everything but NVIDIA devices. Other
// sandboxes need none (their binds are nodev).
std::optional<cgroup::DeviceRules> deviceRulesFor(DaemonContext& ctx, const GpuAssignment* gpus,
                                                  bool bindsDevices);

// What `gpubox gpus` shows this caller.
struct GpuListing {
  gpu::Gpu gpu;
  bool allowed = false;
  unsigned holders = 0;
};
std::vector<GpuListing> listGpus(DaemonContext& ctx, const PeerIdentity& peer);

}  // namespace gpubox
