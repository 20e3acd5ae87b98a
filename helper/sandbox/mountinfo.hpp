// /proc/self/mountinfo, parsed: enough to find which mounts a bind brought
// along into the new root (their ids, parents, mount points and types).
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace gpubox {

struct MountInfoEntry {
  int id = 0;
  int parent = 0;
  dev_t dev = 0;           // the filesystem's device (st_dev of what is on it)
  std::string root;        // the mount's root within its filesystem, decoded
  std::string mountPoint;  // as the reading process sees it, octal escapes decoded
  std::string fsType;
};

// The calling process's /proc/self/mountinfo, parsed. Throws gpubox::Error
// prefixed with WHAT.
std::vector<MountInfoEntry> readOwnMountInfo(const std::string& what);

// The id mountinfo gives the mount FD is on (statx STATX_MNT_ID, 5.8).
int mountIdOf(int fd, const std::string& what);

// Whether the mount FD is on has mounts below it, asked of the kernel
// directly (statx STATX_MNT_ID_UNIQUE and listmount, 6.8): a few
// microseconds, where reading mountinfo takes a tenth of a millisecond.
// nullopt when the kernel cannot say (older, or refused): read mountinfo.
std::optional<bool> mountHasChildren(int fd);

// Parses mountinfo TEXT; lines it cannot read are skipped.
std::vector<MountInfoEntry> parseMountInfo(std::string_view text);

// The entries of type FS_TYPE that lie under the mount TOP (its descendants,
// by parent id), leaving out any whose ancestor below TOP is also one: those
// are covered with it.
std::vector<MountInfoEntry> outermostOfTypeUnder(const std::vector<MountInfoEntry>& all, int top,
                                                 std::string_view fsType);

}  // namespace gpubox
