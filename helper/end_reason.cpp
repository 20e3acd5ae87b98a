#include "end_reason.hpp"

#include <string.h>

namespace gpubox {

const char* endReasonName(EndReason reason) {
  switch (reason) {
    case EndReason::Exited:
      return "exited";
    case EndReason::Signaled:
      return "signaled";
    case EndReason::OutOfMemory:
      return "out_of_memory";
    case EndReason::TimedOut:
      return "timed_out";
    case EndReason::NotStarted:
      return "not_started";
    case EndReason::SessionRemoved:
      return "session_removed";
    case EndReason::SessionExpired:
      return "session_expired";
    case EndReason::ClientDisconnected:
      return "client_disconnected";
    case EndReason::HelperError:
      return "helper_error";
  }
  return "?";
}

std::string exitWords(bool signaled, int value) {
  if (!signaled) return "exited with status " + std::to_string(value);
  const char* abbrev = ::sigabbrev_np(value);
  return "killed by signal " + std::to_string(value) +
         (abbrev ? " (SIG" + std::string(abbrev) + ")" : std::string());
}

}  // namespace gpubox
