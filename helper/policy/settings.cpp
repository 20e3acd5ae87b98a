#include "settings.hpp"

#include <unistd.h>

#include "error.hpp"
#include "limits.hpp"

namespace gpubox::policy {

namespace {

template <typename T>
void take(Setting<T>& mine, const Setting<T>& theirs) {
  if (theirs.set) mine = theirs;
}

template <typename T, typename Parse>
void assignOptional(Setting<T>& s, const std::string& text, const std::string& where, Parse parse) {
  if (text == "none")
    s.assign(std::nullopt, where);
  else
    s.assign(parse(text), where);
}

// A count where 0 is meaningful ("this group may hold no session").
uint32_t parseCountOrZero(const std::string& where, const std::string& text) {
  if (text == "0") return 0;
  return parseCount(where, text);
}

// 3/4 of the machine's memory: a runaway sandbox cannot take the host down
// with it, and real jobs (a GPU job's host side included) rarely need more.
uint64_t threeQuartersOfMemory() {
  const long pages = ::sysconf(_SC_PHYS_PAGES), pageSize = ::sysconf(_SC_PAGESIZE);
  return static_cast<uint64_t>(pages) * static_cast<uint64_t>(pageSize) / 4 * 3;
}

}  // namespace

void LimitSettings::overlay(const LimitSettings& o) {
  take(memory, o.memory);
  take(maxMemory, o.maxMemory);
  take(cpus, o.cpus);
  take(maxCpus, o.maxCpus);
  take(pids, o.pids);
  take(maxPids, o.maxPids);
  take(sessionTtl, o.sessionTtl);
  take(maxSessionTtl, o.maxSessionTtl);
  take(maxTimeout, o.maxTimeout);
  take(maxSandboxes, o.maxSandboxes);
  take(maxSessions, o.maxSessions);
}

bool LimitSettings::anySet() const {
  return memory.set || maxMemory.set || cpus.set || maxCpus.set || pids.set || maxPids.set ||
         sessionTtl.set || maxSessionTtl.set || maxTimeout.set || maxSandboxes.set ||
         maxSessions.set;
}

const std::vector<std::string_view>& limitKeys() {
  static const std::vector<std::string_view> keys = {
      "memory",      "max_memory",      "cpus",        "max_cpus",      "pids",        "max_pids",
      "session_ttl", "max_session_ttl", "max_timeout", "max_sandboxes", "max_sessions"};
  return keys;
}

bool assignLimit(LimitSettings& s, std::string_view key, const std::string& text,
                 const std::string& where) {
  auto size = [&](const std::string& t) { return parseSize(where, t); };
  auto cpus = [&](const std::string& t) { return parseCpus(where, t); };
  auto count = [&](const std::string& t) { return parseCount(where, t); };
  auto duration = [&](const std::string& t) { return parseDurationMs(where, t); };
  if (key == "memory") {
    if (text == "auto")
      s.memory.assign(threeQuartersOfMemory(), where);
    else
      assignOptional(s.memory, text, where, size);
  } else if (key == "max_memory") {
    assignOptional(s.maxMemory, text, where, size);
  } else if (key == "cpus") {
    assignOptional(s.cpus, text, where, cpus);
  } else if (key == "max_cpus") {
    assignOptional(s.maxCpus, text, where, cpus);
  } else if (key == "pids") {
    assignOptional(s.pids, text, where, count);
  } else if (key == "max_pids") {
    assignOptional(s.maxPids, text, where, count);
  } else if (key == "session_ttl") {
    s.sessionTtl.assign(duration(text), where);
  } else if (key == "max_session_ttl") {
    s.maxSessionTtl.assign(duration(text), where);
  } else if (key == "max_timeout") {
    assignOptional(s.maxTimeout, text, where, duration);
  } else if (key == "max_sandboxes") {
    s.maxSandboxes.assign(parseCountOrZero(where, text), where);
  } else if (key == "max_sessions") {
    s.maxSessions.assign(parseCountOrZero(where, text), where);
  } else {
    return false;
  }
  return true;
}

}  // namespace gpubox::policy
