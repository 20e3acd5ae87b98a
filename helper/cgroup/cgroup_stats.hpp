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
// The v1 readers, one per controller's directory, so that a hierarchy is
// asked only for the files it can have. Never throw; absent files leave the
// fields as they are.
void readV1MemoryStats(int dirFd, Stats& stats);
void readV1CpuacctStats(int dirFd, Stats& stats);
// pids.current of a v1 pids directory or the v2 one; false when absent.
bool readPidsCurrent(int dirFd, uint64_t& processes);
// Only the OOM kill count (read at every command's start and end).
void readV1OomKills(int dirFd, uint64_t& kills);
void readV2OomKills(int dirFd, uint64_t& kills);

}  // namespace gpubox::cgroup
