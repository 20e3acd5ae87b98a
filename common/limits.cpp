#include "limits.hpp"

#include <sys/resource.h>

#include <cmath>
#include <cstdio>
#include <utility>

#include "error.hpp"

namespace gpubox {

namespace {

struct NamedResource {
  const char* name;
  int resource;
};

constexpr NamedResource kResources[] = {
    {"AS", RLIMIT_AS},           {"CORE", RLIMIT_CORE},         {"CPU", RLIMIT_CPU},
    {"DATA", RLIMIT_DATA},       {"FSIZE", RLIMIT_FSIZE},       {"LOCKS", RLIMIT_LOCKS},
    {"MEMLOCK", RLIMIT_MEMLOCK}, {"MSGQUEUE", RLIMIT_MSGQUEUE}, {"NICE", RLIMIT_NICE},
    {"NOFILE", RLIMIT_NOFILE},   {"NPROC", RLIMIT_NPROC},       {"RSS", RLIMIT_RSS},
    {"RTPRIO", RLIMIT_RTPRIO},   {"RTTIME", RLIMIT_RTTIME},     {"SIGPENDING", RLIMIT_SIGPENDING},
    {"STACK", RLIMIT_STACK},
};

// Splits "1.5G" into 1.5 and "G". False when there is no leading number.
bool splitNumber(const std::string& text, double* number, std::string* unit) {
  size_t i = 0;
  while (i < text.size() && ((text[i] >= '0' && text[i] <= '9') || text[i] == '.')) ++i;
  if (i == 0) return false;
  std::string digits = text.substr(0, i);
  if (digits.find('.') != digits.rfind('.')) return false;
  if (digits == ".") return false;
  *number = std::strtod(digits.c_str(), nullptr);
  *unit = text.substr(i);
  return true;
}

// X rounded to the nearest whole number, halves up, for 0 <= X < 2^52.
// Not std::llround: this file is in the CLI, and that one call would make
// every gpubox process load libm (the client's start-up is paid per
// sandboxed command; docs/performance.md).
uint64_t roundNonNegative(double x) {
  return static_cast<uint64_t>(x + 0.5);
}

std::string upper(std::string s) {
  for (char& c : s)
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  return s;
}

uint64_t rlimitValue(const std::string& whole, const std::string& text) {
  if (text == "unlimited" || text == "infinity") return kRlimUnlimited;
  if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos || text.size() > 19)
    throw Error("--rlimit " + whole + ": '" + text + "' is not a number or 'unlimited'");
  return std::stoull(text);
}

// "1.5" but "2" for whole numbers; at most 2 decimals.
std::string trimmed(double value) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", value);
  std::string s = buf;
  while (!s.empty() && s.back() == '0') s.pop_back();
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}

}  // namespace

uint64_t parseSize(const std::string& option, const std::string& text) {
  double number = 0;
  std::string unit;
  if (!splitNumber(text, &number, &unit))
    throw Error(option + " '" + text + "' is not a size like 512M or 4G");
  std::string u = upper(unit);
  if (!u.empty() && u.back() == 'B') u.pop_back();  // "512MB", "4GiB" -> binary anyway
  if (u.size() == 2 && u[1] == 'I') u.pop_back();
  double scale = 1;
  if (u.empty()) {
    scale = 1;
  } else if (u == "K") {
    scale = 1024.0;
  } else if (u == "M") {
    scale = 1024.0 * 1024;
  } else if (u == "G") {
    scale = 1024.0 * 1024 * 1024;
  } else if (u == "T") {
    scale = 1024.0 * 1024 * 1024 * 1024;
  } else {
    throw Error(option + " '" + text + "': unknown unit '" + unit + "' (use K, M, G or T)");
  }
  double bytes = number * scale;
  if (bytes < 1 || bytes > 9.0e18) throw Error(option + " '" + text + "' is out of range");
  return static_cast<uint64_t>(bytes);
}

uint64_t parseDurationMs(const std::string& option, const std::string& text) {
  const std::string usage = " is not a duration like 500ms, 30s, 5m, 2h or 1h30m";
  if (text.empty()) throw Error(option + " ''" + usage);
  double totalMs = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    double number = 0;
    std::string rest;
    if (!splitNumber(text.substr(pos), &number, &rest))
      throw Error(option + " '" + text + "'" + usage);
    size_t numLen = text.size() - pos - rest.size();
    size_t unitLen = 0;
    while (unitLen < rest.size() && rest[unitLen] >= 'a' && rest[unitLen] <= 'z') ++unitLen;
    std::string unit = rest.substr(0, unitLen);
    double scale;
    if (unit.empty()) {
      // A bare number means seconds, and only on its own ("90", not "1h30").
      if (pos != 0 || unitLen != rest.size()) throw Error(option + " '" + text + "'" + usage);
      scale = 1000;
    } else if (unit == "ms") {
      scale = 1;
    } else if (unit == "s") {
      scale = 1000;
    } else if (unit == "m") {
      scale = 60.0 * 1000;
    } else if (unit == "h") {
      scale = 3600.0 * 1000;
    } else if (unit == "d") {
      scale = 86400.0 * 1000;
    } else {
      throw Error(option + " '" + text + "'" + usage);
    }
    totalMs += number * scale;
    pos += numLen + unitLen;
  }
  if (totalMs < 1) throw Error(option + " '" + text + "' must be at least 1ms");
  if (totalMs > 1.0e15) throw Error(option + " '" + text + "' is out of range");
  return roundNonNegative(totalMs);
}

