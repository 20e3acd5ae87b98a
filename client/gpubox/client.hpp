// libgpubox-client: run commands in gpubox sandboxes from C++.
//
//   gpubox::client::Connection conn(gpubox::client::defaultSocketPath());
//   gpubox::client::RunRequest req;
//   req.spec.cwd = "/home/me/project";
//   req.command.argv = {"nvidia-smi"};
//   req.command.env = {"PATH=/usr/bin:/bin"};
//   gpubox::client::RunResult r = conn.run(req);   // stdio: this process's 0/1/2
//
// One run() is create -> exec -> wait pipelined into a single round trip.
// Errors of gpubox itself (refused, malformed, helper unreachable) throw
// gpubox::Error with a message meant for a person; ConnectionLost (below)
// when the connection itself is gone.
//
// Sessions keep one sandbox for many commands:
//
//   auto s = conn.createSession({.spec = spec, .name = "work", .ttlMs = 3600000});
//   gpubox::client::Process p = conn.exec({.session = "work", .command = cmd,
//                                          .stdinFd = in, .stdoutFd = out, .stderrFd = err});
//   p.signal(SIGINT);                      // optional
//   gpubox::client::RunResult r = p.wait();
//   conn.list();                           // your sessions and running sandboxes
//   conn.removeSession("work");            // kills everything in it
//
// A session outlives this Connection; a Process does not: dropping it (or
// the Connection) before wait() returns kills that command's process group.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "error.hpp"
#include "spec.hpp"
#include "warm_pool_counts.hpp"

namespace gpubox::client {

// --socket, else $GPUBOX_SOCKET, else /run/gpubox/gpubox.sock.
std::string defaultSocketPath(const std::string& explicitPath = "");

// A namespace made for the sandbox and its inode (/proc/PID/ns/NAME).
struct NamespaceId {
  std::string name;  // "ipc", "mnt", "net", "pid", "uts", "user"
  uint64_t inode = 0;
  bool operator==(const NamespaceId&) const = default;
};

// What is known of a sandbox once it exists, before its command starts.
struct SandboxStarted {
  int sandboxPid = 0;  // its init, as the host sees it
  std::vector<NamespaceId> namespaceIds;
};

struct RunRequest {
  SandboxSpec spec;
  Command command;
  int stdinFd = 0;
  int stdoutFd = 1;
  int stderrFd = 2;
  // Forward SIGINT, SIGTERM, SIGHUP and SIGQUIT received by this process to
  // the command (it runs in its own session, so a terminal's Ctrl-C would
  // otherwise only reach gpubox).
  bool forwardSignals = false;
  // Called once the sandbox exists and before its command is sent; it may
  // block (bwrap's --info-fd and --block-fd). Set, it costs a round trip;
  // unset, create, exec and wait go out together.
  std::function<void(const SandboxStarted&)> beforeExec;
  // Ask for the sandbox's facts (RunResult's sandboxPid, namespaces,
  // mounts, gpus, cgroup, limits, seccomp, userNamespace, namespaceIds):
  // one more call, sent with the others. False leaves them empty and
  // spares the helper that call.
  bool sandboxFacts = true;
};

struct StartFailure {
  int err = 0;
  enum class Stage { Exec, Chdir, Other } stage = Stage::Other;
  std::string message;
};

struct RunResult {
  std::optional<int> exitCode;
  std::optional<int> signal;
  std::optional<StartFailure> notStarted;
  // Why it ended: "exited", "signaled", "out_of_memory", "timed_out",
  // "not_started", "session_removed", "session_expired", ...; and in words.
  std::string reason;
  std::string message;
  uint64_t timeoutMs = 0;      // reason "timed_out": the limit that fired
  bool sigkillNeeded = false;  // reason "timed_out": SIGTERM was not enough
  int commandPid = 0;
  int sandboxPid = 0;
  uint64_t wallNanos = 0;
  std::vector<std::string> namespaces;
  std::vector<std::string> mounts;
  std::vector<std::string> gpus;
  std::string cgroup;
  std::vector<std::string> limits;  // one line per limit applied
  std::string session;              // the session's name, "" for run()
  std::string seccomp;              // the syscall filter: "default" or "none"
  // "new": the sandbox had a user namespace of its own; "host": it stayed in
  // the helper's (--user-namespace never); "" from an older helper.
  std::string userNamespace;
  std::vector<NamespaceId> namespaceIds;  // empty from a helper older than 1.3
};

struct SessionRequest {
  SandboxSpec spec;
  std::string name;            // empty: the helper picks one
  uint64_t ttlMs = 0;          // 0: the helper's default (1 h)
  uint64_t idleTimeoutMs = 0;  // 0: none
};

struct SessionInfo {
  std::string name;
  uint64_t ttlMs = 0;
  int initPid = 0;
  std::string cgroup;
  std::vector<std::string> gpus;
  std::vector<std::string> limits;
  std::vector<std::string> namespaces;
  std::vector<std::string> mounts;
};

struct ExecRequest {
  std::string session;
  Command command;  // command.timeoutMs: SIGTERM to its process group, SIGKILL after killAfterMs
  int stdinFd = 0;
  int stdoutFd = 1;
  int stderrFd = 2;
  bool forwardSignals = false;  // as RunRequest::forwardSignals, during wait()
  bool sandboxFacts = true;     // as RunRequest::sandboxFacts
};

// One sandbox of the caller, as `gpubox ps` shows it.
struct SandboxListing {
  std::string name;
  bool session = false;
  unsigned uid = 0;
  uint64_t ageMs = 0;
  unsigned processes = 0;
  uint64_t memoryBytes = 0;
  uint64_t memoryPeakBytes = 0;
  uint64_t cpuNanos = 0;
  std::vector<std::string> gpus;
  uint64_t ttlLeftMs = 0;  // sessions
  uint64_t idleTimeoutMs = 0;
  int initPid = 0;
  std::string cgroup;
  std::string command;
  std::vector<std::string> limits;
};

// Thrown when the connection to the helper is gone (the helper stopped or
// closed it): nothing more can be done on that Connection; a new one may
// reach a restarted helper. A refusal or a failure the helper reports is a
// plain gpubox::Error, and the Connection stays usable.
class ConnectionLost : public Error {
 public:
  using Error::Error;
};

class Connection;

// A command started in a session. Belongs to the Connection that started it
// and must not outlive it.
class Process {
 public:
  Process(Process&&) noexcept;
  Process& operator=(Process&&) noexcept;
  ~Process();
  // Blocks until the command ends.
  RunResult wait();
  void signal(int signo);

