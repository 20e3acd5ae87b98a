#include "nvml.hpp"

#include <dlfcn.h>

#include <memory>

namespace gpubox::gpu {

namespace {

// The few NVML entry points we use, declared here so no NVML header is
// needed at build time (nvml.h ABI: nvmlReturn_t is an int enum, 0 = success).
using NvmlDevice = struct NvmlDeviceOpaque*;
using NvmlInit = int (*)();
using NvmlShutdown = int (*)();
using NvmlByBusId = int (*)(const char*, NvmlDevice*);
using NvmlString = int (*)(NvmlDevice, char*, unsigned);

struct DlClose {
  void operator()(void* h) const { ::dlclose(h); }
};

template <typename Fn>
Fn sym(void* lib, const char* name) {
  return reinterpret_cast<Fn>(::dlsym(lib, name));
}

}  // namespace

bool enrichWithNvml(Inventory& inv) {
  if (inv.driverRoot != "/" || inv.gpus.empty()) return false;
  std::unique_ptr<void, DlClose> lib(::dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL));
  if (!lib) return false;
  auto init = sym<NvmlInit>(lib.get(), "nvmlInit_v2");
  auto shutdown = sym<NvmlShutdown>(lib.get(), "nvmlShutdown");
  auto byBus = sym<NvmlByBusId>(lib.get(), "nvmlDeviceGetHandleByPciBusId_v2");
  auto getName = sym<NvmlString>(lib.get(), "nvmlDeviceGetName");
  auto getUuid = sym<NvmlString>(lib.get(), "nvmlDeviceGetUUID");
  if (!init || !shutdown || !byBus || !getName || !getUuid || init() != 0) return false;
  for (Gpu& gpu : inv.gpus) {
    NvmlDevice dev = nullptr;
    if (byBus(gpu.busId.c_str(), &dev) != 0 || !dev) continue;
    char buf[96] = {};
    if (gpu.model.empty() && getName(dev, buf, sizeof buf - 1) == 0) gpu.model = buf;
    char uuid[96] = {};
    if (getUuid(dev, uuid, sizeof uuid - 1) == 0) {
      std::string u = uuid;
      if (gpu.uuid.empty() && u.rfind("GPU-", 0) == 0)
        gpu.uuid = u;
      else if (!gpu.uuid.empty() && u != gpu.uuid)
        inv.warnings.push_back("NVML reports UUID " + u + " for " + gpu.busId + " but the driver " +
                               gpu.uuid + "; keeping the driver's");
    }
  }
  shutdown();
  inv.nvmlUsed = true;
  return true;
}

}  // namespace gpubox::gpu
