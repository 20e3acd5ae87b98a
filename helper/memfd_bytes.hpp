// A memfd holding a given run of bytes: how the helper hands a sandbox's
// init its configuration and each command (init_messages.hpp), so neither
// rides on the control socket's records.
#pragma once

#include <string_view>

#include "unique_fd.hpp"

namespace gpubox {

// A new close-on-exec memfd named NAME, holding BYTES from offset 0, its
// file offset at the end. A short or interrupted write is carried on; any
// other failure throws, naming WHAT was being written.
UniqueFd memfdHolding(const char* name, std::string_view bytes, const char* what);

}  // namespace gpubox
