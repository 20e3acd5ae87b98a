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
  // env: the client's, modified by the options. With --batch, no argv: the
  // defaults every line's command starts from.
  Command command;
  std::optional<int> jsonStatusFd;
  bool batch = false;  // --batch: the commands come from stdin, one per line
  bool help = false;
};
ExecOptions parseExecOptions(const std::vector<std::string>& args, char** environ);

// One line of `gpubox exec NAME --batch`, as its words: the process options
// and the command, as they would follow NAME on the command line (not
// --json-status or --batch, which the command line gives once). The command
// starts from `defaults` (the command line's options over the client's
// environment). Throws gpubox::Error naming the bad option.
Command parseExecBatchLine(const std::vector<std::string>& words, const Command& defaults);

// The words of one --batch line: a JSON array of strings. Throws
// gpubox::Error saying what the line is instead.
std::vector<std::string> batchLineWords(const std::string& line);

extern const char* const kRunUsage;
extern const char* const kRunHelp;
extern const char* const kSessionCreateHelp;
extern const char* const kExecHelp;

}  // namespace gpubox::cli
