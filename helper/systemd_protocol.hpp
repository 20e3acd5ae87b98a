// The helper's side of three small, documented and stable systemd protocols,
// spoken directly instead of through libsystemd (which, with the compression
// and crypto libraries it pulls in, cost the idle helper about 1 MiB of RSS):
//
//   socket activation  LISTEN_PID / LISTEN_FDS, fds from 3 (sd_listen_fds(3))
//   readiness          a datagram to $NOTIFY_SOCKET (sd_notify(3))
//   the journal        the native protocol: a datagram of fields to
//                      /run/systemd/journal/socket (systemd.journal-fields(7),
//                      "Native Journal Protocol")
//
// Only what the helper uses is here; each function says what it leaves out.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace gpubox::systemd {

// The first fd systemd passes; the others follow it without gaps.
constexpr int kListenFdsStart = 3;

// How many fds systemd passed to this process: 0 when none were, or when
// LISTEN_PID names another process (the variables were inherited, not meant
// for us). Marks the passed fds close-on-exec and unsets LISTEN_PID,
// LISTEN_FDS and LISTEN_FDNAMES in every case, so no child inherits them.
// Throws Error when a variable is not a number or an fd is not open.
int listenFds();

// True when `fd` is an AF_UNIX stream socket that is listening.
bool isListeningUnixStreamSocket(int fd);

// Sends `state` (e.g. "READY=1") to the service manager over $NOTIFY_SOCKET:
// a file system path, or an abstract socket name when it starts with '@'.
// Returns 0 when sent or when NOTIFY_SOCKET is unset (not run by a service
// manager that wants to hear from us), else an errno value. The variable is
// left set. (Not supported: "vsock:" addresses, which are for virtual
// machines, and passing fds or credentials along.)
int notify(std::string_view state);

// One journal field. Keys are upper-case letters, digits and '_' and do not
// start with '_' (the journal drops fields that break this); values are any
// bytes.
struct JournalField {
  std::string_view key;
  std::string_view value;
};

// The native protocol's datagram for `fields`: "KEY=VALUE\n" per field, or,
// for a value that contains '\n', the binary-safe form "KEY\n", the value's
// length as a little-endian 64-bit number, the value, "\n". Pure, for tests.
std::string encodeJournalMessage(const std::vector<JournalField>& fields);

// Sends `fields` to the journal's native socket. Returns 0 when sent, else an
// errno value (no journal listening, or EMSGSIZE: too large for a datagram),
// so that the caller can write the message elsewhere instead. There is no
// large-message path (systemd passes those as a sealed memfd): the helper's
// log records are a few hundred bytes at most.
int journalSend(const std::vector<JournalField>& fields);

}  // namespace gpubox::systemd
