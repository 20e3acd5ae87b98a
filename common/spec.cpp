#include "spec.hpp"

#include <cstdio>

#include "error.hpp"

namespace gpubox {

namespace {

bool hasNul(const std::string& s) {
  return s.find('\0') != std::string::npos;
}

bool needsSource(MountKind kind) {
  switch (kind) {
    case MountKind::Bind:
    case MountKind::RoBind:
    case MountKind::DevBind:
    case MountKind::Symlink:
      return true;
    default:
      return false;
  }
}

void validateHostname(const std::string& name) {
  if (name.size() > SpecLimits::kMaxHostname) throw Error("hostname is longer than 64 characters");
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == '_';
    if (!ok) throw Error("hostname '" + name + "' has a character other than [A-Za-z0-9._-]");
  }
}

bool takesMode(MountKind kind) {
  switch (kind) {
    case MountKind::Tmpfs:
    case MountKind::Dir:
    case MountKind::File:
    case MountKind::BindData:
    case MountKind::RoBindData:
    case MountKind::Chmod:
      return true;
    default:
      return false;
  }
}

std::string octal(unsigned mode) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%04o", mode);
  return buf;
}

// The checks of one step beyond its destination; `opt` names it in errors.
void validateStep(const MountOp& op, const std::string& opt, size_t& dataBytes) {
  // A source the step does not use would be carried (and re-encoded)
  // unchecked; refuse it so every byte of a request is validated.
  if (!needsSource(op.kind) && !carriesData(op.kind) && !op.source.empty())
    throw Error(opt + " " + op.dest +
                " has a source; only --bind, --ro-bind, --dev-bind and --symlink take one");
  if (isBind(op.kind)) validateAbsolutePath(op.source, opt + " source");
  if (op.kind == MountKind::Symlink) {
    if (op.source.empty()) throw Error("--symlink target is empty");
    if (hasNul(op.source)) throw Error("--symlink target contains a NUL byte");
    if (op.source.size() > SpecLimits::kMaxPath)
      throw Error("--symlink target is longer than 4096 bytes");
  }
  if (carriesData(op.kind)) {
    if (op.source.size() > SpecLimits::kMaxFileData)
      throw Error(opt + " " + op.dest + ": the contents are larger than 4 MiB");
    dataBytes += op.source.size();
    if (dataBytes > SpecLimits::kMaxTotalFileData)
      throw Error(opt + " " + op.dest +
                  ": the contents of all --file/--bind-data steps exceed 8 MiB");
  }
  if (op.mode && !takesMode(op.kind))
    throw Error(opt + " " + op.dest +
                " has permission bits; only --tmpfs, --dir, --file, --bind-data, "
                "--ro-bind-data and --chmod take them");
  if (op.mode && *op.mode > 07777)
    throw Error(opt + " " + op.dest + ": permission bits " + octal(*op.mode) + " are above 07777");
  if (op.kind == MountKind::Chmod && !op.mode)
    throw Error("--chmod " + op.dest + " has no permission bits");
  if (op.sizeBytes && op.kind != MountKind::Tmpfs)
    throw Error(opt + " " + op.dest + " has a size; only --tmpfs takes one");
  if (op.sizeBytes > SpecLimits::kMaxTmpfsBytes)
    throw Error("--size " + std::to_string(op.sizeBytes) + " is above the largest tmpfs (" +
                std::to_string(SpecLimits::kMaxTmpfsBytes) + " bytes)");
  if ((op.ifSourceExists || op.sourceInode) && !isBind(op.kind))
    throw Error(opt + " " + op.dest +
                ": only --bind, --ro-bind and --dev-bind can be optional or name an inode");
}

}  // namespace

bool isBind(MountKind kind) {
  return kind == MountKind::Bind || kind == MountKind::RoBind || kind == MountKind::DevBind;
}

bool carriesData(MountKind kind) {
  return kind == MountKind::File || kind == MountKind::BindData || kind == MountKind::RoBindData;
}

const char* mountKindOption(MountKind kind) {
  switch (kind) {
    case MountKind::Bind:
      return "--bind";
    case MountKind::RoBind:
      return "--ro-bind";
    case MountKind::DevBind:
      return "--dev-bind";
    case MountKind::Tmpfs:
      return "--tmpfs";
    case MountKind::Proc:
      return "--proc";
    case MountKind::Dev:
      return "--dev";
    case MountKind::Dir:
      return "--dir";
    case MountKind::Symlink:
      return "--symlink";
    case MountKind::RemountRo:
      return "--remount-ro";
    case MountKind::File:
      return "--file";
    case MountKind::BindData:
      return "--bind-data";
    case MountKind::RoBindData:
      return "--ro-bind-data";
    case MountKind::Chmod:
      return "--chmod";
    case MountKind::Mqueue:
      return "--mqueue";
    case MountKind::DriverDir:
      return "(gpu driver directory)";
    case MountKind::LoaderCache:
      return "(gpu loader cache)";
  }
  return "--?";
}

