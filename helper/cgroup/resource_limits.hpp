// A sandbox's resource ceilings and the writers that put them into one
// cgroup directory, v2 or v1. The writers take a directory fd so tests can
// drive them against plain files (the unified hierarchy of a hybrid CI host
// has no controllers to exercise for real).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "cgroup_fs.hpp"

namespace gpubox::cgroup {

struct ResourceLimits {
  // Hard ceiling in bytes; swap off (v2 memory.max + memory.swap.max=0; v1
  // memory.limit_in_bytes + memory.memsw.limit_in_bytes equal to it where
  // memsw exists).
  std::optional<uint64_t> memoryBytes;
  // 1000 = one CPU. v2 cpu.max "QUOTA 100000"; v1 cpu.cfs_period_us=100000 +
  // cpu.cfs_quota_us.
  std::optional<uint32_t> cpuMillis;
  std::optional<uint32_t> pids;  // pids.max (v1 and v2)
};

// The option as a user would have written it, for messages: "--memory 64M",
// "--cpus 0.5", "--pids 16".
std::string memoryOption(uint64_t bytes);
std::string cpuOption(uint32_t millis);
std::string pidsOption(uint32_t pids);

// Throws gpubox::Error, naming the option, for a value no cgroup accepts
// (zero memory or pids, a CPU quota below the kernel's 1 ms per period).
void validateLimits(const ResourceLimits& limits);

// One limit, planned: the option it came from (for messages), the writes
// that put it in force, in order, and the status lines that say so.
struct PlannedLimit {
  std::string option;
  std::vector<ControlWrites> writes;
  std::vector<std::string> applied;
};

// The limits of LIMITS whose controller is in CONTROLLERS ("memory", "cpu",
// "pids"), planned for the v2 cgroup directory DIRFD (which it only asks
// whether optional files exist); nothing is written.
std::vector<PlannedLimit> planV2Limits(int dirFd, const std::vector<std::string>& controllers,
                                       const ResourceLimits& limits);
// Likewise for a v1 cgroup directory whose hierarchy carries CONTROLLERS.
std::vector<PlannedLimit> planV1Limits(int dirFd, const std::vector<std::string>& controllers,
                                       const ResourceLimits& limits);

// Carries out each write of PLANNED into DIRFD in order, stopping at the
// first that fails (then false). System calls only: any thread (the device
// worker's, helper/cgroup_worker.hpp).
bool carryOutLimits(int dirFd, std::vector<PlannedLimit>& planned) noexcept;

// After carryOutLimits: the status lines of PLANNED, one per file written,
// e.g. "memory.max = 67108864 (cgroup v2)"; or, if a write failed, throws
// gpubox::Error "--memory 64M: writing 67108864 to DIR/memory.max: ...".
std::vector<std::string> limitsInForce(const std::string& dir,
                                       const std::vector<PlannedLimit>& planned);

// The three at once, on the calling thread.
std::vector<std::string> writeV2Limits(int dirFd, const std::string& dir,
                                       const std::vector<std::string>& controllers,
                                       const ResourceLimits& limits);
std::vector<std::string> writeV1Limits(int dirFd, const std::string& dir,
                                       const std::vector<std::string>& controllers,
                                       const ResourceLimits& limits);

}  // namespace gpubox::cgroup
