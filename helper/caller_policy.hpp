// What one caller gets: the policy's grant (privileges, GPUs, bind sources)
// and the limits its sandboxes start from. Computed per request from state
// already in memory (a scan of the rules), so it is cheap on the event loop.
#pragma once

#include <string>
#include <vector>

#include "daemon_context.hpp"
#include "peer.hpp"
#include "policy.hpp"
#include "sandbox_defaults.hpp"

namespace gpubox {

struct CallerPolicy {
  policy::Grant grant;
  SandboxDefaults defaults;  // helper-wide, with the caller's rule over them
};

policy::Caller callerOf(const PeerIdentity& peer);

CallerPolicy callerPolicy(const policy::Policy& policy, const SandboxDefaults& helperWide,
                          const policy::Caller& caller);
CallerPolicy callerPolicy(const DaemonContext& ctx, const PeerIdentity& peer);

// The grant in words, one line each (`gpubox info`, --check-config):
// the matching rule, privileges, bind sources.
std::vector<std::string> describeGrant(const policy::Grant& grant, bool root);

// Built-ins (memory: 3/4 of RAM, pids 4096, ...), then the policy's
// [defaults], then the flags the helper was started with.
SandboxDefaults helperWideDefaults(const policy::Policy& policy,
                                   const policy::LimitSettings& flags);

}  // namespace gpubox
