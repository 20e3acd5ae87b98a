// cleanLeftovers() (declared in sandbox_cgroup.hpp): what a crashed helper
// left in the shared parents.
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <ctime>
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

// The helper pid of a sandbox cgroup name "sb-<pid>-<n>", or nullopt.
std::optional<pid_t> helperPidOf(const std::string& name) {
  if (!name.starts_with("sb-")) return std::nullopt;
  const char* p = name.data() + 3;
  const char* end = name.data() + name.size();
  pid_t pid = 0;
  const auto [afterPid, ec] = std::from_chars(p, end, pid);
  if (ec != std::errc() || afterPid == p || pid <= 0 || afterPid == end || *afterPid != '-')
    return std::nullopt;
  unsigned long n = 0;
  const auto [afterN, ec2] = std::from_chars(afterPid + 1, end, n);
  if (ec2 != std::errc() || afterN == afterPid + 1 || afterN != end) return std::nullopt;
  return pid;
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

bool isGpuboxHelper(pid_t pid) {
  const std::string path = "/proc/" + std::to_string(pid) + "/comm";
  const std::optional<std::string> comm = readControl(AT_FDCWD, path.c_str());
  return comm && (*comm == "gpubox-helper\n" || *comm == "gpubox-helper");
}

std::vector<std::string> cleanLeftovers(const Layout& layout,
                                        const std::function<bool(pid_t)>& isLiveHelper) {
  const std::function<bool(pid_t)> live = isLiveHelper ? isLiveHelper : isGpuboxHelper;
  std::vector<std::string> parents;
  if (!layout.v2Parent.empty()) parents.push_back(layout.v2Parent);
  for (const auto& [controller, parent] : layout.v1Parents)
    if (std::find(parents.begin(), parents.end(), parent) == parents.end())
      parents.push_back(parent);

  std::vector<std::string> lines;
  for (const std::string& parent : parents) {
    for (const std::string& name : subdirectories(parent)) {
      const std::optional<pid_t> pid = helperPidOf(name);
      if (!pid || live(*pid)) continue;
      const std::string path = parent + "/" + name;
      const std::string what =
          "leftover cgroup " + path + " of dead helper " + std::to_string(*pid);
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
