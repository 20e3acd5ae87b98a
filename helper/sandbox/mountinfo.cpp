#include "mountinfo.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <map>

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
  if (s.find('\\') == std::string_view::npos) return std::string(s);
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

// The words of one line, in turn; an empty view once there are no more.
// The kernel separates them with a space and writes a space, tab, newline
// or backslash inside one as an octal escape, but any other byte as it is:
// a mount point may hold a carriage return, which must not end the word.
class LineFields {
 public:
  explicit LineFields(std::string_view line) : rest_(line) {}
  std::string_view next() {
    const size_t start = rest_.find_first_not_of(kSpace);
    if (start == std::string_view::npos) {
      rest_ = {};
      return {};
    }
    rest_.remove_prefix(start);
    const size_t end = std::min(rest_.find(kSpace), rest_.size());
    const std::string_view word = rest_.substr(0, end);
    rest_.remove_prefix(end);
    return word;
  }

 private:
  static constexpr char kSpace = ' ';
  std::string_view rest_;
};

// WORD, all of it a decimal number that fits T.
template <typename T>
bool number(std::string_view word, T& value) {
  if (word.empty()) return false;
  const auto [end, ec] = std::from_chars(word.data(), word.data() + word.size(), value);
  return ec == std::errc() && end == word.data() + word.size();
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

// A hand-written split of each line, with no stream and no scanf: every
// sandbox whose plan binds a directory with mounts below it (`--ro-bind /
// /`) reads the whole table once, in a freshly forked init, where the
// streams' parse was a tenth of the init's CPU (docs/performance.md,
// eleventh slice).
std::vector<MountInfoEntry> parseMountInfo(std::string_view text) {
  std::vector<MountInfoEntry> out;
  while (!text.empty()) {
    const size_t eol = text.find('\n');
    const std::string_view line = text.substr(0, eol);
    text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 1);
    // id parent major:minor root mount-point options [optional...] - type source super
    LineFields fields(line);
    MountInfoEntry e;
    std::string_view devices, root, mountPoint;
    if (!number(fields.next(), e.id) || !number(fields.next(), e.parent)) continue;
    devices = fields.next();
    root = fields.next();
    mountPoint = fields.next();
    if (mountPoint.empty()) continue;
    const size_t colon = devices.find(':');
    unsigned major = 0, minor = 0;
    if (colon == std::string_view::npos || !number(devices.substr(0, colon), major) ||
        !number(devices.substr(colon + 1), minor))
      continue;
    bool sawSeparator = false;
    for (std::string_view word = fields.next(); !word.empty(); word = fields.next()) {
      if (word == "-") {
        sawSeparator = true;
        break;
      }
    }
    const std::string_view fsType = fields.next();
    if (!sawSeparator || fsType.empty()) continue;
    e.dev = makedev(major, minor);
    e.root = unescape(root);
    e.mountPoint = unescape(mountPoint);
    e.fsType = std::string(fsType);
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
