// From what a request asks for to what its sandbox gets: the helper's
// defaults fill what the request leaves out, its ceilings refuse what is too
// much, and rlimits the helper could not grant are refused up front (the
// sandbox cannot raise a hard limit above the helper's own).
#pragma once

#include <string>
#include <vector>

#include "cgroup/sandbox_cgroup.hpp"
#include "limits.hpp"
#include "sandbox_defaults.hpp"

namespace gpubox {

struct ResolvedLimits {
  cgroup::ResourceLimits resources;
  std::vector<RlimitSetting> rlimits;  // defaults first, then the request's, one per resource
  bool memoryFromDefault = false;
};

// Throws gpubox::Error naming the option and the helper flag that refuses it.
ResolvedLimits resolveLimits(const SandboxDefaults& defaults, const Limits& requested);

// A command's timeout: the request's (0: none) within the ceiling; with a
// ceiling, a command that asks for no timeout gets the ceiling as its own.
// ORIGIN names who set the ceiling.
uint64_t resolveTimeout(std::optional<uint64_t> ceilingMs, const std::string& origin,
                        uint64_t requestedMs);

// What an OOM kill is called, e.g. "out of memory: the sandbox reached its
// --memory 64M ceiling"; with a GPU it also says why GPU jobs hit it.
std::string oomWords(const ResolvedLimits& limits, bool hasGpu);

}  // namespace gpubox
