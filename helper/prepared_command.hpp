// A command made ready for a sandbox's init on the thread that decoded it
// (an RPC thread), so that the home loop only hands it over: the sandbox's
// own variables merged into its environment, and the whole command encoded
// into the memfd the init reads. Moving it here took 9% off the home loop's
// CPU per sandbox on the 2-core VM (docs/performance.md, seventeenth slice).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "spec.hpp"
#include "unique_fd.hpp"

namespace gpubox {

struct LiveSandbox;

// What every command of one sandbox gets, fixed once the sandbox is ready:
// read on the home loop (commandEnvironment), then only read, on any thread.
struct CommandEnvironment {
  std::vector<std::string> extraEnv;  // GPU binding's variables; win over the client's
  std::string pathDir;                // appended to PATH; empty for none
};

// On the home loop, once LIVE is ready (which of its plan's steps were
// skipped is known only then).
std::shared_ptr<const CommandEnvironment> commandEnvironment(const LiveSandbox& live);

// What the home loop needs of a prepared command; the memfd stays owned by
// the PreparedCommand that made it, which outlives the home loop's call.
struct CommandToSend {
  int memfd = -1;
  std::string argv0;  // for the sandbox's log record
  uint64_t timeoutMs = 0;
  uint64_t killAfterMs = 0;
};

class PreparedCommand {
 public:
  // Throws gpubox::Error naming the problem (a command too large to send).
  PreparedCommand(Command cmd, const CommandEnvironment& env);

  CommandToSend toSend() const;

 private:
  UniqueFd memfd_;
  std::string argv0_;
  uint64_t timeoutMs_ = 0;
  uint64_t killAfterMs_ = 0;
};

}  // namespace gpubox
