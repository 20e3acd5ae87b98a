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

// `gpubox session create`: run's sandbox options (mount plan, --gpu, --net,
// --hostname, limits), no command, plus the session's own.
struct SessionCreateOptions {
  SandboxSpec spec;
  std::string name;
  uint64_t ttlMs = 0;
  uint64_t idleTimeoutMs = 0;
  bool json = false;
  bool help = false;
};
SessionCreateOptions parseSessionCreateOptions(const std::vector<std::string>& args,
                                               const std::string& cwd);

// `gpubox exec NAME [OPTIONS] [--] CMD...`: the process options only; the
// options may also come before NAME.
struct ExecOptions {
  std::string session;
  Command command;  // env: the client's, modified by the options
  std::optional<int> jsonStatusFd;
  bool help = false;
};
ExecOptions parseExecOptions(const std::vector<std::string>& args, char** environ);

extern const char* const kRunUsage;
extern const char* const kRunHelp;
extern const char* const kSessionCreateHelp;
extern const char* const kExecHelp;

}  // namespace gpubox::cli
