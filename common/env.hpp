// bwrap-style environment editing (--clearenv, --setenv, --unsetenv),
// applied in command-line order on top of a starting environment.
#pragma once

#include <string>
#include <vector>

namespace gpubox {

class EnvBuilder {
 public:
  explicit EnvBuilder(std::vector<std::string> initial) : entries_(std::move(initial)) {}
  static EnvBuilder fromEnviron(char** envp);

  void clear() { entries_.clear(); }
  void set(const std::string& key, const std::string& value);
  void unset(const std::string& key);
  // Adds KEY=VALUE entries (e.g. from GPU binding), replacing existing keys.
  void merge(const std::vector<std::string>& entries);
  // Appends DIR to PATH when PATH is set and does not name DIR already; an
  // environment without PATH is left without one (execvp's default stays).
  void appendToPath(const std::string& dir);
  const std::vector<std::string>& entries() const { return entries_; }

 private:
  std::vector<std::string> entries_;
};

// Throws gpubox::Error unless `key` is a valid environment variable name for
// --setenv/--unsetenv (non-empty, no '=' and no NUL).
void validateEnvKey(const std::string& key);

}  // namespace gpubox
