// Pieces of command-line parsing that `gpubox run` and gpubox-bwrap share:
// bubblewrap's mount options and how their words become mount steps.
#pragma once

#include <optional>
#include <string>

#include "spec.hpp"

namespace gpubox::cli {

// --bind, --ro-bind, --dev-bind (SRC DST) and --symlink (TARGET DST).
std::optional<MountKind> twoArgMountOption(const std::string& option);
// --tmpfs, --proc, --dev, --dir, --remount-ro (DST).
std::optional<MountKind> oneArgMountOption(const std::string& option);

// A bind source as the helper needs it: absolute, relative ones taken from
// `cwd` (the client's), leading "./" dropped.
std::string absoluteSource(const std::string& path, const std::string& cwd);

// A non-negative decimal file descriptor; throws gpubox::Error naming OPTION.
int parseFd(const std::string& option, const std::string& text);

}  // namespace gpubox::cli
