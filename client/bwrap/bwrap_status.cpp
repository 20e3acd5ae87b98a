#include "bwrap_status.hpp"

#include <unistd.h>

#include <cerrno>

namespace gpubox::bwrap {

namespace {

// bwrap's order; the user namespace is not among the ones it reports.
constexpr const char* kReported[] = {"cgroup", "ipc", "mnt", "net", "pid", "uts"};

std::string fields(const client::SandboxStarted& started, const std::string& separator) {
  std::string out = "\"child-pid\": " + std::to_string(started.sandboxPid);
  for (const char* name : kReported)
    for (const client::NamespaceId& id : started.namespaceIds)
      if (id.name == name)
        out += "," + separator + "\"" + id.name + "-namespace\": " + std::to_string(id.inode);
  return out;
}

}  // namespace

std::string infoJson(const client::SandboxStarted& started) {
  return "{\n    " + fields(started, "\n    ") + "\n}\n";
}

std::string statusStartJson(const client::SandboxStarted& started) {
  return "{ " + fields(started, " ") + " }\n";
}

std::string statusExitJson(int exitCode) {
  return "{ \"exit-code\": " + std::to_string(exitCode) + " }\n";
}

bool writeText(int fd, const std::string& text) {
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

}  // namespace gpubox::bwrap
