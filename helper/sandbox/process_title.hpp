// What a sandbox's pid 1 shows of itself. The init is a clone of the helper,
// so /proc/1/cmdline inside would show the helper's command line (socket
// path, flags) and its argument and environment memory. The helper records
// where that memory is at start; the init overwrites its own copy.
#pragma once

namespace gpubox {

// Called once from main(), before anything else.
void rememberProcessArgs(int argc, char** argv);

// In the init: clears the whole argument and environment area of this
// process's memory and writes TITLE at its start, so /proc/self/cmdline
// reads TITLE (and nothing of the helper). Async-signal-safe.
void setInitProcessTitle(const char* title);

}  // namespace gpubox
