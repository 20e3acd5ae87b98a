#include "init_loop.hpp"

#include <fcntl.h>
#include <linux/close_range.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <capnp/serialize.h>

#include <cstring>
#include <map>

#include "fd_passing.hpp"
#include "init_messages.hpp"
#include "seccomp_profile.hpp"
#include "spec_wire.hpp"
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

// Reads the wire::Command the helper wrote into `memfd`.
bool readCommand(int memfd, Command* out, std::string* error) {
  struct stat st;
  if (::fstat(memfd, &st) != 0 || st.st_size <= 0 ||
      static_cast<size_t>(st.st_size) > initmsg::kMaxExecPayload || st.st_size % 8 != 0) {
    *error = "malformed exec request";
    return false;
  }
  std::vector<capnp::word> words(static_cast<size_t>(st.st_size) / 8);
  if (::pread(memfd, words.data(), static_cast<size_t>(st.st_size), 0) != st.st_size) {
    *error = "cannot read exec request";
    return false;
  }
  try {
    capnp::FlatArrayMessageReader reader(kj::arrayPtr(words.data(), words.size()));
    *out = commandFromWire(reader.getRoot<wire::Command>());
    return true;
  } catch (const std::exception& e) {
    *error = std::string("malformed exec request: ") + e.what();
  } catch (const kj::Exception& e) {
    *error = "malformed exec request: " + std::string(e.getDescription().cStr());
  }
  return false;
}

struct ChildFailure {
  int32_t stage;
  int32_t err;
  // stage Other: index of the rlimit that failed, or one of the below
  int32_t rlimit;
};
constexpr int32_t kStdioFailed = -1;
constexpr int32_t kGpuboxSeccompFailed = -2;
constexpr int32_t kCallerSeccompBase = -3;  // - i: the caller's program i

// What the command's process needs, all built before it exists: it shares
// the init's memory until execve (CLONE_VM | CLONE_VFORK) and must not
// allocate, so it only reads this and writes `failure`.
struct ChildPlan {
  const std::vector<UniqueFd>* fds;
  const InitSettings* settings;
  const char* file;  // what execvp looks for (argv[0] may be --argv0's)
  // Where the command starts: the first of these it can enter (bwrap's rule
  // for a command without --chdir: its fallbacks, then the default); the
  // last one's failure is the error.
  std::vector<const char*> cwds;
  // "PWD=<that directory>" for each of `cwds`, put into envp[pwdSlot] once
  // the directory is known (Command::setPwd); pwdSlot < 0: none.
  std::vector<std::string> pwds;
  ptrdiff_t pwdSlot = -1;
  std::vector<char*> argv;
  std::vector<char*> envp;
  ChildFailure failure;  // written by the child when it gives up; stage -1: it did not
};

// The command's process runs on a stack of its own (ChildStack) that
// AddressSanitizer does not know: its no-return bookkeeping would print a
// warning into the command's stderr. These two functions only make system
// calls on memory built before, so they are left uninstrumented.
#define GPUBOX_CHILD_STACK_CODE __attribute__((no_sanitize("address")))

GPUBOX_CHILD_STACK_CODE [[noreturn]] void childFails(ChildPlan& plan, initmsg::StartStage stage,
                                                     int err, int32_t rlimit, int status) {
  plan.failure = {static_cast<int32_t>(stage), err, rlimit};
  _exit(status);
}

// The command's process: its own session (it cannot drive the caller's
// terminal through TIOCSTI or job control), the caller's stdio, then exec.
// Only system calls: its memory is the init's until execve.
GPUBOX_CHILD_STACK_CODE int execChild(void* arg) {
  ChildPlan& plan = *static_cast<ChildPlan*>(arg);
  const InitSettings& settings = *plan.settings;
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  ::setsid();
  for (int i = 0; i < 3; ++i) {
    if (::dup2((*plan.fds)[i + 1].get(), i) != i)
      childFails(plan, initmsg::StartStage::Other, errno, kStdioFailed, 125);
  }
  // Everything else (control socket, memfd) closes on exec.
  ::syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC);
  for (size_t i = 0; i < settings.rlimits.size(); ++i) {
    const RlimitSetting& r = settings.rlimits[i];
    const struct rlimit value = {r.soft == kRlimUnlimited ? RLIM_INFINITY : r.soft,
                                 r.hard == kRlimUnlimited ? RLIM_INFINITY : r.hard};
    if (::setrlimit(static_cast<__rlimit_resource>(rlimitResource(r.name)), &value) != 0)
      childFails(plan, initmsg::StartStage::Other, errno, static_cast<int32_t>(i), 125);
  }
  for (size_t i = 0;; ++i) {
    if (::chdir(plan.cwds[i]) == 0) {
      if (plan.pwdSlot >= 0) plan.envp[static_cast<size_t>(plan.pwdSlot)] = plan.pwds[i].data();
      break;
    }
    if (i + 1 == plan.cwds.size()) childFails(plan, initmsg::StartStage::Chdir, errno, 0, 125);
  }
  // Last of all, so it covers the command's first instruction and nothing
  // before it needs a call the filter denies.
  if (!settings.seccomp.empty()) {
    if (int err = installSeccomp(settings.seccomp); err != 0)
      childFails(plan, initmsg::StartStage::Other, err, kGpuboxSeccompFailed, 125);
  }
  // The caller's programs come after gpubox's: every filter sees each call
  // and the strictest answer wins, so they can only refuse more.
  for (size_t i = 0; i < settings.callerSeccomp.size(); ++i) {
    if (int err = installSeccomp(settings.callerSeccomp[i]); err != 0)
      childFails(plan, initmsg::StartStage::Other, err,
                 kCallerSeccompBase - static_cast<int32_t>(i), 125);
  }
  // execvp searches the PATH of the environment the command will get. The
  // init, suspended until this execve, puts its own `environ` back.
  environ = plan.envp.data();
  ::execvp(plan.file, plan.argv.data());
  childFails(plan, initmsg::StartStage::Exec, errno, 0, 127);
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

