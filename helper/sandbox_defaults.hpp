// What a caller's sandboxes get when a request does not say, and the most a
// request may ask for: built-ins, then the policy's [defaults], then the
// helper's flags, then the caller's matching [[allow]] rule (caller_policy).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "settings.hpp"

namespace gpubox {

struct SandboxDefaults {
  std::optional<uint64_t> memoryBytes;  // built-in: 3/4 of RAM (set in main)
  std::optional<uint32_t> cpuMillis;
  std::optional<uint32_t> pids = 4096;
  std::optional<uint64_t> maxMemoryBytes;
  std::optional<uint32_t> maxCpuMillis;
  std::optional<uint32_t> maxPids;
  uint64_t sessionTtlMs = 3600 * 1000;
  uint64_t maxSessionTtlMs = 24 * 3600 * 1000;
  std::optional<uint64_t> maxTimeoutMs;  // also the timeout of a command that sets none
  uint32_t sandboxesPerUid = 64;         // live sandboxes, sessions included
  uint32_t sessionsPerUid = 16;

  // Who set each ceiling, for refusals: a flag ("--max-memory") or a policy
  // line ("/etc/gpubox/helper.toml:12: max_memory").
  struct Origins {
    std::string maxMemory = "--max-memory", maxCpus = "--max-cpus", maxPids = "--max-pids";
    std::string maxSessionTtl = "--max-session-ttl", maxTimeout = "max_timeout";
    std::string sandboxesPerUid = "--max-sandboxes-per-uid";
    std::string sessionsPerUid = "--max-sessions-per-uid";
  } origin;

  // Every key SETTINGS sets replaces the value here; a lower ceiling lowers
  // the session TTL default with it.
  void overlay(const policy::LimitSettings& settings);
  // One line per limit, in the words of the options, for `gpubox info` and
  // `gpubox-helper --check-config`.
  std::vector<std::string> describe() const;
};

}  // namespace gpubox
