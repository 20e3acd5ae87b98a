#include "prepared_command.hpp"

#include <algorithm>

#include <capnp/message.h>
#include <capnp/serialize.h>

#include "env.hpp"
#include "error.hpp"
#include "memfd_bytes.hpp"
#include "sandbox/init_messages.hpp"
#include "sandbox_factory.hpp"
#include "sandbox_runtime.hpp"
#include "spec_wire.hpp"

namespace gpubox {

std::shared_ptr<const CommandEnvironment> commandEnvironment(const LiveSandbox& live) {
  auto env = std::make_shared<CommandEnvironment>();
  env->extraEnv = live.extraEnv;
  // A foreign root's nvidia-smi is found through PATH, unless the step that
  // shows its directory was skipped (its source missing).
  if (!live.pathDir.empty()) {
    const auto& skipped = live.runtime->skippedSteps();
    if (std::find(skipped.begin(), skipped.end(), live.pathDirStep) == skipped.end())
      env->pathDir = live.pathDir;
  }
  return env;
}

PreparedCommand::PreparedCommand(Command cmd, const CommandEnvironment& env)
    : argv0_(cmd.argv.empty() ? std::string() : cmd.argv[0]),
      timeoutMs_(cmd.timeoutMs),
      killAfterMs_(cmd.killAfterMs) {
  EnvBuilder merged(std::move(cmd.env));
  merged.merge(env.extraEnv);
  if (!env.pathDir.empty()) merged.appendToPath(env.pathDir);
  cmd.env = merged.entries();
  capnp::MallocMessageBuilder message;
  commandToWire(cmd, message.initRoot<wire::Command>());
  auto words = capnp::messageToFlatArray(message);
  auto bytes = words.asBytes();
  if (bytes.size() > initmsg::kMaxExecPayload) throw Error("command and environment are too large");
  memfd_ = memfdHolding(
      "gpubox-exec", std::string_view(reinterpret_cast<const char*>(bytes.begin()), bytes.size()),
      "the exec request");
}

CommandToSend PreparedCommand::toSend() const {
  return CommandToSend{memfd_.get(), argv0_, timeoutMs_, killAfterMs_};
}

}  // namespace gpubox
