#include "id_maps.hpp"

#include <set>

#include "error.hpp"

namespace gpubox {

gid_t insideGid(gid_t hostGid, gid_t callerGid, gid_t sandboxGid) {
  if (hostGid == callerGid) return sandboxGid;
  // Only reached when the sandbox gid is also a supplementary group: the
  // caller's gid number is free inside (the caller's gid shows as the
  // sandbox gid), so that group takes it.
  if (hostGid == sandboxGid) return callerGid;
  return hostGid;
}

std::vector<IdMapping> gidMappings(gid_t callerGid, const std::vector<gid_t>& groups,
                                   gid_t sandboxGid) {
  std::set<gid_t> all(groups.begin(), groups.end());
  all.insert(callerGid);
  if (all.size() > kMaxIdMapLines)
    throw Error("caller belongs to more than " + std::to_string(kMaxIdMapLines) +
                " groups; cannot map them all");
  std::vector<IdMapping> lines;
  for (gid_t g : all) lines.push_back({insideGid(g, callerGid, sandboxGid), g});
  return lines;
}

std::string idMapText(const std::vector<IdMapping>& lines) {
  std::string text;
  for (const IdMapping& l : lines)
    text += std::to_string(l.inside) + " " + std::to_string(l.outside) + " 1\n";
  return text;
}

}  // namespace gpubox
