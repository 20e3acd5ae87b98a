// The helper's handle on one live sandbox: its init's pidfd and control
// socket, plus whatever the sandbox holds (cgroups, GPU leases). Talks to the
// init without blocking the event loop. Destroying it kills the whole sandbox
// (SIGKILL to its init takes the pid namespace down) and hands the pidfd to
// the Reaper, which releases the holdings once the init is gone.
#pragma once

#include <kj/async-unix.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "reaper.hpp"
#include "sandbox/init_messages.hpp"
#include "sandbox/launcher.hpp"
#include "spec.hpp"

namespace gpubox {

struct ExecOutcome {
  enum class Kind { Exited, Signaled, NotStarted } kind = Kind::Exited;
  int value = 0;  // exit code or signal number or errno
  initmsg::StartStage stage = initmsg::StartStage::Other;
  std::string message;
  int pid = 0;
  uint64_t wallNanos = 0;
};

class SandboxRuntime {
 public:
  // `holdings` is destroyed after the init has been reaped.
  SandboxRuntime(kj::UnixEventPort& port, Reaper& reaper, LaunchedInit init,
                 std::shared_ptr<void> holdings, std::function<void()> onEnd);
  ~SandboxRuntime();
  SandboxRuntime(const SandboxRuntime&) = delete;
  SandboxRuntime& operator=(const SandboxRuntime&) = delete;

  // Resolves when setup finished; rejects with the init's message otherwise.
  kj::Promise<void> whenReady();
  const std::vector<size_t>& skippedSteps() const { return skipped_; }
  pid_t initPid() const { return pid_; }

  // Starts a command with the given stdio; returns its exec id.
  uint32_t exec(const Command& cmd, const int stdio[3]);
  kj::Promise<ExecOutcome> wait(uint32_t id);
  void signal(uint32_t id, int signo);

  // Kills every process of the sandbox now (SIGKILL to its init). The
  // object itself goes when its last reference does.
  void kill();

 private:
  struct ExecState {
    std::optional<ExecOutcome> outcome;
    std::vector<kj::Own<kj::PromiseFulfiller<ExecOutcome>>> waiters;
  };
  kj::Promise<void> readLoop();
  void handle(const initmsg::FromInitRecord& rec);
  void finishExec(uint32_t id, ExecOutcome outcome);
  void failAll(const std::string& why);

  Reaper& reaper_;
  pid_t pid_;
  UniqueFd pidfd_;
  UniqueFd control_;
  std::shared_ptr<void> holdings_;
  std::function<void()> onEnd_;
  kj::UnixEventPort::FdObserver observer_;
  kj::Promise<void> readTask_ = nullptr;
  bool ready_ = false;
  std::optional<std::string> dead_;  // why the init is gone
  std::vector<kj::Own<kj::PromiseFulfiller<void>>> readyWaiters_;
  std::vector<size_t> skipped_;
  std::map<uint32_t, ExecState> execs_;
  uint32_t nextId_ = 1;
};

}  // namespace gpubox
