#include "caller_policy.hpp"

namespace gpubox {

policy::Caller callerOf(const PeerIdentity& peer) {
  return {peer.uid, peer.gid, peer.groups};
}

CallerPolicy callerPolicy(const policy::Policy& policy, const SandboxDefaults& helperWide,
                          const policy::Caller& caller) {
  CallerPolicy out{policy.grantFor(caller), helperWide};
  out.defaults.overlay(out.grant.limits);
  return out;
}

CallerPolicy callerPolicy(const DaemonContext& ctx, const PeerIdentity& peer) {
  return callerPolicy(ctx.policy, ctx.defaults, callerOf(peer));
}

std::vector<std::string> describeGrant(const policy::Grant& g, bool root) {
  auto join = [](const std::vector<std::string>& v) {
    std::string out;
    for (const std::string& s : v) out += (out.empty() ? "" : " ") + s;
    return out.empty() ? std::string("(none)") : out;
  };
  std::vector<std::string> privileges;
  if (g.hostNetwork) privileges.push_back("host_network");
  if (g.devBind) privileges.push_back("dev_bind");
  if (g.seccompNone) privileges.push_back("seccomp_none");
  if (g.nestedUserNamespaces) privileges.push_back("nested_user_namespaces");
  std::vector<std::string> lines;
  lines.push_back("policy rule: " + (g.rule.empty() ? std::string("none matches") : g.rule));
  if (!g.defaultGpus.empty()) lines.push_back("default GPUs: " + join(g.defaultGpus));
  if (root) {
    lines.push_back(
        "privileges: all (root): host network, --dev-bind, --seccomp none, nested "
        "user namespaces, any bind source");
  } else {
    lines.push_back("privileges: " + join(privileges));
    lines.push_back("bind sources: " + join(g.binds.readable) +
                    "; writable: " + join(g.binds.writable) + " (" + g.binds.where + ")");
  }
  return lines;
}

SandboxDefaults helperWideDefaults(const policy::Policy& policy,
                                   const policy::LimitSettings& flags) {
  SandboxDefaults d;
  policy::LimitSettings builtIn;
  policy::assignLimit(builtIn, "memory", "auto", "built-in");
  d.overlay(builtIn);
  d.overlay(policy.defaults());
  d.overlay(flags);
  return d;
}

}  // namespace gpubox
