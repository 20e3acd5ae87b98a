// The helper's handle on one live sandbox: its init's pidfd and control
// socket, plus whatever the sandbox holds (cgroups, GPU leases). Talks to the
// init without blocking the event loop, runs each command's timeout on the
// loop's timer, and says why each command ended. Destroying it kills the
// whole sandbox (SIGKILL to its init takes the pid namespace down) and hands
// the pidfd to the Reaper, which releases the holdings once the init is gone.
#pragma once

#include <kj/async-unix.h>
#include <kj/timer.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "end_reason.hpp"
#include "reaper.hpp"
#include "sandbox/init_messages.hpp"
#include "sandbox/launcher.hpp"
#include "span_trace.hpp"
#include "spec.hpp"

namespace gpubox {

struct ExecOutcome {
  enum class Kind { Exited, Signaled, NotStarted } kind = Kind::Exited;
  int value = 0;  // exit code or signal number or errno
  initmsg::StartStage stage = initmsg::StartStage::Other;
  std::string message;  // NotStarted: what failed
  int pid = 0;
  uint64_t wallNanos = 0;
  EndReason reason = EndReason::Exited;
  std::string words;  // why it ended, for a person
  uint64_t timeoutMs = 0;
  bool sigkillNeeded = false;
};

// What the runtime reads of the sandbox's cgroup: the OOM-kill counter, to
// tell an OOM kill from any other SIGKILL, and how many processes are left,
// to report a timed-out sandbox only once every process of it is gone.
struct CgroupWatch {
  std::function<uint64_t()> oomKills;   // null: no memory controller
  std::function<uint64_t()> processes;  // the init included
  std::string oomWords;  // "out of memory: the sandbox reached its --memory 64M ceiling"
};

struct ExecOptions {
  uint64_t timeoutMs = 0;  // 0: none
  uint64_t killAfterMs = kDefaultKillAfterMs;
  // Who the timeout's signals reach: every process of a one-shot sandbox;
  // the command's process group in a session (other commands go on).
  initmsg::SignalScope timeoutScope = initmsg::SignalScope::All;
};

class SandboxRuntime {
 public:
  // `holdings` is destroyed after the init has been reaped.
  SandboxRuntime(kj::UnixEventPort& port, kj::Timer& timer, Reaper& reaper, LaunchedInit init,
                 std::shared_ptr<void> holdings, CgroupWatch cgroup, std::function<void()> onEnd);
  ~SandboxRuntime();
  SandboxRuntime(const SandboxRuntime&) = delete;
  SandboxRuntime& operator=(const SandboxRuntime&) = delete;

  // Resolves when setup finished; rejects with the init's message otherwise.
  kj::Promise<void> whenReady();
  // Resolves once the first command's end has been delivered to its
  // waiters, or the init is gone; rejects if this object goes first.
  kj::Promise<void> whenFirstEnded();
  // Tells the init it was placed in its cgroups once PLACEMENT resolves (see
  // InitConfig::awaitPlacement); if it rejects, the sandbox fails with that.
  void placeWhen(kj::Promise<void> placement);
  // Marks placed, ready, exec, started and exited on TRACE and logs it when
  // a command ends (gpubox-helper --trace-spans); null: no tracing.
  void traceSpans(std::shared_ptr<SpanTrace> trace) { spans_ = std::move(trace); }
  const std::vector<size_t>& skippedSteps() const { return skipped_; }
  const std::vector<size_t>& hiddenPaths() const { return hidden_; }
  pid_t initPid() const { return pid_; }

  // Starts a command with the given stdio; returns its exec id.
  // COMMAND_MEMFD: the command as the init reads it (PreparedCommand).
  uint32_t exec(int commandMemfd, const int stdio[3], const ExecOptions& options);
  kj::Promise<ExecOutcome> wait(uint32_t id);
  void signal(uint32_t id, int signo, initmsg::SignalScope scope = initmsg::SignalScope::Process);
  // Commands started and not yet ended.
  size_t running() const;
  // Called (on the loop) each time a command starts or ends, and when the
  // init is gone (sessions: idle timeout, release of a dead session).
  void setOnActivity(std::function<void()> f) { onActivity_ = std::move(f); }

  // Kills every process of the sandbox now (SIGKILL to its init); commands
  // still running end with `why`. The object itself goes when its last
  // reference does.
  void end(EndReason why);
  void kill() { end(EndReason::ClientDisconnected); }
  // Once end() was called, or the init is gone: no new command may start.
  bool ended() const { return dead_.has_value() || endedBy_.has_value(); }

 private:
  struct ExecState {
    std::optional<ExecOutcome> outcome;
    std::vector<kj::Own<kj::PromiseFulfiller<ExecOutcome>>> waiters;
    uint64_t oomKillsAtStart = 0;
    ExecOptions options;
    bool timedOut = false;
    bool sigkillSent = false;
    bool allGone = false;  // the init reaped everything after the SIGKILL
    kj::Promise<void> timeout = nullptr;
    // A timed-out one-shot sandbox's command ended, but other processes of
    // it are still there: its outcome waits until they are gone too.
    std::optional<ExecOutcome> deferred;
    kj::Promise<void> drain = nullptr;
  };
  kj::Promise<void> readLoop();
  void handle(const initmsg::FromInitRecord& rec);
  void finishExec(uint32_t id, ExecOutcome outcome);
  void deliver(uint32_t id, ExecOutcome outcome);
  kj::Promise<void> drainThenDeliver(uint32_t id);
  void explain(ExecState& state, ExecOutcome& out);
  kj::Promise<void> runTimeout(uint32_t id);
  void initGone(const std::string& why);
  uint64_t oomKills() const { return cgroup_.oomKills ? cgroup_.oomKills() : 0; }

  kj::Timer& timer_;
  Reaper& reaper_;
  pid_t pid_;
  UniqueFd pidfd_;
  UniqueFd control_;
  std::shared_ptr<void> holdings_;
  CgroupWatch cgroup_;
  std::function<void()> onEnd_;
  std::function<void()> onActivity_;
  kj::UnixEventPort::FdObserver observer_;
  kj::Promise<void> readTask_ = nullptr;
  kj::Promise<void> placement_ = nullptr;
  bool ready_ = false;
  std::optional<std::string> dead_;   // why the init is gone
  std::optional<EndReason> endedBy_;  // set by end(): the helper ended it on purpose
  std::vector<kj::Own<kj::PromiseFulfiller<void>>> readyWaiters_;
  bool firstEnded_ = false;
  std::vector<kj::Own<kj::PromiseFulfiller<void>>> firstEndedWaiters_;
  std::vector<size_t> skipped_;
  std::vector<size_t> hidden_;
  std::map<uint32_t, ExecState> execs_;
  uint32_t nextId_ = 1;
  std::shared_ptr<SpanTrace> spans_;
};

}  // namespace gpubox
