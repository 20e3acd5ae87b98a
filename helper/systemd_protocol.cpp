#include "systemd_protocol.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>

#include "error.hpp"
#include "unique_fd.hpp"

namespace gpubox::systemd {

namespace {

constexpr const char* kJournalSocket = "/run/systemd/journal/socket";

// The value of environment variable `name` as a non-negative number; nullopt
// when unset. Throws when it is set but not a number (a broken unit or a
// broken parent: better to say so than to guess).
std::optional<long> envNumber(const char* name) {
  const char* text = std::getenv(name);
  if (!text) return std::nullopt;
  std::string_view s(text);
  long value = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size() || value < 0)
    throw Error(std::string("socket activation: ") + name + "='" + text +
                "' is not a non-negative number");
  return value;
}

// Unsets the socket-activation variables when it goes out of scope, whichever
// way listenFds() leaves: our children (sandboxes included) must never take
// the fds as meant for them.
struct UnsetListenEnv {
  ~UnsetListenEnv() {
    ::unsetenv("LISTEN_PID");
    ::unsetenv("LISTEN_FDS");
    ::unsetenv("LISTEN_FDNAMES");
  }
};

// Fills `addr` for the Unix socket `name` (a path, or an abstract name when
// it starts with '@') and returns the address length to pass, or 0 when the
// name cannot be one (empty, too long, or neither form).
socklen_t unixAddress(std::string_view name, struct sockaddr_un& addr) {
  addr = {};
  addr.sun_family = AF_UNIX;
  if (name.empty()) return 0;
  if (name[0] == '@') {
    // Abstract: a leading NUL, and the length counts exactly the name's bytes
    // (a trailing NUL would be part of the name).
    if (name.size() > sizeof(addr.sun_path)) return 0;
    name.copy(addr.sun_path, name.size());
    addr.sun_path[0] = '\0';
    return static_cast<socklen_t>(offsetof(struct sockaddr_un, sun_path) + name.size());
  }
  if (name[0] != '/' || name.size() >= sizeof(addr.sun_path)) return 0;
  name.copy(addr.sun_path, name.size());
  return static_cast<socklen_t>(offsetof(struct sockaddr_un, sun_path) + name.size() + 1);
}

// Sends one datagram to the Unix socket `name`; 0 or an errno value. A fresh
// socket each time: the helper sends a handful of these, and keeping none
// open means no fd for forks to inherit and nothing to reconnect.
int sendDatagram(std::string_view name, std::string_view data) {
  struct sockaddr_un addr;
  socklen_t len = unixAddress(name, addr);
  if (len == 0) return name.size() >= sizeof(addr.sun_path) ? ENAMETOOLONG : EAFNOSUPPORT;
  UniqueFd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd) return errno;
  ssize_t n;
  do {
    n = ::sendto(fd.get(), data.data(), data.size(), MSG_NOSIGNAL,
                 reinterpret_cast<const struct sockaddr*>(&addr), len);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return errno;
  return static_cast<size_t>(n) == data.size() ? 0 : EMSGSIZE;  // datagrams go whole or not
}

}  // namespace

int listenFds() {
  UnsetListenEnv unset;
  std::optional<long> pid = envNumber("LISTEN_PID");
  // Inherited from a socket-activated parent, not meant for us: ignore.
  if (!pid || *pid != ::getpid()) return 0;
  std::optional<long> count = envNumber("LISTEN_FDS");
  if (!count || *count == 0) return 0;
  if (*count > 1024)
    throw Error("socket activation: LISTEN_FDS=" + std::to_string(*count) + " is implausible");
  int n = static_cast<int>(*count);
  // systemd passes them inheritable; nothing we exec may keep them.
  for (int fd = kListenFdsStart; fd < kListenFdsStart + n; ++fd) {
    int flags = ::fcntl(fd, F_GETFD);
    if (flags < 0 || ::fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0)
      throwErrno("socket activation: fd " + std::to_string(fd) +
                 " (LISTEN_FDS=" + std::to_string(n) + ")");
  }
  return n;
}

bool isListeningUnixStreamSocket(int fd) {
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) return false;
  int type = 0;
  socklen_t len = sizeof(type);
  if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM) return false;
  int listening = 0;
  len = sizeof(listening);
  if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || !listening)
    return false;
  struct sockaddr_storage addr = {};
  len = sizeof(addr);
  if (::getsockname(fd, reinterpret_cast<struct sockaddr*>(&addr), &len) != 0) return false;
  return len >= sizeof(sa_family_t) && addr.ss_family == AF_UNIX;
}

int notify(std::string_view state) {
  const char* socket = std::getenv("NOTIFY_SOCKET");
  if (!socket || !*socket) return 0;
  return sendDatagram(socket, state);
}

std::string encodeJournalMessage(const std::vector<JournalField>& fields) {
  std::string out;
  for (const JournalField& f : fields) {
    out += f.key;
    if (f.value.find('\n') == std::string_view::npos) {
      out += '=';
    } else {
      // A newline would end the field early: say the length instead.
      out += '\n';
      uint64_t size = f.value.size();
      for (int i = 0; i < 8; ++i) out += static_cast<char>((size >> (8 * i)) & 0xff);
    }
    out += f.value;
    out += '\n';
  }
  return out;
}

int journalSend(const std::vector<JournalField>& fields) {
  return sendDatagram(kJournalSocket, encodeJournalMessage(fields));
}

}  // namespace gpubox::systemd
