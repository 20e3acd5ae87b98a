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
// gpubox::Error with a message meant for a person.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "spec.hpp"

namespace gpubox::client {

// --socket, else $GPUBOX_SOCKET, else /run/gpubox/gpubox.sock.
std::string defaultSocketPath(const std::string& explicitPath = "");

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
  int commandPid = 0;
  int sandboxPid = 0;
  uint64_t wallNanos = 0;
  std::vector<std::string> namespaces;
  std::vector<std::string> mounts;
  std::vector<std::string> gpus;
  std::string cgroup;
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

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace gpubox::client
