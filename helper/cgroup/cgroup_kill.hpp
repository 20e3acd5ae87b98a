// SIGKILL for everything in a set of cgroup directories: the end of a
// sandbox, and the clean-up of a crashed helper's leftovers.
#pragma once

#include <cstddef>
#include <vector>

namespace gpubox::cgroup {

// Kills every process in the cgroup directories DIRFDS until all of them
// list none, for at most 100 rounds: through cgroup.kill where a directory
// has it (v2, 5.14+; atomic even against a fork bomb), else through pidfds
// of the pids in cgroup.procs, signalled only if the pid is still listed
// after the pidfd was opened (so a recycled pid is never hit). Returns how
// many distinct pids it saw and signalled. Never throws.
size_t killCgroupProcesses(const std::vector<int>& dirFds);

}  // namespace gpubox::cgroup
