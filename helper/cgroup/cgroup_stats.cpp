#include "cgroup_stats.hpp"

#include <charconv>
#include <string>

#include "cgroup_fs.hpp"

namespace gpubox::cgroup {

namespace {

std::optional<uint64_t> parseNumber(std::string_view s) {
  uint64_t value = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || end == s.data()) return std::nullopt;
  return value;
}

// Sets FIELD from a file holding one number; false when absent or not a
// number (v2 writes "max" in some of them).
bool readNumber(int dirFd, const char* file, uint64_t& field) {
  const std::optional<std::string> text = readControl(dirFd, file);
  if (!text) return false;
  const std::optional<uint64_t> value = parseNumber(*text);
  if (!value) return false;
  field = *value;
  return true;
}

void readKeyed(int dirFd, const char* file, std::string_view key, uint64_t& field,
               uint64_t scale = 1) {
  const std::optional<std::string> text = readControl(dirFd, file);
  if (!text) return;
  if (const std::optional<uint64_t> value = keyedValue(*text, key)) field = *value * scale;
}

}  // namespace

std::optional<uint64_t> keyedValue(std::string_view text, std::string_view key) {
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view line = text.substr(start, end - start);
    if (line.size() > key.size() && line.starts_with(key) && line[key.size()] == ' ')
      return parseNumber(line.substr(key.size() + 1));
    start = end + 1;
  }
  return std::nullopt;
}

bool readV2Stats(int dirFd, Stats& stats) {
  readNumber(dirFd, "memory.current", stats.memoryCurrent);
  readNumber(dirFd, "memory.peak", stats.memoryPeak);  // 5.19+
  readV2OomKills(dirFd, stats.oomKills);
  readKeyed(dirFd, "cpu.stat", "usage_usec", stats.cpuUsageNanos, 1000);
  return readPidsCurrent(dirFd, stats.processes);
}

void readV2OomKills(int dirFd, uint64_t& kills) {
  readKeyed(dirFd, "memory.events", "oom_kill", kills);
}

void readV1MemoryStats(int dirFd, Stats& stats) {
  readNumber(dirFd, "memory.usage_in_bytes", stats.memoryCurrent);
  readNumber(dirFd, "memory.max_usage_in_bytes", stats.memoryPeak);
  readV1OomKills(dirFd, stats.oomKills);
}

void readV1OomKills(int dirFd, uint64_t& kills) {
  readKeyed(dirFd, "memory.oom_control", "oom_kill", kills);
}

void readV1CpuacctStats(int dirFd, Stats& stats) {
  readNumber(dirFd, "cpuacct.usage", stats.cpuUsageNanos);
}

bool readPidsCurrent(int dirFd, uint64_t& processes) {
  return readNumber(dirFd, "pids.current", processes);
}

}  // namespace gpubox::cgroup
