// How a command's process is prepared and started: everything the process
// needs is built first (ChildPlan), then execChild runs only system calls on
// it. Shared by the init's own command start (a CLONE_VM | CLONE_VFORK
// child, init_loop.cpp) and by the --as-pid-1 process, which runs the same
// steps in an address space of its own (pid1_process.hpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "init_loop.hpp"
#include "init_messages.hpp"
#include "spec.hpp"
#include "unique_fd.hpp"

namespace gpubox {

struct ChildFailure {
  int32_t stage;  // initmsg::StartStage; -1: the child did not give up
  int32_t err;
  // stage Other: index of the rlimit that failed, or one of kStdioFailed,
  // kGpuboxSeccompFailed, kCallerSeccompBase - i
  int32_t rlimit;
};
constexpr int32_t kStdioFailed = -1;
constexpr int32_t kGpuboxSeccompFailed = -2;
constexpr int32_t kCallerSeccompBase = -3;  // - i: the caller's program i

// What the command's process needs, all built before it exists: under
// CLONE_VM | CLONE_VFORK it shares the init's memory until execve and must
// not allocate, so it only reads this and writes `failure`.
struct ChildPlan {
  const std::vector<UniqueFd>* fds;  // [memfd, stdin, stdout, stderr]
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
  // >= 0: the child also writes `failure` here before it exits (a child
  // with memory of its own; the fd closes on a successful exec).
  int reportFd = -1;
};

// Reads the wire::Command the helper wrote into `memfd`.
bool readCommand(int memfd, Command* out, std::string* error);

// Fills `plan` for `cmd`; the plan points into `cmd`, `fds` and `settings`,
// which must outlive it.
void buildChildPlan(const Command& cmd, const std::vector<UniqueFd>& fds,
                    const InitSettings& settings, ChildPlan* plan);

// The command's process: returns only by exec; on failure it records why
// in the plan and exits 125 (127: exec failed).
int execChild(void* plan);

std::string startFailureMessage(const Command& cmd, const InitSettings& settings,
                                const ChildFailure& f);

}  // namespace gpubox
