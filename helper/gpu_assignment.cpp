#include "gpu_assignment.hpp"

#include <algorithm>

#include "caller_policy.hpp"
#include "error.hpp"

namespace gpubox {

namespace {

// The helper's current GPU inventory: a snapshot the refresher thread
// published, never a discovery on the event loop.
std::shared_ptr<const GpuSnapshot> inventoryOf(const DaemonContext& ctx) {
  if (!ctx.gpuInventory) throw Error("the helper has no GPU inventory");
  return ctx.gpuInventory->snapshot();
}

bool grantCovers(const gpu::GpuGrant& grant, const gpu::Gpu& g) {
  if (!grant.allowed) return false;
  if (grant.all) return true;
  if (std::find(grant.indices.begin(), grant.indices.end(), g.index) != grant.indices.end())
    return true;
  return !g.uuid.empty() &&
         std::find(grant.uuids.begin(), grant.uuids.end(), g.uuid) != grant.uuids.end();
}

}  // namespace

bool asksForGpus(const std::vector<std::string>& selectors) {
  return std::any_of(selectors.begin(), selectors.end(),
                     [](const std::string& s) { return s != "none"; });
}

GpuAssignment assignGpus(DaemonContext& ctx, const PeerIdentity& peer,
                         const std::vector<std::string>& selectors,
                         const std::vector<MountOp>& plan) {
  policy::Grant grant = ctx.policy.grantFor(callerOf(peer));
  std::shared_ptr<const GpuSnapshot> snapshot = inventoryOf(ctx);
  if (!snapshot->inventory) {
    // A caller with no grant learns nothing about the host's GPUs, not even
    // that discovery failed: select() refuses it before it looks at an
    // inventory, so an empty one gives the same refusal.
    if (!grant.gpu.allowed) gpu::select(gpu::Inventory{}, selectors, grant.gpu, {}, peer.uid);
    throw Error(snapshot->error);
  }
  // Warnings were logged once, when the snapshot was taken.
  const gpu::Inventory& inventory = *snapshot->inventory;
  auto holders = [&](unsigned minor) { return ctx.leases.holders(minor); };
  gpu::Selection selection = gpu::select(inventory, selectors, grant.gpu, holders, peer.uid);
  GpuAssignment assignment;
  assignment.binding = gpu::planBinding(inventory, selection, gpu::libraryLayoutFor(plan));
  if (assignment.binding.minors.empty() && assignment.binding.allow.empty())
    throw Error("--gpu: the selection granted no device");
  assignment.lease = ctx.leases.acquire(assignment.binding.minors, grant.gpu.exclusive);
  return assignment;
}

std::optional<cgroup::DeviceRules> deviceRulesFor(DaemonContext& ctx, const GpuAssignment* gpus,
                                                  bool bindsDevices) {
  if (gpus) return cgroup::DeviceRules{cgroup::DevicePolicy::AllowListed, gpus->binding.allow, {}};
  if (!bindsDevices) return std::nullopt;
  // NVIDIA's dynamic majors (uvm, caps) come from the driver's proc/devices.
  // After a failed discovery (logged when it happened) there are none to add.
  std::vector<int> extra;
  std::shared_ptr<const GpuSnapshot> snapshot = inventoryOf(ctx);
  if (const gpu::Inventory* inventory = snapshot->inventory.get()) {
    if (inventory->uvmMajor) extra.push_back(static_cast<int>(inventory->uvmMajor));
    if (inventory->capsMajor) extra.push_back(static_cast<int>(inventory->capsMajor));
  }
  return cgroup::DeviceRules{cgroup::DevicePolicy::DenyNvidia, {}, extra};
}

std::vector<GpuListing> listGpus(DaemonContext& ctx, const PeerIdentity& peer) {
  policy::Grant grant = ctx.policy.grantFor(callerOf(peer));
  // Fail closed here too: a caller with no grant sees no GPU list at all.
  if (!grant.gpu.allowed) return {};
  std::shared_ptr<const GpuSnapshot> snapshot = inventoryOf(ctx);
  std::vector<GpuListing> out;
  for (const gpu::Gpu& g : snapshot->inventoryOrThrow().gpus) {
    if (!grantCovers(grant.gpu, g)) continue;
    out.push_back({g, true, ctx.leases.holders(g.minor)});
  }
  return out;
}

}  // namespace gpubox
