#pragma once

#include <linux/filter.h>

#include <string>
#include <vector>

#include "limits.hpp"

namespace gpubox {

// The init's steady state: start commands on request, relay signals, reap
// every process of the namespace, report each command's end. Returns never;
// exits when the helper closes the control socket, which takes the whole pid
// namespace down with it.
// What every command of the sandbox starts with.
struct InitSettings {
  std::string defaultCwd;
  std::vector<RlimitSetting> rlimits;
  // gpubox's filter, attached in the command's process before the caller's
  // programs; empty: none, or inherited (the init attaches it to itself
  // at the end of its setup, so only --as-pid-1's process, made before
  // that, attaches it here).
  std::vector<sock_filter> seccomp;
  // The caller's own programs, installed after `seccomp` in this order.
  std::vector<std::vector<sock_filter>> callerSeccomp;
};

struct Pid1Process;

// `pid1`: with --as-pid-1, the process made at setup that becomes the
// sandbox's one command (pid1_process.hpp); null: each command is a new
// child of the init.
[[noreturn]] void runInitLoop(int controlFd, const InitSettings& settings,
                              Pid1Process* pid1 = nullptr);

}  // namespace gpubox
