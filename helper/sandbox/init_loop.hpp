#pragma once

#include <string>
#include <vector>

#include "limits.hpp"

namespace gpubox {

// The init's steady state: start commands on request, relay signals, reap
// every process of the namespace, report each command's end. Returns never;
// exits when the helper closes the control socket, which takes the whole pid
// namespace down with it.
[[noreturn]] void runInitLoop(int controlFd, const std::string& defaultCwd,
                              const std::vector<RlimitSetting>& rlimits);

}  // namespace gpubox
