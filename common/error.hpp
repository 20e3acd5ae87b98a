// The one error type of gpubox: a human-readable message that is safe to
// show to the caller (it never carries helper-private state).
#pragma once

#include <stdexcept>
#include <string>

namespace gpubox {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Throws Error("<what>: <strerror(errno)>"), capturing errno first.
[[noreturn]] void throwErrno(const std::string& what);
// Same, for an explicit errno value.
[[noreturn]] void throwErrno(const std::string& what, int err);

// "<what>: <strerror(err)>" without throwing (for async-signal-safe paths use
// the raw number instead).
std::string errnoMessage(const std::string& what, int err);

}  // namespace gpubox
