// What the policy file may say about a caller's sandboxes besides GPUs:
// resource defaults and ceilings, timeouts, how many sandboxes and sessions
// a uid may hold. The same keys appear in the [defaults] table (every caller)
// and in an [[allow]] rule (the callers it matches); a key a rule leaves out
// falls through to [defaults], then to the helper's flags and built-ins.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace gpubox::policy {

// One setting as the file wrote it. `value` nullopt means "none" (no limit)
// where the key allows it.
template <typename T>
struct Setting {
  bool set = false;
  std::optional<T> value;
  std::string where;  // "FILE:LINE key", for messages that name the source

  void assign(std::optional<T> v, std::string from) {
    set = true;
    value = v;
    where = std::move(from);
  }
};

struct LimitSettings {
  Setting<uint64_t> memory, maxMemory;  // bytes
  Setting<uint32_t> cpus, maxCpus;      // thousandths of a CPU
  Setting<uint32_t> pids, maxPids;
  Setting<uint64_t> sessionTtl, maxSessionTtl, maxTimeout;  // milliseconds
  Setting<uint32_t> maxSandboxes, maxSessions;              // per uid

  // Every field `over` sets replaces this one's.
  void overlay(const LimitSettings& over);
  bool anySet() const;
};

// The keys above, as written in the file, for "known keys" messages and docs.
const std::vector<std::string_view>& limitKeys();

// Parses one key's text the way the file and the helper's flags both write
// it ("8G", "none", "1.5", "1h30m", "auto" for memory); `where` names the
// source in errors. Returns false when `key` is not a limit key. Throws
// gpubox::Error on a bad value.
bool assignLimit(LimitSettings& settings, std::string_view key, const std::string& text,
                 const std::string& where);

}  // namespace gpubox::policy
