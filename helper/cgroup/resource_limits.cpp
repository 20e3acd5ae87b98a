#include "resource_limits.hpp"

#include <algorithm>
#include <utility>

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

namespace {

// The plan of one option's writes, one value per file.
PlannedLimit planned(std::string option, std::vector<std::pair<const char*, std::string>> files,
                     std::vector<std::string> applied) {
  PlannedLimit limit{.option = std::move(option), .writes = {}, .applied = std::move(applied)};
  for (auto& [file, value] : files) limit.writes.push_back({.file = file, .values = {value}});
  return limit;
}

}  // namespace

std::vector<PlannedLimit> planV2Limits(int dirFd, const std::vector<std::string>& controllers,
                                       const ResourceLimits& limits) {
  std::vector<PlannedLimit> out;
  if (limits.memoryBytes && has(controllers, "memory")) {
    const std::string bytes = std::to_string(*limits.memoryBytes);
    // Without swap accounting (swapaccount=0) the file is absent and the
    // kernel cannot limit swap per cgroup at all; say so in the status.
    if (hasControl(dirFd, "memory.swap.max"))
      out.push_back(planned(
          memoryOption(*limits.memoryBytes), {{"memory.max", bytes}, {"memory.swap.max", "0"}},
          {"memory.max = " + bytes + " (cgroup v2)", "memory.swap.max = 0 (cgroup v2)"}));
    else
      out.push_back(planned(memoryOption(*limits.memoryBytes), {{"memory.max", bytes}},
                            {"memory.max = " + bytes + " (cgroup v2)",
                             "memory.swap.max absent (no swap accounting): swap not limited"}));
  }
  if (limits.cpuMillis && has(controllers, "cpu")) {
    const std::string max =
        std::to_string(quotaUs(*limits.cpuMillis)) + " " + std::to_string(kCpuPeriodUs);
    out.push_back(planned(cpuOption(*limits.cpuMillis), {{"cpu.max", max}},
                          {"cpu.max = " + max + " (cgroup v2)"}));
  }
  if (limits.pids && has(controllers, "pids")) {
    const std::string pids = std::to_string(*limits.pids);
    out.push_back(planned(pidsOption(*limits.pids), {{"pids.max", pids}},
                          {"pids.max = " + pids + " (cgroup v2)"}));
  }
  return out;
}

std::vector<PlannedLimit> planV1Limits(int dirFd, const std::vector<std::string>& controllers,
                                       const ResourceLimits& limits) {
  std::vector<PlannedLimit> out;
  if (limits.memoryBytes && has(controllers, "memory")) {
    // memsw (memory + swap) may never be below the memory limit, so the
    // memory limit goes first; equal values leave no room for swap.
    const std::string bytes = std::to_string(*limits.memoryBytes);
    if (hasControl(dirFd, "memory.memsw.limit_in_bytes"))
      out.push_back(
          planned(memoryOption(*limits.memoryBytes),
                  {{"memory.limit_in_bytes", bytes}, {"memory.memsw.limit_in_bytes", bytes}},
                  {"memory.limit_in_bytes = " + bytes + " (cgroup v1)",
                   "memory.memsw.limit_in_bytes = " + bytes + " (cgroup v1)"}));
    else
      out.push_back(
          planned(memoryOption(*limits.memoryBytes), {{"memory.limit_in_bytes", bytes}},
                  {"memory.limit_in_bytes = " + bytes + " (cgroup v1)",
                   "memory.memsw.limit_in_bytes absent (no swap accounting): swap not limited"}));
  }
  if (limits.cpuMillis && has(controllers, "cpu")) {
    const std::string quota = std::to_string(quotaUs(*limits.cpuMillis));
    out.push_back(planned(
        cpuOption(*limits.cpuMillis),
        {{"cpu.cfs_period_us", std::to_string(kCpuPeriodUs)}, {"cpu.cfs_quota_us", quota}},
        {"cpu.cfs_quota_us = " + quota + " per " + std::to_string(kCpuPeriodUs) + " (cgroup v1)"}));
  }
  if (limits.pids && has(controllers, "pids")) {
    const std::string pids = std::to_string(*limits.pids);
    out.push_back(planned(pidsOption(*limits.pids), {{"pids.max", pids}},
                          {"pids.max = " + pids + " (cgroup v1)"}));
  }
  return out;
}

bool carryOutLimits(int dirFd, std::vector<PlannedLimit>& planned) noexcept {
  for (PlannedLimit& limit : planned) {
    for (ControlWrites& w : limit.writes) {
      w.carryOut(dirFd);
      if (w.err != 0) return false;
    }
  }
  return true;
}

std::vector<std::string> limitsInForce(const std::string& dir,
                                       const std::vector<PlannedLimit>& planned) {
  std::vector<std::string> applied;
  for (const PlannedLimit& limit : planned) {
    for (const ControlWrites& w : limit.writes)
      if (w.err != 0) throw Error(limit.option + ": " + w.failure(dir));
    applied.insert(applied.end(), limit.applied.begin(), limit.applied.end());
  }
  return applied;
}

namespace {

std::vector<std::string> writePlanned(int dirFd, const std::string& dir,
                                      std::vector<PlannedLimit> plan) {
  carryOutLimits(dirFd, plan);
  return limitsInForce(dir, plan);
}

}  // namespace

std::vector<std::string> writeV2Limits(int dirFd, const std::string& dir,
                                       const std::vector<std::string>& controllers,
                                       const ResourceLimits& limits) {
  return writePlanned(dirFd, dir, planV2Limits(dirFd, controllers, limits));
}

std::vector<std::string> writeV1Limits(int dirFd, const std::string& dir,
                                       const std::vector<std::string>& controllers,
                                       const ResourceLimits& limits) {
  return writePlanned(dirFd, dir, planV1Limits(dirFd, controllers, limits));
}

}  // namespace gpubox::cgroup
