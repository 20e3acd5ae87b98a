#include "run_options.hpp"

#include <unistd.h>

#include <nlohmann/json.hpp>

#include <cstdlib>
#include <cstring>

#include "cli_args.hpp"
#include "env.hpp"
#include "error.hpp"
#include "limits.hpp"

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
  --hide PATH           cover PATH inside (an empty directory or file) if it exists; the
                        default plan already hides ~/.ssh, ~/.gnupg, ~/.aws, ... and
                        $SSH_AUTH_SOCK is always hidden
Process:
  --chdir DIR           working directory of CMD (default: the current one)
  --setenv KEY VALUE    set an environment variable
  --unsetenv KEY        remove an environment variable
  --clearenv            start from an empty environment
  --hostname NAME       hostname inside the sandbox
  --uid UID, --gid GID  the ids CMD runs as inside (default: yours), mapped onto yours
                        by the sandbox's user namespace: still you on the host, with
                        no capabilities; refused by a helper that makes none
  --net none|host       network: a new namespace with only lo (default), or the host's
  --gpu SPEC            grant GPUs: none, all, 0,2, GPU-<uuid>, count:N, nvidia.com/gpu=NAME
  --as-pid-1            CMD is pid 1 of a pid namespace of its own (bwrap's --as-pid-1):
                        signals it has no handler for are ignored (--timeout's SIGTERM
                        too: --kill-after's SIGKILL ends it), and its exit ends every
                        process it started
Limits (defaults are the helper's: see gpubox-helper(8)):
  --memory SIZE         memory ceiling, swap off (512M, 4G); reaching it is an OOM kill
  --cpus N              CPU time, in CPUs (0.5, 2)
  --pids N              most processes and threads at once
  --rlimit NAME=SOFT[:HARD]  setrlimit for every command (NOFILE, NPROC, CORE, STACK, AS,
                        CPU, ...; a value or "unlimited"); CORE is 0 unless set
  --seccomp PROFILE     the syscall filter of every command: default; nested-userns
                        (also allows new user namespaces); none (no filter). The last
                        two: root, or where the helper's policy allows
  --timeout DURATION    then SIGTERM to every process (500ms, 30s, 5m, 2h, 1h30m)
  --kill-after DURATION SIGKILL this long after --timeout's SIGTERM (default 10s)
  --json-status FD      write a JSON record of the run to FD when it ends
  -h, --help            this text

Exit status: CMD's, or 128+N if signal N killed it (137 for an out-of-memory
kill, which gpubox names on stderr); 124 when --timeout ended it; 125 when
gpubox itself failed, 126 when CMD is not executable, 127 when it was not found.
)";

const char* const kSessionCreateHelp =
    R"(usage: gpubox session create [SANDBOX OPTIONS] [--name NAME] [--ttl DURATION]
                             [--idle-timeout DURATION] [--json]

Creates a sandbox that stays until `gpubox session rm NAME`, its TTL or its
idle timeout, and prints its name. Run commands in it with `gpubox exec NAME`.
SANDBOX OPTIONS are run's (mount plan, --gpu, --net, --hostname, --uid,
--gid, --memory, --cpus, --pids, --rlimit; see gpubox run --help).
  --name NAME           [A-Za-z0-9][A-Za-z0-9._-]*, at most 64 (default: generated)
  --ttl DURATION        removed this long after creation (default 1h)
  --idle-timeout DURATION  removed after this long with no command running
  --json                print a JSON object instead of the name
)";

const char* const kExecHelp = R"(usage: gpubox exec NAME [OPTIONS] [--] CMD [ARG...]
       gpubox exec NAME --batch [OPTIONS] < LINES

