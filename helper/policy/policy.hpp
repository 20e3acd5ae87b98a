// The helper's policy: who may have which GPUs (and, as it grows, which other
// privileges). Fail-closed: a caller that no rule names gets nothing, root
// included. The file format (TOML, see systemd/helper.toml.example):
//
//   [[allow]]
//   users  = ["alice", 65534]   # user names or uids; and/or
//   groups = ["video"]          # group names or gids the caller belongs to
//   gpus   = ["all"]            # or indices [0, 2] or UUIDs "GPU-..."
//   max_gpus = 2                # per sandbox (default 1 when gpus is given)
//   exclusive = false           # true: a GPU is held by one sandbox at a time
//   host_network = false        # true: the caller may ask for --net host
//
// The first rule that matches the caller decides everything; later rules are
// not merged in, so a reader can tell what a caller gets by finding one rule.
// Unknown keys, wrong types, negative numbers and unknown user or group names
// are errors that name the file and line: a typo must never widen or silently
// narrow what is granted.
//
// To extend the format (limits, extra device binds, ...): add a field to Grant,
// a handler in policy.cpp's rule parser, and a test; nothing else changes.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "gpu_grant.hpp"

namespace gpubox::policy {

// Who is asking. Always from the kernel (SO_PEERCRED / SO_PEERGROUPS), never
// from the request.
struct Caller {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary groups
};

// Everything one caller may have. A default-constructed Grant grants nothing.
struct Grant {
  gpubox::gpu::GpuGrant gpu;
  bool hostNetwork = false;
  std::string rule;  // "file:line" of the matching rule; "" when no rule matched
};

// One [[allow]] rule: whom it matches and what it grants.
struct Rule {
  std::vector<uid_t> uids;
  std::vector<gid_t> gids;
  Grant grant;  // grant.rule is this rule's "file:line"

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

  // What CALLER gets: the first matching rule's grant, or nothing.
  Grant grantFor(const Caller& caller) const;

  const std::vector<Rule>& rules() const { return rules_; }
  // The file the rules came from ("" for empty()), for logs and `gpubox info`.
  const std::string& source() const { return source_; }

 private:
  std::vector<Rule> rules_;
  std::string source_;
};

}  // namespace gpubox::policy
