#include "fd_passing.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace gpubox {

namespace {
constexpr size_t kMaxFds = 8;
}

bool sendRecord(int sock, const void* data, size_t len, const std::vector<int>& fds) {
  if (fds.size() > kMaxFds) {
    errno = EINVAL;
    return false;
  }
  struct iovec iov = {const_cast<void*>(data), len};
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)] = {};
  struct msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (!fds.empty()) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    struct cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(cmsg), fds.data(), sizeof(int) * fds.size());
  }
  ssize_t n;
  do {
    n = ::sendmsg(sock, &msg, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  return n == static_cast<ssize_t>(len);
}

bool sendRecords(int sock, const void* data, size_t len, size_t count) {
  std::vector<struct iovec> iovs(count);
  std::vector<struct mmsghdr> msgs(count);
  for (size_t i = 0; i < count; ++i) {
    iovs[i] = {const_cast<char*>(static_cast<const char*>(data) + i * len), len};
    msgs[i] = {};
    msgs[i].msg_hdr.msg_iov = &iovs[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  size_t sent = 0;
  while (sent < count) {
    const int n =
        ::sendmmsg(sock, msgs.data() + sent, static_cast<unsigned>(count - sent), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    for (int i = 0; i < n; ++i)
      if (msgs[sent + static_cast<size_t>(i)].msg_len != len) return false;
    sent += static_cast<size_t>(n);
  }
  return true;
}

ssize_t recvRecord(int sock, void* data, size_t len, std::vector<UniqueFd>* fds, size_t maxFds,
                   int flags) {
  struct iovec iov = {data, len};
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)] = {};
  struct msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t n;
  do {
    n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | flags);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return n;
  // Take ownership of every fd first so none leaks on the error paths below.
  std::vector<UniqueFd> received;
  for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      received.emplace_back(fd);
    }
  }
  if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
    errno = EMSGSIZE;
    return -1;
  }
  if (received.size() > maxFds) received.resize(maxFds);
  if (fds) *fds = std::move(received);
  return n;
}

ssize_t recvRecords(int sock, void* data, size_t len, size_t max, ssize_t* sizes) {
  if (max == 0 || max > kMaxRecordBatch) {
    errno = EINVAL;
    return -1;
  }
  struct iovec iovs[kMaxRecordBatch];
  struct mmsghdr msgs[kMaxRecordBatch] = {};
  for (size_t i = 0; i < max; ++i) {
    iovs[i] = {static_cast<char*>(data) + i * len, len};
    msgs[i].msg_hdr.msg_iov = &iovs[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  int n;
  do {
    n = ::recvmmsg(sock, msgs, static_cast<unsigned>(max), MSG_DONTWAIT | MSG_CMSG_CLOEXEC,
                   nullptr);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return n;
  for (int i = 0; i < n; ++i)
    sizes[i] = (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) ? -1 : static_cast<ssize_t>(msgs[i].msg_len);
  return n;
}

}  // namespace gpubox
