// What the helper writes into a new sandbox user namespace's uid_map and
// gid_map, and the caller's groups as the sandbox then sees them.
//
// The sandbox's uid (bwrap's --uid; the caller's own when none was asked)
// is mapped onto the caller's uid, one id: the only uid the sandbox has.
// The gids: the sandbox's gid onto the caller's gid, and every
// supplementary group onto itself, so the command keeps each of the
// caller's groups (a group dropped could open a file its group bits deny).
// The kernel refuses two lines with the same id on either side, so when
// the sandbox's gid is also one of the caller's supplementary groups, that
// group takes the caller's gid number inside: the two swap places.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace gpubox {

struct IdMapping {
  unsigned inside = 0;
  unsigned outside = 0;
  bool operator==(const IdMapping&) const = default;
};

// Linux accepts at most 340 lines in one map (since 4.15).
constexpr size_t kMaxIdMapLines = 340;

// The gid lines for a caller with CALLER_GID and GROUPS running as
// SANDBOX_GID inside, in ascending order of the caller's gid. Throws
// gpubox::Error when there are more than kMaxIdMapLines groups.
std::vector<IdMapping> gidMappings(gid_t callerGid, const std::vector<gid_t>& groups,
                                   gid_t sandboxGid);

// The gid inside that host gid HOST_GID shows as, under gidMappings.
gid_t insideGid(gid_t hostGid, gid_t callerGid, gid_t sandboxGid);

// "INSIDE OUTSIDE 1\n" per line, as uid_map and gid_map take them.
std::string idMapText(const std::vector<IdMapping>& lines);

}  // namespace gpubox
