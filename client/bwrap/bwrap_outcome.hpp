// How one run ends for gpubox-bwrap's caller, as bwrap ends: the command's
// exit status, 128+N when signal N killed it, and 1 with a message when the
// command could not be started (bwrap's own failures exit 1).
#pragma once

#include <string>

#include "gpubox/client.hpp"

namespace gpubox::bwrap {

struct Outcome {
  int exitCode = 1;
  bool commandRan = false;  // --json-status-fd reports an exit code only then
  std::string message;      // printed after "bwrap: " when not empty
};

Outcome outcomeOf(const client::RunResult& result, const Command& command);

}  // namespace gpubox::bwrap
