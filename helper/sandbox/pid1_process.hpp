// bwrap's --as-pid-1: the command runs as pid 1 of a pid namespace of its
// own, nested in the sandbox's, while the init stays the sandbox's pid 1
// (it still reaps, reports and kills).
//
// Why a process made during setup, not at the command's start: making a pid
// namespace needs CAP_SYS_ADMIN, and the init has dropped every privilege
// before it runs any command. So while the init still holds it, it clones
// this process into a new pid namespace (it becomes that namespace's pid 1).
// The process makes the procfs instances the plan's --proc steps will
// mount (a procfs shows the pid namespace of the process that creates it,
// so /proc agrees with the command), hands them to the init, drops every
// privilege exactly as the init does, and waits. When the command arrives it
// runs the same steps as any command (stdio, rlimits, cwd, seccomp: see
// command_process.hpp) and execs it: the command keeps pid 1.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "command_process.hpp"
#include "sandbox_init.hpp"
#include "unique_fd.hpp"

namespace gpubox {

struct Pid1Process {
  pid_t pid = -1;     // as the init sees it
  UniqueFd channel;   // the init's end of a SOCK_SEQPACKET pair
  bool used = false;  // its command has been sent: it runs one
};

// In the init, during setup, with CAP_SYS_ADMIN and before the root is
// built (the process shares the init's mount namespace and follows its
// pivot_root). Puts one procfs of the new pid namespace per --proc step of
// `config.plan` into `procfs`. Throws gpubox::Error.
Pid1Process spawnPid1Process(const InitConfig& config, std::vector<UniqueFd>* procfs);

// In the init loop: gives the waiting process the exec's fds ([memfd,
// stdin, stdout, stderr]) and waits until it has exec'ed the command
// (returns true) or given up (false, `failure` says why; it has exited).
// `error` is set when the process could not be reached at all.
bool startPid1Command(Pid1Process& p, const std::vector<UniqueFd>& fds, ChildFailure* failure,
                      std::string* error);

}  // namespace gpubox
