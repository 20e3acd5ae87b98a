#include "cgroup_kill.hpp"

#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <ctime>
#include <set>
#include <utility>

#include "cgroup_fs.hpp"
#include "error.hpp"
#include "unique_fd.hpp"

namespace gpubox::cgroup {

namespace {

constexpr int kMaxRounds = 100;

UniqueFd pidfdOpen(pid_t pid) {
  return UniqueFd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
}

void pidfdKill(int pidfd) {
  ::syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0);
}

// One round for one directory; false when it listed no process.
bool killRound(int dirFd, std::set<pid_t>& signalled) {
  const std::vector<pid_t> pids = cgroupPids(dirFd);
  if (pids.empty()) return false;
  if (hasControl(dirFd, "cgroup.kill")) {
    try {
      writeControl(dirFd, "", "cgroup.kill", "1");
      signalled.insert(pids.begin(), pids.end());
      return true;
    } catch (const Error&) {
      // Fall through to the per-process way.
    }
  }
  std::vector<std::pair<pid_t, UniqueFd>> opened;
  for (pid_t pid : pids)
    if (UniqueFd fd = pidfdOpen(pid)) opened.emplace_back(pid, std::move(fd));
  const std::vector<pid_t> still = cgroupPids(dirFd);
  for (const auto& [pid, fd] : opened) {
    if (std::find(still.begin(), still.end(), pid) == still.end()) continue;
    pidfdKill(fd.get());
    signalled.insert(pid);
  }
  return true;
}

}  // namespace

size_t killCgroupProcesses(const std::vector<int>& dirFds) {
  std::set<pid_t> signalled;
  for (int round = 0; round < kMaxRounds; ++round) {
    bool any = false;
    for (int fd : dirFds)
      if (fd >= 0 && killRound(fd, signalled)) any = true;
    if (!any) break;
    // Killed processes stay listed until they finish exiting; give them a
    // moment rather than spinning.
    const timespec pause{0, 1000 * 1000};
    ::nanosleep(&pause, nullptr);
  }
  return signalled.size();
}

}  // namespace gpubox::cgroup
