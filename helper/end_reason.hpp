// Why a sandboxed process ended, in the helper's terms (the wire's EndReason
// mirrors it), and the words a person reads for it.
#pragma once

#include <cstdint>
#include <string>

namespace gpubox {

enum class EndReason {
  Exited,
  Signaled,
  OutOfMemory,
  TimedOut,
  NotStarted,
  SessionRemoved,
  SessionExpired,
  ClientDisconnected,
  HelperError,
};

// "exited", "out_of_memory", ... (the JSON status's "reason" values).
const char* endReasonName(EndReason reason);

// "exited with status 3", "killed by signal 9 (SIGKILL)".
std::string exitWords(bool signaled, int value);

}  // namespace gpubox
