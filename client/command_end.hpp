// How the CLI ends a command it ran (gpubox run, gpubox exec, each line of
// gpubox exec --batch): the exit status it passes on, the stderr line when
// the end needs words, and the --json-status record.
#pragma once

#include <signal.h>

#include <optional>
#include <string>

#include "gpubox/client.hpp"
#include "json_status.hpp"

namespace gpubox::cli {

constexpr int kExitTimedOut = 124;  // as timeout(1)
constexpr int kExitGpuboxError = 125;
constexpr int kExitNotExecutable = 126;
constexpr int kExitNotFound = 127;

// What gpubox passes on to the command it waits for (a terminal's Ctrl-C
// would otherwise reach only gpubox: the command is in a session of its own).
inline constexpr int kForwardedSignals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};

// Prints "gpubox: MESSAGE" on stderr; returns kExitGpuboxError.
int fail(const std::string& message);

// The exit status gpubox passes on for R, printing one stderr line when the
// end needs words (an OOM kill must never be a bare 137).
int exitCodeOf(const client::RunResult& r);

// R as the --json-status record has it.
void fillReport(RunReport& report, const client::RunResult& r);

// JSON and a newline to FD (nothing without one), whole unless FD fails.
void writeJsonLine(std::optional<int> fd, const std::string& json);

}  // namespace gpubox::cli
