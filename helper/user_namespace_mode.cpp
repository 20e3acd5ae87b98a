#include "user_namespace_mode.hpp"

#include "error.hpp"
#include "kernel_features.hpp"

namespace gpubox {

UserNamespaceMode parseUserNamespaceMode(std::string_view text) {
  if (text == "auto") return UserNamespaceMode::Auto;
  if (text == "required") return UserNamespaceMode::Required;
  if (text == "never") return UserNamespaceMode::Never;
  throw Error("'" + std::string(text) +
              "' is not a user namespace mode: expected auto, required or never");
}

const char* userNamespaceModeName(UserNamespaceMode mode) {
  switch (mode) {
    case UserNamespaceMode::Auto:
      return "auto";
    case UserNamespaceMode::Required:
      return "required";
    case UserNamespaceMode::Never:
      return "never";
  }
  return "?";
}

const char* userNamespaceWord(bool newPerSandbox) {
  return newPerSandbox ? "new" : "host";
}

UserNamespaceChoice decideUserNamespace(UserNamespaceMode setting, const std::string& origin) {
  UserNamespaceChoice choice;
  choice.setting = setting;
  const std::string from = origin.empty() ? "" : " (" + origin + ")";
  if (setting == UserNamespaceMode::Never) {
    choice.newPerSandbox = false;
    choice.reason = "never" + from + ": sandboxes are built in the helper's own user namespace";
    return choice;
  }
  std::string refusal = userNamespaceRefusal();
  if (refusal.empty()) {
    choice.newPerSandbox = true;
    choice.reason = userNamespaceModeName(setting) + from +
                    ": each sandbox gets a new user namespace (the kernel allows it)";
    return choice;
  }
  if (setting == UserNamespaceMode::Required)
    throw Error(
        "user namespaces are required (--user-namespace required) but the kernel refuses "
        "to create one: " +
        refusal +
        "; allow them (sysctl user.max_user_namespaces, the LSM's userns policy) or run "
        "the helper with --user-namespace auto or never");
  choice.newPerSandbox = false;
  choice.reason = "auto" + from + ": the kernel refuses a new user namespace (" + refusal +
                  "), so sandboxes are built in the helper's own user namespace";
  return choice;
}

}  // namespace gpubox
