#include "text_file.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <memory>

#include "error.hpp"
#include "unique_fd.hpp"

namespace gpubox::gpu {

std::optional<std::string> readSmallFile(const std::string& path, size_t maxBytes) {
  // O_NOFOLLOW: a driver file is never a symlink, so one means the tree is
  // not what we think. O_NONBLOCK: a FIFO planted in its place must not hang
  // the helper (rejected by the S_ISREG check below).
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
  if (!fd) {
    if (errno == ENOENT || errno == ENOTDIR) return std::nullopt;
    throwErrno(path);
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) throwErrno(path);
  if (!S_ISREG(st.st_mode)) throw Error(path + ": not a regular file");
  // procfs reports st_size 0, so the size check happens while reading.
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      throwErrno(path);
    }
    if (n == 0) break;
    if (out.size() + static_cast<size_t>(n) > maxBytes)
      throw Error(path + ": larger than " + std::to_string(maxBytes) + " bytes");
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

std::string_view trim(std::string_view s) {
  const char* ws = " \t\r\n";
  size_t b = s.find_first_not_of(ws);
  if (b == std::string_view::npos) return {};
  size_t e = s.find_last_not_of(ws);
  return s.substr(b, e - b + 1);
}

std::vector<std::pair<std::string, std::string>> parseKeyValues(std::string_view text) {
  std::vector<std::pair<std::string, std::string>> out;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    out.emplace_back(std::string(trim(line.substr(0, colon))),
                     std::string(trim(line.substr(colon + 1))));
  }
  return out;
}

std::optional<unsigned> parseUnsigned(std::string_view s, unsigned max) {
  if (s.empty() || s.size() > 10) return std::nullopt;
  unsigned long long v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<unsigned>(c - '0');
  }
  if (v > max) return std::nullopt;
  return static_cast<unsigned>(v);
}

std::string underRoot(const std::string& root, std::string_view rel) {
  if (root.empty() || root == "/") return "/" + std::string(rel);
  return root + "/" + std::string(rel);
}

std::optional<std::string> stripRoot(const std::string& root, const std::string& path) {
  if (root.empty() || root == "/") return path;
  if (path.size() <= root.size() || path.compare(0, root.size(), root) != 0 ||
      path[root.size()] != '/')
    return std::nullopt;
  return path.substr(root.size());
}

std::vector<std::string> listDir(const std::string& path) {
  std::vector<std::string> names;
  std::unique_ptr<DIR, int (*)(DIR*)> dir(::opendir(path.c_str()), ::closedir);
  if (!dir) return names;
  // A driver directory holds a handful of entries; the cap keeps a hostile
  // tree from making discovery unbounded.
  constexpr size_t kMaxEntries = 4096;
  while (struct dirent* e = ::readdir(dir.get())) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    names.push_back(std::move(name));
    if (names.size() >= kMaxEntries) break;
  }
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace gpubox::gpu
