#include "init_loop.hpp"

#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstring>
#include <map>

#include "command_process.hpp"
#include "fd_passing.hpp"
#include "init_messages.hpp"
#include "pid1_process.hpp"
#include "unique_fd.hpp"

extern char** environ;

namespace gpubox {

namespace {

using initmsg::FromInit;
using initmsg::FromInitRecord;

struct Running {
  uint32_t id;
  int64_t startNanos;
};

int64_t nowNanos() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

void send(int controlFd, FromInitRecord& rec) {
  sendRecord(controlFd, &rec, sizeof(rec), {});
}

void sendStartFailed(int controlFd, uint32_t id, int err, initmsg::StartStage stage,
                     const std::string& message) {
  FromInitRecord rec = {};
  rec.type = FromInit::StartFailed;
  rec.id = id;
  rec.a = err;
  rec.b = static_cast<int32_t>(stage);
  std::strncpy(rec.text, message.c_str(), sizeof(rec.text) - 1);
  send(controlFd, rec);
}

// The stack the command's process runs on until execve: one at a time (the
// init waits), so one is enough. Big enough for execvp's PATH buffer and its
// script fallback's argv copy (at most SpecLimits::kMaxArgs pointers).
class ChildStack {
 public:
  static constexpr size_t kSize = 1 << 20;
  ChildStack() {
    void* p = ::mmap(nullptr, kSize, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    base_ = p == MAP_FAILED ? nullptr : p;
  }
  ~ChildStack() {
    if (base_ != nullptr) ::munmap(base_, kSize);
  }
  ChildStack(const ChildStack&) = delete;
  ChildStack& operator=(const ChildStack&) = delete;
  // The stack grows down on every architecture gpubox builds for.
  void* top() const { return base_ == nullptr ? nullptr : static_cast<char*>(base_) + kSize; }

 private:
  void* base_ = nullptr;
};

// Each command's process group (its pid: the command calls setsid), kept
// after the command ends while the group still has members, so a timeout's
// SIGKILL still reaches what the command left behind.
using Groups = std::map<uint32_t, pid_t>;

void forgetEmptyGroups(Groups& groups) {
  std::erase_if(groups,
                [](const auto& entry) { return ::kill(-entry.second, 0) != 0 && errno == ESRCH; });
}

void startCommand(int controlFd, uint32_t id, std::vector<UniqueFd>& fds,
                  const InitSettings& settings, const ChildStack& stack, Pid1Process* pid1,
                  std::map<pid_t, Running>& running, Groups& groups) {
  Command cmd;
  std::string error;
  if (fds.size() != 4 || !readCommand(fds[0].get(), &cmd, &error)) {
    sendStartFailed(controlFd, id, EINVAL, initmsg::StartStage::Other,
                    error.empty() ? "exec request without stdio" : error);
    return;
  }
  if (stack.top() == nullptr) {
    sendStartFailed(controlFd, id, ENOMEM, initmsg::StartStage::Other, "no stack for the command");
    return;
  }
  ChildPlan plan;
  buildChildPlan(cmd, fds, settings, &plan);
  // Before the clone: a group id freed by an old command may be the new pid.
  forgetEmptyGroups(groups);
  int64_t start = nowNanos();
  pid_t pid;
  if (pid1 != nullptr) {
    // --as-pid-1: the process made for it at setup becomes the command.
    std::string why;
    if (!startPid1Command(*pid1, fds, &plan.failure, &why) && !why.empty()) {
      sendStartFailed(controlFd, id, EBUSY, initmsg::StartStage::Other, why);
      return;
    }
    pid = pid1->pid;
  } else {
    // No copy of the init's address space (which is the helper's): the child
    // borrows it, and this thread sleeps until the child's execve or exit.
    char** savedEnviron = environ;
    pid = ::clone(execChild, stack.top(), CLONE_VM | CLONE_VFORK | SIGCHLD, &plan);
    environ = savedEnviron;
    if (pid < 0) {
      sendStartFailed(controlFd, id, errno, initmsg::StartStage::Other, "clone failed");
      return;
    }
  }
  if (plan.failure.stage >= 0) {
    // The child has exited; the reaper drops it since it is not in `running`.
    sendStartFailed(controlFd, id, plan.failure.err,
                    static_cast<initmsg::StartStage>(plan.failure.stage),
                    startFailureMessage(cmd, settings, plan.failure));
    return;
  }
  running[pid] = {id, start};
  groups[id] = pid;
  FromInitRecord rec = {};
  rec.type = FromInit::Started;
  rec.id = id;
  rec.b = pid;
  send(controlFd, rec);
}

// Reaps what has exited (or, with `block`, everything: every process has
// been sent SIGKILL) and reports each command's end.
void reapAll(int controlFd, std::map<pid_t, Running>& running, bool block = false) {
  for (;;) {
    int status = 0;
    pid_t pid = ::waitpid(-1, &status, block ? 0 : WNOHANG);
    if (pid < 0 && errno == EINTR) continue;
    if (pid <= 0) return;
    auto it = running.find(pid);
    if (it == running.end()) continue;  // an orphan of the namespace: just reaped
    FromInitRecord rec = {};
    rec.type = FromInit::Exited;
    rec.id = it->second.id;
    rec.a = status;
    rec.b = pid;
    rec.c = nowNanos() - it->second.startNanos;
    running.erase(it);
    send(controlFd, rec);
  }
}

// Delivers a Signal request. A command that already ended has no entry in
// `running`; its group may still hold children, but they are out of reach
// of that exec's signals by design (the sandbox's end takes them).
void deliverSignal(int controlFd, const initmsg::ToInitRecord& rec,
                   std::map<pid_t, Running>& running, const Groups& groups) {
  if (rec.scope == initmsg::SignalScope::All) {
    // From the namespace's init, kill(-1) reaches every process in it but the init itself.
    const bool any = ::kill(-1, rec.signo) == 0;
    if (rec.signo == SIGKILL) {
      // The helper reports the command's end only once nothing of the
      // sandbox is left: wait for every process, then say so.
      reapAll(controlFd, running, /*block=*/true);
      FromInitRecord done = {};
      done.type = FromInit::AllGone;
      done.id = rec.id;
      done.a = any ? 1 : 0;
      send(controlFd, done);
    }
    return;
  }
  if (rec.scope == initmsg::SignalScope::Group) {
    if (auto it = groups.find(rec.id); it != groups.end()) ::kill(-it->second, rec.signo);
    return;
  }
  for (const auto& [pid, r] : running) {
    if (r.id == rec.id) ::kill(pid, rec.signo);
  }
}

}  // namespace

void runInitLoop(int controlFd, const InitSettings& settings, Pid1Process* pid1) {
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_BLOCK, &chld, nullptr);
  UniqueFd sigFd(::signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!sigFd) _exit(1);
  std::map<pid_t, Running> running;
  Groups groups;
  const ChildStack stack;
  for (;;) {
    struct pollfd pfds[2] = {{controlFd, POLLIN, 0}, {sigFd.get(), POLLIN, 0}};
    if (::poll(pfds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      _exit(1);
    }
    if (pfds[1].revents & POLLIN) {
      struct signalfd_siginfo info;
      while (::read(sigFd.get(), &info, sizeof(info)) == sizeof(info)) {
      }
      reapAll(controlFd, running);
    }
    if (pfds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      initmsg::ToInitRecord rec = {};
      std::vector<UniqueFd> fds;
      ssize_t n = recvRecord(controlFd, &rec, sizeof(rec), &fds, 4);
      if (n <= 0) _exit(0);  // helper closed the sandbox: everything in it dies with us
      if (n != static_cast<ssize_t>(sizeof(rec))) continue;
      if (rec.type == initmsg::ToInit::Exec) {
        startCommand(controlFd, rec.id, fds, settings, stack, pid1, running, groups);
      } else if (rec.type == initmsg::ToInit::Signal && rec.signo > 0 && rec.signo < NSIG) {
        deliverSignal(controlFd, rec, running, groups);
      }
    }
  }
}

}  // namespace gpubox
