#include "cgroup_layout.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <mutex>
#include <optional>

#include "cgroup_fs.hpp"
#include "error.hpp"

namespace gpubox::cgroup {

namespace {

// The resource controllers, in the order status lines list them.
constexpr const char* kResources[] = {"memory", "cpu", "pids"};
// The v1 hierarchies a sandbox gets a directory in for limits and statistics.
constexpr const char* kV1Resources[] = {"memory", "cpu", "cpuacct", "pids"};

bool contains(const std::vector<std::string>& list, const std::string& item) {
  return std::find(list.begin(), list.end(), item) != list.end();
}

// The whitespace-separated words of an absolute file, none when unreadable.
std::vector<std::string> wordsOf(const std::string& path) {
  std::vector<std::string> words;
  const std::optional<std::string> text = readControl(AT_FDCWD, path.c_str());
  if (!text) return words;
  size_t pos = 0;
  while (pos < text->size()) {
    const size_t start = text->find_first_not_of(" \t\n", pos);
    if (start == std::string::npos) break;
    const size_t end = std::min(text->find_first_of(" \t\n", start), text->size());
    words.push_back(text->substr(start, end - start));
    pos = end;
  }
  return words;
}

void validateConfiguredParent(const std::string& path) {
  bool ok = path.size() > 1 && path[0] == '/' && path.back() != '/';
  for (size_t pos = 1; ok && pos < path.size();) {
    const size_t end = std::min(path.find('/', pos), path.size());
    const std::string part = path.substr(pos, end - pos);
    ok = !part.empty() && part != "." && part != "..";
    pos = end + 1;
  }
  if (!ok)
    throw Error("invalid cgroup parent '" + path + "' (want an absolute cgroup path like " +
                "/gpubox.slice/sandboxes)");
}

// The helper's own v2 cgroup directory. Computed once per process: after the
// helper moved itself into "<own>/helper", /proc/self/cgroup names that leaf,
// and recomputing from it would nest sandboxes below the helper's own leaf.
std::string ownV2Cgroup(const Mounts& mounts) {
  static std::mutex mutex;
  static std::string own;
  const std::lock_guard lock(mutex);
  if (!own.empty()) return own;

  const SelfCgroups self = selfCgroups();
  if (!self.hasV2) throw Error("/proc/self/cgroup has no cgroup v2 entry");
  const std::string dir = cgroupDir(mounts.v2Mount, mounts.v2Root, self.v2);
  // Only the real root cgroup lacks cgroup.type, and only it is exempt from
  // the no-internal-processes rule; a container's namespace root is not.
  if (hasControl(AT_FDCWD, (dir + "/cgroup.type").c_str())) {
    const std::string leaf = dir + "/helper";
    makeDirsUnder(dir, leaf);
    writeControl(leaf, "cgroup.procs", std::to_string(::getpid()));
  }
  own = dir;
  return own;
}

// Enables each resource controller that LEVEL offers and does not yet hand
// down. Failures are expected (a level with processes of its own, a
// controller bound to v1 on a hybrid host) and only mean "not available".
void enableControllers(const std::string& level) {
  const std::vector<std::string> offered = wordsOf(level + "/cgroup.controllers");
  const std::vector<std::string> enabled = wordsOf(level + "/cgroup.subtree_control");
  for (const char* c : kResources) {
    if (!contains(offered, c) || contains(enabled, c)) continue;
    try {
      writeControl(level, "cgroup.subtree_control", std::string("+") + c);
    } catch (const Error&) {
    }
  }
}

void prepareV2(Layout& layout, const std::string& configuredParent) {
  const Mounts& mounts = layout.mounts;
  std::vector<std::string> levels;  // top down, ending with the parent
  if (configuredParent.empty()) {
    const std::string own = ownV2Cgroup(mounts);
    levels = {own, own + "/gpubox"};
  } else {
    levels.push_back(mounts.v2Mount);
    for (size_t pos = 1; pos <= configuredParent.size(); ++pos)
      if (pos == configuredParent.size() || configuredParent[pos] == '/')
        levels.push_back(mounts.v2Mount + configuredParent.substr(0, pos));
  }
  layout.v2Parent = levels.back();
  makeDirsUnder(levels.front(), layout.v2Parent);
  for (const std::string& level : levels) enableControllers(level);
  const std::vector<std::string> enabled = wordsOf(layout.v2Parent + "/cgroup.subtree_control");
  for (const char* c : kResources)
    if (contains(enabled, c)) layout.v2Controllers.emplace_back(c);
}

void prepareV1(Layout& layout, const std::string& configuredParent) {
  const Mounts& mounts = layout.mounts;
  std::optional<SelfCgroups> self;
  for (const char* c : kV1Resources) {
    const auto it = mounts.v1.find(c);
    if (it == mounts.v1.end() || handledByV2(layout, c)) continue;
    const V1Mount& mount = it->second;
    std::string parent;
    if (!configuredParent.empty()) {
      parent = mount.mountPoint + configuredParent;
    } else {
      if (!self) self = selfCgroups();
      const auto own = self->v1.find(c);
      if (own == self->v1.end())
        throw Error(std::string("/proc/self/cgroup has no entry for the v1 ") + c +
                    " controller mounted at " + mount.mountPoint);
      parent = cgroupDir(mount.mountPoint, mount.root, own->second) + "/gpubox";
    }
    makeDirsUnder(mount.mountPoint, parent);
    layout.v1Parents[c] = parent;
  }
  if (const auto it = mounts.v1.find("devices"); it != mounts.v1.end()) {
    const std::string parent = it->second.mountPoint + "/gpubox";
    makeDirsUnder(it->second.mountPoint, parent);
    layout.v1Parents["devices"] = parent;
  }
}

std::string whereEnforced(const Layout& layout, const std::string& controller) {
  if (handledByV2(layout, controller)) return "cgroup v2 (" + layout.v2Parent + ")";
  if (const auto it = layout.v1Parents.find(controller); it != layout.v1Parents.end())
    return "cgroup v1 (" + it->second + ")";
  return "unavailable";
}

// Parents that already exist say nothing about whether sandboxes can be made
// under them (a read-only cgroup mount in a pod): make and remove one.
void checkWritable(const Layout& layout) {
  std::vector<std::string> parents;
  if (!layout.v2Parent.empty()) parents.push_back(layout.v2Parent);
  for (const auto& [controller, parent] : layout.v1Parents)
    if (!contains(parents, parent)) parents.push_back(parent);
  for (const std::string& parent : parents) {
    const std::string probe = parent + "/probe-" + std::to_string(::getpid());
    if (::mkdir(probe.c_str(), 0755) != 0 && errno != EEXIST)
      throwErrno("cannot make cgroups under " + parent);
    ::rmdir(probe.c_str());
  }
}

}  // namespace

bool handledByV2(const Layout& layout, const std::string& controller) {
  return !layout.v2Parent.empty() &&
         contains(layout.v2Controllers, controller == "cpuacct" ? "cpu" : controller);
}

Layout prepareLayout(const std::string& configuredParent) {
  if (!configuredParent.empty()) validateConfiguredParent(configuredParent);
  Layout layout;
  layout.mounts = detectMounts();
  if (!layout.mounts.v2Mount.empty()) prepareV2(layout, configuredParent);
  prepareV1(layout, configuredParent);
  checkWritable(layout);
  return layout;
}

std::vector<std::string> describeLayout(const Layout& layout) {
  std::vector<std::string> lines;
  for (const char* c : kResources)
    lines.push_back(std::string(c) + ": " + whereEnforced(layout, c));
  std::string devices;
  if (const auto it = layout.v1Parents.find("devices"); it != layout.v1Parents.end())
    devices = "cgroup v1 (" + it->second + ")";
  if (!layout.v2Parent.empty())
    devices +=
        (devices.empty() ? "" : " + ") + std::string("cgroup v2 BPF (") + layout.v2Parent + ")";
  lines.push_back("devices: " + (devices.empty() ? std::string("unavailable") : devices));
  return lines;
}

std::string unsupportedLimit(const Layout& layout, const ResourceLimits& limits) {
  const auto missing = [&](const char* option, const std::string& c) -> std::string {
    if (handledByV2(layout, c) || layout.v1Parents.contains(c)) return "";
    const std::string v2 = layout.v2Parent.empty()
                               ? "not mounted"
                               : "not enabled in " + layout.v2Parent + "/cgroup.subtree_control";
    const std::string v1 =
        layout.mounts.v1.contains(c) ? "mounted, but no parent was prepared" : "not mounted";
    return std::string(option) + ": no " + c +
           " controller is available to the helper (cgroup v2: " + v2 + "; cgroup v1: " + v1 + ")";
  };
  std::string message;
  if (limits.memoryBytes) message = missing("--memory", "memory");
  if (message.empty() && limits.cpuMillis) message = missing("--cpus", "cpu");
  if (message.empty() && limits.pids) message = missing("--pids", "pids");
  return message;
}

}  // namespace gpubox::cgroup
