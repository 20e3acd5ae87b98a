// Turns one validated request from one authenticated caller into a running
// sandbox: decides the mount plan, checks what the caller may ask for, adds
// the granted GPUs, launches the init and registers it.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "daemon_context.hpp"
#include "peer.hpp"
#include "sandbox_runtime.hpp"
#include "spec.hpp"

namespace gpubox {

// Filled in as the sandbox lives, logged once when it is reaped.
struct SandboxLogInfo {
  SandboxRecord record;
  uint64_t startMs = 0;
};

struct BuiltSandbox {
  std::shared_ptr<SandboxRuntime> runtime;
  std::shared_ptr<SandboxLogInfo> log;
  std::vector<MountOp> plan;  // every step requested, in order
  std::vector<std::string> namespaces;
  std::vector<std::string> extraEnv;  // e.g. from GPU binding
  std::vector<std::string> gpuUuids;
  std::string cgroup;
  std::string defaultCwd;
  std::shared_ptr<void> connectionSlot;  // released when the sandbox's last capability goes
};

// Throws gpubox::Error with a message for the caller.
BuiltSandbox buildSandbox(DaemonContext& ctx, const PeerIdentity& peer, const SandboxSpec& spec);

}  // namespace gpubox
