// Parses `gpubox run`'s bubblewrap-style options, in order (their order is
// the mount plan's order, as with bwrap).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "spec.hpp"

namespace gpubox::cli {

struct RunOptions {
  SandboxSpec spec;
  Command command;
  std::optional<int> jsonStatusFd;
  bool help = false;
};

// `args` are the words after `run`; `environ` and `cwd` are the client's.
// Throws gpubox::Error naming the bad option.
RunOptions parseRunOptions(const std::vector<std::string>& args, char** environ,
                           const std::string& cwd);

extern const char* const kRunUsage;
extern const char* const kRunHelp;

}  // namespace gpubox::cli