std::string describeMount(const MountOp& op) {
  std::string out;
  if (op.mode && op.kind != MountKind::Chmod) out += "--perms " + octal(*op.mode) + " ";
  if (op.sizeBytes) out += "--size " + std::to_string(op.sizeBytes) + " ";
  out += mountKindOption(op.kind);
  if (op.ifSourceExists) out += "-try";
  if (op.kind == MountKind::Chmod && op.mode) out += " " + octal(*op.mode);
  if (needsSource(op.kind)) out += " " + op.source;
  if (carriesData(op.kind)) out += " (" + std::to_string(op.source.size()) + " bytes)";
  out += " " + op.dest;
  return out;
}

void validateAbsolutePath(const std::string& path, const std::string& what) {
  if (path.empty()) throw Error(what + " is empty");
  if (hasNul(path)) throw Error(what + " contains a NUL byte");
  if (path.size() > SpecLimits::kMaxPath) throw Error(what + " is longer than 4096 bytes");
  if (path[0] != '/') throw Error(what + " '" + path + "' is not an absolute path");
  size_t start = 1;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    std::string part = path.substr(start, end - start);
    if (part == "." || part == "..")
      throw Error(what + " '" + path + "' contains a '" + part + "' component");
    start = end + 1;
  }
}

void validateSpec(const SandboxSpec& spec) {
  if (spec.mounts.size() > SpecLimits::kMaxMounts)
    throw Error("too many mount steps (" + std::to_string(spec.mounts.size()) + ", limit " +
                std::to_string(SpecLimits::kMaxMounts) + ")");
  size_t dataBytes = 0;
  for (const MountOp& op : spec.mounts) {
    std::string opt = mountKindOption(op.kind);
    validateAbsolutePath(op.dest, opt + " destination");
    validateStep(op, opt, dataBytes);
  }
  if (spec.useDefaultPlan || !spec.cwd.empty()) validateAbsolutePath(spec.cwd, "working directory");
  validateHostname(spec.hostname);
  if (spec.gpus.size() > SpecLimits::kMaxGpuSelectors) throw Error("too many --gpu selectors");
  for (const std::string& sel : spec.gpus) {
    if (sel.size() > SpecLimits::kMaxSelector || hasNul(sel))
      throw Error("--gpu selector is malformed or longer than 256 bytes");
  }
  validateLimits(spec.limits);
  if (!spec.home.empty()) validateAbsolutePath(spec.home, "home directory");
  if (spec.hide.size() > SpecLimits::kMaxHide) throw Error("too many --hide paths (at most 64)");
  for (const std::string& h : spec.hide) validateAbsolutePath(h, "--hide path");
  if (!spec.seccomp.empty() && spec.seccomp != "default" && spec.seccomp != "none" &&
      spec.seccomp != "nested-userns")
    throw Error("--seccomp '" + spec.seccomp + "': expected default, nested-userns or none");
  if (spec.seccompPrograms.size() > SpecLimits::kMaxSeccompPrograms)
    throw Error("too many seccomp programs (at most 16)");
  constexpr size_t kInstructionBytes = 8;  // sizeof(struct sock_filter)
  for (const std::string& program : spec.seccompPrograms) {
    if (program.empty()) throw Error("a seccomp program is empty");
    if (program.size() % kInstructionBytes != 0)
      throw Error("a seccomp program is " + std::to_string(program.size()) +
                  " bytes, not a whole number of 8-byte BPF instructions");
    if (program.size() / kInstructionBytes > SpecLimits::kMaxSeccompInstructions)
      throw Error("a seccomp program has " + std::to_string(program.size() / kInstructionBytes) +
                  " instructions, more than the kernel's 4096");
  }
  if (spec.lockFiles.size() > SpecLimits::kMaxLockFiles)
    throw Error("too many --lock-file paths (at most 64)");
  for (const std::string& path : spec.lockFiles) validateAbsolutePath(path, "--lock-file path");
  if (spec.sandboxUid && *spec.sandboxUid > SpecLimits::kMaxSandboxId)
    throw Error("--uid " + std::to_string(*spec.sandboxUid) + ": not a valid uid (at most " +
                std::to_string(SpecLimits::kMaxSandboxId) + ")");
  if (spec.sandboxGid && *spec.sandboxGid > SpecLimits::kMaxSandboxId)
    throw Error("--gid " + std::to_string(*spec.sandboxGid) + ": not a valid gid (at most " +
                std::to_string(SpecLimits::kMaxSandboxId) + ")");
}

