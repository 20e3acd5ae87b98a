#include "bwrap_options.hpp"

#include <sys/stat.h>

#include <cctype>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "bwrap_fds.hpp"
#include "cli_args.hpp"
#include "env.hpp"
#include "error.hpp"

namespace gpubox::bwrap {

namespace {

// bwrap refuses more words than this, --args included.
constexpr size_t kMaxArgs = 9000;

// The namespaces the command line asked for. gpubox makes every one of them
// for every sandbox (a stricter sandbox than asked is still what was asked);
// they matter for the options that depend on them, and for the network.
struct Unshare {
  bool user = false;
  bool ipc = false;
  bool pid = false;
  bool net = false;
  bool uts = false;
  bool cgroup = false;
};

// Words that cannot be honoured, and why.
const char* unsupportedReason(const std::string& option) {
  if (option == "--userns" || option == "--userns2" || option == "--userns-block-fd")
    return "gpubox's helper makes the sandbox's user namespace itself; it cannot join one "
           "the caller holds";
  if (option == "--pidns")
    return "gpubox's helper makes the sandbox's pid namespace itself; it cannot join one "
           "the caller holds";
  if (option == "--exec-label" || option == "--file-label")
    return "gpubox does not set SELinux labels";
  if (option == "--overlay-src" || option == "--overlay" || option == "--tmp-overlay" ||
      option == "--ro-overlay")
    return "gpubox does not build overlay mounts";
  return nullptr;
}

// bwrap's destinations are inside the new root, relative or not; gpubox's
// are absolute and normalised. ".." is refused: inside a root that is still
// being built it has no single meaning.
std::string sandboxPath(const std::string& option, const std::string& path) {
  if (path.empty()) throw Error(option + " takes a non-empty path");
  std::string out;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    const std::string part = path.substr(start, end - start);
    if (part == "..")
      throw Error(option + " " + path + ": gpubox does not take '..' in a path inside the sandbox");
    if (!part.empty() && part != ".") out += "/" + part;
    start = end + 1;
  }
  return out.empty() ? "/" : out;
}

// A host path for the helper: absolute (from the front's directory) and
// normalised; one with ".." is resolved here, as the caller, like bwrap's
// mount(2) would.
std::string hostPath(const std::string& option, const std::string& path, const std::string& cwd) {
  if (path.empty()) throw Error(option + " takes a non-empty source path");
  std::string absolute = cli::absoluteSource(path, cwd);
  if (absolute.find("/..") != std::string::npos) {
    char resolved[PATH_MAX];
    if (::realpath(absolute.c_str(), resolved) == nullptr)
      throwErrno(option + " " + path + ": cannot resolve the '..' in it");
    return resolved;
  }
  return sandboxPath(option, absolute);
}

// bwrap's --perms and --chmod value: octal, at most 07777.
unsigned parsePerms(const std::string& option, const std::string& text) {
  char* end = nullptr;
  errno = 0;
  unsigned long value = std::strtoul(text.c_str(), &end, 8);
  if (text.empty() || errno != 0 || *end != '\0' || value > 07777 || text[0] == '-' ||
      text[0] == '+' || text[0] == ' ')
    throw Error(option + " takes an octal argument <= 07777");
  return static_cast<unsigned>(value);
}

// bwrap's --size: a non-zero number of bytes (decimal, octal or hex, as
// strtoull's base 0 reads it), at most half of the address space.
uint64_t parseSize(const std::string& text) {
  char* end = nullptr;
  errno = 0;
  unsigned long long value = std::strtoull(text.c_str(), &end, 0);
  if (text.empty() || errno != 0 || !std::isdigit(static_cast<unsigned char>(text[0])) ||
      *end != '\0' || value == 0)
    throw Error("--size takes a non-zero number of bytes");
  if (value > SpecLimits::kMaxTmpfsBytes)
    throw Error("--size (for tmpfs) is limited to " + std::to_string(SpecLimits::kMaxTmpfsBytes));
  return value;
}

// bwrap's file descriptor arguments.
int parseFdArg(const std::string& option, const std::string& text) {
  char* end = nullptr;
  errno = 0;
  long value = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || errno != 0 || *end != '\0' || value < 0 || value > INT_MAX)
    throw Error("Invalid fd: " + text + " (" + option + ")");
  return static_cast<int>(value);
}

