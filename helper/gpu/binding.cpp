// planBinding(): what the sandbox must additionally see for CUDA and NVML to
// work with exactly the selected GPUs, as mount steps the helper's mount
// engine applies after the sandbox's own plan, plus env and device-cgroup
// rules. Nothing here touches the system; it is a pure function of the
// inventory, so tests check the plan itself.
#include <algorithm>
#include <set>

#include "device_nodes.hpp"
#include "error.hpp"
#include "gpu.hpp"
#include "libraries.hpp"
#include "proc_info.hpp"
#include "text_file.hpp"

namespace gpubox::gpu {

namespace {

MountOp op(MountKind kind, std::string source, std::string dest, unsigned mode = 0) {
  MountOp m;
  m.kind = kind;
  m.source = std::move(source);
  m.dest = std::move(dest);
  if (mode != 0) m.mode = mode;  // 0: the kind's default
  return m;
}

MountOp optionalOp(MountKind kind, std::string source, std::string dest, unsigned mode = 0) {
  MountOp m = op(kind, std::move(source), std::move(dest), mode);
  m.optional = true;
  return m;
}

class Planner {
 public:
  // A device node: bound (never created, so no CAP_MKNOD is needed and the
  // node is the driver's own), nosuid/noexec/read-only mount flags
  // ("hardened"; read-only mount flags do not stop device writes, which is
  // what the device cgroup rules are for), and one allow rule.
  void device(const DeviceNode& n, bool wholeMajor = false) {
    if (!nodeDests_.insert(n.sandboxPath).second) return;
    MountOp m = op(MountKind::DevBind, n.hostPath, n.sandboxPath);
    m.hardened = true;
    b_.mounts.push_back(std::move(m));
    allow(static_cast<int>(n.major), wholeMajor ? -1 : static_cast<int>(n.minor));
  }

  void allow(int major, int minor) {
    // "rw" without "m": nothing inside may mknod an NVIDIA node; the binds
    // above are the only way one appears.
    DeviceRule r{'c', major, minor, "rw"};
    if (std::find(b_.allow.begin(), b_.allow.end(), r) == b_.allow.end()) b_.allow.push_back(r);
  }

  void push(MountOp m) { b_.mounts.push_back(std::move(m)); }
  void setPathDir(std::string dir) { b_.pathDir = std::move(dir); }

  Binding& binding() { return b_; }

