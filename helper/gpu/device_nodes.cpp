#include "device_nodes.hpp"

#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <cerrno>

#include "text_file.hpp"

namespace gpubox::gpu {

std::optional<std::pair<unsigned, unsigned>> charDeviceNumber(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0 || !S_ISCHR(st.st_mode)) return std::nullopt;
  return std::pair{static_cast<unsigned>(major(st.st_rdev)),
                   static_cast<unsigned>(minor(st.st_rdev))};
}

std::optional<DeviceNode> checkNode(const std::string& root, const std::string& rel, unsigned major,
                                    unsigned minor, std::vector<std::string>& warnings) {
  std::string path = underRoot(root, rel);
  std::string want = std::to_string(major) + ":" + std::to_string(minor);
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno != ENOENT && errno != ENOTDIR)
      warnings.push_back(path + ": cannot stat (" + std::to_string(errno) + "); not bound");
    return std::nullopt;
  }
  if (!S_ISCHR(st.st_mode)) {
    warnings.push_back(path + ": not a character device (expected " + want + "); not bound");
    return std::nullopt;
  }
  unsigned gotMajor = ::major(st.st_rdev), gotMinor = ::minor(st.st_rdev);
  if (gotMajor != major || gotMinor != minor) {
    warnings.push_back(path + ": device number " + std::to_string(gotMajor) + ":" +
                       std::to_string(gotMinor) + ", expected " + want + "; not bound");
    return std::nullopt;
  }
  return DeviceNode{path, "/" + rel, major, minor};
}

}  // namespace gpubox::gpu