uint32_t parseCpus(const std::string& option, const std::string& text) {
  double number = 0;
  std::string unit;
  if (!splitNumber(text, &number, &unit) || !unit.empty())
    throw Error(option + " '" + text + "' is not a number of CPUs like 0.5 or 2");
  // NUMBER is not negative (digits and a point), but may be huge.
  if (number * 1000 >= 1000.0 * 4096 + 0.5) throw Error(option + " '" + text + "' is out of range");
  const uint64_t millis = roundNonNegative(number * 1000);
  if (millis < 10) throw Error(option + " '" + text + "' is below the minimum of 0.01 CPUs");
  return static_cast<uint32_t>(millis);
}

uint32_t parseCount(const std::string& option, const std::string& text) {
  if (text.empty() || text.size() > 9 || text.find_first_not_of("0123456789") != std::string::npos)
    throw Error(option + " '" + text + "' is not a positive whole number");
  unsigned long n = std::stoul(text);
  if (n == 0) throw Error(option + " must be at least 1");
  return static_cast<uint32_t>(n);
}

RlimitSetting parseRlimit(const std::string& text) {
  size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0)
    throw Error("--rlimit '" + text + "' is not NAME=SOFT[:HARD], e.g. NOFILE=1024:4096");
  RlimitSetting r;
  r.name = upper(text.substr(0, eq));
  if (r.name.rfind("RLIMIT_", 0) == 0) r.name = r.name.substr(7);
  if (rlimitResource(r.name) < 0) {
    std::string known;
    for (const std::string& n : rlimitNames()) known += (known.empty() ? "" : " ") + n;
    throw Error("--rlimit " + text + ": unknown limit '" + text.substr(0, eq) +
                "' (known: " + known + ")");
  }
  std::string values = text.substr(eq + 1);
  size_t colon = values.find(':');
  r.soft = rlimitValue(text, values.substr(0, colon));
  r.hard = colon == std::string::npos ? r.soft : rlimitValue(text, values.substr(colon + 1));
  if (r.soft > r.hard) throw Error("--rlimit " + text + ": the soft limit exceeds the hard limit");
  return r;
}

int rlimitResource(const std::string& name) {
  for (const NamedResource& r : kResources)
    if (name == r.name) return r.resource;
  return -1;
}

const std::vector<std::string>& rlimitNames() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const NamedResource& r : kResources) v.emplace_back(r.name);
    return v;
  }();
  return names;
}

std::string formatSize(uint64_t bytes) {
  const char* units[] = {"", "K", "M", "G", "T"};
  double value = static_cast<double>(bytes);
  int u = 0;
  while (value >= 1024 && u < 4) {
    value /= 1024;
    ++u;
  }
  return trimmed(value) + units[u];
}

std::string formatDurationMs(uint64_t ms) {
  if (ms < 1000) return std::to_string(ms) + "ms";
  if (ms % 1000 != 0 && ms < 60000) return trimmed(static_cast<double>(ms) / 1000) + "s";
  uint64_t s = ms / 1000;
  std::string out;
  if (s >= 3600) {
    out += std::to_string(s / 3600) + "h";
    s %= 3600;
  }
  if (s >= 60) {
    out += std::to_string(s / 60) + "m";
    s %= 60;
  }
  if (s > 0 || out.empty()) out += std::to_string(s) + "s";
  return out;
}

std::string formatCpus(uint32_t millis) {
  // Exact to the thousandth the request carries: 500 -> "0.5", 1255 -> "1.255".
  std::string frac = std::to_string(millis % 1000);
  frac.insert(0, 3 - frac.size(), '0');
  while (!frac.empty() && frac.back() == '0') frac.pop_back();
  return std::to_string(millis / 1000) + (frac.empty() ? "" : "." + frac);
}

void validateLimits(const Limits& limits) {
  if (limits.memoryBytes && *limits.memoryBytes < 4096)
    throw Error("--memory " + std::to_string(*limits.memoryBytes) + " is below one page");
  if (limits.cpuMillis && (*limits.cpuMillis < 10 || *limits.cpuMillis > 1000u * 4096))
    throw Error("--cpus " + formatCpus(*limits.cpuMillis) + " is out of range");
  if (limits.pids && *limits.pids == 0) throw Error("--pids must be at least 1");
  if (limits.rlimits.size() > 64) throw Error("too many --rlimit settings");
  for (const RlimitSetting& r : limits.rlimits) {
    if (rlimitResource(r.name) < 0) throw Error("--rlimit: unknown limit '" + r.name + "'");
    if (r.soft > r.hard)
      throw Error("--rlimit " + r.name + ": the soft limit exceeds the hard limit");
  }
}

std::vector<RlimitSetting> defaultRlimits() {
  return {{"CORE", 0, 0}};
}

}  // namespace gpubox
