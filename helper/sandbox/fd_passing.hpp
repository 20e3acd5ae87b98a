// Sending and receiving one record plus file descriptors (SCM_RIGHTS) on a
// SOCK_SEQPACKET socket.
#pragma once

#include <sys/types.h>

#include <vector>

#include "unique_fd.hpp"

namespace gpubox {

// Sends `len` bytes and `fds` as one message. Returns false and sets errno on
// failure. Retries EINTR.
bool sendRecord(int sock, const void* data, size_t len, const std::vector<int>& fds);

// COUNT records of LEN bytes each from DATA, one message each (as COUNT
// sendRecord calls, without fds) through as few sendmmsg(2) calls as the
// socket takes: the init's records at the end of its setup wake the helper
// once, not once each. False when one could not be sent whole.
bool sendRecords(int sock, const void* data, size_t len, size_t count);

// Receives one message of at most `len` bytes and at most `maxFds` fds (all
// received fds are close-on-exec; surplus ones are closed). Returns the byte
// count, 0 on EOF, -1/errno on error. A truncated message is an error (EMSGSIZE).
ssize_t recvRecord(int sock, void* data, size_t len, std::vector<UniqueFd>* fds, size_t maxFds,
                   int flags = 0);

// The most records one recvRecords call takes.
inline constexpr size_t kMaxRecordBatch = 16;

// Up to MAX (at most kMaxRecordBatch; more is EINVAL) waiting records of at
// most LEN bytes each, record i into DATA +
// i * LEN, through one recvmmsg(2) that never waits: what the helper's loop
// reads from an init, which may have sent several records since the last
// look. Returns how many were received, their byte counts in SIZES (0: the
// peer's end; -1: a record cut short, which no init sends), or -1/errno
// (EAGAIN: none was waiting). Fewer than MAX means none was left waiting,
// so an edge-triggered caller may wait for the next edge without a read
// that fails with EAGAIN. Records carry no fds here: any sent are closed.
ssize_t recvRecords(int sock, void* data, size_t len, size_t max, ssize_t* sizes);

}  // namespace gpubox
