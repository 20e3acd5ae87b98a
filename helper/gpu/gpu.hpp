// Public interface of the GPU library: discover the NVIDIA driver's GPUs
// under a driver root, turn the user's --gpu selectors into a selection the
// policy allows, and plan what a sandbox must see for CUDA to work with
// exactly the selected GPUs.
//
// Everything here is rooted at `driverRoot` ("/" in production, a fake tree
// built by tests/support/fake_driver.hpp in CI), so no function needs a GPU
// and only node checks need the nodes to exist.
#pragma once

#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "device_rule.hpp"
#include "gpu_grant.hpp"
#include "spec.hpp"

namespace gpubox::gpu {

// One character device the sandbox gets. hostPath is the node under the
// driver root (verified to be a char device with exactly major:minor);
// sandboxPath is where it appears inside ("/dev/nvidia0").
struct DeviceNode {
  std::string hostPath;
  std::string sandboxPath;
  unsigned major = 0;
  unsigned minor = 0;
};

// One MIG compute instance: GPU instance `gi`, compute instance `ci`.
// caps: the gi access node and the ci access node (/dev/nvidia-caps/nvidia-capN);
// CUDA needs both to open the instance.
struct MigInstance {
  unsigned gi = 0;
  unsigned ci = 0;
  std::vector<DeviceNode> caps;
  // Host paths of the driver's access files (proc/driver/nvidia/capabilities/
  // gpu<minor>/mig/gi<gi>/access and .../ci<ci>/access).
  std::string giAccessFile;
  std::string ciAccessFile;
};

struct Gpu {
  unsigned index = 0;  // position in Inventory::gpus
  unsigned minor = 0;  // /dev/nvidia<minor>
  std::string uuid;    // "GPU-…"; empty when the driver does not report one yet
  std::string model;
  std::string busId;    // "0000:3b:00.0", lowercase, validated
  std::string procDir;  // host path of proc/driver/nvidia/gpus/<bus>
  DeviceNode node;
  std::vector<MigInstance> mig;
  // Host path of proc/driver/nvidia/capabilities/gpu<minor> when MIG
  // instances were found (empty otherwise).
  std::string capsDir;
  // readlink() of <root>/sys/bus/pci/devices/<bus>, e.g.
  // "../../../devices/pci0000:00/0000:3b:00.0"; empty when absent.
  std::string sysfsLink;
};

struct CdiDevice {
  std::string name;  // "nvidia.com/gpu=0"
  std::vector<DeviceNode> nodes;
  std::vector<gpubox::MountOp> mounts;  // RoBind, sources under the driver root
  std::vector<std::string> env;         // KEY=VALUE
  std::string specFile;                 // host path of the spec that defined it (last wins)
  unsigned hooksIgnored = 0;            // CDI hooks are never run by gpubox
};

struct Inventory {
  std::string driverRoot;
  std::string driverVersion;  // "" if no driver
  // Usable GPUs sorted by minor; index = position. This matches
  // nvidia-smi's numbering when minors follow PCI order (the usual case)
  // and no GPU was skipped (see warnings).
  std::vector<Gpu> gpus;
  std::vector<DeviceNode> controlNodes;  // nvidiactl, nvidia-uvm, nvidia-uvm-tools that exist
  std::optional<DeviceNode> modeset;
  std::vector<CdiDevice> cdi;
  std::vector<std::string> libraries;  // host paths of versioned driver libs
  std::optional<std::string> nvidiaSmi;
  std::vector<std::string> warnings;  // e.g. node with wrong st_rdev skipped
  unsigned uvmMajor = 0;
  unsigned capsMajor = 0;    // major of /dev/nvidia-caps/* (0: none)
  std::string paramsText;    // proc/driver/nvidia/params as read (capped)
  std::string versionText;   // proc/driver/nvidia/version as read (capped)
  std::string registryText;  // proc/driver/nvidia/registry as read (capped)
  bool nvmlUsed = false;     // NVML enriched the data
};

struct DiscoverOptions {
  // Ask NVML (dlopen, only when driverRoot is "/") to fill in missing model
  // names and UUIDs. Off in tests; the result never depends on it otherwise.
  bool useNvml = true;
};

// Throws gpubox::Error on malformed driver files (naming the file).
Inventory discover(const std::string& driverRoot);
Inventory discover(const std::string& driverRoot, const DiscoverOptions& options);

struct Selection {
  // Into Inventory::gpus, ordered: first = CUDA device 0 inside.
  std::vector<unsigned> gpuIndices = {};
  std::vector<std::string> cdiNames = {};
  bool display = false;  // also bind nvidia-modeset (set by the caller)
};

// selectors: what the user passed to --gpu (repeatable):
//   "none"              nothing (the default); cannot be combined
//   "all"               every GPU the policy lets this caller use
//   "0,2"               indices into the inventory (items may also be UUIDs)
//   "GPU-<uuid>"        a UUID; a unique prefix (case-insensitive) is enough
//   "count:N"           N GPUs the helper picks, preferring idle ones
//   "nvidia.com/gpu=X"  a CDI device when a CDI spec defines X; else X is
//                       "all", an index or a UUID as above
// holders(minor) = how many sandboxes hold that GPU now.
// Throws gpubox::Error naming what was asked and why it was refused.
Selection select(const Inventory& inv, const std::vector<std::string>& selectors,
                 const GpuGrant& grant, const std::function<unsigned(unsigned minor)>& holders,
                 uid_t uid);

// One device-cgroup rule (the cgroup module's type, so a binding's rules go
// to the device cgroup as they are). planBinding uses access "rw": nothing
// inside may mknod.
using DeviceRule = cgroup::DeviceRule;

struct Binding {
  std::vector<gpubox::MountOp> mounts;  // appended after the sandbox's own plan, in order
  std::vector<std::string> env;         // KEY=VALUE added to the command's environment
  // Appended to the command's PATH when the DriverDir step was applied: a
  // foreign root's nvidia-smi lives there (empty: nothing to add).
  std::string pathDir;
  std::vector<DeviceRule> allow;   // NVIDIA device-cgroup allow rules for this sandbox
  std::vector<std::string> uuids;  // granted GPU UUIDs, for status/logging
  std::vector<unsigned> minors;    // granted GPU minors (for leases)
};

// Where the driver's user-space files go (docs/gpu.md, "what the sandbox
// sees"). HostPaths: at their host paths, for a root made of the host's own
// directories, whose loader cache already names them. DriverDir: in
// kDriverDir, with the root's loader cache regenerated to name them, for a
// root that is another tree (another distribution's, an image).
enum class LibraryLayout { HostPaths, DriverDir };

inline constexpr const char* kDriverDir = "/run/gpubox-driver";

// HostPaths when the plan's root is the host's: no step replaces "/"
// (the default plan, or a plan assembled from host directories on gpubox's
// tmpfs root), or the last one that does binds the host's "/" itself.
// DriverDir for anything else on "/" (a bind of another tree, a tmpfs).
LibraryLayout libraryLayoutFor(const std::vector<gpubox::MountOp>& plan);

Binding planBinding(const Inventory& inv, const Selection& sel,
                    LibraryLayout layout = LibraryLayout::HostPaths);

}  // namespace gpubox::gpu
