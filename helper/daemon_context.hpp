// State the whole helper shares across connections.
#pragma once

#include <kj/async-unix.h>

#include <string>
#include <vector>

#include "lease_table.hpp"
#include "log.hpp"
#include "peer.hpp"
#include "policy.hpp"
#include "reaper.hpp"
#include "sandbox/mount_engine.hpp"

namespace gpubox {

struct HelperLimits {
  size_t maxSandboxesPerConnection = 64;
  size_t maxSandboxesTotal = 1024;
  size_t maxConnections = 512;
};

struct DaemonContext {
  explicit DaemonContext(kj::UnixEventPort& p) : port(p), reaper(p) {}
  kj::UnixEventPort& port;
  SandboxNamespaces sandboxNamespaces;
  std::vector<MaskedSocket> helperSockets;  // hidden inside every sandbox
  HelperLimits limits;
  policy::Policy policy = policy::Policy::empty();
  std::string driverRoot = "/";
  leases::LeaseTable leases;
  uint64_t sandboxCounter = 0;
  size_t liveSandboxes = 0;
  size_t liveConnections = 0;
  // Last, so it is destroyed first: what it still holds refers to the rest.
  Reaper reaper;
};

}  // namespace gpubox
