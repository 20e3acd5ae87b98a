# gpubox wire contract. This file is the one place the protocol is defined.
#
# Versioning rule (see docs/protocol.md): fields and methods are only ever
# appended, never renumbered or removed; `protocolMinor` (HelperInfo) is
# bumped with every addition and `protocolMajor` when a change alters
# meaning; a client refuses a helper whose major version differs from its own.
@0xc3a1f1d0e6b2a901;

$import "/capnp/c++.capnp".namespace("gpubox::wire");

const protocolMajor :UInt32 = 1;
const protocolMinor :UInt32 = 6;
# 1.1: limits, timeouts, why a process ended, sessions and the list (issue 6).
# 1.3: what bubblewrap's command line needs (gpubox-bwrap, issue 9): more
#      mount kinds and their modifiers, caller seccomp programs, lock files,
#      argv0, bwrap's working-directory rule, namespace inodes in Applied.
# 1.4: the uid and gid the command runs as inside its user namespace
#      (bwrap's --uid, --gid); SandboxSpec.asPid1 (bwrap's --as-pid-1).
# 1.5: HelperInfo.warmPool (issue 8).
# 1.6: HelperInfo.warmPoolHostNet, the pool of --net host inits (issue 8).

interface Fd {
  # Carries one file descriptor (Cap'n Proto fd passing over a Unix socket).
  # The client's stdin/stdout/stderr travel this way, so the sandboxed
  # process writes straight into the caller's pipe or terminal.
}

struct Stdio {
  stdin  @0 :Fd;
  stdout @1 :Fd;
  stderr @2 :Fd;
}

struct MountOp {
  # One step of a bubblewrap-style mount plan, applied in order on a fresh
  # tmpfs root. `source` is a host path (binds) or the link target (symlink).
  kind   @0 :Kind;
  source @1 :Text;
  dest   @2 :Text;
  ifSourceExists @3 :Bool;    # (1.3) binds: skip the step when the source does not
                              # exist (bwrap's --bind-try, --ro-bind-try, --dev-bind-try)
  mode   @4 :UInt32 = 0xffffffff;
                              # (1.3) permission bits (<= 07777) of what the step creates:
                              # tmpfs, dir, file, bindData, roBindData (bwrap's --perms);
                              # chmod: the new bits. 0xffffffff: the kind's default
  sizeBytes @5 :UInt64;       # (1.3) tmpfs: its size (bwrap's --size); 0: the kernel's default
  data   @6 :Data;            # (1.3) file, bindData, roBindData: the file's contents
  sourceInode @7 :InodeId;    # (1.3) binds: the source must be exactly this inode, else the
                              # step fails (bwrap's --bind-fd: the client names the fd's
                              # path and identity; the helper opens the path as the caller)
  enum Kind {
    bind      @0;   # --bind SRC DST
    roBind    @1;   # --ro-bind SRC DST
    devBind   @2;   # --dev-bind SRC DST
    tmpfs     @3;   # --tmpfs DST
    proc      @4;   # --proc DST
    dev       @5;   # --dev DST
    dir       @6;   # --dir DST
    symlink   @7;   # --symlink TARGET DST
    remountRo @8;   # --remount-ro DST
    file       @9;  # (1.3) --file FD DST: a new file holding `data`
    bindData  @10;  # (1.3) --bind-data FD DST: a file holding `data`, bound on DST
    roBindData @11; # (1.3) --ro-bind-data FD DST: the same, read-only
    chmod     @12;  # (1.3) --chmod OCTAL DST: DST (which must exist) gets `mode`
    mqueue    @13;  # (1.3) --mqueue DST: the sandbox's POSIX message queue filesystem
  }
}

struct InodeId {
  # (1.3) One file's identity, as stat(2) reports it.
  dev @0 :UInt64;
  ino @1 :UInt64;
}

enum Network {
  none @0;   # a new net namespace with only lo up
  host @1;   # the host's network namespace (policy must allow it)
}

