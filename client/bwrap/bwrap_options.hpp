// Turns bubblewrap's command line (as bwrap 0.8 to 0.11 document it) into
// one gpubox request: bwrap's empty root and its options, in order, as the
// mount plan; its process and namespace options as the command and the
// sandbox's settings. What gpubox cannot honour is refused with bwrap's
// kind of message, never dropped.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "spec.hpp"

namespace gpubox::bwrap {

// The front's own settings, read from its environment and never passed
// into the sandbox.
constexpr const char* kGpuVariable = "GPUBOX_GPU";
constexpr const char* kNoHostNetworkVariable = "GPUBOX_BWRAP_NO_HOST_NETWORK";

struct Invocation {
  SandboxSpec spec;
  Command command;
  std::optional<int> infoFd;
  std::optional<int> jsonStatusFd;
  std::optional<int> blockFd;
  std::optional<int> syncFd;
  bool dieWithParent = false;
  bool levelPrefix = false;
  bool help = false;
  bool version = false;
  // No --unshare-net: the sandbox asks for the host's network, as bwrap
  // shares it (the helper's policy decides).
  bool sharesHostNetwork = false;
};

// ARGS are the words after the program name; ENVIRON and CWD the front's
// own (the command's environment starts from ENVIRON, as bwrap's does).
// UID and GID are the caller's. Reads the file descriptors that --args,
// --file, --bind-data, --ro-bind-data, --seccomp and --add-seccomp-fd name.
// Throws gpubox::Error with bwrap's kind of message (no "bwrap: " prefix).
Invocation parseCommandLine(const std::vector<std::string>& args, char** environ,
                            const std::string& cwd, unsigned uid, unsigned gid);

// bwrap --help, for PROGRAM (argv[0]).
std::string usage(const std::string& program);

}  // namespace gpubox::bwrap