void validateCommand(const Command& cmd) {
  if (cmd.argv.empty()) throw Error("no command given");
  if (cmd.argv[0].empty()) throw Error("the command name is empty");
  // A year: beyond that a timeout is a typo, and kj's timer must not overflow.
  constexpr uint64_t kMaxTimeoutMs = 366ull * 24 * 3600 * 1000;
  if (cmd.timeoutMs > kMaxTimeoutMs) throw Error("--timeout is longer than a year");
  if (cmd.killAfterMs > kMaxTimeoutMs) throw Error("--kill-after is longer than a year");
  if (cmd.argv.size() > SpecLimits::kMaxArgs) throw Error("too many arguments");
  if (cmd.env.size() > SpecLimits::kMaxEnv) throw Error("too many environment variables");
  size_t total = 0;
  for (const std::string& a : cmd.argv) {
    if (hasNul(a)) throw Error("an argument contains a NUL byte");
    total += a.size() + 1;
  }
  if (hasNul(cmd.argv0)) throw Error("--argv0 contains a NUL byte");
  total += cmd.argv0.size();
  if (cmd.cwdFallbacks.size() > SpecLimits::kMaxCwdFallbacks)
    throw Error("too many fallback working directories (at most 8)");
  for (const std::string& dir : cmd.cwdFallbacks) {
    validateAbsolutePath(dir, "fallback working directory");
    total += dir.size() + 1;
  }
  for (const std::string& e : cmd.env) {
    if (hasNul(e)) throw Error("an environment entry contains a NUL byte");
    size_t eq = e.find('=');
    if (eq == std::string::npos || eq == 0)
      throw Error("environment entry '" + e.substr(0, 64) + "' is not KEY=VALUE");
    total += e.size() + 1;
  }
  if (total > SpecLimits::kMaxArgBytes) throw Error("arguments and environment exceed 2 MiB");
  if (!cmd.cwd.empty()) validateAbsolutePath(cmd.cwd, "--chdir directory");
}

std::vector<std::string> secretPaths(const std::string& home) {
  if (home.empty() || home == "/") return {};
  const char* relative[] = {
      // keys, agents' sockets, cloud and cluster credentials
      ".ssh",
      ".gnupg",
      ".aws",
      ".azure",
      ".config/gcloud",
      ".kube",
      ".docker/config.json",
      ".1password",
      ".config/op",
      ".password-store",
      ".local/share/keyrings",
      ".vault-token",
      ".terraform.d/credentials.tfrc.json",
      // tokens of forges and package registries
      ".config/gh",
      ".config/hub",
      ".netrc",
      ".git-credentials",
      ".pypirc",
      ".npmrc",
      ".cargo/credentials",
      ".cargo/credentials.toml",
      // browser profiles: their cookies are logged-in sessions
      ".mozilla",
      ".config/google-chrome",
      ".config/chromium",
      ".config/BraveSoftware",
  };
  std::vector<std::string> paths;
  for (const char* r : relative) paths.push_back(home + "/" + r);
  return paths;
}

std::vector<MountOp> defaultPlan(const std::string& cwd) {
  std::vector<MountOp> plan = {
      {.kind = MountKind::RoBind, .source = "/", .dest = "/"},
      {.kind = MountKind::Dev, .dest = "/dev"},
      {.kind = MountKind::Proc, .dest = "/proc"},
      {.kind = MountKind::Tmpfs, .dest = "/tmp"},
      // /run holds the host's Unix sockets (the caller's D-Bus session bus,
      // docker.sock, ...). A read-only bind does not stop connect(), and the
      // service behind one would act for the caller outside the sandbox.
      {.kind = MountKind::Tmpfs, .dest = "/run"},
      {.kind = MountKind::RoBind, .source = "/sys", .dest = "/sys"},
  };
  if (cwd != "/") plan.push_back({.kind = MountKind::Bind, .source = cwd, .dest = cwd});
  return plan;
}

}  // namespace gpubox
