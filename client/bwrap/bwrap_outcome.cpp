#include "bwrap_outcome.hpp"

#include <signal.h>

#include <cstring>

namespace gpubox::bwrap {

Outcome outcomeOf(const client::RunResult& r, const Command& command) {
  using Stage = client::StartFailure::Stage;
  Outcome out;
  if (r.exitCode || r.signal) {
    out.commandRan = true;
    out.exitCode = r.exitCode ? *r.exitCode : 128 + *r.signal;
    // An out-of-memory kill is a bare 137 otherwise; say what it was.
    if (r.reason == "out_of_memory") out.message = r.message;
    return out;
  }
  if (!r.notStarted) {
    out.message = r.message.empty() ? "the command ended without a status" : r.message;
    return out;
  }
  const client::StartFailure& f = *r.notStarted;
  if (f.stage == Stage::Exec)
    out.message = "execvp " + command.argv[0] + ": " + std::strerror(f.err);
  else if (f.stage == Stage::Chdir && !command.cwd.empty())
    out.message = "Can't chdir to " + command.cwd + ": " + std::strerror(f.err);
  else
    out.message = f.message;
  return out;
}

}  // namespace gpubox::bwrap
