// What gpubox-bwrap reads from the file descriptors its caller hands it:
// the contents of --file, --bind-data, --seccomp and --args, and the
// directory a --bind-fd names.
#pragma once

#include <cstddef>
#include <string>

#include "spec.hpp"

namespace gpubox::bwrap {

// Everything readable from FD (a pipe or a file, from where it stands) up to
// end of file. Throws gpubox::Error naming WHAT when it cannot be read or
// holds more than LIMIT bytes.
std::string readFdContents(int fd, size_t limit, const std::string& what);

// The file an open fd names: its path as /proc/self/fd shows it, and its
// inode. Throws gpubox::Error when FD is not open or names no path of this
// mount namespace (a socket, a pipe, a deleted directory).
struct OpenFile {
  std::string path;
  InodeId inode;
};
OpenFile describeOpenFd(int fd, const std::string& what);

}  // namespace gpubox::bwrap
