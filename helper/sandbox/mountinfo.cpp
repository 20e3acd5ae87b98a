#include "mountinfo.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <map>
#include <sstream>

#include "error.hpp"
#include "unique_fd.hpp"

namespace gpubox {

namespace {

// Linux 6.8 (listmount, the 64-bit unique mount id); glibc 2.36 and
// Debian 12's kernel headers name neither. The number is the same on every
// architecture that has the generic table (x86_64 included).
#ifndef __NR_listmount
#define __NR_listmount 458
#endif
constexpr unsigned kStatxMntIdUnique = 0x00004000U;
struct MntIdRequest {
  uint32_t size;
  uint32_t spare;
  uint64_t mntId;
  uint64_t param;
};
constexpr uint32_t kMntIdRequestSizeVer0 = 24;
static_assert(sizeof(MntIdRequest) == kMntIdRequestSizeVer0);

// mountinfo writes space, tab, newline and backslash as \ooo.
std::string unescape(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '3' && s[i + 2] >= '0' &&
        s[i + 2] <= '7' && s[i + 3] >= '0' && s[i + 3] <= '7') {
      out += static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

}  // namespace

std::optional<bool> mountHasChildren(int fd) {
  struct statx stx = {};
  if (::statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, kStatxMntIdUnique, &stx) != 0 ||
      !(stx.stx_mask & kStatxMntIdUnique))
    return std::nullopt;
  MntIdRequest request = {kMntIdRequestSizeVer0, 0, stx.stx_mnt_id, 0};
  uint64_t child = 0;
  long n = ::syscall(__NR_listmount, &request, &child, 1, 0);
  if (n < 0) return std::nullopt;
  return n > 0;
}

std::vector<MountInfoEntry> parseMountInfo(std::string_view text) {
  std::vector<MountInfoEntry> out;
  std::istringstream lines{std::string(text)};
  std::string line;
  while (std::getline(lines, line)) {
    // id parent major:minor root mount-point options [optional...] - type source super
    std::istringstream fields(line);
    MountInfoEntry e;
    std::string devices, root, mountPoint, word;
    if (!(fields >> e.id >> e.parent >> devices >> root >> mountPoint)) continue;
    unsigned major = 0, minor = 0;
    if (std::sscanf(devices.c_str(), "%u:%u", &major, &minor) != 2) continue;
    e.dev = makedev(major, minor);
    e.root = unescape(root);
    bool sawSeparator = false;
    while (fields >> word) {
      if (word == "-") {
        sawSeparator = true;
        break;
      }
    }
    if (!sawSeparator || !(fields >> e.fsType)) continue;
    e.mountPoint = unescape(mountPoint);
    out.push_back(std::move(e));
  }
  return out;
}

std::vector<MountInfoEntry> readOwnMountInfo(const std::string& what) {
  UniqueFd info(::open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC));
  if (!info) throwErrno(what + ": open /proc/self/mountinfo");
  std::string text;
  char buf[65536];
  for (ssize_t n; (n = ::read(info.get(), buf, sizeof buf)) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throwErrno(what + ": read /proc/self/mountinfo");
    text.append(buf, static_cast<size_t>(n));
  }
  return parseMountInfo(text);
}

int mountIdOf(int fd, const std::string& what) {
  struct statx stx = {};
  if (::statx(fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, STATX_MNT_ID, &stx) != 0 ||
      !(stx.stx_mask & STATX_MNT_ID))
    throwErrno(what + ": statx(STATX_MNT_ID)");
  return static_cast<int>(stx.stx_mnt_id);
}

std::vector<MountInfoEntry> outermostOfTypeUnder(const std::vector<MountInfoEntry>& all, int top,
                                                 std::string_view fsType) {
  std::map<int, const MountInfoEntry*> byId;
  for (const MountInfoEntry& e : all) byId[e.id] = &e;
  std::vector<MountInfoEntry> out;
  for (const MountInfoEntry& e : all) {
    if (e.id == top || e.fsType != fsType) continue;
    // Walk up to TOP; give up at the namespace's root or a loop.
    bool under = false, coveredByAnother = false;
    int hops = 0;
    for (int id = e.parent; hops < 4096; ++hops) {
      if (id == top) {
        under = true;
        break;
      }
      auto it = byId.find(id);
      if (it == byId.end() || it->second->parent == id) break;
      if (it->second->fsType == fsType) coveredByAnother = true;
      id = it->second->parent;
    }
    if (under && !coveredByAnother) out.push_back(e);
  }
  return out;
}

}  // namespace gpubox
