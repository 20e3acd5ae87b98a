#include "cli_args.hpp"

#include <map>

#include "error.hpp"

namespace gpubox::cli {

std::optional<MountKind> twoArgMountOption(const std::string& option) {
  static const std::map<std::string, MountKind> kinds = {{"--bind", MountKind::Bind},
                                                         {"--ro-bind", MountKind::RoBind},
                                                         {"--dev-bind", MountKind::DevBind},
                                                         {"--symlink", MountKind::Symlink}};
  auto it = kinds.find(option);
  if (it == kinds.end()) return std::nullopt;
  return it->second;
}

std::optional<MountKind> oneArgMountOption(const std::string& option) {
  static const std::map<std::string, MountKind> kinds = {{"--tmpfs", MountKind::Tmpfs},
                                                         {"--proc", MountKind::Proc},
                                                         {"--dev", MountKind::Dev},
                                                         {"--dir", MountKind::Dir},
                                                         {"--remount-ro", MountKind::RemountRo}};
  auto it = kinds.find(option);
  if (it == kinds.end()) return std::nullopt;
  return it->second;
}

std::string absoluteSource(const std::string& path, const std::string& cwd) {
  if (path.empty() || path[0] == '/') return path;
  std::string rel = path;
  while (rel.rfind("./", 0) == 0) rel = rel.substr(2);
  if (rel == ".") return cwd;
  return cwd == "/" ? "/" + rel : cwd + "/" + rel;
}

int parseFd(const std::string& option, const std::string& text) {
  size_t used = 0;
  int fd = -1;
  try {
    fd = std::stoi(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || fd < 0)
    throw Error(option + " '" + text + "' is not a file descriptor");
  return fd;
}

}  // namespace gpubox::cli
