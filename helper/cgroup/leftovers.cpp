// cleanLeftovers() (declared in sandbox_cgroup.hpp): what a crashed helper
// left in the shared parents.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <ctime>
#include <map>
#include <memory>
#include <optional>

#include "cgroup_fs.hpp"
#include "cgroup_kill.hpp"
#include "error.hpp"
#include "sandbox_cgroup.hpp"

namespace gpubox::cgroup {

namespace {

// A killed process leaves its cgroup a moment after it is gone; this runs
// once at start, so waiting that moment (bounded) here is fine.
constexpr int kRemoveAttempts = 100;

struct DirCloser {
  void operator()(DIR* dir) const { ::closedir(dir); }
};

// Who made a sandbox cgroup, from its name "sb-<pid>-<n>-ns<pid namespace
// inode>" (sandbox_cgroup.hpp, sandboxCgroupName); names without the "-ns"
// part are read as made in our own pid namespace.
struct Maker {
  pid_t pid = 0;
  std::optional<uint64_t> pidNamespace;
};

std::optional<Maker> makerOf(const std::string& name) {
  if (!name.starts_with("sb-")) return std::nullopt;
  const char* p = name.data() + 3;
  const char* end = name.data() + name.size();
  Maker maker;
  const auto [afterPid, ec] = std::from_chars(p, end, maker.pid);
  if (ec != std::errc() || afterPid == p || maker.pid <= 0 || afterPid == end || *afterPid != '-')
    return std::nullopt;
  unsigned long n = 0;
  const auto [afterN, ec2] = std::from_chars(afterPid + 1, end, n);
  if (ec2 != std::errc() || afterN == afterPid + 1) return std::nullopt;
  if (afterN == end) return maker;
  const std::string_view rest(afterN, static_cast<size_t>(end - afterN));
  if (!rest.starts_with("-ns")) return std::nullopt;
  uint64_t ns = 0;
  const auto [afterNs, ec3] = std::from_chars(afterN + 3, end, ns);
  if (ec3 != std::errc() || afterNs == afterN + 3 || afterNs != end) return std::nullopt;
  maker.pidNamespace = ns;
  return maker;
}

// A sandbox made by a helper in another pid namespace (another container)
// cannot be judged by its maker's pid. It is a leftover only when the kernel
// says no process is in it (cgroup v2 "populated 0", which counts processes
// of every namespace) and it is older than any sandbox still being set up.
constexpr time_t kForeignGraceSeconds = 60;

bool foreignAndAbandoned(const Layout& layout, const std::string& name) {
  if (layout.v2Parent.empty()) return false;  // no way to tell: leave it alone
  const std::string dir = layout.v2Parent + "/" + name;
  const std::optional<std::string> events = readControl(AT_FDCWD, (dir + "/cgroup.events").c_str());
  if (!events || events->find("populated 0") == std::string::npos) return false;
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) return false;
  return std::time(nullptr) - st.st_mtime > kForeignGraceSeconds;
}

std::vector<std::string> subdirectories(const std::string& parent) {
  std::vector<std::string> names;
  std::unique_ptr<DIR, DirCloser> dir(::opendir(parent.c_str()));
  if (!dir) return names;  // a parent removed meanwhile has no leftovers
  while (const dirent* entry = ::readdir(dir.get()))
    if (entry->d_type == DT_DIR) names.emplace_back(entry->d_name);
  return names;
}

int removeLeftover(const std::string& path) {
  for (int attempt = 0;; ++attempt) {
    if (::rmdir(path.c_str()) == 0 || errno == ENOENT) return 0;
    if (errno != EBUSY || attempt + 1 == kRemoveAttempts) return errno;
    const timespec pause{0, 2 * 1000 * 1000};
    ::nanosleep(&pause, nullptr);
  }
}

}  // namespace

uint64_t ownPidNamespace() {
  struct stat st;
  return ::stat("/proc/self/ns/pid", &st) == 0 ? static_cast<uint64_t>(st.st_ino) : 0;
}

std::string sandboxCgroupName(uint64_t id) {
  // Read once: getpid(2) is a system call on every sandbox otherwise, and
  // the helper's pid and pid namespace never change.
  static const std::string prefix = "sb-" + std::to_string(::getpid()) + "-";
  static const std::string suffix = "-ns" + std::to_string(ownPidNamespace());
  return prefix + std::to_string(id) + suffix;
}

bool isGpuboxHelper(pid_t pid) {
  const std::string proc = "/proc/" + std::to_string(pid);
  const std::optional<std::string> comm = readControl(AT_FDCWD, (proc + "/comm").c_str());
  if (!comm || (*comm != "gpubox-helper\n" && *comm != "gpubox-helper")) return false;
  // A helper killed a moment ago and not yet reaped (a zombie) is dead: its
  // sandboxes are gone, its cgroups are leftovers.
  const std::optional<std::string> stat = readControl(AT_FDCWD, (proc + "/stat").c_str());
  if (!stat) return false;
  const size_t close = stat->rfind(')');
  return close != std::string::npos && close + 2 < stat->size() && (*stat)[close + 2] != 'Z' &&
         (*stat)[close + 2] != 'X';
}

std::vector<std::string> cleanLeftovers(const Layout& layout,
                                        const std::function<bool(pid_t)>& isLiveHelper) {
  const std::function<bool(pid_t)> live = isLiveHelper ? isLiveHelper : isGpuboxHelper;
  std::vector<std::string> parents;
  if (!layout.v2Parent.empty()) parents.push_back(layout.v2Parent);
  for (const auto& [controller, parent] : layout.v1Parents)
    if (std::find(parents.begin(), parents.end(), parent) == parents.end())
      parents.push_back(parent);

  const uint64_t ownNamespace = ownPidNamespace();
  // Decided per name before anything is removed: whether another pid
  // namespace's sandbox is abandoned is read from its v2 directory, which
  // goes in the same pass as its v1 siblings.
  std::map<std::string, bool> abandoned;
  for (const std::string& parent : parents)
    for (const std::string& name : subdirectories(parent)) {
      const std::optional<Maker> maker = makerOf(name);
      if (!maker || abandoned.count(name)) continue;
      const bool foreign = maker->pidNamespace && *maker->pidNamespace != ownNamespace;
      abandoned[name] = foreign ? foreignAndAbandoned(layout, name) : !live(maker->pid);
    }
  std::vector<std::string> lines;
  for (const std::string& parent : parents) {
    for (const std::string& name : subdirectories(parent)) {
      auto verdict = abandoned.find(name);
      if (verdict == abandoned.end() || !verdict->second) continue;
      const Maker maker = *makerOf(name);
      const bool foreign = maker.pidNamespace && *maker.pidNamespace != ownNamespace;
      const std::string path = parent + "/" + name;
      const std::string what = "leftover cgroup " + path + " of dead helper " +
                               std::to_string(maker.pid) +
                               (foreign ? " (of another pid namespace)" : "");
      UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
      if (!fd) {
        if (errno != ENOENT) lines.push_back(errnoMessage("cannot open " + what, errno));
        continue;
      }
      const size_t killed = killCgroupProcesses({fd.get()});
      fd.reset();
      const std::string count =
          " (killed " + std::to_string(killed) + (killed == 1 ? " process)" : " processes)");
      if (const int err = removeLeftover(path); err != 0)
        lines.push_back(errnoMessage("cannot remove " + what + count, err));
      else
        lines.push_back("removed " + what + count);
    }
  }
  return lines;
}

}  // namespace gpubox::cgroup