 private:
  Binding b_;
  std::set<std::string> nodeDests_;
};

}  // namespace

LibraryLayout libraryLayoutFor(const std::vector<MountOp>& plan) {
  LibraryLayout layout = LibraryLayout::HostPaths;
  for (const MountOp& m : plan) {
    // Only a bind or a tmpfs replaces the root; --remount-ro, --chmod or
    // --dir of "/" keep whatever root came before.
    if (m.dest != "/" || !(isBind(m.kind) || m.kind == MountKind::Tmpfs)) continue;
    bool hostRoot = isBind(m.kind) && m.source == "/";
    layout = hostRoot ? LibraryLayout::HostPaths : LibraryLayout::DriverDir;
  }
  return layout;
}

Binding planBinding(const Inventory& inv, const Selection& sel, LibraryLayout layout) {
  Planner p;
  Binding& b = p.binding();
  // Fail closed: no selection, no GPU plumbing at all.
  if (sel.gpuIndices.empty() && sel.cdiNames.empty()) return b;

  std::vector<const Gpu*> gpus;
  for (unsigned i : sel.gpuIndices) {
    if (i >= inv.gpus.size())
      throw Error("GPU index " + std::to_string(i) + " is not in the inventory");
    gpus.push_back(&inv.gpus[i]);
  }
  std::vector<const CdiDevice*> cdi;
  for (const std::string& name : sel.cdiNames) {
    auto it = std::find_if(inv.cdi.begin(), inv.cdi.end(),
                           [&](const CdiDevice& d) { return d.name == name; });
    if (it == inv.cdi.end()) throw Error("CDI device " + name + " is not in the inventory");
    cdi.push_back(&*it);
  }

  // --- /dev -------------------------------------------------------------
  // The granted GPUs keep their host minor in the name (/dev/nvidia3 stays
  // /dev/nvidia3): the driver library maps /proc/driver/nvidia/gpus/<bus>
  // "Device Minor" to /dev/nvidia<minor>, so renaming would break it.
  for (const Gpu* g : gpus) {
    p.device(g->node);
    b.minors.push_back(g->minor);
    if (!g->uuid.empty()) b.uuids.push_back(g->uuid);
  }
  // nvidiactl: every CUDA/NVML call starts there. nvidia-uvm(-tools): CUDA's
  // unified memory; cuInit fails without nvidia-uvm. Both uvm minors share
  // the dynamic major, so one rule covers them.
  for (const DeviceNode& n : inv.controlNodes)
    p.device(n, n.major == inv.uvmMajor && inv.uvmMajor != 0);
  // nvidia-modeset only for display work (Vulkan/GL presenting); compute
  // never needs it.
  if (sel.display && inv.modeset) p.device(*inv.modeset);
  // MIG: a granted GPU brings its compute instances; CUDA opens the GPU
  // instance's and the compute instance's access cap nodes.
  for (const Gpu* g : gpus)
    for (const MigInstance& m : g->mig)
      for (const DeviceNode& cap : m.caps) p.device(cap);
  // CDI device nodes (e.g. /dev/dri/cardN from nvidia-ctk specs), checked at
  // discovery like every other node.
  for (const CdiDevice* d : cdi)
    for (const DeviceNode& n : d->nodes) p.device(n);

  // --- /proc/driver/nvidia ----------------------------------------------
  // The sandbox's /proc is a fresh procfs, whose /proc/driver/nvidia would
  // list every GPU. Cover /proc/driver with a tmpfs and rebuild only what
  // the driver library reads: version, params (ModifyDeviceFiles 0 so it
  // never tries to mknod/chmod nodes), registry, and gpus/<bus> of the
  // granted GPUs. All steps are optional: a sandbox without /proc has no
  // /proc/driver to filter.
  p.push(optionalOp(MountKind::Tmpfs, "", "/proc/driver", 0755));
  // The directories keep --dir's default 0755: the init, which has no
  // CAP_DAC_OVERRIDE, still creates the entries below them.
  p.push(optionalOp(MountKind::Dir, "", "/proc/driver/nvidia"));
  p.push(optionalOp(MountKind::Dir, "", "/proc/driver/nvidia/gpus"));
  for (const Gpu* g : gpus)
    p.push(optionalOp(MountKind::RoBind, g->procDir, "/proc/driver/nvidia/gpus/" + g->busId));
  p.push(optionalOp(MountKind::File, paramsWithoutModifyDeviceFiles(inv.paramsText),
                    "/proc/driver/nvidia/params", 0444));
  p.push(optionalOp(MountKind::File, inv.versionText, "/proc/driver/nvidia/version", 0444));
  if (!inv.registryText.empty())
    p.push(optionalOp(MountKind::File, inv.registryText, "/proc/driver/nvidia/registry", 0444));
  // MIG: the granted GPUs' capabilities/gpu<minor> trees (the access files
  // name the cap minors CUDA opens). Never capabilities/mig/{config,monitor}.
  bool anyMig =
      std::any_of(gpus.begin(), gpus.end(), [](const Gpu* g) { return !g->capsDir.empty(); });
  if (anyMig) {
    // 0755 as above: the binds below are made inside it (then read-only).
    p.push(optionalOp(MountKind::Dir, "", "/proc/driver/nvidia/capabilities"));
    for (const Gpu* g : gpus)
      if (!g->capsDir.empty())
        p.push(optionalOp(MountKind::RoBind, g->capsDir,
                          "/proc/driver/nvidia/capabilities/gpu" + std::to_string(g->minor)));
  }
  p.push(optionalOp(MountKind::RemountRo, "", "/proc/driver"));

  // --- /sys -------------------------------------------------------------
  // cuInit and NVML look the GPU up in /sys/bus/pci/devices/<bus> (resources,
  // NUMA node, config space); without it cuInit fails with
  // CUDA_ERROR_OPERATING_SYSTEM. Replace the bus listing with a tmpfs that
  // holds only the granted GPUs' links; each link resolves into the
  // sandbox's own /sys/devices (still visible: hiding it breaks NVML).
  p.push(optionalOp(MountKind::Tmpfs, "", "/sys/bus/pci/devices", 0755));
  for (const Gpu* g : gpus)
    if (!g->sysfsLink.empty())
      p.push(optionalOp(MountKind::Symlink, g->sysfsLink, "/sys/bus/pci/devices/" + g->busId));
  p.push(optionalOp(MountKind::RemountRo, "", "/sys/bus/pci/devices"));

  // --- libraries and nvidia-smi -----------------------------------------
  // The driver's user-space libraries must match the kernel module exactly.
  if (layout == LibraryLayout::HostPaths) {
    // Bound at their host path (the loader's cache in a host-derived root
    // already points there) unless the sandbox already shows the same file,
    // and the soname link (libcuda.so.1 -> libcuda.so.<version>) made next
    // to it unless present. Optional: a root without that directory cannot
    // use the host's loader configuration anyway.
    for (const std::string& lib : inv.libraries) {
      auto dest = stripRoot(inv.driverRoot, lib);
      if (!dest) continue;
      MountOp m = optionalOp(MountKind::RoBind, lib, *dest);
      m.skipIfVisible = true;
      p.push(std::move(m));
      size_t slash = dest->rfind('/');
      std::string file = dest->substr(slash + 1);
      if (auto soname = sonameFor(file)) {
        MountOp link = optionalOp(MountKind::Symlink, file, dest->substr(0, slash + 1) + *soname);
        link.skipIfVisible = true;
        p.push(std::move(link));
      }
    }
    if (inv.nvidiaSmi) {
      if (auto dest = stripRoot(inv.driverRoot, *inv.nvidiaSmi)) {
        MountOp m = optionalOp(MountKind::RoBind, *inv.nvidiaSmi, *dest);
        m.skipIfVisible = true;
        p.push(std::move(m));
      }
    }
  } else if (!inv.libraries.empty() || inv.nvidiaSmi) {
    // Another tree's loader knows nothing of the host's directories, and
    // creating files at the host's paths would write into the caller's
    // tree. The files go into a gpubox tmpfs of their own (kDriverDir), and
    // the root's loader cache is regenerated, by the init as the caller,
    // with them added (mount_engine.cpp). Both optional: a root without
    // /run or without /etc/ld.so.cache gets the step reported as skipped.
    std::string files;
    auto add = [&](const std::string& host, const std::string& link) {
      files += (files.empty() ? "" : "\n") + host + "\t" + link;
    };
    for (const std::string& lib : inv.libraries)
      add(lib, sonameFor(lib.substr(lib.rfind('/') + 1)).value_or(""));
    if (inv.nvidiaSmi) add(*inv.nvidiaSmi, "");
    p.push(optionalOp(MountKind::DriverDir, files, kDriverDir));
    if (inv.nvidiaSmi) p.setPathDir(std::string(kDriverDir) + "/bin");
    p.push(optionalOp(MountKind::LoaderCache, kDriverDir, "/etc/ld.so.cache"));
  }

  // --- CDI edits ----------------------------------------------------------
  for (const CdiDevice* d : cdi)
    for (const MountOp& m : d->mounts) p.push(m);

  // --- environment --------------------------------------------------------
  // Only the granted GPUs exist inside, but CUDA orders devices "fastest
  // first", not in the order asked. Listing the UUIDs in selection order
  // makes the first GPU asked CUDA device 0. Not set for MIG GPUs (CUDA then
  // wants MIG-<uuid> names) or when a UUID is unknown.
  bool uuidsKnown = !gpus.empty() && b.uuids.size() == gpus.size();
  bool mig = std::any_of(gpus.begin(), gpus.end(), [](const Gpu* g) { return !g->mig.empty(); });
  if (uuidsKnown && !mig) {
    std::string list;
    for (const std::string& u : b.uuids) list += (list.empty() ? "" : ",") + u;
    b.env.push_back("CUDA_VISIBLE_DEVICES=" + list);
  }
  for (const CdiDevice* d : cdi)
    for (const std::string& e : d->env)
      if (std::find(b.env.begin(), b.env.end(), e) == b.env.end()) b.env.push_back(e);
  return b;
}

}  // namespace gpubox::gpu
