// Whether sandboxes get a user namespace of their own (the helper's
// --user-namespace flag; the policy file's user_namespace key sets the same).
//
//   auto      a new user namespace per sandbox when the kernel lets the
//             helper make one, else none (decided once, at start-up)
//   required  always a new one; the helper refuses to start without
//   never     none: each sandbox's init is real root in the helper's own
//             user namespace while it builds the sandbox, then drops to the
//             caller's ids, as setuid bubblewrap and nsjail-as-root do
//
// Either way the command runs as the caller's uid/gid/groups with no
// capabilities, no_new_privs and the seccomp filter (docs/security.md).
#pragma once

#include <string>
#include <string_view>

namespace gpubox {

enum class UserNamespaceMode { Auto, Required, Never };

// "auto", "required" or "never"; throws gpubox::Error naming any other value.
UserNamespaceMode parseUserNamespaceMode(std::string_view text);
const char* userNamespaceModeName(UserNamespaceMode mode);

// What the helper decided at start-up.
struct UserNamespaceChoice {
  UserNamespaceMode setting = UserNamespaceMode::Auto;
  bool newPerSandbox = true;  // false: sandboxes stay in the helper's user namespace
  std::string reason;         // one line: how the setting and the kernel led here
};

// The word status reports carry (Applied.userNamespace, --json-status,
// gpubox info): "new" (a user namespace per sandbox) or "host" (none: the
// sandbox stays in the helper's own user namespace).
const char* userNamespaceWord(bool newPerSandbox);

// Decides once: in auto and required, probes whether the kernel lets this
// process create a user namespace (kernel_features.hpp). Throws
// gpubox::Error, saying why and what to do, when `setting` is required and
// the kernel refuses. `origin` says where the setting came from, for the
// messages: "--user-namespace required", "user_namespace = \"never\" in
// /etc/gpubox/helper.toml", "" for the default.
UserNamespaceChoice decideUserNamespace(UserNamespaceMode setting, const std::string& origin = "");

}  // namespace gpubox
