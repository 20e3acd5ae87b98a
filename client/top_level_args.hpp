// The words before a gpubox command's own options: `gpubox [--socket PATH]
// COMMAND ...`. run, exec and session take the rest to parsers of their
// own (run_options.hpp, main.cpp); ps, info and gpus take only --json.
//
// Hand-written rather than CLI11: CLI11's headers include <iostream>, whose
// static initialiser builds the standard streams and the C++ locale when
// the client starts, about 0.1 ms of CPU and 25 page faults in every
// `gpubox run` and `gpubox exec` (docs/performance.md, twelfth slice). No
// stream is used on those paths.
#pragma once

#include <string>
#include <vector>

namespace gpubox::cli {

struct TopLevel {
  enum class Command { Run, Exec, Session, Ps, Info, Gpus, Version, Help };
  Command command = Command::Help;
  std::string socket;             // --socket; "" for the default
  std::vector<std::string> rest;  // run, exec, session: everything after the command's name
  bool json = false;              // ps, info, gpus: --json
  bool help = false;              // ps, info, gpus: --help (print the usage of the command)
};

// Throws gpubox::Error naming what is wrong (a missing or unknown command,
// an option the command does not take, --socket without a path).
TopLevel parseTopLevel(const std::vector<std::string>& args);

// What `gpubox --help` prints.
std::string topLevelUsage();
// `gpubox ps|info|gpus --help`.
std::string listingUsage(TopLevel::Command command);

}  // namespace gpubox::cli