 private:
  friend class Connection;
  struct Impl;
  explicit Process(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

struct HelperInfo {
  std::string version;
  unsigned protocolMajor = 0;
  unsigned protocolMinor = 0;
  std::string kernel;
  std::vector<std::string> features;
  std::string cgroupMode;
  unsigned callerUid = 0;
  unsigned callerGid = 0;
  std::vector<std::string> limits;   // the helper's defaults and ceilings
  std::vector<std::string> cgroups;  // where each resource is enforced
  std::string userNamespace;         // what sandboxes get: "new" or "host" ("" from older helpers)
  std::string userNamespaceSetting;  // the helper's --user-namespace: auto, required or never
  std::string userNamespaceReason;   // how it was decided, one line
  // The helper's warm-init pool: shown to root only (it counts everyone's
  // requests); absent otherwise, with no pool, or from a helper before 1.5.
  std::optional<WarmPoolCounts> warmPool;
  // (1.6) The same for its pool of --net host inits (--warm-inits-host-net).
  std::optional<WarmPoolCounts> warmPoolHostNet;
};

struct GpuInfo {
  unsigned index = 0;
  std::string uuid;
  std::string model;
  std::string busId;
  unsigned minor = 0;
  std::vector<std::string> mig;
  unsigned holders = 0;
  bool allowed = false;
};

class Connection {
 public:
  explicit Connection(const std::string& socketPath);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  RunResult run(const RunRequest& request);
  HelperInfo info();
  std::vector<GpuInfo> gpus();

  SessionInfo createSession(const SessionRequest& request);
  Process exec(const ExecRequest& request);
  void removeSession(const std::string& name);
  std::vector<SandboxListing> list();

 private:
  friend class Process;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace gpubox::client
