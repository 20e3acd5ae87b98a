#include "sandbox_init.hpp"

#include <fcntl.h>
#include <linux/close_range.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>
#include <optional>

#include "credentials.hpp"
#include "error.hpp"
#include "fd_passing.hpp"
#include "id_maps.hpp"
#include "init_config_codec.hpp"
#include "init_loop.hpp"
#include "init_messages.hpp"
#include "loopback.hpp"
#include "pid1_process.hpp"
#include "process_title.hpp"
#include "seccomp_profile.hpp"
#include "setup_spans.hpp"
#include "unique_fd.hpp"

namespace gpubox {

namespace {

constexpr int kControlFd = 3;

void sendFailure(const std::string& message) {
  initmsg::FromInitRecord rec = {};
  rec.type = initmsg::FromInit::SetupFailed;
  std::strncpy(rec.text, message.c_str(), sizeof(rec.text) - 1);
  sendRecord(kControlFd, &rec, sizeof(rec), {});
}

// Leaves the init with only /dev/null on 0-2 and the control socket on 3:
// nothing of the helper's (its listening socket, other clients' connections)
// may survive into a sandbox.
void isolateFds(int controlFd) {
  int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null < 0) _exit(120);
  for (int fd = 0; fd < 3; ++fd) ::dup2(null, fd);
  if (controlFd != kControlFd && ::dup2(controlFd, kControlFd) != kControlFd) _exit(121);
  ::syscall(SYS_close_range, kControlFd + 1, ~0U, 0);
}

void resetSignals() {
  sigset_t all;
  sigemptyset(&all);
  sigprocmask(SIG_SETMASK, &all, nullptr);
  for (int sig = 1; sig < NSIG; ++sig) signal(sig, SIG_DFL);
}

// Waits for one record of TYPE from the helper. EOF (or anything else): the
// helper gave up on this sandbox (or died) before releasing it.
void waitFor(initmsg::ToInit type) {
  initmsg::ToInitRecord rec = {};
  ssize_t n = recvRecord(kControlFd, &rec, sizeof(rec), nullptr, 0);
  if (n != static_cast<ssize_t>(sizeof(rec)) || rec.type != type) _exit(0);
}

// The Go record carries the sandbox's whole setup in a memfd
// (init_config_codec.hpp): the init may have been cloned long before the
// request it serves (a warm init of the pool). EOF or anything else: the
// helper gave up on this init.
InitConfig receiveConfig() {
  initmsg::ToInitRecord rec = {};
  std::vector<UniqueFd> fds;
  ssize_t n = recvRecord(kControlFd, &rec, sizeof(rec), &fds, 1);
  if (n != static_cast<ssize_t>(sizeof(rec)) || rec.type != initmsg::ToInit::Go || fds.size() != 1)
    _exit(0);
  struct stat st;
  if (::fstat(fds[0].get(), &st) != 0 || st.st_size < 0 ||
      static_cast<size_t>(st.st_size) > initmsg::kMaxConfigPayload)
    throw Error("malformed sandbox configuration: bad size");
  std::string bytes(static_cast<size_t>(st.st_size), '\0');
  if (::pread(fds[0].get(), bytes.data(), bytes.size(), 0) != st.st_size)
    throwErrno("read the sandbox configuration");
  return decodeInitConfig(bytes);
}

// bwrap's --lock-file: a read lock on each path (opened inside the new
// root, as the caller), held by the init, so by the sandbox as a whole:
// others can tell it still runs. The fds stay open until the init exits.
void lockFiles(const std::vector<std::string>& paths) {
  for (const std::string& path : paths) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) throwErrno("--lock-file " + path + ": cannot open it");
    struct flock lock = {};
    lock.l_type = F_RDLCK;
    lock.l_whence = SEEK_SET;
    if (::fcntl(fd.get(), F_SETLK, &lock) != 0)
      throwErrno("--lock-file " + path + ": cannot lock it");
    (void)fd.release();
  }
}

