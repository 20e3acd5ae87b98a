#include "gpu_assignment.hpp"

#include <algorithm>

#include "error.hpp"

namespace gpubox {

namespace {

policy::Caller callerOf(const PeerIdentity& peer) {
  return {peer.uid, peer.gid, peer.groups};
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
                         const std::vector<std::string>& selectors) {
  policy::Grant grant = ctx.policy.grantFor(callerOf(peer));
  // The policy check comes before discovery inside select(): a caller with
  // no grant learns nothing about the host's GPUs.
  gpu::Inventory inventory = gpu::discover(ctx.driverRoot);
  for (const std::string& w : inventory.warnings) logError("gpu discovery: " + w);
  auto holders = [&](unsigned minor) { return ctx.leases.holders(minor); };
  gpu::Selection selection = gpu::select(inventory, selectors, grant.gpu, holders, peer.uid);
  GpuAssignment assignment;
  assignment.binding = gpu::planBinding(inventory, selection);
  if (assignment.binding.minors.empty() && assignment.binding.allow.empty())
    throw Error("--gpu: the selection granted no device");
  assignment.lease = ctx.leases.acquire(assignment.binding.minors, grant.gpu.exclusive);
  return assignment;
}

std::unique_ptr<cgroup::DeviceCgroup> deviceCgroupFor(DaemonContext& ctx, const std::string& name,
                                                      const GpuAssignment* gpus,
                                                      bool bindsDevices) {
  if (gpus) {
    auto cg = cgroup::DeviceCgroup::create(name, cgroup::DevicePolicy::AllowListed,
                                           gpus->binding.allow, {});
    if (!cg->skipped().empty()) logInfo("device cgroup " + cg->path() + ": " + cg->skipped());
    return cg;
  }
  if (!bindsDevices) return nullptr;
  // NVIDIA's dynamic majors (uvm, caps) come from the driver's proc/devices.
  std::vector<int> extra;
  try {
    gpu::Inventory inventory = gpu::discover(ctx.driverRoot);
    if (inventory.uvmMajor) extra.push_back(static_cast<int>(inventory.uvmMajor));
    if (inventory.capsMajor) extra.push_back(static_cast<int>(inventory.capsMajor));
  } catch (const Error& e) {
    logError(std::string("gpu discovery for a device-binding sandbox: ") + e.what());
  }
  auto cg = cgroup::DeviceCgroup::create(name, cgroup::DevicePolicy::DenyNvidia, {}, extra);
  if (!cg->skipped().empty()) logInfo("device cgroup " + cg->path() + ": " + cg->skipped());
  return cg;
}

std::vector<GpuListing> listGpus(DaemonContext& ctx, const PeerIdentity& peer) {
  policy::Grant grant = ctx.policy.grantFor(callerOf(peer));
  // Fail closed here too: a caller with no grant sees no GPU list at all.
  if (!grant.gpu.allowed) return {};
  gpu::Inventory inventory = gpu::discover(ctx.driverRoot);
  std::vector<GpuListing> out;
  for (const gpu::Gpu& g : inventory.gpus) {
    if (!grantCovers(grant.gpu, g)) continue;
    out.push_back({g, true, ctx.leases.holders(g.minor)});
  }
  return out;
}

}  // namespace gpubox
