#include "bwrap_fds.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "error.hpp"

namespace gpubox::bwrap {

std::string readFdContents(int fd, size_t limit, const std::string& what) {
  std::string data;
  std::vector<char> buf(64 * 1024);
  for (;;) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throwErrno(what + ": cannot read file descriptor " + std::to_string(fd));
    if (n == 0) return data;
    data.append(buf.data(), static_cast<size_t>(n));
    if (data.size() > limit)
      throw Error(what + ": file descriptor " + std::to_string(fd) + " holds more than " +
                  std::to_string(limit) + " bytes (gpubox's limit)");
  }
}

OpenFile describeOpenFd(int fd, const std::string& what) {
  struct stat st;
  if (::fstat(fd, &st) != 0) throwErrno(what + ": file descriptor " + std::to_string(fd));
  const std::string link = "/proc/self/fd/" + std::to_string(fd);
  std::vector<char> buf(SpecLimits::kMaxPath + 1);
  ssize_t n = ::readlink(link.c_str(), buf.data(), buf.size());
  if (n < 0) throwErrno(what + ": cannot read " + link);
  if (static_cast<size_t>(n) >= buf.size())
    throw Error(what + ": the path of file descriptor " + std::to_string(fd) + " is too long");
  OpenFile file{std::string(buf.data(), static_cast<size_t>(n)),
                {static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino)}};
  // The helper opens the path as the caller and checks it is still this
  // inode; a descriptor without a reachable path cannot be bound that way.
  if (file.path.empty() || file.path[0] != '/')
    throw Error(what + ": file descriptor " + std::to_string(fd) + " (" + file.path +
                ") names no path that can be bound");
  if (st.st_nlink == 0)
    throw Error(what + ": file descriptor " + std::to_string(fd) + " names a deleted file (" +
                file.path + ")");
  return file;
}

}  // namespace gpubox::bwrap
