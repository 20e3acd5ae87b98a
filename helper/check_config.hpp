// gpubox-helper --check-config FILE [--for-user NAME]: loads FILE exactly as
// the helper would (ownership and mode checks included), and prints the
// effective policy: the helper-wide settings, each rule, and with --for-user
// what that user's sandboxes get. Exit status 0 when the file is valid.
#pragma once

#include <string>

#include "settings.hpp"

namespace gpubox {

// FLAGS: limit flags given on the same command line (they win over the
// file's [defaults], as they would in the running helper).
int checkConfig(const std::string& file, const std::string& forUser,
                const policy::LimitSettings& flags);

}  // namespace gpubox
