// Resource limits a client may ask for, and the words people write them in:
// sizes ("512M"), durations ("30s", "1h30m"), CPU shares ("0.5") and
// rlimits ("NOFILE=1024:4096"). Shared by the CLI (parsing what a person
// typed), the wire conversion and the helper (validation, messages).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace gpubox {

// One setrlimit(2) request. `soft`/`hard` use kRlimUnlimited for "unlimited".
struct RlimitSetting {
  std::string name;  // upper case: "NOFILE", "CORE", ...
  uint64_t soft = 0;
  uint64_t hard = 0;
  bool operator==(const RlimitSetting&) const = default;
};
constexpr uint64_t kRlimUnlimited = ~uint64_t{0};

// Sandbox-wide ceilings, enforced by the sandbox's cgroup (memory, cpu,
// pids) and by setrlimit before each command starts (rlimits).
struct Limits {
  std::optional<uint64_t> memoryBytes;
  std::optional<uint32_t> cpuMillis;  // 1000 = one CPU
  std::optional<uint32_t> pids;
  std::vector<RlimitSetting> rlimits;
  bool operator==(const Limits&) const = default;
};

// "512M", "4G", "1.5G", "65536" (bytes); binary units (K = 1024). Throws
// gpubox::Error naming `option`.
uint64_t parseSize(const std::string& option, const std::string& text);
// "30s", "500ms", "5m", "2h", "1h30m", "90" (seconds). Result in
// milliseconds, > 0. Throws gpubox::Error naming `option`.
uint64_t parseDurationMs(const std::string& option, const std::string& text);
// "0.5", "2", "1.25" CPUs -> thousandths of a CPU (>= 10, i.e. 0.01).
uint32_t parseCpus(const std::string& option, const std::string& text);
// A positive count ("64"). Throws gpubox::Error naming `option`.
uint32_t parseCount(const std::string& option, const std::string& text);
// "NOFILE=1024", "nofile=1024:4096", "CORE=unlimited". Throws naming it.
RlimitSetting parseRlimit(const std::string& text);

// The RLIMIT_* number for an upper-case name, or -1 when unknown.
int rlimitResource(const std::string& name);
// Every name parseRlimit accepts, for messages and help.
const std::vector<std::string>& rlimitNames();

// The way a person wrote it, for messages: 67108864 -> "64M", 1536M -> "1.5G".
std::string formatSize(uint64_t bytes);
// 1500 -> "1.5s", 90000 -> "1m30s", 7200000 -> "2h".
std::string formatDurationMs(uint64_t ms);
// 500 -> "0.5", 2000 -> "2", 1255 -> "1.255" (exact).
std::string formatCpus(uint32_t millis);

// Checks values a request carries (from the wire); throws gpubox::Error.
void validateLimits(const Limits& limits);

// Applied to every command unless the request sets the same resource: no
// core dumps (a core of a sandboxed process lands in its cwd, often a
// host directory, and can be huge).
std::vector<RlimitSetting> defaultRlimits();

}  // namespace gpubox
