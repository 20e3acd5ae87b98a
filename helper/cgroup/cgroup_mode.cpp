#include "cgroup_mode.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <sstream>
#include <vector>

#include "error.hpp"
#include "unique_fd.hpp"

namespace gpubox::cgroup {

namespace {

std::string readFile(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) throwErrno("reading " + path);
  std::string text;
  char buf[8192];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      throwErrno("reading " + path);
    }
    if (n == 0) return text;
    text.append(buf, static_cast<size_t>(n));
  }
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  for (;;) {
    const size_t end = s.find(sep, start);
    parts.push_back(s.substr(start, end == std::string_view::npos ? end : end - start));
    if (end == std::string_view::npos) return parts;
    start = end + 1;
  }
}

// mountinfo escapes space, tab, newline and backslash as \ooo (octal).
std::string unescape(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      const auto oct = [](char c) { return c >= '0' && c <= '7'; };
      if (oct(s[i + 1]) && oct(s[i + 2]) && oct(s[i + 3])) {
        out += static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
        i += 3;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

}  // namespace

const char* modeName(Mode mode) {
  switch (mode) {
    case Mode::None:
      return "none";
    case Mode::V1:
      return "v1";
    case Mode::V2:
      return "v2";
    case Mode::Hybrid:
      return "hybrid";
  }
  return "?";
}

Mounts parseMountinfo(std::string_view text) {
  Mounts mounts;
  bool anyV1Controller = false;
  for (std::string_view line : split(text, '\n')) {
    if (line.empty()) continue;
    // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS
    const size_t dash = line.find(" - ");
    if (dash == std::string_view::npos) continue;
    const auto head = split(line.substr(0, dash), ' ');
    const auto tail = split(line.substr(dash + 3), ' ');
    if (head.size() < 5 || tail.size() < 3) continue;
    const std::string_view fstype = tail[0];
    // The first mount of a hierarchy wins: later ones are usually bind
    // mounts of the same thing (or over-mounts we could not see through).
    if (fstype == "cgroup2") {
      if (mounts.v2Mount.empty()) {
        mounts.v2Mount = unescape(head[4]);
        mounts.v2Root = unescape(head[3]);
      }
    } else if (fstype == "cgroup") {
      bool devices = false, controller = false;
      for (std::string_view opt : split(tail[2], ',')) {
        if (opt == "devices") devices = true;
        // Named hierarchies (name=systemd) carry no controller; rw/ro and
        // friends are not controllers either.
        if (opt != "rw" && opt != "ro" && !opt.starts_with("name=") && opt != "none" &&
            opt != "noprefix" && opt != "clone_children" && opt != "xattr" &&
            !opt.starts_with("release_agent=")) {
          controller = true;
          mounts.v1.try_emplace(std::string(opt), V1Mount{unescape(head[4]), unescape(head[3])});
        }
      }
      anyV1Controller = anyV1Controller || controller;
      if (devices && mounts.v1DevicesMount.empty()) {
        mounts.v1DevicesMount = unescape(head[4]);
        mounts.v1DevicesRoot = unescape(head[3]);
      }
    }
  }
  const bool v2 = !mounts.v2Mount.empty();
  if (anyV1Controller)
    mounts.mode = v2 ? Mode::Hybrid : Mode::V1;
  else
    mounts.mode = v2 ? Mode::V2 : Mode::None;
  return mounts;
}

Mounts detectMounts() {
  return parseMountinfo(readFile("/proc/self/mountinfo"));
}

SelfCgroups parseProcCgroup(std::string_view text) {
  SelfCgroups self;
  for (std::string_view line : split(text, '\n')) {
    // ID:CONTROLLERS:PATH; the path may itself contain ':'.
    const size_t first = line.find(':');
    if (first == std::string_view::npos) continue;
    const size_t second = line.find(':', first + 1);
    if (second == std::string_view::npos) continue;
    const std::string_view id = line.substr(0, first);
    const std::string_view controllers = line.substr(first + 1, second - first - 1);
    const std::string path(line.substr(second + 1));
    if (id == "0" && controllers.empty()) {
      self.hasV2 = true;
      self.v2 = path;
      continue;
    }
    for (std::string_view c : split(controllers, ',')) {
      if (!c.empty() && !c.starts_with("name=")) self.v1[std::string(c)] = path;
      if (c == "devices") {
        self.hasV1Devices = true;
        self.v1Devices = path;
      }
    }
  }
  return self;
}

SelfCgroups selfCgroups() {
  return parseProcCgroup(readFile("/proc/self/cgroup"));
}

std::string cgroupDir(const std::string& mountPoint, const std::string& root,
                      const std::string& path) {
  // A cgroup namespace shows paths relative to its root, and such a path can
  // begin with "/.." when the process sits outside it: refuse those.
  if (path.empty() || path[0] != '/' || path.find("/..") != std::string::npos)
    throw Error("cannot use cgroup path '" + path + "' (outside this cgroup namespace?)");
  // Returns directly rather than assigning "/" to a string: GCC 12 warns
  // falsely (-Wrestrict, PR105329) about that assignment.
  std::string_view rel;
  if (root == "/" || root.empty()) {
    rel = path;
  } else if (path == root) {
    return mountPoint;
  } else if (path.starts_with(root + "/")) {
    rel = std::string_view(path).substr(root.size());
  } else {
    throw Error("cgroup " + path + " is not visible under " + mountPoint + " (its root is " + root +
                ")");
  }
  if (rel == "/") return mountPoint;
  return mountPoint + std::string(rel);
}

}  // namespace gpubox::cgroup
