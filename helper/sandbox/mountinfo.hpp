// /proc/self/mountinfo, parsed: enough to find which mounts a bind brought
// along into the new root (their ids, parents, mount points and types).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace gpubox {

struct MountInfoEntry {
  int id = 0;
  int parent = 0;
  std::string mountPoint;  // as the reading process sees it, octal escapes decoded
  std::string fsType;
};

// Parses mountinfo TEXT; lines it cannot read are skipped.
std::vector<MountInfoEntry> parseMountInfo(std::string_view text);

// The entries of type FS_TYPE that lie under the mount TOP (its descendants,
// by parent id), leaving out any whose ancestor below TOP is also one: those
// are covered with it.
std::vector<MountInfoEntry> outermostOfTypeUnder(const std::vector<MountInfoEntry>& all, int top,
                                                 std::string_view fsType);

}  // namespace gpubox
