// The helper's policy: who may have which GPUs and privileges, and the limits
// each caller's sandboxes get. Fail-closed: a caller that no rule names gets
// no GPU and no privilege, root included for GPUs. The file format (TOML;
// every key is documented in docs/operations.md and systemd/helper.toml.example):
//
//   user_namespace = "auto"      # helper-wide: auto | required | never
//   hide = ["~/.config/op"]      # more paths the default plan hides
//
//   [defaults]                   # every caller: limits and bind sources
//   memory = "8G"
//   max_sandboxes = 32
//
//   [[allow]]
//   users  = ["alice", 65534]    # user names or uids; and/or
//   groups = ["video"]           # group names or gids the caller belongs to
//   gpus   = ["all"]             # or indices [0, 2] or UUIDs "GPU-..."
//   default_gpus = ["count:1"]   # what a request naming no GPU gets
//   host_network = true          # and other privileges, limits, bind sources
//
// The first rule that matches the caller decides; later rules are not merged
// in, so a reader can tell what a caller gets by finding one rule (and
// [defaults] for what that rule leaves out). Unknown keys, wrong types,
// negative numbers and unknown user or group names are errors that name the
// file and line: a typo must never widen or silently narrow what is granted.
//
// To extend the format: add a field to Grant (or LimitSettings), a handler in
// policy.cpp's rule parser, a line in describe(), and a test.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gpu_grant.hpp"
#include "settings.hpp"

namespace gpubox::policy {

// Who is asking. Always from the kernel (SO_PEERCRED / SO_PEERGROUPS), never
// from the request.
struct Caller {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary groups
};

// Where a non-root caller's --bind / --ro-bind / --dev-bind sources (and the
// default plan's working directory) may come from: path prefixes, checked
// in the sandbox against the path the source really resolved to.
struct BindSources {
  std::vector<std::string> readable;  // any bind
  std::vector<std::string> writable;  // --bind, --dev-bind, the working directory
  std::string where;                  // "FILE:LINE" that set them, or "built-in"

  // The built-in choice: read-only from anywhere the caller can read;
  // writable only from where users keep their own data, never / or the system.
  static BindSources builtIn();
};

// bind_sources / writable_bind_sources as a [defaults] table or a rule set them.
struct BindSettings {
  Setting<std::vector<std::string>> readable, writable;
  void overlay(const BindSettings& over);
  BindSources resolve() const;  // the built-in choice where neither is set
};

// Everything one caller may have. A default-constructed Grant grants nothing.
struct Grant {
  gpubox::gpu::GpuGrant gpu;
  bool hostNetwork = false;           // --net host
  bool devBind = false;               // --dev-bind
  bool seccompNone = false;           // --seccomp none
  bool nestedUserNamespaces = false;  // --seccomp nested-userns
  // GPU selectors (as --gpu takes them) for a request that names none;
  // still judged against `gpu`. A request saying --gpu none gets none.
  std::vector<std::string> defaultGpus;
  LimitSettings limits;  // the rule's own keys ([defaults] is applied apart)
  BindSources binds = BindSources::builtIn();
  std::string rule;  // "file:line" of the matching rule; "" when no rule matched
};

// A setting that applies to the whole helper, not to a caller.
enum class UserNamespaceSetting { Unset, Auto, Required, Never };

// One [[allow]] rule: whom it matches and what it grants.
struct Rule {
  std::vector<uid_t> uids;
  std::vector<gid_t> gids;
  Grant grant;         // grant.rule is this rule's "file:line"; limits are the rule's own
  BindSettings binds;  // the rule's own

  // True when the caller's uid is listed, or its primary or a supplementary
  // group is.
  bool matches(const Caller& caller) const;
};

class Policy {
 public:
  // No rules: nothing is granted to anyone.
  static Policy empty();
  // Parses the TOML text; throws gpubox::Error("FILE:LINE: message").
  static Policy parse(std::string_view text, const std::string& fileName);
  // Reads and parses PATH. A missing file is an error when mustExist, else it
  // gives empty(). Any other problem (unreadable, not a regular file, writable
  // by a user other than root, too large) is always an error: a policy that
  // cannot be trusted must not be half-used.
  static Policy load(const std::string& path, bool mustExist);

  // What CALLER gets: the first matching rule's grant (bind sources over
  // [defaults]'), or no privilege at all.
  Grant grantFor(const Caller& caller) const;

  const std::vector<Rule>& rules() const { return rules_; }
  const LimitSettings& defaults() const { return defaults_; }
  UserNamespaceSetting userNamespace() const { return userNamespace_; }
  // Extra paths the default plan hides: absolute, or "~/..." under the
  // caller's home.
  const std::vector<std::string>& hide() const { return hide_; }
  // The file the rules came from ("" for empty()), for logs and `gpubox info`.
  const std::string& source() const { return source_; }

 private:
  std::vector<Rule> rules_;
  LimitSettings defaults_;
  BindSettings binds_;
  UserNamespaceSetting userNamespace_ = UserNamespaceSetting::Unset;
  std::vector<std::string> hide_;
  std::string source_;
};

}  // namespace gpubox::policy
