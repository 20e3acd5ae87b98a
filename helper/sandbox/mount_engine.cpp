#include "mount_engine.hpp"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <sys/sysmacros.h>

#include <dirent.h>

#include <algorithm>
#include <cerrno>
#include <map>
#include <memory>
#include <optional>
#include <set>

#include "error.hpp"
#include "ld_cache.hpp"
#include "ld_cache_writer.hpp"
#include "mountinfo.hpp"
#include "setup_spans.hpp"
#include "syscalls.hpp"
#include "unique_fd.hpp"

namespace gpubox {

namespace {

// Where the new root's tmpfs is attached before pivot_root. Any directory
// works: every source is opened before it is covered.
constexpr const char* kStagingDir = "/tmp";

constexpr uint64_t kInRoot = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;

const char* const kDevNodes[] = {"null", "zero", "full", "random", "urandom", "tty"};
const char* const kProcReadOnly[] = {"sys", "sysrq-trigger", "irq", "bus"};

std::string relative(const std::string& path) {
  size_t i = path.find_first_not_of('/');
  return i == std::string::npos ? std::string(".") : path.substr(i);
}

std::string parentOf(const std::string& path) {
  size_t slash = path.find_last_of('/');
  return slash == 0 ? std::string("/") : path.substr(0, slash);
}

std::string baseName(const std::string& path) {
  return path.substr(path.find_last_of('/') + 1);
}

// A detached copy of the mount tree at `path` (recursive, as bwrap binds are).
UniqueFd cloneTree(int dirfd, const char* path, unsigned extraFlags = 0) {
  return UniqueFd(
      ::open_tree(dirfd, path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE | extraFlags));
}

void setAttrs(int treeFd, uint64_t attrs, const std::string& what) {
  if (attrs == 0) return;
  struct mount_attr attr = {};
  attr.attr_set = attrs;
  if (::mount_setattr(treeFd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof(attr)) != 0)
    throwErrno(what + ": cannot set mount flags");
}

UniqueFd newFs(const char* type, const std::vector<std::pair<const char*, const char*>>& opts,
               unsigned attrs, const std::string& what) {
  UniqueFd fs(::fsopen(type, FSOPEN_CLOEXEC));
  if (!fs) throwErrno(what + ": fsopen(" + std::string(type) + ")");
  for (const auto& [key, value] : opts) {
    int rc = value ? ::fsconfig(fs.get(), FSCONFIG_SET_STRING, key, value, 0)
                   : ::fsconfig(fs.get(), FSCONFIG_SET_FLAG, key, nullptr, 0);
    if (rc != 0) throwErrno(what + ": " + type + " option " + key);
  }
  if (::fsconfig(fs.get(), FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) != 0)
    throwErrno(what + ": cannot create " + std::string(type));
  UniqueFd mnt(::fsmount(fs.get(), FSMOUNT_CLOEXEC, attrs));
  if (!mnt) throwErrno(what + ": fsmount(" + std::string(type) + ")");
  return mnt;
}

}  // namespace

UniqueFd newProcfs(const std::string& what) {
  return newFs("proc", {}, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC, what);
}

namespace {

void attach(int treeFd, int targetFd, const std::string& what) {
  if (::move_mount(treeFd, "", targetFd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) !=
      0)
    throwErrno(what + ": cannot mount");
}

// bwrap's rule for the directories a step with --perms creates on the way:
// whoever the step lets in (group, others) may pass through its parents.
unsigned parentModeFor(const MountOp& op) {
  unsigned parent = 0755;
  if (op.mode && (*op.mode & 0070) == 0) parent &= ~0050u;
  if (op.mode && (*op.mode & 0007) == 0) parent &= ~0005u;
  return parent;
}

// Writes all of DATA to FD.
void writeAll(int fd, const std::string& data, const std::string& what) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throwErrno(what);
    done += static_cast<size_t>(n);
  }
}

dev_t deviceOf(int fd, const std::string& what) {
  struct stat st;
  if (::fstat(fd, &st) != 0) throwErrno(what + ": stat");
  return st.st_dev;
}

