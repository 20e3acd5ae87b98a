// Where the cgroup hierarchies are on this host and where the helper sits in
// them. Hosts come in three shapes and the helper must handle all of them:
//   v1      only legacy controller hierarchies (old distributions);
//   v2      only the unified hierarchy (current distributions);
//   hybrid  legacy controllers plus a controller-less cgroup2 mount (systemd's
//           "hybrid" layout; this project's CI), usually /sys/fs/cgroup/unified.
// Everything is read from /proc/self/mountinfo and /proc/self/cgroup rather
// than assumed from fixed paths, so containers and unusual mounts work too.
#pragma once

#include <map>
#include <string>
#include <string_view>

namespace gpubox::cgroup {

enum class Mode { None, V1, V2, Hybrid };
const char* modeName(Mode mode);

// One mounted v1 hierarchy: where, and which cgroup path is its root.
struct V1Mount {
  std::string mountPoint;
  std::string root;
};

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
  // Every mounted v1 controller ("memory", "cpu", "cpuacct", "pids",
  // "devices", ...) -> its hierarchy. Co-mounted controllers (the common
  // "cpu,cpuacct") map to the same mount.
  std::map<std::string, V1Mount> v1;
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
  // v1 controller -> path in its hierarchy, e.g. "memory" -> "/system.slice".
  std::map<std::string, std::string> v1;
};
SelfCgroups parseProcCgroup(std::string_view text);
// Reads /proc/self/cgroup; throws gpubox::Error when it cannot be read.
SelfCgroups selfCgroups();

// Maps a cgroup path (as /proc/PID/cgroup shows it) to a directory under a
// mount whose root is ROOT: "/a/b" under root "/a" mounted at M is "M/b".
// Throws when the path lies outside what the mount shows.
std::string cgroupDir(const std::string& mountPoint, const std::string& root,
                      const std::string& path);

}  // namespace gpubox::cgroup