struct SandboxSpec {
  useDefaultPlan @0 :Bool = true;
  # true: the agent-friendly default (host / read-only, fresh /tmp, minimal
  # /dev, /proc, /sys read-only, `cwd` read-write at the same path), then `mounts`.
  mounts   @1 :List(MountOp);
  cwd      @2 :Text;          # the client's working directory (default plan)
  hostname @3 :Text;          # empty: keep the host's name
  network  @4 :Network;
  gpus     @5 :List(Text);    # GPU selectors: "all", "0,2", "GPU-<uuid>", "count:N", CDI names
  limits   @6 :Limits;        # (1.1) resource ceilings; unset fields take the helper's defaults
  seccomp  @7 :Text;          # (1.1) "" or "default": the default filter; "none": no filter (root only)
  home     @8 :Text;          # (1.1) the caller's home: the default plan hides its secrets (~/.ssh, ...)
  hide     @9 :List(Text);    # (1.2) more paths to hide, whatever the plan (--hide, $SSH_AUTH_SOCK)
  seccompPrograms @10 :List(Data);
                              # (1.3) the caller's classic BPF programs (struct sock_filter
                              # arrays), installed in this order after gpubox's own filter:
                              # they can only refuse more (bwrap's --seccomp, --add-seccomp-fd)
  lockFiles @11 :List(Text);  # (1.3) paths inside the sandbox its init holds a read lock
                              # (F_SETLK, F_RDLCK) on while it lives (bwrap's --lock-file)
  sandboxUid @12 :UInt32 = 0xffffffff;
  sandboxGid @13 :UInt32 = 0xffffffff;
                              # (1.4) the uid / gid the command runs as inside the sandbox's
                              # user namespace, mapped onto the caller's own (bwrap's --uid,
                              # --gid); 0xffffffff (the default): the caller's own id. Refused
                              # when the sandbox has no user namespace of its own, unless it
                              # is the caller's own id
  asPid1 @14 :Bool;           # (1.4) the command runs as pid 1 of a pid namespace of its own
                              # inside the sandbox's (bwrap's --as-pid-1); one command only:
                              # refused for a session
}

struct Rlimit {
  name @0 :Text;              # "NOFILE", "CORE", ... (setrlimit's RLIMIT_ without the prefix)
  soft @1 :UInt64;            # 0xffffffffffffffff: unlimited
  hard @2 :UInt64;
}

struct Limits {
  # 0 in a numeric field means "not asked for": the helper's default applies.
  memoryBytes @0 :UInt64;     # --memory: hard ceiling, no swap
  cpuMillis   @1 :UInt32;     # --cpus x 1000
  pids        @2 :UInt32;     # --pids
  rlimits     @3 :List(Rlimit);  # applied to every command before it starts
}

struct Command {
  argv @0 :List(Text);
  env  @1 :List(Text);        # KEY=VALUE, exactly the environment the command gets
  cwd  @2 :Text;              # empty: the sandbox's default working directory
  timeoutMs   @3 :UInt64;     # (1.1) 0: none. Then SIGTERM (one-shot sandbox: every process;
                              # session exec: the command's process group) ...
  killAfterMs @4 :UInt64;     # ... and SIGKILL this long after it (0: the default, 10 s)
  argv0 @5 :Text;             # (1.3) non-empty: the argv[0] the command sees; argv[0] is
                              # still what is executed (bwrap's --argv0)
  cwdFallbacks @6 :List(Text);
                              # (1.3) with `cwd` empty: the first of these the command can
                              # enter is its working directory, else the sandbox's default
  setPwd @7 :Bool;            # (1.3) set PWD to the directory the command starts in
}

enum EndReason {
  # (1.1) Why a process ended, for programs; ExitStatus.message says it in words.
  exited             @0;
  signaled           @1;
  outOfMemory        @2;      # the sandbox's memory ceiling was reached and the kernel killed it
  timedOut           @3;      # Command.timeoutMs passed
  notStarted         @4;
  sessionRemoved     @5;      # `session rm` (or its owner's client) ended the session
  sessionExpired     @6;      # the session's TTL or idle timeout passed
  clientDisconnected @7;      # only seen in logs: nobody is left to tell
  helperError        @8;
}

struct ExitStatus {
  union {
    exited     @0 :Int32;        # exit code
    signaled   @1 :Int32;        # signal number
    notStarted @4 :StartFailure; # the command never ran (not found, not executable, bad cwd)
  }
  pid       @2 :Int32;        # the command's pid inside the sandbox
  wallNanos @3 :UInt64;       # from exec to exit
  reason    @5 :EndReason;    # (1.1)
  message   @6 :Text;         # (1.1) e.g. "out of memory: the sandbox reached its --memory 64M ceiling"
  timeoutMs @7 :UInt64;       # (1.1) the timeout that fired (reason timedOut), else 0
  sigkillNeeded @8 :Bool;     # (1.1) timedOut: processes were still there after the grace period
}

struct StartFailure {
  errno   @0 :Int32;          # errno of the failed step
  stage   @1 :Stage;
  message @2 :Text;           # e.g. "nosuchcmd: command not found"
  enum Stage {
    exec  @0;
    chdir @1;
    other @2;
  }
}

struct Applied {
  # What the helper actually did for this sandbox (nothing silently skipped).
  namespaces @0 :List(Text);  # e.g. "user", "mnt", "pid", "ipc", "uts", "cgroup", "net"
  mounts     @1 :List(Text);  # one human-readable line per mount step applied
  initPid    @2 :Int32;       # the sandbox's init, as the host sees it
  gpus       @3 :List(Text);  # UUIDs of the GPUs granted
  cgroup     @4 :Text;        # the sandbox's cgroup directories, one line
  limits     @5 :List(Text);  # (1.1) one line per limit applied, e.g. "pids.max = 64 (cgroup v1)"
  session    @6 :Text;        # (1.1) the session's name; empty for a one-shot sandbox
  seccomp    @7 :Text;        # (1.1) the seccomp profile every command runs under: "default" or "none"
  userNamespace @8 :Text;     # (1.2) "new": the sandbox has a user namespace of its own; "host":
                              # it stays in the helper's (--user-namespace never, or auto on a
                              # kernel that refuses one). Empty from a helper older than this field
  namespaceIds @9 :List(NamespaceId);
                              # (1.3) the inode of each namespace made for the sandbox, as
                              # /proc/PID/ns/NAME shows it (cgroup, entered late, is left out)
}

