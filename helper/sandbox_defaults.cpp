#include "sandbox_defaults.hpp"

#include <algorithm>

#include "limits.hpp"

namespace gpubox {

namespace {

template <typename T>
void take(std::optional<T>& out, const policy::Setting<T>& s) {
  if (s.set) out = s.value;
}

template <typename T>
void takeWithOrigin(std::optional<T>& out, std::string& origin, const policy::Setting<T>& s) {
  if (!s.set) return;
  out = s.value;
  origin = s.where;
}

}  // namespace

void SandboxDefaults::overlay(const policy::LimitSettings& s) {
  take(memoryBytes, s.memory);
  take(cpuMillis, s.cpus);
  take(pids, s.pids);
  takeWithOrigin(maxMemoryBytes, origin.maxMemory, s.maxMemory);
  takeWithOrigin(maxCpuMillis, origin.maxCpus, s.maxCpus);
  takeWithOrigin(maxPids, origin.maxPids, s.maxPids);
  takeWithOrigin(maxTimeoutMs, origin.maxTimeout, s.maxTimeout);
  if (s.sessionTtl.set) sessionTtlMs = *s.sessionTtl.value;
  if (s.maxSessionTtl.set) {
    maxSessionTtlMs = *s.maxSessionTtl.value;
    origin.maxSessionTtl = s.maxSessionTtl.where;
  }
  if (s.maxSandboxes.set) {
    sandboxesPerUid = *s.maxSandboxes.value;
    origin.sandboxesPerUid = s.maxSandboxes.where;
  }
  if (s.maxSessions.set) {
    sessionsPerUid = *s.maxSessions.value;
    origin.sessionsPerUid = s.maxSessions.where;
  }
  // "max_session_ttl = 10m" alone means sessions get 10 minutes unless they
  // ask for less.
  sessionTtlMs = std::min(sessionTtlMs, maxSessionTtlMs);
}

std::vector<std::string> SandboxDefaults::describe() const {
  auto size = [](const std::optional<uint64_t>& v) { return v ? formatSize(*v) : "none"; };
  auto cpus = [](const std::optional<uint32_t>& v) { return v ? formatCpus(*v) : "none"; };
  auto count = [](const std::optional<uint32_t>& v) { return v ? std::to_string(*v) : "none"; };
  return {
      "memory: default " + size(memoryBytes) + ", ceiling " + size(maxMemoryBytes),
      "cpus: default " + cpus(cpuMillis) + ", ceiling " + cpus(maxCpuMillis),
      "pids: default " + count(pids) + ", ceiling " + count(maxPids),
      "rlimits: CORE=0 unless set",
      "command timeout: ceiling " + (maxTimeoutMs ? formatDurationMs(*maxTimeoutMs) : "none"),
      "session ttl: default " + formatDurationMs(sessionTtlMs) + ", ceiling " +
          formatDurationMs(maxSessionTtlMs),
      "per uid: " + std::to_string(sandboxesPerUid) + " sandboxes, " +
          std::to_string(sessionsPerUid) + " sessions",
  };
}

}  // namespace gpubox
