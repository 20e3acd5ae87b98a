// A helper thread that names itself (what /proc/PID/task/*/comm shows),
// takes no signal (signal_free_thread.hpp) and keeps only the capabilities
// its job takes, before it does anything else.
#pragma once

#include <sys/capability.h>

#include <functional>
#include <thread>
#include <vector>

namespace gpubox {

// Starts BODY on such a thread named NAME (at most 15 characters), holding
// KEEP (empty: nothing), and returns once it runs so; throws gpubox::Error,
// with the thread joined, if it could not reduce its capabilities.
std::thread startNamedThread(const char* name, std::vector<cap_value_t> keep,
                             std::function<void()> body);

}  // namespace gpubox
