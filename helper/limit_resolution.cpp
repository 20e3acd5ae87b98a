#include "limit_resolution.hpp"

#include <sys/resource.h>

#include <algorithm>

#include "error.hpp"

namespace gpubox {

namespace {

template <typename T, typename Format>
std::optional<T> pick(const char* option, const std::optional<T>& requested,
                      const std::optional<T>& fallback, const std::optional<T>& ceiling,
                      const std::string& ceilingFlag, Format format) {
  std::optional<T> value = requested ? requested : fallback;
  if (requested && ceiling && *requested > *ceiling)
    throw Error(std::string(option) + " " + format(*requested) + ": above the ceiling of " +
                format(*ceiling) + " (" + ceilingFlag + ")");
  // A default above the ceiling (a misconfigured helper) is clamped to it.
  if (!requested && value && ceiling && *value > *ceiling) value = ceiling;
  return value;
}

uint64_t helperHardLimit(int resource) {
  struct rlimit own = {};
  ::getrlimit(static_cast<__rlimit_resource>(resource), &own);
  return own.rlim_max == RLIM_INFINITY ? kRlimUnlimited : own.rlim_max;
}

std::string rlimitText(uint64_t v) {
  return v == kRlimUnlimited ? "unlimited" : std::to_string(v);
}

}  // namespace

ResolvedLimits resolveLimits(const SandboxDefaults& d, const Limits& requested) {
  validateLimits(requested);
  ResolvedLimits out;
  out.resources.memoryBytes = pick("--memory", requested.memoryBytes, d.memoryBytes,
                                   d.maxMemoryBytes, d.origin.maxMemory, formatSize);
  out.memoryFromDefault = !requested.memoryBytes && out.resources.memoryBytes.has_value();
  out.resources.cpuMillis = pick("--cpus", requested.cpuMillis, d.cpuMillis, d.maxCpuMillis,
                                 d.origin.maxCpus, formatCpus);
  out.resources.pids = pick("--pids", requested.pids, d.pids, d.maxPids, d.origin.maxPids,
                            [](uint32_t n) { return std::to_string(n); });

  out.rlimits = defaultRlimits();
  for (const RlimitSetting& r : requested.rlimits) {
    const uint64_t own = helperHardLimit(rlimitResource(r.name));
    if (r.hard > own)
      throw Error("--rlimit " + r.name + "=" + rlimitText(r.soft) + ":" + rlimitText(r.hard) +
                  ": the hard limit is above the helper's own (" + rlimitText(own) +
                  "), which no sandbox can exceed");
    auto same = std::find_if(out.rlimits.begin(), out.rlimits.end(),
                             [&](const RlimitSetting& x) { return x.name == r.name; });
    if (same != out.rlimits.end())
      *same = r;  // the request's own word wins over the default, and a later one over an earlier
    else
      out.rlimits.push_back(r);
  }
  return out;
}

std::string oomWords(const ResolvedLimits& limits, bool hasGpu) {
  std::string words = "out of memory: the sandbox reached its ";
  const std::string size = formatSize(limits.resources.memoryBytes.value_or(0));
  if (!limits.resources.memoryBytes)
    words += "memory (no ceiling was set: the host itself ran out)";
  else if (limits.memoryFromDefault)
    words += "memory ceiling of " + size + " (the helper's default; ask for more with --memory)";
  else
    words += "--memory " + size + " ceiling";
  if (hasGpu)
    words +=
        "; GPU jobs need host memory too (importing PyTorch with CUDA maps several GiB), so "
        "give a GPU sandbox a larger --memory";
  return words;
}

uint64_t resolveTimeout(std::optional<uint64_t> ceilingMs, const std::string& origin,
                        uint64_t requestedMs) {
  if (!ceilingMs) return requestedMs;
  if (requestedMs == 0) return *ceilingMs;
  if (requestedMs > *ceilingMs)
    throw Error("--timeout " + formatDurationMs(requestedMs) + ": above the ceiling of " +
                formatDurationMs(*ceilingMs) + " (" + origin + ")");
  return requestedMs;
}

}  // namespace gpubox
