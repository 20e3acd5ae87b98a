#include "log.hpp"

#include <syslog.h>
#include <systemd/sd-journal.h>

#include <cstdio>
#include <cstdlib>

namespace gpubox {

namespace {

// systemd sets JOURNAL_STREAM when stderr is connected to the journal.
bool toJournal() {
  static const bool journal = std::getenv("JOURNAL_STREAM") != nullptr;
  return journal;
}

void line(int priority, const std::string& message) {
  if (toJournal()) {
    sd_journal_send("MESSAGE=%s", message.c_str(), "PRIORITY=%d", priority,
                    "SYSLOG_IDENTIFIER=gpubox-helper", nullptr);
  } else {
    std::fprintf(stderr, "gpubox-helper: %s\n", message.c_str());
  }
}

}  // namespace

void logSandbox(const SandboxRecord& r) {
  std::string message = "sandbox uid=" + std::to_string(r.uid) + " pid=" + std::to_string(r.pid) +
                        " argv0=" + (r.argv0.empty() ? "-" : r.argv0) + " result=\"" + r.result +
                        "\" duration_ms=" + std::to_string(r.durationMs) +
                        " gpus=" + (r.gpus.empty() ? "-" : r.gpus);
  if (toJournal()) {
    sd_journal_send("MESSAGE=%s", message.c_str(), "PRIORITY=%d", LOG_INFO,
                    "SYSLOG_IDENTIFIER=gpubox-helper", "GPUBOX_UID=%u", r.uid, "GPUBOX_PID=%d",
                    r.pid, "GPUBOX_ARGV0=%s", r.argv0.c_str(), "GPUBOX_RESULT=%s", r.result.c_str(),
                    "GPUBOX_DURATION_MS=%llu", static_cast<unsigned long long>(r.durationMs),
                    "GPUBOX_GPUS=%s", r.gpus.c_str(), nullptr);
  } else {
    std::fprintf(stderr, "gpubox-helper: %s\n", message.c_str());
  }
}

void logInfo(const std::string& message) {
  line(LOG_INFO, message);
}
void logError(const std::string& message) {
  line(LOG_ERR, message);
}

}  // namespace gpubox
