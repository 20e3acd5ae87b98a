// The policy's bind-source rule, applied in the sandbox init where the
// caller's sources are opened: a source is judged by the path it really
// resolved to (symlinks and ".." followed, as the caller), read back from
// the open fd, so a symlink swap cannot slip a refused path past the check.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "spec.hpp"

namespace gpubox {

struct BindSourceRule {
  std::vector<std::string> readable;  // prefixes for --ro-bind sources
  std::vector<std::string> writable;  // prefixes for --bind, --dev-bind (also /dev), the working
                                      // directory
  std::string where;                  // the policy line that set them, for messages
};

// PATH is PREFIX or lies below it ("/home" covers "/home/a", not "/homer").
bool underPrefix(std::string_view path, std::string_view prefix);

// Throws gpubox::Error naming the step when SOURCE_FD (an open source of
// OP) lies outside what RULE lets OP use.
void checkBindSource(const MountOp& op, int sourceFd, const BindSourceRule& rule);

}  // namespace gpubox