unsigned parseId(const std::string& option, const std::string& text) {
  char* end = nullptr;
  errno = 0;
  unsigned long value = std::strtoul(text.c_str(), &end, 10);
  if (text.empty() || errno != 0 || *end != '\0' || text[0] == '-' || value > UINT_MAX - 1)
    throw Error("Invalid " + option.substr(2) + ": " + text);
  return static_cast<unsigned>(value);
}

// --cap-drop's value: ALL or a capability's name.
void checkCapabilityName(const std::string& option, const std::string& name) {
  if (name == "ALL") return;
  std::string upper;
  for (char c : name) upper += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  bool ok = upper.rfind("CAP_", 0) == 0 && upper.size() > 4;
  for (char c : upper) ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '_');
  if (!ok) throw Error(option + " " + name + ": unknown capability");
}

// The environment the command starts from: the front's own, less the
// front's settings.
EnvBuilder startingEnvironment(char** environ) {
  EnvBuilder env = EnvBuilder::fromEnviron(environ);
  env.unset(kGpuVariable);
  env.unset(kNoHostNetworkVariable);
  return env;
}

std::string environmentValue(char** environ, const char* name) {
  const size_t n = std::strlen(name);
  for (char** e = environ; e && *e; ++e)
    if (std::strncmp(*e, name, n) == 0 && (*e)[n] == '=') return *e + n + 1;
  return "";
}

std::string valueOf(const std::vector<std::string>& entries, const std::string& key) {
  for (const std::string& e : entries)
    if (e.size() > key.size() && e.compare(0, key.size(), key) == 0 && e[key.size()] == '=')
      return e.substr(key.size() + 1);
  return "";
}

class Parser {
 public:
  Parser(std::vector<std::string> args, char** environ, std::string cwd, unsigned uid, unsigned gid)
      : args_(std::move(args)),
        environ_(environ),
        cwd_(std::move(cwd)),
        uid_(uid),
        gid_(gid),
        env_(startingEnvironment(environ)) {}

  Invocation parse() {
    if (args_.size() > kMaxArgs) tooManyArgs();
    while (pos_ < args_.size()) {
      const std::string arg = args_[pos_];
      if (arg == "--") {
        ++pos_;
        break;
      }
      if (arg.empty() || arg[0] != '-') break;
      ++pos_;
      option(arg);
      if (out_.help || out_.version) return std::move(out_);
      const bool modifier = arg == "--perms" || arg == "--size";
      if (!modifier && nextPerms_)
        throw Error("--perms must be followed by an option that creates a file");
      if (!modifier && nextSize_) throw Error("--size must be followed by --tmpfs");
    }
    if (nextPerms_) throw Error("--perms must be followed by an option that creates a file");
    if (nextSize_) throw Error("--size must be followed by --tmpfs");
    out_.command.argv.assign(args_.begin() + static_cast<long>(pos_), args_.end());
    if (out_.command.argv.empty()) throw Error("No command specified");
    finish();
    return std::move(out_);
  }

 private:
  [[noreturn]] void tooManyArgs() {
    throw Error("Exceeded maximum number of arguments " + std::to_string(kMaxArgs));
  }

  const std::string& word(const std::string& option, size_t count) {
    if (pos_ >= args_.size())
      throw Error(option + " takes " +
                  (count == 1 ? std::string("an argument") : std::to_string(count) + " arguments"));
    return args_[pos_++];
  }

  void mount(MountOp op) {
    out_.spec.mounts.push_back(std::move(op));
    if (out_.spec.mounts.size() > SpecLimits::kMaxMounts)
      throw Error("too many mount options (gpubox takes at most " +
                  std::to_string(SpecLimits::kMaxMounts) + ")");
  }

  std::optional<unsigned> takePerms() { return std::exchange(nextPerms_, std::nullopt); }

