// Processes for the start-up benchmark: a command timed from fork to reap,
// run as an unprivileged uid, and a private gpubox-helper.
//
// Plain C++ (no test framework). Every failure throws std::runtime_error
// naming what failed; a timed command that exits non-zero throws with its
// stderr, so a benchmark never averages failures.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace gpubox::bench {

// Debian's nobody/nogroup: every sandboxed command is started as this.
constexpr uid_t kNobody = 65534;

// A command with its argv and environment laid out as C arrays before any
// fork, so that the child does nothing but async-signal-safe calls.
class Command {
 public:
  Command(std::vector<std::string> argv, std::vector<std::string> env, std::string cwd,
          std::optional<uid_t> uid);
  Command(const Command& other);
  Command& operator=(const Command&) = delete;

  const std::vector<std::string>& argv() const { return argv_; }
  std::string describe() const;
  // The same command with ENTRY ("KEY=VALUE") added to its environment.
  Command withEnv(const std::string& entry) const;

  // In the child after fork: switch identity, chdir, exec. Never returns.
  [[noreturn]] void execInChild() const;

 private:
  void prepare();

  std::vector<std::string> argv_, env_;
  std::string cwd_;
  std::optional<uid_t> uid_;
  std::vector<char*> argvC_, envC_;
};

// Runs commands one at a time (one Runner per thread), stdout to /dev/null
// and stderr into a memory file that is read back only when a run fails.
class Runner {
 public:
  Runner();
  ~Runner();
  Runner(const Runner&) = delete;
  Runner& operator=(const Runner&) = delete;

  // Milliseconds from just before fork() to just after waitpid() returned
  // the exit. Throws when the command does not exit 0.
  double timed(const Command& command);
  // Milliseconds from just before fork() to the first byte of the command's
  // stdout (a pipe); the rest is drained and the command reaped, untimed.
  // Throws when it prints nothing or does not exit 0.
  double timedFirstByte(const Command& command);
  // Runs it and returns its stdout (untimed). Throws when it does not exit 0.
  std::string output(const Command& command);
  // Of the last timed() run: its fork time (CLOCK_MONOTONIC ns, the clock
  // of gpubox's spans) and what it wrote to stderr.
  uint64_t lastForkNs() const { return lastForkNs_; }
  std::string lastStderr() { return stderrText(); }

 private:
  int wait(pid_t pid, const Command& command);
  std::string stderrText();

  int devNull_ = -1;
  int errFile_ = -1;
  uint64_t lastForkNs_ = 0;
};

// A directory under /tmp, removed recursively on destruction.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix, mode_t mode = 0755);
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A gpubox-helper listening on <dir>/gpubox.sock, its output in
// <dir>/helper.log. Stopped with SIGTERM (SIGKILL after 10 s) and reaped
// on destruction.
class Helper {
 public:
  Helper(const std::string& binary, const std::string& dir, std::vector<std::string> extraArgs);
  ~Helper();
  Helper(const Helper&) = delete;
  Helper& operator=(const Helper&) = delete;

  pid_t pid() const { return pid_; }
  const std::string& socket() const { return socket_; }
  std::string log() const;

 private:
  pid_t pid_ = -1;
  std::string socket_, logPath_;
};

// A process's resident memory in KiB (/proc/PID/status): VmRSS, and the
// part of it that is its own anonymous memory (RssAnon: heap, stacks),
// the rest being pages of files it maps (its binary's and libraries' code,
// shared with the page cache). Throws when unreadable.
struct Rss {
  unsigned long total = 0, anon = 0;
};
Rss rssKiB(pid_t pid);

// CPU time in ms (schedstat's nanoseconds; the clock tick's resolution
// where there is none) of one thread, and of a whole process: its live
// threads, not its children.
double threadCpuMs(pid_t pid, pid_t tid);
double processCpuMs(pid_t pid);
// The CPU time of PID's live threads named COMM (e.g. "gpubox-rpc"), in ms.
double threadsCpuMs(pid_t pid, const std::string& comm);

// The whole machine's CPU time so far, from /proc/stat's "cpu" line, in
// ms: busy (user, nice, system, irq, softirq, steal; guest time is inside
// user) and all (busy plus idle and iowait).
struct MachineCpu {
  double busy = 0, all = 0;
  static MachineCpu now();
};

// Copies `from` to <dir>/<name>, mode 0755, and returns the new path (the
// build tree may not be reachable by uid 65534).
std::string copyExecutable(const std::string& from, const std::string& dir,
                           const std::string& name);

std::string readFile(const std::string& path);

}  // namespace gpubox::bench
