#include "run_options.hpp"

#include <map>

#include "env.hpp"
#include "error.hpp"

namespace gpubox::cli {

const char* const kRunUsage = "usage: gpubox run [OPTIONS] [--] CMD [ARG...]";

const char* const kRunHelp = R"(usage: gpubox run [OPTIONS] [--] CMD [ARG...]

Runs CMD in a new sandbox built by gpubox-helper, as you, with no
capabilities. Without any mount option the sandbox gets the default plan:
the host's / read-only, fresh /tmp and /run, a minimal /dev, /proc,
/sys read-only and the current directory read-write at the same path.

Mount plan (applied in order on an empty root, as bubblewrap does):
  --bind SRC DST        bind SRC read-write at DST
  --ro-bind SRC DST     bind SRC read-only at DST
  --dev-bind SRC DST    bind SRC with device access (root only)
  --tmpfs DST           fresh tmpfs at DST
  --proc DST            the sandbox's own procfs at DST
  --dev DST             minimal /dev (null zero full random urandom tty, pts, shm)
  --dir DST             create a directory
  --symlink TARGET DST  create a symlink
  --remount-ro DST      make the mount at DST read-only
  --with-defaults       start from the default plan, then apply the options above
Process:
  --chdir DIR           working directory of CMD (default: the current one)
  --setenv KEY VALUE    set an environment variable
  --unsetenv KEY        remove an environment variable
  --clearenv            start from an empty environment
  --hostname NAME       hostname inside the sandbox
  --net none|host       network: a new namespace with only lo (default), or the host's
  --gpu SPEC            grant GPUs: none, all, 0,2, GPU-<uuid>, count:N, nvidia.com/gpu=NAME
  --json-status FD      write a JSON record of the run to FD when it ends
  -h, --help            this text

Exit status: CMD's, or 128+N if signal N killed it; 125 when gpubox itself
failed, 126 when CMD is not executable, 127 when it was not found.
)";

namespace {

class ArgReader {
 public:
  explicit ArgReader(const std::vector<std::string>& args) : args_(args) {}
  bool done() const { return pos_ >= args_.size(); }
  const std::string& next() { return args_[pos_++]; }
  const std::string& peek() const { return args_[pos_]; }
  std::string value(const std::string& option, const char* what) {
    if (done()) throw Error(option + " needs " + what);
    return next();
  }
  std::vector<std::string> rest() {
    std::vector<std::string> r(args_.begin() + static_cast<long>(pos_), args_.end());
    pos_ = args_.size();
    return r;
  }

 private:
  const std::vector<std::string>& args_;
  size_t pos_ = 0;
};

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

}  // namespace

RunOptions parseRunOptions(const std::vector<std::string>& args, char** environ,
                           const std::string& cwd) {
  const std::map<std::string, MountKind> twoArg = {{"--bind", MountKind::Bind},
                                                   {"--ro-bind", MountKind::RoBind},
                                                   {"--dev-bind", MountKind::DevBind},
                                                   {"--symlink", MountKind::Symlink}};
  const std::map<std::string, MountKind> oneArg = {{"--tmpfs", MountKind::Tmpfs},
                                                   {"--proc", MountKind::Proc},
                                                   {"--dev", MountKind::Dev},
                                                   {"--dir", MountKind::Dir},
                                                   {"--remount-ro", MountKind::RemountRo}};
  RunOptions opts;
  EnvBuilder env = EnvBuilder::fromEnviron(environ);
  bool anyMount = false;
  bool withDefaults = false;
  opts.spec.cwd = cwd;
  ArgReader in(args);
  while (!in.done()) {
    const std::string& arg = in.peek();
    if (arg == "--") {
      in.next();
      break;
    }
    if (arg.empty() || arg[0] != '-') break;
    std::string opt = in.next();
    if (opt == "-h" || opt == "--help") {
      opts.help = true;
      return opts;
    } else if (auto two = twoArg.find(opt); two != twoArg.end()) {
      MountOp op{.kind = two->second};
      op.source = in.value(opt, two->second == MountKind::Symlink ? "TARGET DST" : "SRC DST");
      op.dest = in.value(opt, "DST");
      if (op.kind != MountKind::Symlink) op.source = absoluteSource(op.source, cwd);
      opts.spec.mounts.push_back(op);
      anyMount = true;
    } else if (auto one = oneArg.find(opt); one != oneArg.end()) {
      opts.spec.mounts.push_back({.kind = one->second, .dest = in.value(opt, "DST")});
      anyMount = true;
    } else if (opt == "--with-defaults") {
      withDefaults = true;
    } else if (opt == "--chdir") {
      opts.command.cwd = in.value(opt, "DIR");
    } else if (opt == "--setenv") {
      std::string key = in.value(opt, "KEY VALUE");
      env.set(key, in.value(opt, "VALUE"));
    } else if (opt == "--unsetenv") {
      env.unset(in.value(opt, "KEY"));
    } else if (opt == "--clearenv") {
      env.clear();
    } else if (opt == "--hostname") {
      opts.spec.hostname = in.value(opt, "NAME");
    } else if (opt == "--net") {
      std::string mode = in.value(opt, "none or host");
      if (mode == "none") {
        opts.spec.network = Network::None;
      } else if (mode == "host") {
        opts.spec.network = Network::Host;
      } else {
        throw Error("--net '" + mode + "': expected none or host");
      }
    } else if (opt == "--gpu") {
      opts.spec.gpus.push_back(in.value(opt, "SPEC"));
    } else if (opt == "--json-status") {
      opts.jsonStatusFd = parseFd(opt, in.value(opt, "FD"));
    } else {
      throw Error("unknown option '" + opt + "'");
    }
  }
  opts.command.argv = in.rest();
  if (opts.command.argv.empty()) throw Error("no command given");
  opts.spec.useDefaultPlan = !anyMount || withDefaults;
  opts.command.env = env.entries();
  // With the default plan the command starts where the user is; otherwise
  // bwrap's rule applies: the new root unless --chdir says otherwise.
  if (opts.command.cwd.empty() && opts.spec.useDefaultPlan) opts.command.cwd = cwd;
  return opts;
}

}  // namespace gpubox::cli
