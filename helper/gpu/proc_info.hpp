// Parsers for the NVIDIA driver's procfs files (pure functions over text, so
// they are tested without any files):
//   proc/driver/nvidia/gpus/<bus>/information  one GPU: minor, UUID, bus, model
//   proc/driver/nvidia/version                 the kernel module's version
//   proc/driver/nvidia/params                  module parameters (we rewrite one)
//   proc/devices                               dynamic majors (nvidia-uvm, nvidia-caps)
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace gpubox::gpu {

struct GpuInfo {
  unsigned minor = 0;
  std::string uuid;       // "GPU-…", or "" when the driver shows none / a placeholder
  std::string model;      // "" when absent
  std::string busId;      // lowercase "dddd:bb:dd.f"
  bool excluded = false;  // "GPU Excluded: Yes": the driver refuses to use it
};

// `where` names the file in errors. Throws gpubox::Error when the Device
// Minor is missing or not a number below 254 (254/255 are modeset/ctl), or
// when the Bus Location is present but not a PCI address.
GpuInfo parseInformation(std::string_view text, const std::string& where);

// "0000:3b:00.0" (domain 4 or 8 hex digits); case-insensitive.
bool isValidBusId(std::string_view bus);
std::string lowercase(std::string_view s);

// The version from the "NVRM version:" line, e.g. "550.54.14" for both the
// proprietary ("Kernel Module  550.54.14  …") and the open ("Open Kernel
// Module for x86_64  550.54.14  …") module. Only digits and dots are ever
// returned, because the version becomes part of library file names.
// Throws gpubox::Error (naming `where`) when there is no such line/version.
std::string parseDriverVersion(std::string_view text, const std::string& where);

// Character-device majors by name from proc/devices ("Character devices:"
// section only; block devices are ignored).
std::map<std::string, unsigned> parseCharMajors(std::string_view text);

// params with "ModifyDeviceFiles: N" set to 0 (added when absent), so the
// driver's user-space library inside the sandbox never tries to create or
// chmod /dev/nvidia* nodes.
std::string paramsWithoutModifyDeviceFiles(std::string_view params);

}  // namespace gpubox::gpu