// The setup that needs nothing from the request, made before Go: a warm
// init does it while it waits, off every request's path (the loopback's
// ioctl alone is a tenth of a millisecond). It runs with the capabilities
// the init was born with (root of its new user namespace, or the helper's
// without one), before it becomes the caller. Returns what failed, for
// setUp to report once the helper listens, or "". (Making the mounts
// private waits for the request: until then the copied host mounts stay
// slaves, so a warm init still sees what the host mounts and unmounts.)
std::string prepareBeforeRequest(bool newNetwork) {
  try {
    if (newNetwork) bringUpLoopback();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

// The caller's groups as ids of the sandbox's user namespace (id_maps.hpp);
// without one of its own, the host's ids themselves.
std::vector<gid_t> groupsInside(const InitConfig& config) {
  if (!config.newUserNamespace) return config.groups;
  std::vector<gid_t> inside;
  for (gid_t g : config.groups) inside.push_back(insideGid(g, config.gid, config.sandboxGid));
  return inside;
}

// Entered once the helper placed us in all our cgroups, so the sandbox
// sees its own cgroup as its root; nothing of the sandbox runs before.
void enterCgroups(const InitConfig& config) {
  if (config.awaitPlacement) waitFor(initmsg::ToInit::Placed);
  if (::unshare(CLONE_NEWCGROUP) != 0) throwErrno("new cgroup namespace");
}

// Returns the records that tell the helper what was hidden and skipped,
// for the caller to send with Ready.
std::vector<initmsg::FromInitRecord> setUp(const InitConfig& config,
                                           std::optional<Pid1Process>* pid1) {
  // Never another id than the caller's without a user namespace to make it
  // a mere label (the helper checked; this is the last line).
  if (!config.newUserNamespace &&
      (config.sandboxUid != config.uid || config.sandboxGid != config.gid))
    throw Error("internal error: other ids than the caller's without a user namespace");
  // Commands, those of later `exec`s included, are forked from the init and
  // keep these ids.
  becomeCallerForSetup(config.sandboxUid, config.sandboxGid, groupsInside(config));
  setupspans::mark("caller");
  // The kernel clears the parent-death signal on a uid/gid change: set it
  // again. (Were the helper already gone, the control socket's EOF ends us.)
  ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  if (!config.hostname.empty() &&
      ::sethostname(config.hostname.c_str(), config.hostname.size()) != 0)
    throwErrno("sethostname");
  std::vector<UniqueFd> procfs;
  if (config.asPid1) {
    // The command's own pid namespace must be made while the init can still
    // make one, and before the root, whose --proc steps mount procfs
    // instances of that namespace. Its process inherits the cgroups and the
    // cgroup namespace, so it is born after the init has entered them.
    enterCgroups(config);
    pid1->emplace(spawnPid1Process(config, &procfs));
  }
  MountOutcome outcome = buildSandboxRoot(config.plan, config.masks, config.hide,
                                          config.bindSources ? &*config.bindSources : nullptr,
                                          config.newUserNamespace, &procfs);
  lockFiles(config.lockFiles);
  if (!config.asPid1) enterCgroups(config);
  setupspans::mark("cgroupns");
  dropAllPrivileges();
  setupspans::mark("dropped");
  // gpubox's filter goes on the init itself, last of its setup: every
  // command it forks inherits it (a session's exec no longer attaches it
  // each time, 0.1 ms), and the init, whose loop needs none of the calls
  // it refuses, is held to it too. The caller's own programs are still
  // attached in each command's process: they may refuse what the init
  // needs. (--as-pid-1's process, made earlier, attaches both itself.)
  if (!config.seccomp.empty()) {
    if (int err = installSeccomp(config.seccomp); err != 0)
      throw Error(std::string("cannot install the seccomp filter: ") + std::strerror(err));
    setupspans::mark("seccomp");
  }
  std::vector<initmsg::FromInitRecord> records;
  auto add = [&](initmsg::FromInit type, size_t index) {
    initmsg::FromInitRecord& rec = records.emplace_back();
    std::memset(&rec, 0, sizeof rec);
    rec.type = type;
    rec.a = static_cast<int32_t>(index);
  };
  for (size_t index : outcome.hidden) add(initmsg::FromInit::Hidden, index);
  for (size_t index : outcome.skipped) add(initmsg::FromInit::Skipped, index);
  return records;
}

}  // namespace

void runSandboxInit(int controlFd, bool newNetwork) {
  // Die with the helper; never be ptrace-able or core-dump while privileged.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  ::prctl(PR_SET_NAME, "gpubox-init", 0, 0, 0);
  // Nothing of the helper's command line or environment is left to read in
  // /proc/1/cmdline (the environment strings are cleared too).
  setInitProcessTitle("gpubox-init");
  resetSignals();
  isolateFds(controlFd);
  ::umask(022);
  const std::string prepareError = prepareBeforeRequest(newNetwork);
  InitConfig config;
  std::optional<Pid1Process> pid1;
  std::vector<initmsg::FromInitRecord> records;
  try {
    config = receiveConfig();
    setupspans::mark("config");
    if (!prepareError.empty()) throw Error(prepareError);
    if (config.newNetwork != newNetwork)
      throw Error("internal error: the configuration's network is not the init's");
    records = setUp(config, &pid1);
  } catch (const std::exception& e) {
    sendFailure(e.what());
    _exit(1);
  }
  for (const auto& span : setupspans::take()) records.push_back(span);
  initmsg::FromInitRecord& ready = records.emplace_back();
  std::memset(&ready, 0, sizeof ready);
  ready.type = initmsg::FromInit::Ready;
  ready.a = static_cast<int32_t>(::getpid());
  // What was hidden and skipped, then Ready: one wake-up of the helper.
  if (!sendRecords(kControlFd, records.data(), sizeof(initmsg::FromInitRecord), records.size()))
    _exit(1);
  // The commands inherit gpubox's filter from the init (setUp).
  runInitLoop(kControlFd, {config.defaultCwd, config.rlimits, {}, config.callerSeccomp},
              pid1 ? &*pid1 : nullptr);
}

}  // namespace gpubox
