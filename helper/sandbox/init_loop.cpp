#include "init_loop.hpp"

#include <fcntl.h>
#include <linux/close_range.h>
#include <poll.h>
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
  // stage Other: index of the rlimit that failed; -2 gpubox's seccomp
  // filter; kCallerSeccompBase - i the caller's program i
  int32_t rlimit;
};
constexpr int32_t kCallerSeccompBase = -3;

// The command's process: its own session (it cannot drive the caller's
// terminal through TIOCSTI or job control), the caller's stdio, then exec.
[[noreturn]] void execChild(const Command& cmd, const std::vector<UniqueFd>& fds, int errFd,
                            const InitSettings& settings) {
  const std::string& defaultCwd = settings.defaultCwd;
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  ::setsid();
  for (int i = 0; i < 3; ++i) {
    if (::dup2(fds[i + 1].get(), i) != i) _exit(125);
  }
  // Everything else (control socket, memfd) closes on exec; errFd reports
  // failure and is close-on-exec too.
  ::syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC);
  for (size_t i = 0; i < settings.rlimits.size(); ++i) {
    const RlimitSetting& r = settings.rlimits[i];
    const struct rlimit value = {r.soft == kRlimUnlimited ? RLIM_INFINITY : r.soft,
                                 r.hard == kRlimUnlimited ? RLIM_INFINITY : r.hard};
    if (::setrlimit(static_cast<__rlimit_resource>(rlimitResource(r.name)), &value) != 0) {
      ChildFailure f = {static_cast<int32_t>(initmsg::StartStage::Other), errno,
                        static_cast<int32_t>(i)};
      (void)!::write(errFd, &f, sizeof(f));
      _exit(125);
    }
  }
  std::string cwd = cmd.cwd.empty() ? defaultCwd : cmd.cwd;
  if (cmd.cwd.empty()) {
    // bwrap's rule: the first of these the command can enter, else the default.
    for (const std::string& dir : cmd.cwdFallbacks) {
      if (::chdir(dir.c_str()) == 0) {
        cwd = dir;
        break;
      }
    }
  }
  if (::chdir(cwd.c_str()) != 0) {
    ChildFailure f = {static_cast<int32_t>(initmsg::StartStage::Chdir), errno, 0};
    (void)!::write(errFd, &f, sizeof(f));
    _exit(125);
  }
  std::vector<char*> argv;
  for (const std::string& a : cmd.argv) argv.push_back(const_cast<char*>(a.c_str()));
  if (!cmd.argv0.empty()) argv[0] = const_cast<char*>(cmd.argv0.c_str());
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (const std::string& e : cmd.env)
    if (!cmd.setPwd || e.rfind("PWD=", 0) != 0) envp.push_back(const_cast<char*>(e.c_str()));
  const std::string pwd = "PWD=" + cwd;
  if (cmd.setPwd) envp.push_back(const_cast<char*>(pwd.c_str()));
  envp.push_back(nullptr);
  // Last of all, so it covers the command's first instruction and nothing
  // before it needs a call the filter denies.
  if (!settings.seccomp.empty()) {
    if (int err = installSeccomp(settings.seccomp); err != 0) {
      ChildFailure f = {static_cast<int32_t>(initmsg::StartStage::Other), err, -2};
      (void)!::write(errFd, &f, sizeof(f));
      _exit(125);
    }
  }
  // The caller's programs come after gpubox's: every filter sees each call
  // and the strictest answer wins, so they can only refuse more.
  for (size_t i = 0; i < settings.callerSeccomp.size(); ++i) {
    if (int err = installSeccomp(settings.callerSeccomp[i]); err != 0) {
      ChildFailure f = {static_cast<int32_t>(initmsg::StartStage::Other), err,
                        kCallerSeccompBase - static_cast<int32_t>(i)};
      (void)!::write(errFd, &f, sizeof(f));
      _exit(125);
    }
  }
  // execvp searches the PATH of the environment the command will get.
  environ = envp.data();
  ::execvp(cmd.argv[0].c_str(), argv.data());
  ChildFailure f = {static_cast<int32_t>(initmsg::StartStage::Exec), errno, 0};
  (void)!::write(errFd, &f, sizeof(f));
  _exit(127);
}

std::string startFailureMessage(const Command& cmd, const InitSettings& settings,
                                const ChildFailure& f) {
  if (f.stage == static_cast<int32_t>(initmsg::StartStage::Other) && f.rlimit == -2)
    return std::string("cannot install the seccomp filter: ") + std::strerror(f.err);
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
                  const InitSettings& settings, std::map<pid_t, Running>& running, Groups& groups) {
  Command cmd;
  std::string error;
  if (fds.size() != 4 || !readCommand(fds[0].get(), &cmd, &error)) {
    sendStartFailed(controlFd, id, EINVAL, initmsg::StartStage::Other,
                    error.empty() ? "exec request without stdio" : error);
    return;
  }
  int pipeFds[2];
  if (::pipe2(pipeFds, O_CLOEXEC) != 0) {
    sendStartFailed(controlFd, id, errno, initmsg::StartStage::Other, "pipe failed");
    return;
  }
  UniqueFd readEnd(pipeFds[0]), writeEnd(pipeFds[1]);
  // Before the fork: a group id freed by an old command may be the new pid.
  forgetEmptyGroups(groups);
  int64_t start = nowNanos();
  pid_t pid = ::fork();
  if (pid < 0) {
    sendStartFailed(controlFd, id, errno, initmsg::StartStage::Other, "fork failed");
    return;
  }
  if (pid == 0) execChild(cmd, fds, writeEnd.get(), settings);
  writeEnd.reset();
  ChildFailure failure = {};
  ssize_t n;
  do {
    n = ::read(readEnd.get(), &failure, sizeof(failure));
  } while (n < 0 && errno == EINTR);
  if (n == static_cast<ssize_t>(sizeof(failure))) {
    // The child exits right away; the reaper drops it since it is not in `running`.
    sendStartFailed(controlFd, id, failure.err, static_cast<initmsg::StartStage>(failure.stage),
                    startFailureMessage(cmd, settings, failure));
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
        startCommand(controlFd, rec.id, fds, settings, running, groups);
      } else if (rec.type == initmsg::ToInit::Signal && rec.signo > 0 && rec.signo < NSIG) {
        deliverSignal(controlFd, rec, running, groups);
      }
    }
  }
}

}  // namespace gpubox
