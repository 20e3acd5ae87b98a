#include "cgroup_fs.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>

#include "error.hpp"

namespace gpubox::cgroup {

std::optional<std::string> readControl(int dirFd, const char* file) {
  UniqueFd fd(::openat(dirFd, file, O_RDONLY | O_CLOEXEC));
  if (!fd) return std::nullopt;
  std::string text;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return std::nullopt;
    }
    if (n == 0) return text;
    text.append(buf, static_cast<size_t>(n));
  }
}

namespace {

// One write of `value`, again if a signal cut it short. The kernel checks for
// a pending signal before it even tries some writes (memory.limit_in_bytes,
// memory.max): the loop thread takes SIGCHLD, and the write would otherwise
// fail now and then with EINTR, and the sandbox with it. Every control value
// is idempotent, so writing it again is safe.
ssize_t writeValue(int fd, const std::string& value) {
  for (;;) {
    const ssize_t n = ::write(fd, value.data(), value.size());
    if (n >= 0 || errno != EINTR) return n;
  }
}

}  // namespace

void writeControl(int dirFd, const std::string& dir, const char* file, const std::string& value) {
  const std::string what = "writing " + value + " to " + dir + "/" + file;
  // O_TRUNC is a no-op on cgroupfs; on the plain files tests use it makes the
  // file hold exactly the last value written.
  UniqueFd fd(::openat(dirFd, file, O_WRONLY | O_TRUNC | O_CLOEXEC));
  if (!fd) throwErrno(what);
  const ssize_t n = writeValue(fd.get(), value);
  if (n != static_cast<ssize_t>(value.size())) throwErrno(what, n < 0 ? errno : EIO);
}

void ControlWrites::carryOut(int dirFd) noexcept {
  err = 0;
  failedAt = 0;
  if (values.empty()) return;
  UniqueFd fd(::openat(dirFd, file, O_WRONLY | O_TRUNC | O_CLOEXEC));
  if (!fd) {
    err = errno;
    return;
  }
  for (failedAt = 0; failedAt < values.size(); ++failedAt) {
    const std::string& value = values[failedAt];
    const ssize_t n = writeValue(fd.get(), value);
    if (n != static_cast<ssize_t>(value.size())) {
      err = n < 0 ? errno : EIO;
      return;
    }
  }
}

std::string ControlWrites::failure(const std::string& dir) const {
  const std::string& value = failedAt < values.size() ? values[failedAt] : std::string();
  return errnoMessage("writing " + value + " to " + dir + "/" + file, err);
}

void writeControlEach(int dirFd, const std::string& dir, const char* file,
                      const std::vector<std::string>& values) {
  ControlWrites writes{.file = file, .values = values};
  writes.carryOut(dirFd);
  if (writes.err != 0) throw Error(writes.failure(dir));
}

void writeControl(const std::string& dir, const char* file, const std::string& value) {
  UniqueFd dirFd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dirFd) throwErrno("writing " + value + " to " + dir + "/" + file);
  writeControl(dirFd.get(), dir, file, value);
}

bool hasControl(int dirFd, const char* file) {
  return ::faccessat(dirFd, file, F_OK, 0) == 0;
}

std::vector<pid_t> cgroupPids(int dirFd) {
  std::vector<pid_t> pids;
  const std::optional<std::string> text = readControl(dirFd, "cgroup.procs");
  if (!text) return pids;
  const char* p = text->data();
  const char* end = p + text->size();
  while (p < end) {
    pid_t pid = 0;
    const auto [next, ec] = std::from_chars(p, end, pid);
    if (ec == std::errc() && pid > 0) pids.push_back(pid);
    p = next;
    while (p < end && *p != '\n') ++p;  // skip anything malformed
    if (p < end) ++p;
  }
  return pids;
}

void validateCgroupName(const std::string& name) {
  const bool ok = !name.empty() && name.size() <= 128 && name != "." && name != ".." &&
                  name.find_first_not_of(
                      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                      "0123456789._-") == std::string::npos;
  if (!ok) throw Error("invalid sandbox cgroup name '" + name + "'");
}

MakeResult makeCgroupDir(const std::string& parent, const std::string& dir, UniqueFd* fd) {
  using Step = MakeResult::Step;
  // The parent was made at start, but someone may have removed it since: it
  // is made again then, not tried each time (on cgroupfs even a mkdir that
  // finds the directory takes the kernel's locks; six hierarchies per
  // sandbox on a v1 host).
  int made = ::mkdir(dir.c_str(), 0755);
  if (made != 0 && errno == ENOENT) {
    if (::mkdir(parent.c_str(), 0755) != 0 && errno != EEXIST) return {Step::Parent, errno};
    made = ::mkdir(dir.c_str(), 0755);
  }
  if (made != 0) return {Step::Dir, errno};
  *fd = UniqueFd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!*fd) {
    const int err = errno;
    ::rmdir(dir.c_str());
    return {Step::Open, err};
  }
  return {};
}

Error makeCgroupError(const std::string& parent, const std::string& dir, const MakeResult& r) {
  switch (r.failed) {
    case MakeResult::Step::Parent:
      return Error(errnoMessage("creating cgroup " + parent, r.err));
    case MakeResult::Step::Dir:
      if (r.err == EEXIST)
        return Error("cgroup " + dir + " already exists (a sandbox name was reused?)");
      return Error(errnoMessage("creating cgroup " + dir, r.err));
    case MakeResult::Step::Open:
      return Error(errnoMessage("opening cgroup " + dir, r.err));
    case MakeResult::Step::Done:
      break;
  }
  return Error("internal error: cgroup " + dir + " was made");
}

void makeDirsUnder(const std::string& base, const std::string& path) {
  if (path.size() < base.size() || path.compare(0, base.size(), base) != 0)
    throw Error("cgroup " + path + " is not under " + base);
  size_t pos = base.size();
  while (pos < path.size()) {
    const size_t next = path.find('/', pos + 1);
    const std::string prefix = path.substr(0, next);
    if (::mkdir(prefix.c_str(), 0755) != 0 && errno != EEXIST)
      throwErrno("creating cgroup " + prefix);
    if (next == std::string::npos) break;
    pos = next;
  }
}

}  // namespace gpubox::cgroup