  void bind(const std::string& option, MountKind kind, bool ifExists) {
    const std::string src = word(option, 2);
    const std::string dest = word(option, 2);
    MountOp op{.kind = kind,
               .source = hostPath(option, src, cwd_),
               .dest = sandboxPath(option, dest),
               .ifSourceExists = ifExists};
    // A missing source is bwrap's own first message; said here, as the
    // caller sees the path (the helper, which judges every source as the
    // caller, would say the same). The -try forms leave it to the helper.
    struct stat st;
    if (!ifExists && ::stat(op.source.c_str(), &st) != 0 && errno == ENOENT)
      throw Error("Can't find source path " + src + ": " + std::strerror(ENOENT));
    mount(std::move(op));
  }

  void bindFd(const std::string& option, MountKind kind) {
    const int fd = parseFdArg(option, word(option, 2));
    const std::string dest = word(option, 2);
    OpenFile file = describeOpenFd(fd, option + " " + std::to_string(fd));
    mount({.kind = kind,
           .source = sandboxPath(option, file.path),
           .dest = sandboxPath(option, dest),
           .sourceInode = file.inode});
  }

  void dataFile(const std::string& option, MountKind kind, unsigned defaultMode) {
    const int fd = parseFdArg(option, word(option, 2));
    const std::string dest = word(option, 2);
    std::string data = readFdContents(fd, SpecLimits::kMaxFileData, option + " " + dest);
    mount({.kind = kind,
           .source = std::move(data),
           .dest = sandboxPath(option, dest),
           .mode = takePerms().value_or(defaultMode)});
  }

  void seccomp(const std::string& option) {
    const int fd = parseFdArg(option, word(option, 1));
    std::string program = readFdContents(fd, SpecLimits::kMaxSeccompInstructions * 8,
                                         option + " " + std::to_string(fd));
    if (program.empty() || program.size() % 8 != 0)
      throw Error("Invalid seccomp data, must be multiple of 8");
    out_.spec.seccompPrograms.push_back(std::move(program));
  }

  // --args FD: NUL-separated words read from FD, taken as if they stood here.
  void argsFromFd(const std::string& option) {
    const int fd = parseFdArg(option, word(option, 1));
    const std::string data = readFdContents(fd, SpecLimits::kMaxArgBytes, option);
    std::vector<std::string> words;
    size_t start = 0;
    while (start < data.size()) {
      size_t end = data.find('\0', start);
      if (end == std::string::npos) end = data.size();
      words.push_back(data.substr(start, end - start));
      start = end + 1;
    }
    if (args_.size() + words.size() > kMaxArgs) tooManyArgs();
    args_.insert(args_.begin() + static_cast<long>(pos_), words.begin(), words.end());
  }

