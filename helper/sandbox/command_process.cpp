#include "command_process.hpp"

#include <fcntl.h>
#include <linux/close_range.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <capnp/serialize.h>

#include <cstring>

#include "seccomp_profile.hpp"
#include "spec_wire.hpp"

extern char** environ;

namespace gpubox {

namespace {

// The init's command process runs on a stack of its own (ChildStack,
// init_loop.cpp) that AddressSanitizer does not know: its no-return bookkeeping would print a
// warning into the command's stderr. These two functions only make system
// calls on memory built before, so they are left uninstrumented.
#define GPUBOX_CHILD_STACK_CODE __attribute__((no_sanitize("address")))

GPUBOX_CHILD_STACK_CODE [[noreturn]] void childFails(ChildPlan& plan, initmsg::StartStage stage,
                                                     int err, int32_t rlimit, int status) {
  plan.failure = {static_cast<int32_t>(stage), err, rlimit};
  if (plan.reportFd >= 0) {
    // Should this write fail, the init sees the channel close as on an
    // exec, and the command's end reports the status below instead.
    [[maybe_unused]] ssize_t n = ::write(plan.reportFd, &plan.failure, sizeof(plan.failure));
  }
  _exit(status);
}

}  // namespace

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

void buildChildPlan(const Command& cmd, const std::vector<UniqueFd>& fds,
                    const InitSettings& settings, ChildPlan* plan) {
  plan->fds = &fds;
  plan->settings = &settings;
  plan->file = cmd.argv[0].c_str();
  if (cmd.cwd.empty()) {
    for (const std::string& dir : cmd.cwdFallbacks) plan->cwds.push_back(dir.c_str());
    plan->cwds.push_back(settings.defaultCwd.c_str());
  } else {
    plan->cwds.push_back(cmd.cwd.c_str());
  }
  for (const char* dir : plan->cwds) plan->pwds.push_back(std::string("PWD=") + dir);
  plan->failure = {-1, 0, 0};
  for (const std::string& a : cmd.argv) plan->argv.push_back(const_cast<char*>(a.c_str()));
  if (!cmd.argv0.empty()) plan->argv[0] = const_cast<char*>(cmd.argv0.c_str());
  plan->argv.push_back(nullptr);
  for (const std::string& e : cmd.env)
    if (!cmd.setPwd || e.rfind("PWD=", 0) != 0) plan->envp.push_back(const_cast<char*>(e.c_str()));
  if (cmd.setPwd) {
    plan->pwdSlot = static_cast<ptrdiff_t>(plan->envp.size());
    plan->envp.push_back(plan->pwds.back().data());
  }
  plan->envp.push_back(nullptr);
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

}  // namespace gpubox