// Makes NAME (a directory or an empty file) in DIRFD for use as a mount
// point and returns an fd of it, opened through DIRFD by its one name: no
// walk from the root. move_mount takes any fd of its target, so a new
// file's own fd serves; O_EXCL makes sure it is the new one. Returns an
// invalid fd if NAME was already there; throws on any other failure.
UniqueFd newMountPointIn(int dirFd, const std::string& name, bool directory,
                         const std::string& what, const std::string& dest) {
  if (directory) {
    if (::mkdirat(dirFd, name.c_str(), 0755) == 0) {
      UniqueFd fd(::openat(dirFd, name.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!fd) throwErrno(what + ": cannot open the new directory " + dest);
      return fd;
    }
    if (errno != EEXIST) throwErrno(what + ": cannot create directory " + dest);
    return UniqueFd();
  }
  UniqueFd f(
      ::openat(dirFd, name.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0444));
  if (!f && errno != EEXIST) throwErrno(what + ": cannot create file " + dest);
  return f;
}

class RootBuilder {
 public:
  explicit RootBuilder(UniqueFd root) : root_(std::move(root)) {}

  int root() const { return root_.get(); }

  // A mount on "/" stacks over the root fd we hold, which keeps pointing at
  // the covered directory: reopen the staging path to get the top of the stack.
  void refresh() {
    UniqueFd fd(::open(kStagingDir, O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!fd) throwErrno("reopen new root");
    root_ = std::move(fd);
  }

  // Opens `path` inside the new root; symlinks resolve within the root.
  UniqueFd open(const std::string& path, int flags) const {
    return UniqueFd(sys::openat2(root_.get(), relative(path).c_str(),
                                 static_cast<uint64_t>(flags | O_CLOEXEC), 0, kInRoot));
  }

  bool exists(const std::string& path) const { return open(path, O_PATH).valid(); }

  // What the checks that decide whether a step is left out (shouldSkip)
  // learn of a directory, kept until a step could have changed it
  // (stepApplied): they ask about the same parent many times in a row (a
  // GPU's driver libraries and their links, all in one directory: 27
  // lookups of it per sandbox).
  bool dirExistsBetweenSteps(const std::string& path) {
    auto it = dirExists_.find(path);
    if (it != dirExists_.end()) return it->second;
    return dirExists_[path] = exists(path);
  }
  bool dirReadOnlyBetweenSteps(const std::string& path) {
    auto it = dirReadOnly_.find(path);
    if (it != dirReadOnly_.end()) return it->second;
    UniqueFd fd = open(path, O_PATH | O_DIRECTORY);
    struct statvfs vfs;
    return dirReadOnly_[path] = fd && ::fstatvfs(fd.get(), &vfs) == 0 && (vfs.f_flag & ST_RDONLY);
  }
  // After a step at SCOPE: what a step can change is at or below its
  // destination (a mount, a new file, directory or link, a remount), plus
  // directories made above it where they were missing. So every "missing"
  // is forgotten, and what was learnt of the rest holds on outside SCOPE:
  // a GPU's /proc/driver and /sys steps then ask about the same parents
  // once, not once a step.
  void stepApplied(const std::string& scope) {
    auto stale = [&](const std::string& path) {
      return scope == "/" || path == scope ||
             (path.size() > scope.size() && path.starts_with(scope) && path[scope.size()] == '/');
    };
    std::erase_if(dirExists_, [&](const auto& fact) { return !fact.second || stale(fact.first); });
    std::erase_if(dirReadOnly_, [&](const auto& fact) { return stale(fact.first); });
  }

  // The procfs instances this sandbox mounted itself (their st_dev): every
  // other procfs in the new root shows another pid namespace's processes.
  std::set<dev_t> ownProcfs;
  // Procfs instances made ahead by another process (see buildSandboxRoot),
  // used by --proc steps before making one of this process's own.
  std::vector<UniqueFd>* premadeProcfs = nullptr;
  // The tmpfs instances this sandbox mounted itself: what is made in them
  // lives and dies with the sandbox, never in a tree of the host's.
  std::set<dev_t> ownTmpfs;

  // mkdir -p inside the new root: each missing directory gets MODE (exactly:
  // the init's umask does not apply). Returns whether `path` itself was made.
  bool makeDirs(const std::string& path, const std::string& what, unsigned mode = 0755) {
    if (path == "/" || exists(path)) return false;
    makeDirs(parentOf(path), what, mode);
    UniqueFd parent = open(parentOf(path), O_PATH | O_DIRECTORY);
    if (!parent) throwErrno(what + ": cannot open " + parentOf(path));
    if (::mkdirat(parent.get(), baseName(path).c_str(), mode) != 0) {
      if (errno == EEXIST) return false;
      throwErrno(what + ": cannot create directory " + path);
    }
    if ((mode & ~0755u) != 0) changeMode(path, mode, what);
    return true;
  }

  // The directory `path` goes in, made (mkdir -p, PARENTMODE) when missing.
  UniqueFd parentDir(const std::string& path, const std::string& what, unsigned parentMode = 0755) {
    UniqueFd parent = open(parentOf(path), O_PATH | O_DIRECTORY);
    if (!parent && errno == ENOENT) {
      makeDirs(parentOf(path), what, parentMode);
      parent = open(parentOf(path), O_PATH | O_DIRECTORY);
    }
    if (!parent) throwErrno(what + ": cannot open " + parentOf(path));
    return parent;
  }

  // chmod of `path` inside the new root (symlinks resolved within it).
  void changeMode(const std::string& path, unsigned mode, const std::string& what) {
    UniqueFd fd = open(path, O_PATH);
    if (!fd) throwErrno(what + ": cannot open " + path);
    // An O_PATH fd cannot be fchmod'ed; its /proc/self/fd link can (the
    // init still sees the host's procfs, where it has a pid).
    const std::string link = "/proc/self/fd/" + std::to_string(fd.get());
    if (::fchmodat(AT_FDCWD, link.c_str(), mode, 0) != 0)
      throwErrno(what + ": cannot change the mode of " + path);
  }

  // Returns an fd of `dest` (O_PATH, or the new empty file's own), creating
  // it (directory or empty file) when missing, for use as a mount point
  // (attach); missing parents get PARENT_MODE.
  UniqueFd mountPoint(const std::string& dest, bool directory, const std::string& what,
                      unsigned parentMode = 0755) {
    UniqueFd fd = open(dest, O_PATH);
    if (fd) return fd;
    if (errno != ENOENT) throwErrno(what + ": cannot open destination " + dest);
    // The parent usually exists (every node of --dev, say): one lookup.
    UniqueFd parent = parentDir(dest, what, parentMode);
    fd = newMountPointIn(parent.get(), baseName(dest), directory, what, dest);
    if (fd) return fd;
    fd = open(dest, O_PATH);  // it appeared meanwhile
    if (!fd) throwErrno(what + ": cannot open destination " + dest);
    return fd;
  }

 private:
  UniqueFd root_;
  std::map<std::string, bool> dirExists_, dirReadOnly_;
};

// A DriverDir step's files: (host path, soname link or ""), as spec.hpp
// describes its source.
std::vector<std::pair<std::string, std::string>> driverDirEntries(const MountOp& op) {
  std::vector<std::pair<std::string, std::string>> out;
  size_t at = 0;
  while (at < op.source.size()) {
    size_t end = op.source.find('\n', at);
    if (end == std::string::npos) end = op.source.size();
    std::string line = op.source.substr(at, end - at);
    at = end + 1;
    size_t tab = line.find('\t');
    std::string host = line.substr(0, tab);
    std::string link = tab == std::string::npos ? "" : line.substr(tab + 1);
    if (host.empty() || host[0] != '/' || host.back() == '/' ||
        link.find('/') != std::string::npos || link == "." || link == "..")
      throw Error(describeMount(op) + ": malformed entry " + line);
    out.emplace_back(std::move(host), std::move(link));
  }
  return out;
}

struct PreparedStep {
  UniqueFd tree;  // binds: the detached source tree
  // A step that may be left out (skipIfVisible, optional) whose source is
  // not a directory: only an O_PATH fd until it is applied, when the tree
  // is cloned from it (treeForApply). A clone that is never attached costs
  // an RCU grace period when its fd closes (the kernel dissolves it), and
  // the driver's libraries are left out of most sandboxes; a file has no
  // mounts below it, so cloning it later copies the same thing.
  UniqueFd source;
  std::vector<UniqueFd> nodes;  // --dev: one clone per device node; DriverDir: O_PATH fds
  std::optional<struct stat> st;
};

// The tree to attach for a bind step: the clone made in phase one, or one
// made now from its O_PATH fd.
int treeForApply(PreparedStep& step, const std::string& what) {
  if (!step.tree && step.source) {
    step.tree = cloneTree(step.source.get(), "", AT_EMPTY_PATH);
    if (!step.tree) throwErrno(what + ": cannot clone the source");
  }
  return step.tree.get();
}

// Phase one: open every source before anything is covered. Runs with the
// caller's credentials, so this is where "could the caller open it" is decided.
std::vector<PreparedStep> prepareSources(const std::vector<MountOp>& plan,
                                         const BindSourceRule* rule) {
  std::vector<PreparedStep> steps(plan.size());
  for (size_t i = 0; i < plan.size(); ++i) {
    const MountOp& op = plan[i];
    PreparedStep& step = steps[i];
    if (isBind(op.kind) && op.checkSource && rule) {
      // Opened once, judged by where the open fd really is, cloned from
      // that same fd: nothing to swap in between.
      UniqueFd source(::open(op.source.c_str(), O_PATH | O_CLOEXEC));
      if (!source && errno == ENOENT && op.ifSourceExists) continue;
      if (!source) throwErrno(describeMount(op) + ": cannot open source " + op.source);
      checkBindSource(op, source.get(), *rule);
      step.tree = cloneTree(source.get(), "", AT_EMPTY_PATH);
      if (!step.tree) throwErrno(describeMount(op) + ": cannot open source " + op.source);
      struct stat st;
      if (::fstat(step.tree.get(), &st) != 0) throwErrno(describeMount(op) + ": stat source");
      step.st = st;
    } else if (isBind(op.kind) && (op.optional || op.skipIfVisible)) {
      step.source = UniqueFd(::open(op.source.c_str(), O_PATH | O_CLOEXEC));
      if (!step.source) continue;  // a source that is not there: the step is left out
      struct stat st;
      if (::fstat(step.source.get(), &st) != 0) throwErrno(describeMount(op) + ": stat source");
      step.st = st;
      // A directory is cloned now, before the new root is mounted, so that
      // its submounts are the host's and never the sandbox's own.
      if (S_ISDIR(st.st_mode)) {
        step.tree = cloneTree(step.source.get(), "", AT_EMPTY_PATH);
        step.source.reset();
        if (!step.tree) step.st.reset();
      }
    } else if (isBind(op.kind)) {
      step.tree = cloneTree(AT_FDCWD, op.source.c_str());
      if (!step.tree) {
        if (errno == ENOENT && op.ifSourceExists) continue;
        throwErrno(describeMount(op) + ": cannot open source " + op.source);
      }
      struct stat st;
      if (::fstat(step.tree.get(), &st) != 0) throwErrno(describeMount(op) + ": stat source");
      step.st = st;
    } else if (op.kind == MountKind::DriverDir) {
      // The driver's files, opened now: the staging mount may cover them.
      // (O_PATH fds of files, cloned when the step is applied: it is
      // optional, and left out of roots without /run.)
      for (const auto& [host, link] : driverDirEntries(op)) {
        UniqueFd file(::open(host.c_str(), O_PATH | O_CLOEXEC));
        if (!file) throwErrno(describeMount(op) + ": cannot open the driver's " + host);
        step.nodes.push_back(std::move(file));
      }
    } else if (op.kind == MountKind::Dev) {
      for (const char* node : kDevNodes) {
        std::string path = std::string("/dev/") + node;
        UniqueFd tree = cloneTree(AT_FDCWD, path.c_str());
        if (!tree) throwErrno(describeMount(op) + ": cannot open host " + path);
        step.nodes.push_back(std::move(tree));
      }
    }
  }
  for (size_t i = 0; i < plan.size(); ++i) {
    const MountOp& op = plan[i];
    if (!op.sourceInode || !steps[i].st) continue;
    // bwrap's --bind-fd: the client named the directory it holds open by
    // path and identity; anything else at that path now is refused.
    if (steps[i].st->st_dev != op.sourceInode->dev || steps[i].st->st_ino != op.sourceInode->ino)
      throw Error(describeMount(op) + ": the source is no longer the file the descriptor named (" +
                  op.source + " was replaced)");
  }
  return steps;
}

void applyBind(RootBuilder& root, const MountOp& op, PreparedStep& step) {
  const std::string what = describeMount(op);
  bool directory = S_ISDIR(step.st->st_mode);
  UniqueFd target = root.mountPoint(op.dest, directory, what, parentModeFor(op));
  uint64_t attrs = MOUNT_ATTR_NOSUID;
  if (op.kind != MountKind::DevBind) attrs |= MOUNT_ATTR_NODEV;
  if (op.kind == MountKind::RoBind) attrs |= MOUNT_ATTR_RDONLY;
  if (op.hardened) attrs |= MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOEXEC;
  const int tree = treeForApply(step, what);
  setAttrs(tree, attrs, what);
  attach(tree, target.get(), what);
}

void applyProc(RootBuilder& root, const MountOp& op) {
  const std::string what = describeMount(op);
  UniqueFd target = root.mountPoint(op.dest, true, what);
  UniqueFd proc;
  if (root.premadeProcfs != nullptr && !root.premadeProcfs->empty()) {
    proc = std::move(root.premadeProcfs->back());
    root.premadeProcfs->pop_back();
  } else {
    proc = newProcfs(what);
  }
  struct stat st;
  if (::fstat(proc.get(), &st) != 0) throwErrno(what + ": stat the new procfs");
  root.ownProcfs.insert(st.st_dev);
  attach(proc.get(), target.get(), what);
  // As bwrap does: the parts of /proc that reach host-wide kernel state are
  // read-only even though the sandbox's procfs is its own.
  for (const char* sub : kProcReadOnly) {
    std::string path = op.dest + "/" + sub;
    UniqueFd at = root.open(path, O_PATH | O_NOFOLLOW);
    if (!at) continue;
    UniqueFd tree = cloneTree(at.get(), "", AT_EMPTY_PATH);
    if (!tree) throwErrno(what + ": cannot clone " + path);
    setAttrs(tree.get(),
             MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC, what);
    attach(tree.get(), at.get(), what);
  }
}

void symlinkAt(RootBuilder& root, const std::string& target, const std::string& dest,
               const std::string& what) {
  UniqueFd parent = root.parentDir(dest, what);
  if (::symlinkat(target.c_str(), parent.get(), baseName(dest).c_str()) == 0) return;
  int err = errno;
  if (err == EEXIST) {
    // Like bwrap: an identical existing link is fine.
    char buf[4096];
    ssize_t n = ::readlinkat(parent.get(), baseName(dest).c_str(), buf, sizeof(buf));
    if (n >= 0 && std::string(buf, static_cast<size_t>(n)) == target) return;
  }
  throwErrno(what + ": cannot create symlink " + dest, err);
}

void applyDev(RootBuilder& root, const MountOp& op, PreparedStep& step) {
  const std::string what = describeMount(op);
  UniqueFd target = root.mountPoint(op.dest, true, what);
  // nodev: the nodes below are binds, each with its own mount flags, so a
  // node made in the tmpfs itself would be the only one it affects. A tmpfs
  // made in a user namespace is nodev anyway; without one this keeps it so.
  UniqueFd tmp = newFs("tmpfs", {{"mode", "0755"}},
                       MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC, what);
  root.ownTmpfs.insert(deviceOf(tmp.get(), what));
  attach(tmp.get(), target.get(), what);
  // Everything below is made in that tmpfs, empty and just mounted, through
  // its own fd (which now is the directory at op.dest): nothing is looked up
  // from the root again.
  auto mountPointIn = [&](const char* name, bool directory) {
    const std::string dest = op.dest + "/" + name;
    UniqueFd fd = newMountPointIn(tmp.get(), name, directory, what, dest);
    if (!fd) throwErrno(what + ": cannot create " + dest, EEXIST);
    return fd;
  };
  auto linkIn = [&](const char* target, const char* name) {
    if (::symlinkat(target, tmp.get(), name) != 0)
      throwErrno(what + ": cannot create symlink " + op.dest + "/" + name);
  };
  for (size_t i = 0; i < step.nodes.size(); ++i) {
    UniqueFd at = mountPointIn(kDevNodes[i], false);
    setAttrs(step.nodes[i].get(), MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC, what);
    attach(step.nodes[i].get(), at.get(), what);
  }
  UniqueFd pts = mountPointIn("pts", true);
  UniqueFd devpts =
      newFs("devpts", {{"newinstance", nullptr}, {"ptmxmode", "0666"}, {"mode", "620"}},
            MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC, what);
  attach(devpts.get(), pts.get(), what);
  linkIn("pts/ptmx", "ptmx");
  UniqueFd shm = mountPointIn("shm", true);
  UniqueFd shmFs = newFs("tmpfs", {{"mode", "1777"}}, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, what);
  attach(shmFs.get(), shm.get(), what);
  linkIn("/proc/self/fd", "fd");
  linkIn("/proc/self/fd/0", "stdin");
  linkIn("/proc/self/fd/1", "stdout");
  linkIn("/proc/self/fd/2", "stderr");
  // As bwrap's /dev: the name exists (reading it needs CAP_SYS_RAWIO).
  linkIn("/proc/kcore", "core");
}

// --file: a file of the new root's own (bwrap's: replaced if it exists).
void applyFile(RootBuilder& root, const MountOp& op) {
  const std::string what = describeMount(op);
  UniqueFd parent = root.parentDir(op.dest, what, parentModeFor(op));
  const mode_t mode = op.mode.value_or(0666);
  UniqueFd f(::openat(parent.get(), baseName(op.dest).c_str(),
                      O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, mode));
  if (!f) throwErrno(what);
  writeAll(f.get(), op.source, what);
  if (::fchmod(f.get(), mode) != 0) throwErrno(what + ": chmod");
}

// --bind-data, --ro-bind-data: the contents go into a file on a scratch
// tmpfs of the init's (mounted under the new root, so no path of the
// sandbox reaches it), and that one file is bound on the destination.
void applyDataBind(RootBuilder& root, const MountOp& op, int scratchFd, size_t index) {
  const std::string what = describeMount(op);
  const std::string name = "data-" + std::to_string(index);
  {
    UniqueFd f(::openat(scratchFd, name.c_str(),
                        O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!f) throwErrno(what + ": cannot create its file");
    writeAll(f.get(), op.source, what);
    if (::fchmod(f.get(), op.mode.value_or(0600)) != 0) throwErrno(what + ": chmod");
  }
  UniqueFd tree = cloneTree(scratchFd, name.c_str());
  if (!tree) throwErrno(what + ": cannot clone its file");
  UniqueFd target = root.mountPoint(op.dest, false, what, parentModeFor(op));
  uint64_t attrs = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
  if (op.kind == MountKind::RoBindData) attrs |= MOUNT_ATTR_RDONLY;
  setAttrs(tree.get(), attrs, what);
  attach(tree.get(), target.get(), what);
}

// Whether `path`, which the caller found missing, could not be created
// because its nearest existing ancestor is on a read-only mount.
bool missingUnderReadOnly(RootBuilder& root, const std::string& path) {
  std::string dir = parentOf(path);
  while (dir != "/" && !root.dirExistsBetweenSteps(dir)) dir = parentOf(dir);
  return root.dirReadOnlyBetweenSteps(dir);
}

// Whether an optional or skip-if-visible step should be left out. A
// skip-if-visible step (the driver's libraries, nvidia-smi) is also left out
// when the sandbox root is read-only where it would go: the root then is a
// host tree the caller chose, and the step is reported as skipped.
bool shouldSkip(RootBuilder& root, const MountOp& op, const PreparedStep& step) {
  if (op.optional && !root.dirExistsBetweenSteps(parentOf(op.dest))) return true;
  // An optional mount over something that is not there (say /proc/driver on
  // a host without drivers) has nothing to cover: skip it rather than try to
  // create a directory inside procfs.
  if (op.optional &&
      (op.kind == MountKind::Tmpfs || op.kind == MountKind::RemountRo ||
       op.kind == MountKind::LoaderCache) &&
      !root.exists(op.dest))
    return true;
  // No driver directory (its step was skipped): nothing to add to a cache.
  if (op.optional && op.kind == MountKind::LoaderCache && !root.exists(op.source)) return true;
  if (isBind(op.kind) && !step.tree && !step.source) return true;  // optional source missing
  if (op.skipIfVisible) {
    if (op.kind == MountKind::Symlink) {
      UniqueFd fd = root.open(op.dest, O_PATH | O_NOFOLLOW);
      return fd.valid() || missingUnderReadOnly(root, op.dest);
    }
    if (isBind(op.kind)) {
      UniqueFd fd = root.open(op.dest, O_PATH);
      struct stat st;
      if (fd && ::fstat(fd.get(), &st) == 0 && st.st_dev == step.st->st_dev &&
          st.st_ino == step.st->st_ino)
        return true;
      return !fd && missingUnderReadOnly(root, op.dest);
    }
  }
  return false;
}

// Where a DriverDir's tmpfs goes (/run/gpubox-driver) must be made without
// leaving anything in the root, which may be a read-only tree or a
// writable one of the caller's. Its parent (/run) is the FHS's runtime
// state, emptied at every boot: when it is a plain directory of the root
// with nothing mounted below it, it is covered with a fresh tmpfs, as a
// booted system's /run is; when it already is a tmpfs of this sandbox's
// (--tmpfs /run), the directory is made in it. Anything else (the host's
// /run bound in, a plan that mounts things below /run) is refused with
// what to do: covering it would hide the caller's mounts, creating in it
// would leave a stray directory behind.
void prepareDriverParent(RootBuilder& root, const MountOp& op) {
  const std::string what = describeMount(op);
  const std::string parent = parentOf(op.dest);
  if (root.exists(op.dest)) {
    UniqueFd at = root.open(op.dest, O_PATH);
    if (root.ownTmpfs.count(deviceOf(at.get(), what))) return;
  }
  UniqueFd at = root.open(parent, O_PATH | O_DIRECTORY);
  if (!at) throwErrno(what + ": cannot open " + parent);
  if (root.ownTmpfs.count(deviceOf(at.get(), what))) return;
  const int id = mountIdOf(at.get(), what);
  const std::string staged = std::string(kStagingDir) + parent;
  for (const MountInfoEntry& e : readOwnMountInfo(what)) {
    bool below = e.mountPoint.compare(0, staged.size() + 1, staged + "/") == 0;
    if (below || (e.id == id && e.mountPoint == staged))
      throw Error(what + ": " + parent +
                  " is or holds a mount (the plan's, or one a bind brought along), so making " +
                  op.dest + " would hide it or write into it: put --tmpfs " + parent +
                  " in the plan, before any mount below it");
  }
  UniqueFd fresh = newFs("tmpfs", {{"mode", "0755"}, {"size", "1m"}},
                         MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, what + " (" + parent + ")");
  root.ownTmpfs.insert(deviceOf(fresh.get(), what));
  attach(fresh.get(), at.get(), what + " (" + parent + ")");
}

// The driver's files, each bound read-only into a tmpfs of their own at
// op.dest, their soname links next to them, nvidia-smi in bin/; then the
// tmpfs is made read-only, so the loader's view of it cannot change.
void applyDriverDir(RootBuilder& root, const MountOp& op, PreparedStep& step) {
  const std::string what = describeMount(op);
  prepareDriverParent(root, op);
  UniqueFd target = root.mountPoint(op.dest, true, what);
  UniqueFd dir = newFs("tmpfs", {{"mode", "0755"}, {"size", "1m"}},
                       MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, what);
  root.ownTmpfs.insert(deviceOf(dir.get(), what));
  attach(dir.get(), target.get(), what);
  const auto entries = driverDirEntries(op);
  for (size_t i = 0; i < entries.size(); ++i) {
    const auto& [host, link] = entries[i];
    const std::string name = baseName(host);
    const std::string dest = op.dest + (name == "nvidia-smi" ? "/bin/" : "/") + name;
    UniqueFd at = root.mountPoint(dest, false, what);
    UniqueFd tree = cloneTree(step.nodes[i].get(), "", AT_EMPTY_PATH);
    if (!tree) throwErrno(what + ": cannot clone the driver's " + host);
    setAttrs(tree.get(), MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, what);
    attach(tree.get(), at.get(), what + ": " + host);
    if (!link.empty()) symlinkAt(root, name, op.dest + "/" + link, what);
  }
  struct mount_attr attr = {};
  attr.attr_set = MOUNT_ATTR_RDONLY;
  if (::mount_setattr(dir.get(), "", AT_EMPTY_PATH, &attr, sizeof(attr)) != 0)
    throwErrno(what + ": make it read-only");
}

// The root's loader cache, read as the caller (the init never runs a
// program of the root's, ldconfig included), with every library of the
// driver directory op.source added (ld_cache_writer.hpp), written to the
// scratch tmpfs and bound read-only over op.dest. The root's file is never
// written.
void applyLoaderCache(RootBuilder& root, const MountOp& op, int scratchFd, size_t index) {
  const std::string what = describeMount(op);
  std::vector<gpu::LdCacheEntry> added;
  {
    UniqueFd dir = root.open(op.source, O_RDONLY | O_DIRECTORY);
    if (!dir) throwErrno(what + ": cannot open " + op.source);
    std::unique_ptr<DIR, int (*)(DIR*)> d(::fdopendir(dir.get()), ::closedir);
    if (!d) throwErrno(what + ": cannot list " + op.source);
    (void)dir.release();  // the DIR owns it now
    while (struct dirent* ent = ::readdir(d.get())) {
      std::string name = ent->d_name;
      if (name.starts_with("lib") && name.find(".so") != std::string::npos)
        added.push_back({.soname = name, .path = op.source + "/" + name});
    }
  }
  std::string current;
  {
    UniqueFd f = root.open(op.dest, O_RDONLY);
    if (!f) throwErrno(what + ": cannot open " + op.dest);
    struct stat st;
    if (::fstat(f.get(), &st) != 0) throwErrno(what + ": stat " + op.dest);
    if (!S_ISREG(st.st_mode) || static_cast<size_t>(st.st_size) > gpu::kMaxLdCache)
      throw Error(what + ": " + op.dest + " is not a regular file of at most 16 MiB");
    current.resize(static_cast<size_t>(st.st_size));
    if (::pread(f.get(), current.data(), current.size(), 0) != st.st_size)
      throwErrno(what + ": read " + op.dest);
  }
  const std::string image = gpu::mergeLdCache(current, std::move(added));
  const std::string name = "ld.so.cache-" + std::to_string(index);
  {
    UniqueFd f(::openat(scratchFd, name.c_str(),
                        O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0644));
    if (!f) throwErrno(what + ": cannot create its file");
    writeAll(f.get(), image, what);
  }
  UniqueFd tree = cloneTree(scratchFd, name.c_str());
  if (!tree) throwErrno(what + ": cannot clone its file");
  UniqueFd target = root.open(op.dest, O_PATH);
  if (!target) throwErrno(what + ": cannot open " + op.dest);
  setAttrs(tree.get(), MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, what);
  attach(tree.get(), target.get(), what);
}

void applyStep(RootBuilder& root, const MountOp& op, PreparedStep& step, int scratchFd,
               size_t index) {
  const std::string what = describeMount(op);
  switch (op.kind) {
    case MountKind::Bind:
    case MountKind::RoBind:
    case MountKind::DevBind:
      applyBind(root, op, step);
      break;
    case MountKind::Tmpfs: {
      UniqueFd target = root.mountPoint(op.dest, true, what, parentModeFor(op));
      char mode[16];
      std::snprintf(mode, sizeof(mode), "%04o", op.mode.value_or(0755));
      std::vector<std::pair<const char*, const char*>> options = {{"mode", mode}};
      const std::string size = std::to_string(op.sizeBytes);
      if (op.sizeBytes) options.push_back({"size", size.c_str()});
      UniqueFd tmp = newFs("tmpfs", options, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, what);
      root.ownTmpfs.insert(deviceOf(tmp.get(), what));
      attach(tmp.get(), target.get(), what);
      break;
    }
    case MountKind::Mqueue: {
      UniqueFd target = root.mountPoint(op.dest, true, what);
      UniqueFd mq =
          newFs("mqueue", {}, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC, what);
      attach(mq.get(), target.get(), what);
      break;
    }
    case MountKind::Chmod:
      root.changeMode(op.dest, *op.mode, what);
      break;
    case MountKind::BindData:
    case MountKind::RoBindData:
      applyDataBind(root, op, scratchFd, index);
      break;
    case MountKind::Proc:
      applyProc(root, op);
      break;
    case MountKind::Dev:
      applyDev(root, op, step);
      break;
    case MountKind::Dir: {
      // The usual case first, in one lookup: a new directory in an existing
      // one. Anything else (a missing parent, a name already taken) takes
      // the general way below.
      UniqueFd parent =
          op.dest == "/" ? UniqueFd() : root.open(parentOf(op.dest), O_PATH | O_DIRECTORY);
      if (parent &&
          ::mkdirat(parent.get(), baseName(op.dest).c_str(), op.mode.value_or(0755)) == 0) {
        if (op.mode) root.changeMode(op.dest, *op.mode, what);
        break;
      }
      // An existing directory keeps its mode, as with bwrap.
      if (!root.exists(op.dest)) {
        root.makeDirs(parentOf(op.dest), what, parentModeFor(op));
        root.makeDirs(op.dest, what, op.mode.value_or(0755));
        if (op.mode) root.changeMode(op.dest, *op.mode, what);
      }
      break;
    }
    case MountKind::Symlink:
      symlinkAt(root, op.source, op.dest, what);
      break;
    case MountKind::RemountRo: {
      UniqueFd target = root.open(op.dest, O_PATH);
      if (!target) throwErrno(what + ": cannot open " + op.dest);
      struct mount_attr attr = {};
      attr.attr_set = MOUNT_ATTR_RDONLY;
      if (::mount_setattr(target.get(), "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof(attr)) != 0)
        throwErrno(what);
      break;
    }
    case MountKind::File:
      applyFile(root, op);
      break;
    case MountKind::DriverDir:
      applyDriverDir(root, op, step);
      break;
    case MountKind::LoaderCache:
      applyLoaderCache(root, op, scratchFd, index);
      break;
  }
}

// A bind can bring a procfs of the host's along (--ro-bind / / without
// --proc). Through it, /proc/PID/root and /cwd of a host process of the same
// uid lead out of the sandbox, and /proc/PID/environ shows its secrets:
// without a user namespace between the two (user_namespace = "never")
// nothing else stops that. Each such procfs is covered with an empty
// read-only tmpfs, in both modes; the sandbox's own (--proc) is untouched.
void coverForeignProcfs(RootBuilder& root, const MountOp& op) {
  const std::string what = describeMount(op) + ": cover the host's procfs it brings along";
  UniqueFd at = root.open(op.dest, O_PATH);
  if (!at) throwErrno(what + ": open " + op.dest);
  // Most binds bring no mount along (a GPU's /proc directory, a working
  // directory): nothing to look for then, and no mountinfo to read.
  if (mountHasChildren(at.get()) == false) return;
  const int top = mountIdOf(at.get(), what);
  const std::vector<MountInfoEntry> all = readOwnMountInfo(what);
  std::string topPoint;
  for (const MountInfoEntry& e : all)
    if (e.id == top) topPoint = e.mountPoint;
  if (topPoint.empty()) throw Error(what + ": the bind is not in /proc/self/mountinfo");
  for (const MountInfoEntry& e : outermostOfTypeUnder(all, top, "proc")) {
    if (e.mountPoint.compare(0, topPoint.size(), topPoint) != 0) continue;
    const std::string inside =
        (op.dest == "/" ? "" : op.dest) + e.mountPoint.substr(topPoint.size());
    UniqueFd target = root.open(inside, O_PATH | O_DIRECTORY);
    if (!target) throwErrno(what + ": open " + inside);
    UniqueFd empty =
        newFs("tmpfs", {{"mode", "0555"}, {"size", "4k"}},
              MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC, what);
    attach(empty.get(), target.get(), what + " at " + inside);
  }
}

void maskSockets(RootBuilder& root, const std::vector<MaskedSocket>& masks) {
  for (const MaskedSocket& mask : masks) {
    UniqueFd at = root.open(mask.path, O_PATH | O_NOFOLLOW);
    struct stat st;
    if (!at || ::fstat(at.get(), &st) != 0) continue;
    if (!S_ISSOCK(st.st_mode) || st.st_dev != mask.dev || st.st_ino != mask.ino) continue;
    UniqueFd null = cloneTree(AT_FDCWD, "/dev/null");
    if (!null) throwErrno("hide the helper socket: open /dev/null");
    attach(null.get(), at.get(), "hide the helper socket " + mask.path);
  }
}

// Covers each existing path of HIDE; returns the indices it covered.
std::vector<size_t> hidePaths(RootBuilder& root, const std::vector<std::string>& hide) {
  std::vector<size_t> hidden;
  for (size_t i = 0; i < hide.size(); ++i) {
    UniqueFd at = root.open(hide[i], O_PATH);
    struct stat st;
    if (!at || ::fstat(at.get(), &st) != 0) continue;
    const std::string what = "hide " + hide[i];
    if (S_ISDIR(st.st_mode)) {
      UniqueFd empty =
          newFs("tmpfs", {{"mode", "0700"}, {"size", "4k"}},
                MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC, what);
      attach(empty.get(), at.get(), what);
    } else {
      UniqueFd null = cloneTree(AT_FDCWD, "/dev/null");
      if (!null) throwErrno(what + ": open /dev/null");
      mount_attr attr = {};
      attr.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC;
      if (::mount_setattr(null.get(), "", AT_EMPTY_PATH, &attr, sizeof(attr)) != 0)
        throwErrno(what);
      attach(null.get(), at.get(), what);
    }
    hidden.push_back(i);
  }
  return hidden;
}

// A path as /proc/PID/mountinfo writes it (space, tab, newline and
// backslash as \ooo).
// Refuses a new root in which a procfs the sandbox did not mount itself is
// visible (a plan binding the host's / without --proc over its /proc, or
// binding a procfs directly). In a user namespace of its own the kernel
// keeps the sandbox out of other namespaces' /proc/PID/{root,cwd,mem,environ}
// (ptrace access needs the same user namespace); without one (never mode) a
// sandboxed process of the same uid as a host process would pass that check
// and reach the host's mount namespace through /proc/PID/root. Covered
// (shadowed) procfs mounts are fine: nothing can uncover them.
void refuseForeignProcfs(RootBuilder& root, int rootMountFd) {
  const std::string what = "check the new root for a foreign procfs";
  const int rootMountId = mountIdOf(rootMountFd, what);
  const std::vector<MountInfoEntry> entries = readOwnMountInfo(what);
  std::string prefix;
  for (const MountInfoEntry& e : entries)
    if (e.id == rootMountId) prefix = e.mountPoint;
  if (prefix.empty()) throw Error("cannot find the new root in /proc/self/mountinfo");
  for (const MountInfoEntry& e : entries) {
    if (e.fsType != "proc" || root.ownProcfs.count(e.dev)) continue;
    if (e.mountPoint.compare(0, prefix.size() + 1, prefix + "/") != 0) continue;
    const std::string inside = e.mountPoint.substr(prefix.size());
    UniqueFd at = root.open(inside, O_PATH | O_NOFOLLOW);
    if (!at || mountIdOf(at.get(), what) != e.id) continue;  // covered by a later mount
    throw Error(inside + ": the plan shows a procfs of another pid namespace there (the host's " +
                e.root +
                "); without a user namespace (--user-namespace never) its /proc/PID/root "
                "would lead a sandboxed process out to the host, so the sandbox is refused: put "
                "--proc " +
                inside + " over it, or leave it out of the plan");
  }
}

}  // namespace

// Where a step's changes can be seen (RootBuilder::stepApplied): below its
// destination; a driver directory may cover its parent (/run) with a
// tmpfs; a mode change is taken to reach everything, since another bind of
// the same host directory shows it elsewhere.
std::string changedUnder(const MountOp& op) {
  if (op.kind == MountKind::Chmod) return "/";
  if (op.kind == MountKind::DriverDir) return parentOf(op.dest);
  return op.dest;
}

MountOutcome buildSandboxRoot(const std::vector<MountOp>& plan,
                              const std::vector<MaskedSocket>& masks,
                              const std::vector<std::string>& hide,
                              const BindSourceRule* bindSources, bool inOwnUserNamespace,
                              std::vector<UniqueFd>* procfs) {
  // Nothing we mount may propagate back to the host, nor host mounts in.
  // In a new user namespace the kernel has already turned the copied shared
  // mounts into slaves; without one (--user-namespace never) they are still
  // peers of the host's until this call, so it comes before any mount.
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
    throwErrno("make mounts private");
  setupspans::mark("private");
  std::vector<PreparedStep> steps = prepareSources(plan, bindSources);
  setupspans::mark("sources");

  UniqueFd stagingFd(::open(kStagingDir, O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!stagingFd) throwErrno(std::string("open staging directory ") + kStagingDir);
  // Files of --bind-data steps are made on a scratch tmpfs attached first,
  // under the new root: a bind can only be cloned from an attached mount.
  // It goes with the old root after pivot_root.
  UniqueFd scratch;
  if (std::any_of(plan.begin(), plan.end(), [](const MountOp& op) {
        return op.kind == MountKind::BindData || op.kind == MountKind::RoBindData ||
               op.kind == MountKind::LoaderCache;
      })) {
    scratch = newFs("tmpfs", {{"mode", "0700"}},
                    MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC, "data files");
    attach(scratch.get(), stagingFd.get(), "data files");
  }
  UniqueFd rootFs =
      newFs("tmpfs", {{"mode", "0755"}}, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, "new root");
  attach(rootFs.get(), stagingFd.get(), "new root");
  UniqueFd rootFd(::open(kStagingDir, O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!rootFd) throwErrno("open new root");
  RootBuilder root(std::move(rootFd));
  root.premadeProcfs = procfs;
  setupspans::mark("newroot");

  MountOutcome outcome;
  for (size_t i = 0; i < plan.size(); ++i) {
    if (shouldSkip(root, plan[i], steps[i])) {
      outcome.skipped.push_back(i);
      continue;
    }
    applyStep(root, plan[i], steps[i], scratch.get(), i);
    if (plan[i].dest == "/") root.refresh();
    // Only a directory can have mounts below it.
    if (isBind(plan[i].kind) && steps[i].st && S_ISDIR(steps[i].st->st_mode))
      coverForeignProcfs(root, plan[i]);
    root.stepApplied(changedUnder(plan[i]));
  }
  setupspans::mark("plan");
  maskSockets(root, masks);
  outcome.hidden = hidePaths(root, hide);
  if (!inOwnUserNamespace) refuseForeignProcfs(root, rootFs.get());
  setupspans::mark("hidden");

  if (::fchdir(root.root()) != 0) throwErrno("chdir to new root");
  if (sys::pivotRoot(".", ".") != 0) throwErrno("pivot_root");
  setupspans::mark("pivot");
  // The old root is now stacked on top of the new one: detach it.
  if (::umount2(".", MNT_DETACH) != 0) throwErrno("detach old root");
  if (::chdir("/") != 0) throwErrno("chdir /");
  setupspans::mark("detached");
  return outcome;
}

}  // namespace gpubox