  void option(const std::string& opt) {
    if (const char* why = unsupportedReason(opt)) {
      throw Error(opt + " is not supported by gpubox-bwrap: " + why);
    }
    if (opt == "--help") {
      out_.help = true;
    } else if (opt == "--version") {
      out_.version = true;
    } else if (opt == "--args") {
      argsFromFd(opt);
    } else if (opt == "--level-prefix") {
      out_.levelPrefix = true;
    } else if (std::optional<MountKind> two = cli::twoArgMountOption(opt)) {
      if (*two == MountKind::Symlink) {
        const std::string target = word(opt, 2);
        mount(
            {.kind = MountKind::Symlink, .source = target, .dest = sandboxPath(opt, word(opt, 2))});
      } else {
        bind(opt, *two, false);
      }
    } else if (opt.ends_with("-try") && cli::twoArgMountOption(opt.substr(0, opt.size() - 4)) &&
               opt != "--symlink-try") {
      bind(opt, *cli::twoArgMountOption(opt.substr(0, opt.size() - 4)), true);
    } else if (opt == "--bind-fd") {
      bindFd(opt, MountKind::Bind);
    } else if (opt == "--ro-bind-fd") {
      bindFd(opt, MountKind::RoBind);
    } else if (opt == "--tmpfs") {
      mount({.kind = MountKind::Tmpfs,
             .dest = sandboxPath(opt, word(opt, 1)),
             .mode = takePerms(),
             .sizeBytes = std::exchange(nextSize_, 0)});
    } else if (opt == "--dir") {
      mount({.kind = MountKind::Dir, .dest = sandboxPath(opt, word(opt, 1)), .mode = takePerms()});
    } else if (std::optional<MountKind> one = cli::oneArgMountOption(opt)) {
      mount({.kind = *one, .dest = sandboxPath(opt, word(opt, 1))});
    } else if (opt == "--mqueue") {
      mount({.kind = MountKind::Mqueue, .dest = sandboxPath(opt, word(opt, 1))});
    } else if (opt == "--file") {
      dataFile(opt, MountKind::File, 0666);
    } else if (opt == "--bind-data") {
      dataFile(opt, MountKind::BindData, 0600);
    } else if (opt == "--ro-bind-data") {
      dataFile(opt, MountKind::RoBindData, 0600);
    } else if (opt == "--chmod") {
      const unsigned perms = parsePerms(opt, word(opt, 2));
      mount({.kind = MountKind::Chmod, .dest = sandboxPath(opt, word(opt, 2)), .mode = perms});
    } else if (opt == "--perms") {
      const std::string& value = word(opt, 1);
      if (nextPerms_) throw Error("--perms given twice for the same action");
      nextPerms_ = parsePerms(opt, value);
    } else if (opt == "--size") {
      const std::string& value = word(opt, 1);
      if (nextSize_) throw Error("--size given twice for the same action");
      nextSize_ = parseSize(value);
    } else if (opt == "--unshare-all") {
      // bwrap's "every namespace we support by default"; --share-net undoes net.
      unshare_ = {.user = true, .ipc = true, .pid = true, .net = true, .uts = true, .cgroup = true};
    } else if (opt == "--share-net") {
      unshare_.net = false;
    } else if (opt == "--unshare-user" || opt == "--unshare-user-try") {
      unshare_.user = true;
    } else if (opt == "--unshare-ipc") {
      unshare_.ipc = true;
    } else if (opt == "--unshare-pid") {
      unshare_.pid = true;
    } else if (opt == "--unshare-net") {
      unshare_.net = true;
    } else if (opt == "--unshare-uts") {
      unshare_.uts = true;
    } else if (opt == "--unshare-cgroup" || opt == "--unshare-cgroup-try") {
      unshare_.cgroup = true;
    } else if (opt == "--disable-userns") {
      disableUserns_ = true;
    } else if (opt == "--assert-userns-disabled") {
      // gpubox's seccomp filter refuses new user namespaces to every
      // sandboxed process, so the assertion holds.
    } else if (opt == "--uid") {
      uidAsked_ = parseId(opt, word(opt, 1));
    } else if (opt == "--gid") {
      gidAsked_ = parseId(opt, word(opt, 1));
    } else if (opt == "--hostname") {
      out_.spec.hostname = word(opt, 1);
    } else if (opt == "--chdir") {
      out_.command.cwd = sandboxPath(opt, word(opt, 1));
    } else if (opt == "--setenv") {
      const std::string key = word(opt, 2);
      env_.set(key, word(opt, 2));
    } else if (opt == "--unsetenv") {
      env_.unset(word(opt, 1));
    } else if (opt == "--clearenv") {
      env_.clear();
    } else if (opt == "--argv0") {
      out_.command.argv0 = word(opt, 1);
      if (out_.command.argv0.empty()) throw Error("--argv0 takes a non-empty argument");
    } else if (opt == "--lock-file") {
      out_.spec.lockFiles.push_back(sandboxPath(opt, word(opt, 1)));
    } else if (opt == "--sync-fd") {
      out_.syncFd = parseFdArg(opt, word(opt, 1));
    } else if (opt == "--block-fd") {
      out_.blockFd = parseFdArg(opt, word(opt, 1));
    } else if (opt == "--info-fd") {
      out_.infoFd = parseFdArg(opt, word(opt, 1));
    } else if (opt == "--json-status-fd") {
      out_.jsonStatusFd = parseFdArg(opt, word(opt, 1));
    } else if (opt == "--seccomp") {
      if (sawAddSeccomp_) throw Error("--seccomp cannot be combined with --add-seccomp-fd");
      if (sawSeccomp_) throw Error("--seccomp is not repeatable (use --add-seccomp-fd)");
      sawSeccomp_ = true;
      seccomp(opt);
    } else if (opt == "--add-seccomp-fd") {
      if (sawSeccomp_) throw Error("--add-seccomp-fd cannot be combined with --seccomp");
      sawAddSeccomp_ = true;
      seccomp(opt);
    } else if (opt == "--new-session") {
      // Every gpubox command starts in a session of its own already.
    } else if (opt == "--die-with-parent") {
      out_.dieWithParent = true;
    } else if (opt == "--as-pid-1") {
      asPid1_ = true;
    } else if (opt == "--cap-add") {
      const std::string cap = word(opt, 1);
      throw Error("--cap-add " + cap +
                  ": gpubox sandboxes run without any capability; gpubox-bwrap cannot add one");
    } else if (opt == "--cap-drop") {
      // Dropping is always honoured: nothing is kept to begin with.
      checkCapabilityName(opt, word(opt, 1));
    } else if (opt == "--gpu") {
      // gpubox's own option: GPUs the helper's policy may grant.
      gpus_.push_back(word(opt, 1));
    } else {
      throw Error("Unknown option " + opt);
    }
  }

