// One structured record per sandbox, and the helper's own messages: to the
// journal (its native protocol, systemd_protocol.hpp) when systemd connected
// stderr to it (or on stderr when the journal cannot take them), otherwise
// one line each on stderr.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

namespace gpubox {

struct SandboxRecord {
  uid_t uid = 0;
  pid_t pid = 0;       // client pid
  std::string argv0;   // first command run, "" if none
  std::string result;  // "exit 0", "signal 9", "not started: ...", "setup failed: ..."
  uint64_t durationMs = 0;
  std::string gpus;  // granted GPU UUIDs, comma-separated
};

// Queued for the record writer's thread once it runs (written at once
// before and after): a record per sandbox must never make the caller wait
// for the journal. Records may therefore come after lines logged later.
void logSandbox(const SandboxRecord& record);
// The thread that writes the records and the event lines below
// (deferred_writer.hpp, "gpubox-log"): started once the helper's spawners
// are forked, stopped after its last sandbox ends, writing what is queued
// first.
void startSandboxRecordWriter();
void stopSandboxRecordWriter();
void logInfo(const std::string& message);
void logError(const std::string& message);
// Lines a client's doing can make at any rate (a connection refused or
// closed, a session started or ended, a GPU sandbox's device-backend note):
// queued like the records once the record writer runs, so a journal that
// falls behind never holds up the thread that logs them. They may come
// after lines logged later.
void logEventInfo(const std::string& message);
void logEventError(const std::string& message);

}  // namespace gpubox
