// Turns one validated request from one authenticated caller into a running
// sandbox: decides the mount plan, the limits and the cgroup, checks what
// the caller may ask for, adds the granted GPUs, launches the init and
// registers it.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "daemon_context.hpp"
#include "peer.hpp"
#include "sandbox_runtime.hpp"
#include "span_trace.hpp"
#include "spec.hpp"

namespace gpubox {

// Filled in as the sandbox lives, logged once when it is reaped.
struct SandboxLogInfo {
  SandboxRecord record;
  uint64_t startMs = 0;
};

// One live sandbox, shared by the capabilities that reach it (and, for a
// session, by the session registry).
struct LiveSandbox {
  uint64_t id = 0;
  std::string name;  // the session's name, or "run-<id>"
  bool session = false;
  uid_t uid = 0;
  uint64_t startMs = 0;  // monotonic
  std::shared_ptr<SandboxRuntime> runtime;
  std::shared_ptr<SandboxLogInfo> log;
  std::vector<MountOp> plan;  // every step requested, in order
  std::vector<std::string> namespaces;
  // Each namespace's inode, as /proc/<init>/ns/NAME shows it right after
  // the clone; the cgroup namespace, which the init enters at the end of its
  // setup, is added by noteCgroupNamespace once the sandbox is ready.
  std::vector<std::pair<std::string, uint64_t>> namespaceIds;
  std::vector<std::string> extraEnv;  // e.g. from GPU binding
  // A directory appended to each command's PATH (a foreign root's
  // nvidia-smi), unless plan[pathDirStep] was skipped.
  std::string pathDir;
  size_t pathDirStep = 0;
  std::vector<std::string> gpuUuids;
  std::string cgroup;               // the cgroup's directories, one line
  std::vector<std::string> limits;  // one line per limit applied
  std::string seccomp;              // the profile every command runs under, or "none"
  std::string userNamespace;        // "new" or "host" (userNamespaceWord)
  std::vector<std::string> hide;    // paths the init hides if they exist
  // The caller's --timeout ceiling when it was made (also the timeout of a
  // command that sets none), and who set it.
  std::optional<uint64_t> maxTimeoutMs;
  std::string timeoutOrigin;
  std::string defaultCwd;
  std::weak_ptr<cgroup::SandboxCgroup> cgroupHandle;  // for statistics
};

// Throws gpubox::Error with a message for the caller. `sessionName` is empty
// for a one-shot sandbox. ORIGIN: the request's first times, for
// --trace-spans.
std::shared_ptr<LiveSandbox> buildSandbox(DaemonContext& ctx, const PeerIdentity& peer,
                                          const SandboxSpec& spec,
                                          const std::string& sessionName = "",
                                          const SpanOrigin& origin = {});

// Adds the init's cgroup namespace to LIVE's namespaceIds, once: call it
// when the sandbox is ready (the init enters that namespace at the end of
// its setup). Quiet when the init is already gone.
void noteCgroupNamespace(LiveSandbox& live);

uint64_t monotonicMs();

}  // namespace gpubox
