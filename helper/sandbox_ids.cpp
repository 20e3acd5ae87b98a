#include "sandbox_ids.hpp"

#include <optional>
#include <string>

#include "error.hpp"

namespace gpubox {

namespace {

unsigned resolve(const std::optional<uint32_t>& asked, unsigned own, const char* option,
                 const char* what, const UserNamespaceChoice& userNamespace) {
  if (!asked || *asked == own) return own;
  if (*asked > SpecLimits::kMaxSandboxId)
    throw Error(std::string(option) + " " + std::to_string(*asked) + ": not a valid " + what);
  if (!userNamespace.newPerSandbox)
    throw Error(std::string(option) + " " + std::to_string(*asked) +
                ": refused: sandboxes of this helper get no user namespace of their own (" +
                userNamespace.reason + "), so commands run as your own " + what + " " +
                std::to_string(own) + "; only a user namespace can show them another " + what);
  return *asked;
}

}  // namespace

SandboxIds resolveSandboxIds(const SandboxSpec& spec, uid_t callerUid, gid_t callerGid,
                             const UserNamespaceChoice& userNamespace) {
  return {resolve(spec.sandboxUid, callerUid, "--uid", "uid", userNamespace),
          resolve(spec.sandboxGid, callerGid, "--gid", "gid", userNamespace)};
}

}  // namespace gpubox
