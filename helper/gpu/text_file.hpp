// Small, defensive readers for the driver's text files. Driver files are
// inputs: they may be missing, huge, not regular files, or garbage, and none
// of that may crash or hang the helper.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gpubox::gpu {

// Driver text files are a few hundred bytes; anything above this is not one.
inline constexpr size_t kMaxDriverFile = 64 * 1024;

// Reads a regular file of at most maxBytes. nullopt when it does not exist
// (ENOENT/ENOTDIR). Throws gpubox::Error naming the path when it is not a
// regular file, is a symlink, is larger than maxBytes, or cannot be read.
std::optional<std::string> readSmallFile(const std::string& path, size_t maxBytes = kMaxDriverFile);

std::string_view trim(std::string_view s);

// "Key: \t value" lines, split at the first ':', both sides trimmed. Lines
// without ':' are skipped.
std::vector<std::pair<std::string, std::string>> parseKeyValues(std::string_view text);

// Decimal unsigned number with no sign, no spaces, at most `max`.
std::optional<unsigned> parseUnsigned(std::string_view s, unsigned max = 0xffffffffu);

// <root>/<rel>; root "/" gives "/<rel>". `rel` must not start with '/'.
std::string underRoot(const std::string& root, std::string_view rel);

// Strips the driver root from a host path under it ("/r/usr/lib/x" -> "/usr/lib/x").
// Returns nullopt when `path` is not under the root.
std::optional<std::string> stripRoot(const std::string& root, const std::string& path);

// Directory entries (names, sorted, without "." and ".."); empty when the
// directory does not exist or cannot be read.
std::vector<std::string> listDir(const std::string& path);

}  // namespace gpubox::gpu
