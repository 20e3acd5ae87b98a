// The helper <-> sandbox-init control channel: fixed-size records on a
// SOCK_SEQPACKET socketpair, so neither side ever parses a variable-length
// structure it did not write itself. The one variable-length payload (an exec
// request) travels as a Cap'n Proto wire::Command in a memfd, read with the
// same limits the helper applies to clients.
#pragma once

#include <cstddef>
#include <cstdint>

namespace gpubox::initmsg {

enum class ToInit : uint32_t {
  Go = 1,      // fds: [memfd holding the InitConfig]; maps and cgroups are in place: set up
  Exec = 2,    // fds: [memfd holding wire::Command, stdin, stdout, stderr]
  Signal = 3,  // deliver `signo` to the processes of exec `id` that `scope` names
  Placed = 4,  // the init has joined its cgroup v1 hierarchies (InitConfig::awaitPlacement)
};

// Who a Signal reaches. The init does the sending because only it sees the
// sandbox's pid namespace from inside: kill(-1) from a namespace's init
// reaches every other process in it, double-forked daemons included.
enum class SignalScope : uint32_t {
  Process = 0,  // the command's own process (forwarded signals)
  Group = 1,    // the command's process group (it starts as a session leader)
  All = 2,      // every process of the sandbox but the init
};

struct ToInitRecord {
  ToInit type;
  uint32_t id;
  int32_t signo;
  SignalScope scope;
};

enum class FromInit : uint32_t {
  Skipped = 1,      // mount step `a` was skipped (optional / already visible)
  Ready = 2,        // setup complete; `a` = init's pid as the init sees it (1)
  SetupFailed = 3,  // `text` says why; the init exits after sending it
  Started = 4,      // exec `id` runs as pid `b` (inside the sandbox)
  StartFailed = 5,  // exec `id` failed: `a` errno, `b` stage (StartStage), `text`
  Exited = 6,       // exec `id` ended: `a` raw wait status, `b` pid, `c` wall ns
  AllGone = 7,      // after a SIGKILL to every process for exec `id`: all are reaped;
                    // `a` = 1 if the SIGKILL found any process, else 0
  Hidden = 8,       // InitConfig::hide[`a`] existed and was hidden
  Span = 9,         // --trace-spans only, before Ready: setup step `text` ended
                    // at `c` (CLOCK_MONOTONIC ns; setup_spans.hpp)
};

enum class StartStage : int32_t { Exec = 0, Chdir = 1, Other = 2 };

struct FromInitRecord {
  FromInit type;
  uint32_t id;
  int32_t a;
  int32_t b;
  int64_t c;
  char text[1000];
};

// Upper bound on the InitConfig sent with Go (init_config_codec.hpp).
constexpr size_t kMaxConfigPayload = 64 * 1024 * 1024;

// Upper bound on the memfd payload of one Exec (argv + env + framing).
constexpr size_t kMaxExecPayload = 4 * 1024 * 1024;

}  // namespace gpubox::initmsg