std::string startFailureMessage(const Command& cmd, const InitSettings& settings,
                                const ChildFailure& f) {
  if (f.stage == static_cast<int32_t>(initmsg::StartStage::Other) &&
      f.rlimit == kGpuboxSeccompFailed)
    return std::string("cannot install the seccomp filter: ") + std::strerror(f.err);
  if (f.stage == static_cast<int32_t>(initmsg::StartStage::Other) && f.rlimit == kStdioFailed)
    return std::string("cannot give the command its stdio: ") + std::strerror(f.err);
  if (f.stage == static_cast<int32_t>(initmsg::StartStage::Other) && f.rlimit <= kCallerSeccompBase)
    return "cannot install seccomp program " + std::to_string(kCallerSeccompBase - f.rlimit + 1) +
           " of the request: " + std::strerror(f.err);
  if (f.stage == static_cast<int32_t>(initmsg::StartStage::Other)) {
    std::string name = f.rlimit >= 0 && static_cast<size_t>(f.rlimit) < settings.rlimits.size()
                           ? settings.rlimits[static_cast<size_t>(f.rlimit)].name
                           : "?";
    return "cannot apply --rlimit " + name + ": " + std::strerror(f.err);
  }
  if (f.stage == static_cast<int32_t>(initmsg::StartStage::Chdir)) {
    const std::string& cwd = cmd.cwd.empty() ? settings.defaultCwd : cmd.cwd;
    return "cannot change to directory " + cwd + ": " + std::strerror(f.err);
  }
  if (f.err == ENOENT) return cmd.argv[0] + ": command not found";
  if (f.err == EACCES || f.err == ENOEXEC || f.err == EPERM)
    return cmd.argv[0] + ": cannot execute: " + std::strerror(f.err);
  return cmd.argv[0] + ": " + std::strerror(f.err);
}

// Each command's process group (its pid: the command calls setsid), kept
// after the command ends while the group still has members, so a timeout's
// SIGKILL still reaches what the command left behind.
using Groups = std::map<uint32_t, pid_t>;

void forgetEmptyGroups(Groups& groups) {
  std::erase_if(groups,
                [](const auto& entry) { return ::kill(-entry.second, 0) != 0 && errno == ESRCH; });
}

void startCommand(int controlFd, uint32_t id, std::vector<UniqueFd>& fds,
                  const InitSettings& settings, const ChildStack& stack,
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
  plan.fds = &fds;
  plan.settings = &settings;
  plan.file = cmd.argv[0].c_str();
  if (cmd.cwd.empty()) {
    for (const std::string& dir : cmd.cwdFallbacks) plan.cwds.push_back(dir.c_str());
    plan.cwds.push_back(settings.defaultCwd.c_str());
  } else {
    plan.cwds.push_back(cmd.cwd.c_str());
  }
  for (const char* dir : plan.cwds) plan.pwds.push_back(std::string("PWD=") + dir);
  plan.failure = {-1, 0, 0};
  for (const std::string& a : cmd.argv) plan.argv.push_back(const_cast<char*>(a.c_str()));
  if (!cmd.argv0.empty()) plan.argv[0] = const_cast<char*>(cmd.argv0.c_str());
  plan.argv.push_back(nullptr);
  for (const std::string& e : cmd.env)
    if (!cmd.setPwd || e.rfind("PWD=", 0) != 0) plan.envp.push_back(const_cast<char*>(e.c_str()));
  if (cmd.setPwd) {
    plan.pwdSlot = static_cast<ptrdiff_t>(plan.envp.size());
    plan.envp.push_back(plan.pwds.back().data());
  }
  plan.envp.push_back(nullptr);
  // Before the clone: a group id freed by an old command may be the new pid.
  forgetEmptyGroups(groups);
  int64_t start = nowNanos();
  // No copy of the init's address space (which is the helper's): the child
  // borrows it, and this thread sleeps until the child's execve or exit.
  char** savedEnviron = environ;
  pid_t pid = ::clone(execChild, stack.top(), CLONE_VM | CLONE_VFORK | SIGCHLD, &plan);
  environ = savedEnviron;
  if (pid < 0) {
    sendStartFailed(controlFd, id, errno, initmsg::StartStage::Other, "clone failed");
    return;
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

void runInitLoop(int controlFd, const InitSettings& settings) {
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
        startCommand(controlFd, rec.id, fds, settings, stack, running, groups);
      } else if (rec.type == initmsg::ToInit::Signal && rec.signo > 0 && rec.signo < NSIG) {
        deliverSignal(controlFd, rec, running, groups);
      }
    }
  }
}

}  // namespace gpubox
