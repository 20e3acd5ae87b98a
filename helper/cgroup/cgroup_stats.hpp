// What a sandbox's cgroup reports: memory, processes, CPU time, OOM kills.
// The readers take a directory fd and read only the few small files they
// need, so they are cheap enough for every status request and testable
// against plain files.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace gpubox::cgroup {

struct Stats {
  // Bytes (v2 memory.current / memory.peak; v1 memory.usage_in_bytes /
  // memory.max_usage_in_bytes); 0 when no memory controller.
  uint64_t memoryCurrent = 0, memoryPeak = 0;
  uint64_t processes = 0;  // pids.current, else lines of cgroup.procs
  // v2 cpu.stat usage_usec*1000 (available even without the cpu
  // controller); v1 cpuacct.usage.
  uint64_t cpuUsageNanos = 0;
  uint64_t oomKills = 0;  // v2 memory.events "oom_kill"; v1 memory.oom_control "oom_kill"
};

// The number after KEY in "KEY VALUE" lines (memory.events, cpu.stat,
// memory.oom_control), or nullopt.
std::optional<uint64_t> keyedValue(std::string_view text, std::string_view key);

// Sets the fields of STATS that the v2 cgroup directory DIRFD has files for,
// leaving the others. Returns whether it found pids.current. Never throws.
bool readV2Stats(int dirFd, Stats& stats);
// Likewise for a v1 cgroup directory (memory, cpuacct and pids files).
bool readV1Stats(int dirFd, Stats& stats);

}  // namespace gpubox::cgroup
