#include "log.hpp"

#include <syslog.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

#include "deferred_writer.hpp"
#include "systemd_protocol.hpp"

namespace gpubox {

namespace {

// systemd sets JOURNAL_STREAM when stderr is connected to the journal.
bool toJournal() {
  static const bool journal = std::getenv("JOURNAL_STREAM") != nullptr;
  return journal;
}

// To the journal as structured fields when systemd connected us to it; on
// stderr otherwise, and also when the journal cannot take the record (not
// running, too large), so that nothing is lost without a trace.
void emit(const std::string& message, int priority,
          const std::vector<systemd::JournalField>& extra = {}) {
  if (toJournal()) {
    std::string prio = std::to_string(priority);
    std::vector<systemd::JournalField> fields = {
        {"MESSAGE", message}, {"PRIORITY", prio}, {"SYSLOG_IDENTIFIER", "gpubox-helper"}};
    fields.insert(fields.end(), extra.begin(), extra.end());
    if (systemd::journalSend(fields) == 0) return;
  }
  std::fprintf(stderr, "gpubox-helper: %s\n", message.c_str());
}

void writeSandboxRecord(const SandboxRecord& r) {
  std::string message = "sandbox uid=" + std::to_string(r.uid) + " pid=" + std::to_string(r.pid) +
                        " argv0=" + (r.argv0.empty() ? "-" : r.argv0) + " result=\"" + r.result +
                        "\" duration_ms=" + std::to_string(r.durationMs) +
                        " gpus=" + (r.gpus.empty() ? "-" : r.gpus);
  std::string uid = std::to_string(r.uid), pid = std::to_string(r.pid),
              duration = std::to_string(r.durationMs);
  emit(message, LOG_INFO,
       {{"GPUBOX_UID", uid},
        {"GPUBOX_PID", pid},
        {"GPUBOX_ARGV0", r.argv0},
        {"GPUBOX_RESULT", r.result},
        {"GPUBOX_DURATION_MS", duration},
        {"GPUBOX_GPUS", r.gpus}});
}

// Past this many records waiting (a stalled journal, a stderr nobody
// reads), more are dropped and counted: a bound on the memory they take.
constexpr size_t kMaxQueuedRecords = 8192;

DeferredWriter& recordWriter() {
  static DeferredWriter writer(kMaxQueuedRecords, [](size_t dropped) {
    emit(std::to_string(dropped) + " log record" + (dropped == 1 ? "" : "s") +
             " dropped: the journal (or stderr) did not take them as fast as they came",
         LOG_WARNING);
  });
  return writer;
}

}  // namespace

void logSandbox(const SandboxRecord& record) {
  recordWriter().submit([record]() { writeSandboxRecord(record); });
}

void startSandboxRecordWriter() {
  recordWriter().start("gpubox-log");
}

void stopSandboxRecordWriter() {
  recordWriter().stop();
}

void logEventInfo(const std::string& message) {
  recordWriter().submit([message]() { emit(message, LOG_INFO); });
}
void logEventError(const std::string& message) {
  recordWriter().submit([message]() { emit(message, LOG_ERR); });
}

void logInfo(const std::string& message) {
  emit(message, LOG_INFO);
}
void logError(const std::string& message) {
  emit(message, LOG_ERR);
}

}  // namespace gpubox
