#include "mig.hpp"

#include <algorithm>
#include <optional>

#include "device_nodes.hpp"
#include "error.hpp"
#include "text_file.hpp"

namespace gpubox::gpu {

namespace {

// "gi12" -> 12 for prefix "gi".
std::optional<unsigned> numbered(const std::string& name, const std::string& prefix) {
  if (name.rfind(prefix, 0) != 0) return std::nullopt;
  return parseUnsigned(std::string_view(name).substr(prefix.size()), 1u << 20);
}

// Reads an access file and checks its cap node; nullopt (with a warning
// when something is wrong) if unusable.
std::optional<DeviceNode> capNode(const std::string& root, const std::string& accessRel,
                                  unsigned capsMajor, std::vector<std::string>& warnings) {
  std::string path = underRoot(root, accessRel);
  auto text = readSmallFile(path);
  if (!text) return std::nullopt;
  unsigned minor = parseDeviceFileMinor(*text, path);
  std::string nodeRel = "dev/nvidia-caps/nvidia-cap" + std::to_string(minor);
  auto node = checkNode(root, nodeRel, capsMajor, minor, warnings);
  if (!node)
    warnings.push_back(path + ": cap node " + underRoot(root, nodeRel) +
                       " is missing or wrong; MIG instance not usable");
  return node;
}

}  // namespace

std::string migCapsRel(unsigned gpuMinor) {
  return "proc/driver/nvidia/capabilities/gpu" + std::to_string(gpuMinor);
}

unsigned parseDeviceFileMinor(const std::string& text, const std::string& where) {
  for (auto& [key, value] : parseKeyValues(text)) {
    if (key != "DeviceFileMinor") continue;
    // Cap minors live in a 20-bit space (MINORBITS).
    if (auto m = parseUnsigned(value, (1u << 20) - 1)) return *m;
    throw Error(where + ": 'DeviceFileMinor: " + value + "' is not a number");
  }
  throw Error(where + ": no 'DeviceFileMinor:' line");
}

std::vector<MigInstance> discoverMig(const std::string& root, unsigned gpuMinor, unsigned capsMajor,
                                     std::vector<std::string>& warnings) {
  std::vector<MigInstance> out;
  std::string migRel = migCapsRel(gpuMinor) + "/mig";
  std::vector<std::string> gis = listDir(underRoot(root, migRel));
  if (gis.empty()) return out;
  if (capsMajor == 0) {
    warnings.push_back(underRoot(root, migRel) +
                       ": MIG capabilities present but proc/devices has no nvidia-caps major; "
                       "MIG instances not usable");
    return out;
  }
  for (const std::string& giName : gis) {
    auto gi = numbered(giName, "gi");
    if (!gi) continue;
    std::string giRel = migRel + "/" + giName;
    auto giNode = capNode(root, giRel + "/access", capsMajor, warnings);
    if (!giNode) continue;
    for (const std::string& ciName : listDir(underRoot(root, giRel))) {
      auto ci = numbered(ciName, "ci");
      if (!ci) continue;
      std::string ciRel = giRel + "/" + ciName;
      auto ciNode = capNode(root, ciRel + "/access", capsMajor, warnings);
      if (!ciNode) continue;
      MigInstance inst;
      inst.gi = *gi;
      inst.ci = *ci;
      inst.caps = {*giNode, *ciNode};
      inst.giAccessFile = underRoot(root, giRel + "/access");
      inst.ciAccessFile = underRoot(root, ciRel + "/access");
      out.push_back(std::move(inst));
    }
  }
  std::sort(out.begin(), out.end(), [](const MigInstance& a, const MigInstance& b) {
    return a.gi != b.gi ? a.gi < b.gi : a.ci < b.ci;
  });
  return out;
}

}  // namespace gpubox::gpu
