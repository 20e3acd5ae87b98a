#include "pid1_process.hpp"

#include <linux/close_range.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "credentials.hpp"
#include "error.hpp"
#include "fd_passing.hpp"
#include "mount_engine.hpp"

namespace gpubox {

namespace {

// What the process says once it is ready (or why it is not), sent once per
// procfs it made (each record carries one) and once more without an fd.
struct SetupRecord {
  int32_t ok;  // 1: ready; 0: `text` says what failed, and the process exits
  char text[500];
};

void sendSetup(int sock, bool ok, const std::string& text, int fd) {
  SetupRecord rec = {};
  rec.ok = ok ? 1 : 0;
  std::strncpy(rec.text, text.c_str(), sizeof(rec.text) - 1);
  std::vector<int> fds;
  if (fd >= 0) fds.push_back(fd);
  if (!sendRecord(sock, &rec, sizeof(rec), fds)) _exit(1);
}

// Waits for the command, then becomes it. Nothing privileged is left.
[[noreturn]] void awaitCommand(int sock, const InitSettings& settings) {
  initmsg::ToInitRecord rec = {};
  std::vector<UniqueFd> fds;
  const ssize_t n = recvRecord(sock, &rec, sizeof(rec), &fds, 4);
  // EOF: the init is done with the sandbox before any command ran.
  if (n != static_cast<ssize_t>(sizeof(rec)) || fds.size() != 4) _exit(0);
  Command cmd;
  std::string error;
  ChildPlan plan;
  if (!readCommand(fds[0].get(), &cmd, &error)) {
    // The init read the same request and found it sound: nothing to explain.
    const ChildFailure f = {static_cast<int32_t>(initmsg::StartStage::Other), EINVAL, kStdioFailed};
    [[maybe_unused]] ssize_t w = ::write(sock, &f, sizeof(f));
    _exit(125);
  }
  buildChildPlan(cmd, fds, settings, &plan);
  plan.reportFd = sock;
  execChild(&plan);
  _exit(127);  // not reached: execChild execs or exits
}

// The new process (pid 1 of its own pid namespace), still holding the
// init's privileges.
[[noreturn]] void runPid1Process(int sock, const InitConfig& config) {
  try {
    // Its root and working directory follow the init's pivot_root only if
    // they are the old root.
    if (::chdir("/") != 0) throwErrno("chdir /");
    // Nothing of the init's but /dev/null on 0-2 and this channel: not the
    // helper's control socket, not the init's lock files. (The init's
    // objects that own them are never destroyed here: this process ends
    // by exec or _exit.)
    if (sock > 3) ::syscall(SYS_close_range, 3, sock - 1, 0);
    ::syscall(SYS_close_range, sock + 1, ~0U, 0);
    std::vector<UniqueFd> procfs;
    for (const MountOp& op : config.plan)
      if (op.kind == MountKind::Proc) procfs.push_back(newProcfs("--proc " + op.dest));
    dropAllPrivileges();
    for (const UniqueFd& fd : procfs) sendSetup(sock, true, "", fd.get());
    procfs.clear();
    sendSetup(sock, true, "", -1);
  } catch (const std::exception& e) {
    sendSetup(sock, false, e.what(), -1);
    _exit(1);
  }
  awaitCommand(sock, {config.defaultCwd, config.rlimits, config.seccomp, config.callerSeccomp});
}

}  // namespace

Pid1Process spawnPid1Process(const InitConfig& config, std::vector<UniqueFd>* procfs) {
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0)
    throwErrno("--as-pid-1: socketpair");
  UniqueFd mine(pair[0]);
  UniqueFd theirs(pair[1]);
  // The raw system call, as for the init's credentials (credentials.cpp):
  // glibc's fork would run its at-fork machinery over the thread list the
  // init inherited from the multi-threaded helper. Like fork, the child
  // continues here on a copy of this stack. It stays non-dumpable (the flag
  // is copied) until it execs the command.
  const long pid = ::syscall(SYS_clone, CLONE_NEWPID | SIGCHLD, nullptr, nullptr, nullptr, 0);
  if (pid < 0) throwErrno("--as-pid-1: cannot make a pid namespace for the command");
  if (pid == 0) {
    mine.reset();
    runPid1Process(theirs.get(), config);
  }
  theirs.reset();
  Pid1Process p;
  p.pid = static_cast<pid_t>(pid);
  p.channel = std::move(mine);
  for (;;) {
    SetupRecord rec = {};
    std::vector<UniqueFd> fds;
    const ssize_t n = recvRecord(p.channel.get(), &rec, sizeof(rec), &fds, 1);
    // If it died the init's exit (on this throw) takes it with the sandbox.
    if (n != static_cast<ssize_t>(sizeof(rec)))
      throw Error("--as-pid-1: the command's process ended during setup");
    rec.text[sizeof(rec.text) - 1] = '\0';
    if (!rec.ok) throw Error(std::string("--as-pid-1: ") + rec.text);
    if (fds.empty()) return p;
    procfs->push_back(std::move(fds[0]));
  }
}

bool startPid1Command(Pid1Process& p, const std::vector<UniqueFd>& fds, ChildFailure* failure,
                      std::string* error) {
  if (p.used) {
    *error = "--as-pid-1: the sandbox's one command has already been started";
    return false;
  }
  p.used = true;
  initmsg::ToInitRecord rec = {};
  rec.type = initmsg::ToInit::Exec;
  std::vector<int> raw;
  for (const UniqueFd& fd : fds) raw.push_back(fd.get());
  if (!sendRecord(p.channel.get(), &rec, sizeof(rec), raw)) {
    *error = std::string("--as-pid-1: the command's process is gone: ") + std::strerror(errno);
    return false;
  }
  // A record: it gave up. End of file: its channel closed on exec (or it
  // was killed; the reaper then reports how it ended).
  ChildFailure f = {};
  ssize_t n;
  do {
    n = ::read(p.channel.get(), &f, sizeof(f));
  } while (n < 0 && errno == EINTR);
  p.channel.reset();
  if (n == static_cast<ssize_t>(sizeof(f))) {
    *failure = f;
    return false;
  }
  return true;
}

}  // namespace gpubox
