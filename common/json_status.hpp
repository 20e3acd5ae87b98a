// The JSON documents gpubox prints for programs to read: the `--json-status`
// record of one run and `gpubox info --json`. Field names are part of the
// CLI's stable interface (docs/protocol.md).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "warm_pool_counts.hpp"

namespace gpubox {

struct RunReport {
  std::optional<int> exitCode;  // set when the command exited
  std::optional<int> signal;    // set when a signal killed it
  int commandPid = 0;           // inside the sandbox
  int sandboxPid = 0;           // the sandbox's init, as the host sees it
  uint64_t wallNanos = 0;
  std::vector<std::string> namespaces;
  std::vector<std::string> mounts;
  std::vector<std::string> gpus;
  std::string cgroup;
  std::string error;       // non-empty when gpubox itself failed
  std::string reason;      // "exited", "out_of_memory", "timed_out", ...; "helper_error" with error
  std::string message;     // why it ended, in words
  uint64_t timeoutMs = 0;  // reason timed_out: the limit
  bool sigkillNeeded = false;
  std::vector<std::string> limits;
  std::string session;  // "" for gpubox run
  std::string seccomp;  // the syscall filter applied: "default" or "none"
  // "new" (a user namespace of its own) or "host" (the helper's); "" when
  // unknown (an older helper, or gpubox failed before the sandbox existed).
  std::string userNamespace;
};

std::string runReportJson(const RunReport& report);

struct InfoReport {
  std::string helperVersion;
  std::string clientVersion;
  unsigned protocolMajor = 0;
  unsigned protocolMinor = 0;
  std::string kernel;
  std::vector<std::string> features;
  std::string cgroupMode;
  unsigned callerUid = 0;
  unsigned callerGid = 0;
  std::vector<std::string> limits;
  std::vector<std::string> cgroups;
  std::string userNamespace;         // "new" or "host"; "" from an older helper
  std::string userNamespaceSetting;  // "auto", "required" or "never"
  std::string userNamespaceReason;
  std::optional<WarmPoolCounts> warmPool;         // to root only: absent when not shown
  std::optional<WarmPoolCounts> warmPoolHostNet;  // the same, the --net host pool
};

std::string infoReportJson(const InfoReport& info);

}  // namespace gpubox
