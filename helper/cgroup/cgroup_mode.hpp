// Where the cgroup hierarchies are on this host and where the helper sits in
// them. Hosts come in three shapes and the helper must handle all of them:
//   v1      only legacy controller hierarchies (old distributions);
//   v2      only the unified hierarchy (current distributions);
//   hybrid  legacy controllers plus a controller-less cgroup2 mount (systemd's
//           "hybrid" layout; this project's CI), usually /sys/fs/cgroup/unified.
// Everything is read from /proc/self/mountinfo and /proc/self/cgroup rather
// than assumed from fixed paths, so containers and unusual mounts work too.
#pragma once

#include <string>
#include <string_view>

namespace gpubox::cgroup {

enum class Mode { None, V1, V2, Hybrid };
const char* modeName(Mode mode);

struct Mounts {
  Mode mode = Mode::None;
  // The v1 hierarchy with the devices controller: where it is mounted, and
  // which cgroup path is that mount's root ("/" unless a container runtime
  // bind-mounted a sub-tree). Empty mountPoint: not mounted.
  std::string v1DevicesMount;
  std::string v1DevicesRoot;
  // The cgroup2 (unified) hierarchy, likewise.
  std::string v2Mount;
  std::string v2Root;
};

// Parses mountinfo text (the format of /proc/self/mountinfo).
Mounts parseMountinfo(std::string_view text);
// Reads /proc/self/mountinfo; throws gpubox::Error when it cannot be read.
Mounts detectMounts();

// The calling process's cgroups, as paths inside each hierarchy.
struct SelfCgroups {
  bool hasV1Devices = false;
  std::string v1Devices;  // e.g. "/system.slice/gpubox.service"
  bool hasV2 = false;
  std::string v2;  // from the "0::PATH" line
};
SelfCgroups parseProcCgroup(std::string_view text);
// Reads /proc/self/cgroup; throws gpubox::Error when it cannot be read.
SelfCgroups selfCgroups();

// Maps a cgroup path (as /proc/PID/cgroup shows it) to a directory under a
// mount whose root is ROOT: "/a/b" under root "/a" mounted at M is "M/b".
// Throws when the path lies outside what the mount shows.
std::string cgroupDir(const std::string& mountPoint, const std::string& root,
                      const std::string& path);

// The directory under which the helper creates per-sandbox v2 cgroups,
// created if missing: "<own cgroup>/gpubox". cgroup v2 forbids a cgroup with
// member processes from distributing controllers to children ("no internal
// processes"), so when the helper's own cgroup is not the hierarchy's root,
// the helper first moves itself into the leaf "<own cgroup>/helper" (once per
// process); the sandboxes' parent is then a sibling of that leaf. Under
// systemd this needs Delegate=yes on the service. Throws gpubox::Error.
std::string v2SandboxParent(const Mounts& mounts);

}  // namespace gpubox::cgroup