Runs CMD in session NAME (same mounts, namespaces, GPUs and limits) with
your stdin/stdout/stderr and its own exit status (as gpubox run's).
  --chdir DIR           working directory (default: the session's)
  --setenv KEY VALUE    set an environment variable (the environment is yours)
  --unsetenv KEY        remove one
  --clearenv            start from an empty environment
  --timeout DURATION    then SIGTERM to this command's process group
  --kill-after DURATION then SIGKILL (default 10s)
  --json-status FD      write a JSON record to FD when it ends
  --batch               run many commands over one connection: read them from
                        stdin, one JSON array of the words above per line
                        (["--chdir", "/w", "make", "-j8"]); each gets stdin
                        /dev/null and your stdout/stderr, and with
                        --json-status one record per line, in order. Exits
                        with the last line's status. The other options on
                        the command line are every line's defaults.
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

// --uid / --gid: 0 to 4294967294 ((uid_t)-1 is no id).
uint32_t parseSandboxId(const std::string& option, const std::string& text) {
  if (text.empty() || text.size() > 10 || text.find_first_not_of("0123456789") != std::string::npos)
    throw Error(option + " '" + text + "' is not a number from 0 to " +
                std::to_string(SpecLimits::kMaxSandboxId));
  const unsigned long long n = std::stoull(text);
  if (n > SpecLimits::kMaxSandboxId)
    throw Error(option + " " + text + ": at most " + std::to_string(SpecLimits::kMaxSandboxId));
  return static_cast<uint32_t>(n);
}

// An absolute path from the client's environment (VAR=/...), or "".
std::string absoluteEnv(char** environ, const char* var) {
  const size_t n = std::strlen(var);
  for (char** e = environ; e && *e; ++e)
    if (std::strncmp(*e, var, n) == 0 && (*e)[n] == '=' && (*e)[n + 1] == '/') return *e + n + 1;
  return "";
}

// What the caller's environment says must not be reachable inside: the
// default plan hides the secrets under $HOME (the helper knows which), and
// the ssh-agent socket wherever it lives (a read-only bind does not stop
// connect(), and the agent would sign for the sandbox).
void hideFromEnvironment(char** environ, SandboxSpec& spec) {
  spec.home = absoluteEnv(environ, "HOME");
  if (std::string agent = absoluteEnv(environ, "SSH_AUTH_SOCK"); !agent.empty())
    spec.hide.push_back(agent);
}

// The options every face shares, in one loop: which are accepted depends on
// what is being parsed.
enum class Face { Run, SessionCreate, Exec, ExecBatchLine };

struct Parsed {
  SandboxSpec spec;
  Command command;
  std::optional<int> jsonStatusFd;
  bool batch = false;
  bool help = false;
  bool anyMount = false;
  bool withDefaults = false;
  std::string name;
  uint64_t ttlMs = 0;
  uint64_t idleTimeoutMs = 0;
  bool json = false;
};

// Parses options until `--` or the first word that is not one. Returns false
// when it stopped at such a word (left unread), true after `--` or the end.
bool parseOptions(ArgReader& in, Face face, EnvBuilder& env, const std::string& cwd, Parsed& p) {
  const bool sandboxOptions = face == Face::Run || face == Face::SessionCreate;
  const bool processOptions = face != Face::SessionCreate;
  const bool batchLine = face == Face::ExecBatchLine;
  while (!in.done()) {
    const std::string& arg = in.peek();
    if (arg == "--") {
      in.next();
      return true;
    }
    if (arg.empty() || arg[0] != '-') return false;
    std::string opt = in.next();
    const std::optional<MountKind> two = twoArgMountOption(opt);
    const std::optional<MountKind> one = oneArgMountOption(opt);
    if (!batchLine && (opt == "-h" || opt == "--help")) {
      p.help = true;
      return true;
    } else if (sandboxOptions && two) {
      MountOp op{.kind = *two};
      op.source = in.value(opt, *two == MountKind::Symlink ? "TARGET DST" : "SRC DST");
      op.dest = in.value(opt, "DST");
      if (op.kind != MountKind::Symlink) op.source = absoluteSource(op.source, cwd);
      p.spec.mounts.push_back(op);
      p.anyMount = true;
    } else if (sandboxOptions && one) {
      p.spec.mounts.push_back({.kind = *one, .dest = in.value(opt, "DST")});
      p.anyMount = true;
    } else if (sandboxOptions && opt == "--hide") {
      p.spec.hide.push_back(absoluteSource(in.value(opt, "PATH"), cwd));
    } else if (sandboxOptions && opt == "--with-defaults") {
      p.withDefaults = true;
    } else if (sandboxOptions && opt == "--hostname") {
      p.spec.hostname = in.value(opt, "NAME");
    } else if (sandboxOptions && opt == "--uid") {
      p.spec.sandboxUid = parseSandboxId(opt, in.value(opt, "UID"));
    } else if (sandboxOptions && opt == "--gid") {
      p.spec.sandboxGid = parseSandboxId(opt, in.value(opt, "GID"));
    } else if (sandboxOptions && opt == "--net") {
      std::string mode = in.value(opt, "none or host");
      if (mode == "none") {
        p.spec.network = Network::None;
      } else if (mode == "host") {
        p.spec.network = Network::Host;
      } else {
        throw Error("--net '" + mode + "': expected none or host");
      }
    } else if (sandboxOptions && opt == "--gpu") {
      p.spec.gpus.push_back(in.value(opt, "SPEC"));
    } else if (sandboxOptions && opt == "--memory") {
      p.spec.limits.memoryBytes = parseSize(opt, in.value(opt, "SIZE"));
    } else if (sandboxOptions && opt == "--cpus") {
      p.spec.limits.cpuMillis = parseCpus(opt, in.value(opt, "N"));
    } else if (sandboxOptions && opt == "--pids") {
      p.spec.limits.pids = parseCount(opt, in.value(opt, "N"));
    } else if (sandboxOptions && opt == "--seccomp") {
      p.spec.seccomp = in.value(opt, "default, nested-userns or none");
      if (p.spec.seccomp != "default" && p.spec.seccomp != "none" &&
          p.spec.seccomp != "nested-userns")
        throw Error("--seccomp '" + p.spec.seccomp + "': expected default, nested-userns or none");
    } else if (sandboxOptions && opt == "--rlimit") {
      p.spec.limits.rlimits.push_back(parseRlimit(in.value(opt, "NAME=SOFT[:HARD]")));
    } else if (processOptions && opt == "--chdir") {
      p.command.cwd = in.value(opt, "DIR");
    } else if (processOptions && opt == "--setenv") {
      std::string key = in.value(opt, "KEY VALUE");
      env.set(key, in.value(opt, "VALUE"));
    } else if (processOptions && opt == "--unsetenv") {
      env.unset(in.value(opt, "KEY"));
    } else if (processOptions && opt == "--clearenv") {
      env.clear();
    } else if (processOptions && opt == "--timeout") {
      p.command.timeoutMs = parseDurationMs(opt, in.value(opt, "DURATION"));
    } else if (processOptions && opt == "--kill-after") {
      p.command.killAfterMs = parseDurationMs(opt, in.value(opt, "DURATION"));
    } else if (batchLine && (opt == "--json-status" || opt == "--batch")) {
      throw Error(opt + " is given once, on gpubox exec's command line, not on a --batch line");
    } else if (processOptions && opt == "--json-status") {
      p.jsonStatusFd = parseFd(opt, in.value(opt, "FD"));
    } else if (face == Face::Exec && opt == "--batch") {
      p.batch = true;
    } else if (face == Face::Run && opt == "--as-pid-1") {
      p.spec.asPid1 = true;
    } else if (face == Face::SessionCreate && opt == "--name") {
      p.name = in.value(opt, "NAME");
    } else if (face == Face::SessionCreate && opt == "--ttl") {
      p.ttlMs = parseDurationMs(opt, in.value(opt, "DURATION"));
    } else if (face == Face::SessionCreate && opt == "--idle-timeout") {
      p.idleTimeoutMs = parseDurationMs(opt, in.value(opt, "DURATION"));
    } else if (face == Face::SessionCreate && opt == "--json") {
      p.json = true;
    } else {
      throw Error("unknown option '" + opt + "'");
    }
  }
  return true;
}

}  // namespace

RunOptions parseRunOptions(const std::vector<std::string>& args, char** environ,
                           const std::string& cwd) {
  EnvBuilder env = EnvBuilder::fromEnviron(environ);
  Parsed p;
  p.spec.cwd = cwd;
  ArgReader in(args);
  parseOptions(in, Face::Run, env, cwd, p);
  RunOptions opts;
  if (p.help) {
    opts.help = true;
    return opts;
  }
  opts.spec = std::move(p.spec);
  hideFromEnvironment(environ, opts.spec);
  opts.command = std::move(p.command);
  opts.jsonStatusFd = p.jsonStatusFd;
  opts.command.argv = in.rest();
  if (opts.command.argv.empty()) throw Error("no command given");
  opts.spec.useDefaultPlan = !p.anyMount || p.withDefaults;
  opts.command.env = env.entries();
  // With the default plan the command starts where the user is; otherwise
  // bwrap's rule applies: the new root unless --chdir says otherwise.
  if (opts.command.cwd.empty() && opts.spec.useDefaultPlan) opts.command.cwd = cwd;
  return opts;
}

SessionCreateOptions parseSessionCreateOptions(const std::vector<std::string>& args,
                                               const std::string& cwd) {
  EnvBuilder env({});
  Parsed p;
  p.spec.cwd = cwd;
  ArgReader in(args);
  parseOptions(in, Face::SessionCreate, env, cwd, p);
  SessionCreateOptions opts;
  opts.help = p.help;
  if (opts.help) return opts;
  if (!in.done())
    throw Error("unexpected '" + in.peek() +
                "': session create takes no command (run one with gpubox exec NAME -- CMD)");
  opts.spec = std::move(p.spec);
  opts.spec.useDefaultPlan = !p.anyMount || p.withDefaults;
  hideFromEnvironment(environ, opts.spec);
  opts.name = p.name;
  opts.ttlMs = p.ttlMs;
  opts.idleTimeoutMs = p.idleTimeoutMs;
  opts.json = p.json;
  return opts;
}

ExecOptions parseExecOptions(const std::vector<std::string>& args, char** environ) {
  EnvBuilder env = EnvBuilder::fromEnviron(environ);
  Parsed p;
  ArgReader in(args);
  ExecOptions opts;
  bool ended = parseOptions(in, Face::Exec, env, "/", p);
  if (!p.help && !ended) {
    opts.session = in.next();
    parseOptions(in, Face::Exec, env, "/", p);
  }
  if (p.help) {
    opts.help = true;
    return opts;
  }
  if (opts.session.empty()) throw Error("no session name given");
  opts.command = std::move(p.command);
  opts.jsonStatusFd = p.jsonStatusFd;
  opts.batch = p.batch;
  opts.command.env = env.entries();
  if (opts.batch) {
    if (!in.done())
      throw Error("unexpected '" + in.peek() +
                  "': with --batch the commands come from stdin, one JSON array per line "
                  "(like [\"make\", \"-j8\"]), not from the command line");
    return opts;
  }
  opts.command.argv = in.rest();
  if (opts.command.argv.empty()) throw Error("no command given");
  return opts;
}

Command parseExecBatchLine(const std::vector<std::string>& words, const Command& defaults) {
  EnvBuilder env(defaults.env);
  Parsed p;
  p.command = defaults;
  ArgReader in(words);
  parseOptions(in, Face::ExecBatchLine, env, "/", p);
  p.command.argv = in.rest();
  if (p.command.argv.empty()) throw Error("no command given");
  p.command.env = env.entries();
  return p.command;
}

std::vector<std::string> batchLineWords(const std::string& line) {
  constexpr const char* kExpected =
      "expected a JSON array of strings, like [\"--chdir\", \"/w\", \"make\", \"-j8\"]";
  nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) throw Error(std::string("not JSON: ") + kExpected);
  if (!j.is_array()) throw Error(std::string("not an array: ") + kExpected);
  std::vector<std::string> words;
  for (const auto& w : j) {
    if (!w.is_string())
      throw Error("word " + std::to_string(words.size() + 1) + " is not a string: " + kExpected);
    words.push_back(w.get<std::string>());
  }
  return words;
}

}  // namespace gpubox::cli
