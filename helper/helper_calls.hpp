// What each call of the protocol does, on the home loop, in plain data: the
// RPC threads (rpc_server.cpp) decode a call, run one of these through
// HomeLoop::call, and encode what it returns. Every function here runs on
// the home loop only; nothing it returns refers to home-loop state except
// through a HomeShared.
#pragma once

#include <kj/async.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "daemon_context.hpp"
#include "gpu_assignment.hpp"
#include "home_loop.hpp"
#include "peer.hpp"
#include "prepared_command.hpp"
#include "sandbox_factory.hpp"
#include "sandbox_runtime.hpp"
#include "sessions.hpp"
#include "spec.hpp"
#include "warm_pool_counts.hpp"

namespace gpubox {

// The sandboxes one connection created. When the connection closes they are
// killed at once, whatever Cap'n Proto still holds (a call in progress keeps
// its objects alive until it completes; killing the sandbox completes it).
class ConnectionSandboxes {
 public:
  void add(const std::shared_ptr<SandboxRuntime>& runtime);
  void killAll();

 private:
  std::vector<std::weak_ptr<SandboxRuntime>> sandboxes_;
};

using SandboxRef = HomeShared<LiveSandbox>;

// A ready sandbox as a capability holds it: its handle, and what each
// command sent to it needs of it, which the RPC thread reads.
struct OpenedSandbox {
  SandboxRef ref;
  std::shared_ptr<const CommandEnvironment> env;
};

struct HelperFacts {  // Helper.info
  std::string kernel;
  std::vector<std::string> features;
  std::string cgroupMode;
  std::string userNamespace, userNamespaceSetting, userNamespaceReason;
  std::vector<std::string> limits;
  std::vector<std::string> cgroups;
  std::optional<WarmPoolCounts> warmPool;         // root callers, and only with a pool
  std::optional<WarmPoolCounts> warmPoolHostNet;  // the same, the --net host pool
};
HelperFacts helperFacts(DaemonContext& ctx, const PeerIdentity& peer);

// Helper.create: the sandbox, once ready, counted against CONNECTION.
kj::Promise<OpenedSandbox> createSandbox(DaemonContext& ctx, const HomeLoop& home,
                                         const PeerIdentity& peer, const SandboxSpec& spec,
                                         ConnectionSandboxes& connection,
                                         const SpanOrigin& origin = {});

struct CreatedSession {  // Helper.createSession
  OpenedSandbox sandbox;
  std::string name;
  uint64_t ttlMs = 0;
};
kj::Promise<CreatedSession> createSession(DaemonContext& ctx, const HomeLoop& home,
                                          const PeerIdentity& peer, const SandboxSpec& spec,
                                          const SessionOptions& options,
                                          const SpanOrigin& origin = {});

struct SandboxListing {  // one entry of Helper.list
  std::string name;
  bool session = false;
  uid_t uid = 0;
  uint64_t ageMs = 0;
  bool haveStats = false;
  uint32_t processes = 0;
  uint64_t memoryBytes = 0, memoryPeakBytes = 0, cpuNanos = 0;
  std::vector<std::string> gpus;
  uint64_t ttlLeftMs = 0, idleTimeoutMs = 0;
  int initPid = 0;
  std::string cgroup;
  std::string command;
  std::vector<std::string> limits;
};
std::vector<SandboxListing> listSandboxes(DaemonContext& ctx, const PeerIdentity& peer);

struct SandboxFacts {  // Sandbox.applied
  std::vector<std::string> namespaces;
  std::vector<std::string> mounts;
  int initPid = 0;
  std::vector<std::string> gpus;
  std::string cgroup;
  std::vector<std::string> limits;
  std::string session;  // empty for a one-shot sandbox
  std::string seccomp;
  std::string userNamespace;
  std::vector<std::pair<std::string, uint64_t>> namespaceIds;
};
SandboxFacts sandboxFacts(LiveSandbox& live);

// Helper.openSession: the caller's session NAME, once it is ready (one
// opened while it starts waits for it, so its commands' PATH is known).
kj::Promise<OpenedSandbox> openSession(DaemonContext& ctx, const HomeLoop& home,
                                       const PeerIdentity& peer, const std::string& name);

// Sandbox.exec: the command (prepared on the RPC thread) started in LIVE
// with the caller's stdio; its id.
uint32_t execInSandbox(LiveSandbox& live, const CommandToSend& cmd, const int (&stdio)[3]);

// Process.wait: how command ID ended; also the sandbox's log record.
kj::Promise<ExecOutcome> waitForCommand(const SandboxRef& live, uint32_t id);

// A session's command (ID) whose client went away before it ended goes with
// it (its process group); a one-shot sandbox dies whole anyway.
void dropCommand(LiveSandbox& live, uint32_t id);

}  // namespace gpubox
