# gpubox wire contract. This file is the one place the protocol is defined.
#
# Versioning rule (see docs/protocol.md): fields and methods are only ever
# appended, never renumbered or removed; `protocolVersion` in HelperInfo is
# bumped when a change alters meaning, and a client refuses a helper whose
# major protocol version differs from its own.
@0xc3a1f1d0e6b2a901;

$import "/capnp/c++.capnp".namespace("gpubox::wire");

const protocolMajor :UInt32 = 1;
const protocolMinor :UInt32 = 0;

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
  }
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
}

struct Command {
  argv @0 :List(Text);
  env  @1 :List(Text);        # KEY=VALUE, exactly the environment the command gets
  cwd  @2 :Text;              # empty: the sandbox's default working directory
}

struct ExitStatus {
  union {
    exited     @0 :Int32;        # exit code
    signaled   @1 :Int32;        # signal number
    notStarted @4 :StartFailure; # the command never ran (not found, not executable, bad cwd)
  }
  pid       @2 :Int32;        # the command's pid inside the sandbox
  wallNanos @3 :UInt64;       # from exec to exit
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
  cgroup     @4 :Text;        # device cgroup path, empty if none
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
}
