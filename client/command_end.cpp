#include "command_end.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdio>

namespace gpubox::cli {

int fail(const std::string& message) {
  std::fprintf(stderr, "gpubox: %s\n", message.c_str());
  return kExitGpuboxError;
}

int exitCodeOf(const client::RunResult& r) {
  using Stage = client::StartFailure::Stage;
  const bool explain = r.reason == "out_of_memory" || r.reason == "timed_out" ||
                       r.reason == "session_removed" || r.reason == "session_expired" ||
                       r.message.find("(a process of the sandbox was killed") != std::string::npos;
  if (explain) std::fprintf(stderr, "gpubox: %s\n", r.message.c_str());
  if (r.reason == "timed_out") return kExitTimedOut;
  if (r.exitCode) return *r.exitCode;
  if (r.signal) return 128 + *r.signal;
  const auto& f = *r.notStarted;
  std::fprintf(stderr, "gpubox: %s\n", f.message.c_str());
  if (f.stage == Stage::Exec) return f.err == ENOENT ? kExitNotFound : kExitNotExecutable;
  return kExitGpuboxError;
}

void fillReport(RunReport& report, const client::RunResult& r) {
  report.exitCode = r.exitCode;
  report.signal = r.signal;
  report.commandPid = r.commandPid;
  report.sandboxPid = r.sandboxPid;
  report.wallNanos = r.wallNanos;
  report.namespaces = r.namespaces;
  report.mounts = r.mounts;
  report.gpus = r.gpus;
  report.cgroup = r.cgroup;
  report.reason = r.reason;
  report.message = r.message;
  report.timeoutMs = r.timeoutMs;
  report.sigkillNeeded = r.sigkillNeeded;
  report.limits = r.limits;
  report.session = r.session;
  report.seccomp = r.seccomp;
  report.userNamespace = r.userNamespace;
  if (r.notStarted) report.error = r.notStarted->message;
}

void writeJsonLine(std::optional<int> fd, const std::string& json) {
  if (!fd) return;
  std::string line = json + "\n";
  size_t done = 0;
  while (done < line.size()) {
    ssize_t n = ::write(*fd, line.data() + done, line.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    done += static_cast<size_t>(n);
  }
}

}  // namespace gpubox::cli
