// discover(): the whole inventory of one driver root, from the driver's own
// files. Order matters only for determinism: GPUs sorted by minor.
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <map>
#include <set>

#include "cdi.hpp"
#include "device_nodes.hpp"
#include "error.hpp"
#include "gpu.hpp"
#include "libraries.hpp"
#include "mig.hpp"
#include "nvml.hpp"
#include "proc_info.hpp"
#include "text_file.hpp"

namespace gpubox::gpu {

namespace {

std::string normaliseRoot(const std::string& root) {
  if (root.empty() || root[0] != '/') throw Error("driver root '" + root + "' is not absolute");
  validateAbsolutePath(root, "driver root");
  std::string r = root;
  while (r.size() > 1 && r.back() == '/') r.pop_back();
  return r;
}

std::string readLink(const std::string& path) {
  char buf[PATH_MAX];
  ssize_t n = ::readlink(path.c_str(), buf, sizeof buf);
  if (n <= 0 || static_cast<size_t>(n) >= sizeof buf) return {};
  return std::string(buf, static_cast<size_t>(n));
}

std::optional<Gpu> discoverGpu(const std::string& root, const std::string& busDir,
                               unsigned capsMajor, std::vector<std::string>& warnings) {
  std::string rel = "proc/driver/nvidia/gpus/" + busDir;
  std::string dir = underRoot(root, rel);
  if (!isValidBusId(busDir)) {
    warnings.push_back(dir + ": not a PCI address; ignored");
    return std::nullopt;
  }
  auto text = readSmallFile(dir + "/information");
  if (!text) {
    warnings.push_back(dir + ": no information file; ignored");
    return std::nullopt;
  }
  GpuInfo info = parseInformation(*text, dir + "/information");
  if (info.excluded) {
    warnings.push_back(dir + ": the driver excludes this GPU (GPU Excluded: Yes); not offered");
    return std::nullopt;
  }
  Gpu gpu;
  gpu.minor = info.minor;
  gpu.uuid = info.uuid;
  gpu.model = info.model;
  gpu.busId = info.busId.empty() ? lowercase(busDir) : info.busId;
  gpu.procDir = dir;
  auto node = checkNode(root, "dev/nvidia" + std::to_string(info.minor), kNvidiaMajor, info.minor,
                        warnings);
  if (!node) {
    warnings.push_back(
        "GPU " + gpu.busId + " (minor " + std::to_string(info.minor) + "): no usable " +
        underRoot(root, "dev/nvidia" + std::to_string(info.minor)) + "; not offered");
    return std::nullopt;
  }
  gpu.node = *node;
  // The sysfs entry as a link target; it is recreated inside the sandbox,
  // where it resolves into the sandbox's own /sys/devices.
  std::string link = readLink(underRoot(root, "sys/bus/pci/devices/" + gpu.busId));
  if (!link.empty() && link[0] == '/') link = stripRoot(root, link).value_or("");
  gpu.sysfsLink = link;
  gpu.mig = discoverMig(root, gpu.minor, capsMajor, warnings);
  if (!gpu.mig.empty()) gpu.capsDir = underRoot(root, migCapsRel(gpu.minor));
  return gpu;
}

}  // namespace

Inventory discover(const std::string& driverRoot) {
  return discover(driverRoot, DiscoverOptions{});
}

Inventory discover(const std::string& driverRoot, const DiscoverOptions& options) {
  Inventory inv;
  inv.driverRoot = normaliseRoot(driverRoot);
  const std::string& root = inv.driverRoot;

  // No version file: no NVIDIA kernel module loaded. Not an error: the
  // helper runs fine and offers no GPU.
  std::string versionPath = underRoot(root, "proc/driver/nvidia/version");
  auto version = readSmallFile(versionPath);
  if (!version) return inv;
  inv.versionText = *version;
  inv.driverVersion = parseDriverVersion(*version, versionPath);
  inv.paramsText = readSmallFile(underRoot(root, "proc/driver/nvidia/params")).value_or("");
  inv.registryText = readSmallFile(underRoot(root, "proc/driver/nvidia/registry")).value_or("");

  // nvidia-uvm and nvidia-caps get dynamic majors; proc/devices is the only
  // trustworthy place to learn them.
  auto devices = readSmallFile(underRoot(root, "proc/devices"));
  std::map<std::string, unsigned> majors = parseCharMajors(devices.value_or(""));
  if (auto it = majors.find("nvidia-uvm"); it != majors.end()) inv.uvmMajor = it->second;
  if (auto it = majors.find("nvidia-caps"); it != majors.end()) inv.capsMajor = it->second;

  for (const std::string& bus : listDir(underRoot(root, "proc/driver/nvidia/gpus"))) {
    if (auto gpu = discoverGpu(root, bus, inv.capsMajor, inv.warnings))
      inv.gpus.push_back(std::move(*gpu));
  }
  std::sort(inv.gpus.begin(), inv.gpus.end(),
            [](const Gpu& a, const Gpu& b) { return a.minor < b.minor; });
  std::set<std::string> uuids;
  for (size_t i = 0; i < inv.gpus.size(); ++i) {
    if (i > 0 && inv.gpus[i].minor == inv.gpus[i - 1].minor)
      throw Error(underRoot(root, "proc/driver/nvidia/gpus") + ": two GPUs claim minor " +
                  std::to_string(inv.gpus[i].minor));
    if (!inv.gpus[i].uuid.empty() && !uuids.insert(inv.gpus[i].uuid).second)
      throw Error(underRoot(root, "proc/driver/nvidia/gpus") + ": two GPUs claim UUID " +
                  inv.gpus[i].uuid);
    inv.gpus[i].index = static_cast<unsigned>(i);
  }

  if (auto ctl = checkNode(root, "dev/nvidiactl", kNvidiaMajor, kCtlMinor, inv.warnings))
    inv.controlNodes.push_back(*ctl);
  else if (!inv.gpus.empty())
    inv.warnings.push_back(underRoot(root, "dev/nvidiactl") +
                           " is missing: CUDA cannot work without it");
  if (inv.uvmMajor != 0) {
    if (auto uvm = checkNode(root, "dev/nvidia-uvm", inv.uvmMajor, 0, inv.warnings))
      inv.controlNodes.push_back(*uvm);
    if (auto tools = checkNode(root, "dev/nvidia-uvm-tools", inv.uvmMajor, 1, inv.warnings))
      inv.controlNodes.push_back(*tools);
  } else if (charDeviceNumber(underRoot(root, "dev/nvidia-uvm"))) {
    inv.warnings.push_back(underRoot(root, "dev/nvidia-uvm") +
                           " exists but proc/devices has no nvidia-uvm major; not bound");
  }
  inv.modeset = checkNode(root, "dev/nvidia-modeset", kNvidiaMajor, kModesetMinor, inv.warnings);

  inv.cdi = discoverCdi(root, inv.warnings);
  inv.libraries = findDriverLibraries(root, inv.driverVersion);
  inv.nvidiaSmi = findNvidiaSmi(root, inv.libraries);
  if (options.useNvml) enrichWithNvml(inv);
  return inv;
}

}  // namespace gpubox::gpu
