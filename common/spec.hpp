// Plain C++ form of a sandbox request, shared by client and helper. The
// helper validates every request with these functions before acting on it;
// the client uses the same checks to fail early with the same messages.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "limits.hpp"

namespace gpubox {

enum class MountKind {
  Bind,
  RoBind,
  DevBind,
  Tmpfs,
  Proc,
  Dev,
  Dir,
  Symlink,
  RemountRo,
  File,
  BindData,
  RoBindData,
  Chmod,
  Mqueue,
  // The two below are only ever planned by the helper itself (GPU binding in
  // a root that is not the host's, docs/gpu.md); they are not on the wire.
  // DriverDir: a read-only tmpfs at dest holding the driver's files, each
  // bound read-only from the host; source holds one line per file,
  // "HOSTPATH\tLINK" (LINK: the soname symlink to make next to it, or empty).
  DriverDir,
  // LoaderCache: dest (/etc/ld.so.cache) replaced, read-only, by a copy with
  // every library of the directory `source` (a DriverDir) added.
  LoaderCache
};

// A file's identity as stat(2) reports it.
struct InodeId {
  uint64_t dev = 0;
  uint64_t ino = 0;
  bool operator==(const InodeId&) const = default;
};

struct MountOp {
  MountKind kind = MountKind::Dir;
  // binds: host path; Symlink: link target; File, BindData, RoBindData: the
  // file's contents
  std::string source;
  std::string dest;  // absolute path inside the sandbox
  // Tmpfs/Dir/File/BindData/RoBindData permission bits, Chmod's new bits;
  // unset: the kind's default
  std::optional<unsigned> mode;
  uint64_t sizeBytes = 0;              // Tmpfs: its size; 0: the kernel's default
  bool ifSourceExists = false;         // binds: skip the step when the source does not exist
  std::optional<InodeId> sourceInode;  // binds: the source must be this inode
  // The two flags below are only ever set by the helper itself (GPU binding);
  // they are not on the wire, so a client cannot set them.
  bool optional = false;       // skip the step when dest's parent does not exist inside
  bool skipIfVisible = false;  // binds: skip when dest already shows the source's inode;
                               // Symlink: skip when dest already exists
  bool hardened = false;       // binds: also read-only, nosuid, noexec (GPU device nodes)
  bool checkSource = false;    // binds: the caller's own; the policy's bind-source rule applies

  bool operator==(const MountOp&) const = default;
};

enum class Network { None, Host };

struct SandboxSpec {
  bool useDefaultPlan = true;
  std::vector<MountOp> mounts;
  std::string cwd;       // client's working directory (bound read-write by the default plan)
  std::string hostname;  // empty: keep the host's
  Network network = Network::None;
  std::vector<std::string> gpus;  // GPU selectors as the user wrote them
  Limits limits;                  // unset: the helper's defaults
  std::string seccomp;            // "" / "default": the default filter; "none": none (root only)
  std::string home;               // the caller's home ("" or "/": none); see secretPaths()
  std::vector<std::string> hide;  // more paths hidden if they exist, whatever the plan
  // The caller's classic BPF programs (sock_filter arrays, as bytes), each
  // installed after gpubox's own filter: they can only refuse more.
  std::vector<std::string> seccompPrograms;
  std::vector<std::string> lockFiles;  // paths inside; the init holds a read lock on each
  // The ids the command runs as inside the sandbox's user namespace, mapped
  // onto the caller's own (bwrap's --uid, --gid); unset: the caller's own.
  // Only a label: the process is still the caller on the host. The helper
  // refuses any other than the caller's own when the sandbox gets no user
  // namespace of its own (sandbox_ids.hpp).
  std::optional<uint32_t> sandboxUid;
  std::optional<uint32_t> sandboxGid;
  // The command is pid 1 of a pid namespace of its own (bwrap's --as-pid-1);
  // one command only, so not for a session.
  bool asPid1 = false;

  bool operator==(const SandboxSpec&) const = default;
};

struct Command {
  std::vector<std::string> argv;
  std::vector<std::string> env;  // KEY=VALUE
  std::string cwd;               // empty: sandbox default
  uint64_t timeoutMs = 0;        // 0: none
  uint64_t killAfterMs = 0;      // grace between SIGTERM and SIGKILL; 0: kDefaultKillAfterMs
  std::string argv0;             // non-empty: the argv[0] the command sees (argv[0] is run)
  // With cwd empty: the first of these the command can enter, else the
  // sandbox's default (bwrap's rule: the caller's directory, then $HOME).
  std::vector<std::string> cwdFallbacks;
  bool setPwd = false;  // PWD = the directory the command starts in

  bool operator==(const Command&) const = default;
};

constexpr uint64_t kDefaultKillAfterMs = 10000;

// Limits on what one request may carry; anything larger is refused.
struct SpecLimits {
  static constexpr size_t kMaxMounts = 512;
  static constexpr size_t kMaxHide = 64;
  static constexpr size_t kMaxPath = 4096;
  static constexpr size_t kMaxArgs = 8192;
  static constexpr size_t kMaxEnv = 8192;
  static constexpr size_t kMaxArgBytes = 2 * 1024 * 1024;  // argv + env together
  static constexpr size_t kMaxHostname = 64;
  static constexpr size_t kMaxGpuSelectors = 64;
  static constexpr size_t kMaxSelector = 256;
  // --file, --bind-data, --ro-bind-data: one file's contents, and all of a
  // request's together (the message must stay under the reader's 16 MiB).
  static constexpr size_t kMaxFileData = 4 * 1024 * 1024;
  static constexpr size_t kMaxTotalFileData = 8 * 1024 * 1024;
  static constexpr size_t kMaxSeccompPrograms = 16;
  static constexpr size_t kMaxSeccompInstructions = 4096;  // BPF_MAXINSNS
  static constexpr size_t kMaxLockFiles = 64;
  static constexpr size_t kMaxCwdFallbacks = 8;
  static constexpr uint64_t kMaxTmpfsBytes = UINT64_MAX / 2;  // as bwrap's SIZE_MAX / 2
  // (uid_t)-1 means "no change" to setresuid(2) and is never a real id; the
  // wire uses it for "unset".
  static constexpr uint32_t kMaxSandboxId = UINT32_MAX - 1;
};

// Each throws gpubox::Error naming the offending field and value.
void validateSpec(const SandboxSpec& spec);
void validateCommand(const Command& cmd);
// An absolute, normalised path: starts with '/', no NUL, no "." or ".."
// components, not longer than kMaxPath. `what` names the field in errors.
void validateAbsolutePath(const std::string& path, const std::string& what);

// The agent-friendly default plan: host / read-only, fresh /tmp and /run
// (no host sockets), minimal /dev, /proc, /sys read-only, `cwd` read-write at
// the same path.
std::vector<MountOp> defaultPlan(const std::string& cwd);

// What the default plan hides under the caller's HOME (an empty read-only
// tmpfs over a directory, an empty read-only file over anything else):
// credentials and agent sockets a read-only bind would still show or let
// a process connect() to. Empty for an empty or "/" home.
std::vector<std::string> secretPaths(const std::string& home);

// --bind, --ro-bind or --dev-bind: the steps with a host source tree.
bool isBind(MountKind kind);
// --file, --bind-data, --ro-bind-data: the steps that carry a file's contents.
bool carriesData(MountKind kind);

// bwrap-style rendering of one step, e.g. "--ro-bind / /".
std::string describeMount(const MountOp& op);
const char* mountKindOption(MountKind kind);

}  // namespace gpubox