  // The checks bwrap makes once the command line is read, then the request.
  void finish() {
    // Without setuid bwrap makes a user namespace anyway when the caller is
    // not root; --uid and the like then need no --unshare-user.
    const bool userNamespace = unshare_.user || uid_ != 0;
    if (!out_.spec.hostname.empty() && !unshare_.uts)
      throw Error("Specifying --hostname requires --unshare-uts");
    if (asPid1_ && !unshare_.pid) throw Error("Specifying --as-pid-1 requires --unshare-pid");
    // gpubox's init stays the sandbox's pid 1; the command is pid 1 of a pid
    // namespace of its own inside it.
    out_.spec.asPid1 = asPid1_;
    if (uidAsked_ && !userNamespace)
      throw Error("Specifying --uid requires --unshare-user or --userns");
    if (gidAsked_ && !userNamespace)
      throw Error("Specifying --gid requires --unshare-user or --userns");
    // As bwrap: the ids the command runs as inside, mapped onto the
    // caller's own. The helper refuses ids other than the caller's when its
    // sandboxes get no user namespace of their own (--user-namespace never).
    out_.spec.sandboxUid = uidAsked_;
    out_.spec.sandboxGid = gidAsked_;
    if (disableUserns_ && !userNamespace) throw Error("--disable-userns requires --unshare-user");

    out_.spec.useDefaultPlan = false;
    if (!unshare_.net) {
      out_.sharesHostNetwork = environmentValue(environ_, kNoHostNetworkVariable) != "1";
      out_.spec.network = out_.sharesHostNetwork ? Network::Host : Network::None;
    }
    if (!gpus_.empty()) {
      out_.spec.gpus = gpus_;
    } else if (std::string gpu = environmentValue(environ_, kGpuVariable); !gpu.empty()) {
      out_.spec.gpus = {gpu};
    }
    out_.command.env = env_.entries();
    // bwrap's working directory: --chdir, else the caller's directory when
    // the sandbox shows it, else $HOME, else /; PWD says which.
    if (out_.command.cwd.empty()) {
      if (!cwd_.empty() && cwd_[0] == '/') out_.command.cwdFallbacks.push_back(cwd_);
      if (std::string home = valueOf(out_.command.env, "HOME"); !home.empty() && home[0] == '/')
        out_.command.cwdFallbacks.push_back(sandboxPath("$HOME", home));
    }
    out_.command.setPwd = true;
  }

  std::vector<std::string> args_;
  size_t pos_ = 0;
  char** environ_;
  std::string cwd_;
  unsigned uid_, gid_;
  EnvBuilder env_;
  Invocation out_;
  Unshare unshare_;
  std::optional<unsigned> nextPerms_;
  uint64_t nextSize_ = 0;
  std::optional<unsigned> uidAsked_, gidAsked_;
  std::vector<std::string> gpus_;
  bool disableUserns_ = false;
  bool asPid1_ = false;
  bool sawSeccomp_ = false;
  bool sawAddSeccomp_ = false;
};

}  // namespace

Invocation parseCommandLine(const std::vector<std::string>& args, char** environ,
                            const std::string& cwd, unsigned uid, unsigned gid) {
  return Parser(args, environ, cwd, uid, gid).parse();
}

}  // namespace gpubox::bwrap
