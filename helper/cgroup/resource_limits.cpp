#include "resource_limits.hpp"

#include <algorithm>
#include <functional>

#include "cgroup_fs.hpp"
#include "error.hpp"
#include "limits.hpp"

namespace gpubox::cgroup {

namespace {

// CFS bandwidth period: the kernel's default and what "QUOTA PERIOD" with a
// quota in CPU-millis * 100 means.
constexpr uint64_t kCpuPeriodUs = 100000;
// The kernel refuses quotas below 1 ms per period.
constexpr uint32_t kMinCpuMillis = 10;

bool has(const std::vector<std::string>& controllers, const char* controller) {
  return std::find(controllers.begin(), controllers.end(), controller) != controllers.end();
}

uint64_t quotaUs(uint32_t millis) {
  return uint64_t{millis} * kCpuPeriodUs / 1000;
}

// Runs WRITE, prefixing any error with the option it was for.
void forOption(const std::string& option, const std::function<void()>& write) {
  try {
    write();
  } catch (const Error& e) {
    throw Error(option + ": " + e.what());
  }
}

}  // namespace

std::string memoryOption(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"K", "M", "G", "T"};
  std::string unit;
  for (const char* u : kUnits) {
    if (bytes == 0 || bytes % 1024 != 0) break;
    bytes /= 1024;
    unit = u;
  }
  return "--memory " + std::to_string(bytes) + unit;
}

std::string cpuOption(uint32_t millis) {
  return "--cpus " + formatCpus(millis);
}

std::string pidsOption(uint32_t pids) {
  return "--pids " + std::to_string(pids);
}

void validateLimits(const ResourceLimits& limits) {
  if (limits.memoryBytes && *limits.memoryBytes == 0)
    throw Error(memoryOption(0) + ": the memory limit must be above zero");
  if (limits.cpuMillis && *limits.cpuMillis < kMinCpuMillis)
    throw Error(cpuOption(*limits.cpuMillis) + ": the CPU limit must be at least " +
                cpuOption(kMinCpuMillis).substr(7) + " (1 ms per 100 ms period)");
  if (limits.pids && *limits.pids == 0)
    throw Error(pidsOption(0) + ": the process limit must be at least 1");
}

std::vector<std::string> writeV2Limits(int dirFd, const std::string& dir,
                                       const std::vector<std::string>& controllers,
                                       const ResourceLimits& limits) {
  std::vector<std::string> applied;
  const auto put = [&](const char* file, const std::string& value) {
    writeControl(dirFd, dir, file, value);
    applied.push_back(std::string(file) + " = " + value + " (cgroup v2)");
  };
  if (limits.memoryBytes && has(controllers, "memory")) {
    forOption(memoryOption(*limits.memoryBytes), [&] {
      put("memory.max", std::to_string(*limits.memoryBytes));
      // Without swap accounting (swapaccount=0) the file is absent and the
      // kernel cannot limit swap per cgroup at all; say so in the status.
      if (hasControl(dirFd, "memory.swap.max"))
        put("memory.swap.max", "0");
      else
        applied.push_back("memory.swap.max absent (no swap accounting): swap not limited");
    });
  }
  if (limits.cpuMillis && has(controllers, "cpu")) {
    forOption(cpuOption(*limits.cpuMillis), [&] {
      put("cpu.max",
          std::to_string(quotaUs(*limits.cpuMillis)) + " " + std::to_string(kCpuPeriodUs));
    });
  }
  if (limits.pids && has(controllers, "pids"))
    forOption(pidsOption(*limits.pids), [&] { put("pids.max", std::to_string(*limits.pids)); });
  return applied;
}

std::vector<std::string> writeV1Limits(int dirFd, const std::string& dir,
                                       const std::vector<std::string>& controllers,
                                       const ResourceLimits& limits) {
  std::vector<std::string> applied;
  const auto put = [&](const char* file, const std::string& value) {
    writeControl(dirFd, dir, file, value);
    applied.push_back(std::string(file) + " = " + value + " (cgroup v1)");
  };
  if (limits.memoryBytes && has(controllers, "memory")) {
    forOption(memoryOption(*limits.memoryBytes), [&] {
      const std::string bytes = std::to_string(*limits.memoryBytes);
      // memsw (memory + swap) may never be below the memory limit, so the
      // memory limit goes first; equal values leave no room for swap.
      put("memory.limit_in_bytes", bytes);
      if (hasControl(dirFd, "memory.memsw.limit_in_bytes"))
        put("memory.memsw.limit_in_bytes", bytes);
      else
        applied.push_back(
            "memory.memsw.limit_in_bytes absent (no swap accounting): swap not limited");
    });
  }
  if (limits.cpuMillis && has(controllers, "cpu")) {
    forOption(cpuOption(*limits.cpuMillis), [&] {
      const std::string quota = std::to_string(quotaUs(*limits.cpuMillis));
      writeControl(dirFd, dir, "cpu.cfs_period_us", std::to_string(kCpuPeriodUs));
      writeControl(dirFd, dir, "cpu.cfs_quota_us", quota);
      applied.push_back("cpu.cfs_quota_us = " + quota + " per " + std::to_string(kCpuPeriodUs) +
                        " (cgroup v1)");
    });
  }
  if (limits.pids && has(controllers, "pids"))
    forOption(pidsOption(*limits.pids), [&] { put("pids.max", std::to_string(*limits.pids)); });
  return applied;
}

}  // namespace gpubox::cgroup