struct NamespaceId {
  # (1.3)
  name  @0 :Text;             # "ipc", "mnt", "net", "pid", "uts", "user"
  inode @1 :UInt64;
}

struct SessionOptions {
  # (1.1)
  name          @0 :Text;     # empty: the helper picks one
  ttlMs         @1 :UInt64;   # 0: the helper's default (1 h)
  idleTimeoutMs @2 :UInt64;   # 0: none. Removed after this long with no command running
}

struct SandboxListing {
  # (1.1) One live sandbox of the caller (root: of anyone), for `gpubox ps`.
  name            @0 :Text;
  session         @1 :Bool;   # false: a one-shot `run`
  uid             @2 :UInt32;
  ageMs           @3 :UInt64;
  processes       @4 :UInt32;
  memoryBytes     @5 :UInt64;
  memoryPeakBytes @6 :UInt64;
  cpuNanos        @7 :UInt64;
  gpus            @8 :List(Text);
  ttlLeftMs       @9 :UInt64;   # sessions only
  idleTimeoutMs  @10 :UInt64;
  initPid        @11 :Int32;
  cgroup         @12 :Text;
  command        @13 :Text;     # first command's argv[0]
  limits         @14 :List(Text);
}

struct GpuInfo {
  index   @0 :UInt32;
  uuid    @1 :Text;
  model   @2 :Text;
  busId   @3 :Text;
  minor   @4 :UInt32;
  mig     @5 :List(Text);     # MIG instances, "gi/ci" per entry
  holders @6 :UInt32;         # sandboxes holding this GPU now
  allowed @7 :Bool;           # whether policy lets this caller use it
}

struct HelperInfo {
  version         @0 :Text;
  protocolMajor   @1 :UInt32;
  protocolMinor   @2 :UInt32;
  kernel          @3 :Text;
  features        @4 :List(Text);   # kernel interfaces in use
  cgroupMode      @5 :Text;         # "v1", "v2" or "hybrid"
  callerUid       @6 :UInt32;
  callerGid       @7 :UInt32;
  limits          @8 :List(Text);   # (1.1) defaults and ceilings, e.g. "memory: default 17.6G, ceiling none"
  cgroups         @9 :List(Text);   # (1.1) where each resource is enforced, e.g. "pids: cgroup v1 (...)"
  userNamespace   @10 :Text;        # (1.2) what sandboxes get: "new" or "host" (as Applied.userNamespace)
  userNamespaceSetting @11 :Text;   # (1.2) the helper's --user-namespace: "auto", "required" or "never"
  userNamespaceReason  @12 :Text;   # (1.2) how the setting and the kernel led to userNamespace, one line
  warmPool        @13 :WarmPool;    # (1.5) to root only (it counts everyone's requests); null otherwise, or with no pool
  warmPoolHostNet @14 :WarmPool;    # (1.6) the same for the pool of --net host inits (--warm-inits-host-net)
}

# The helper's pool of warm inits (--warm-inits; docs/operations.md).
struct WarmPool {
  size     @0 :UInt32;   # inits it keeps now (grows on misses, shrinks back)
  floor    @1 :UInt32;   # --warm-inits
  ceiling  @2 :UInt32;   # --warm-inits-max
  ready    @3 :UInt32;   # waiting now
  taken    @4 :UInt64;   # requests served from it since start
  missed   @5 :UInt64;   # requests that found it empty (an init cloned for them)
}

interface Process {
  wait   @0 () -> (status :ExitStatus);
  signal @1 (signo :Int32);
}

interface Sandbox {
  exec    @0 (command :Command, stdio :Stdio) -> (process :Process);
  applied @1 () -> (applied :Applied);
}

interface Helper {
  info   @0 () -> (info :HelperInfo);
  create @1 (spec :SandboxSpec) -> (sandbox :Sandbox);
  gpus   @2 () -> (gpus :List(GpuInfo));
  # (1.1) Sessions: sandboxes that outlive the connection that made them,
  # until removed, their TTL or their idle timeout; owned by the caller's uid.
  createSession @3 (spec :SandboxSpec, options :SessionOptions) -> (name :Text, sandbox :Sandbox, ttlMs :UInt64);
  openSession   @4 (name :Text) -> (sandbox :Sandbox);
  removeSession @5 (name :Text) -> ();
  list          @6 () -> (sandboxes :List(SandboxListing));
}
