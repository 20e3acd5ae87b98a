#include "env.hpp"

#include <algorithm>

#include "error.hpp"

namespace gpubox {

namespace {
bool hasKey(const std::string& entry, const std::string& key) {
  return entry.size() > key.size() && entry.compare(0, key.size(), key) == 0 &&
         entry[key.size()] == '=';
}
}  // namespace

void validateEnvKey(const std::string& key) {
  if (key.empty()) throw Error("environment variable name is empty");
  if (key.find('=') != std::string::npos)
    throw Error("environment variable name '" + key + "' contains '='");
  if (key.find('\0') != std::string::npos)
    throw Error("environment variable name contains a NUL byte");
}

EnvBuilder EnvBuilder::fromEnviron(char** envp) {
  std::vector<std::string> entries;
  for (char** e = envp; e && *e; ++e) entries.emplace_back(*e);
  return EnvBuilder(std::move(entries));
}

void EnvBuilder::set(const std::string& key, const std::string& value) {
  validateEnvKey(key);
  unset(key);
  entries_.push_back(key + "=" + value);
}

void EnvBuilder::unset(const std::string& key) {
  validateEnvKey(key);
  std::erase_if(entries_, [&](const std::string& e) { return hasKey(e, key); });
}

void EnvBuilder::merge(const std::vector<std::string>& entries) {
  for (const std::string& e : entries) {
    size_t eq = e.find('=');
    if (eq == std::string::npos || eq == 0)
      throw Error("environment entry '" + e + "' is not KEY=VALUE");
    set(e.substr(0, eq), e.substr(eq + 1));
  }
}

void EnvBuilder::appendToPath(const std::string& dir) {
  for (std::string& e : entries_) {
    if (!hasKey(e, "PATH")) continue;
    const std::string value = e.substr(5);
    size_t start = 0;
    while (start <= value.size()) {
      size_t end = value.find(':', start);
      if (end == std::string::npos) end = value.size();
      if (value.compare(start, end - start, dir) == 0 && end - start == dir.size()) return;
      start = end + 1;
    }
    e += (value.empty() ? "" : ":") + dir;
    return;
  }
}

}  // namespace gpubox
