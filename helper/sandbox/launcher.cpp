#include "launcher.hpp"

#include <fcntl.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <string>

#include "error.hpp"
#include "fd_passing.hpp"
#include "id_maps.hpp"
#include "init_config_codec.hpp"
#include "init_messages.hpp"
#include "memfd_bytes.hpp"
#include "syscalls.hpp"

namespace gpubox {

namespace {

void writeProcFile(pid_t pid, const char* name, const std::string& content) {
  std::string path = "/proc/" + std::to_string(pid) + "/" + name;
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) throwErrno("open " + path);
  // An id map must be written in one write(2).
  if (::write(fd.get(), content.data(), content.size()) != static_cast<ssize_t>(content.size()))
    throwErrno("write " + path);
}

// Kills and reaps a child that never got going.
void abandon(pid_t pid, int pidfd) {
  sys::pidfdSendSignal(pidfd, SIGKILL);
  siginfo_t info;
  while (::waitid(P_PIDFD, static_cast<id_t>(pidfd), &info, WEXITED) != 0 && errno == EINTR) {
  }
  (void)pid;
}

}  // namespace

std::vector<std::string> sandboxNamespaces(bool newUser, bool newNetwork) {
  std::vector<std::string> ns;
  if (newUser) ns.push_back("user");
  for (const char* name : {"mnt", "pid", "ipc", "uts", "cgroup"}) ns.push_back(name);
  if (newNetwork) ns.push_back("net");
  return ns;
}

LaunchedInit spawnInit(bool newUser, bool newNetwork, int cgroupFd) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
    throwErrno("control socketpair");
  UniqueFd parentEnd(sv[0]), childEnd(sv[1]);
  // The helper's end never blocks its event loop: an init that stopped
  // reading (wedged in a reap) makes a send fail with EAGAIN instead of
  // hanging the helper. Set here, in the spawner, so the loop makes no
  // fcntl(2) per sandbox; the init's own end stays blocking.
  if (::fcntl(parentEnd.get(), F_SETFL, O_NONBLOCK) != 0)
    throwErrno("make the control socket non-blocking");
  // Without a new user namespace (--user-namespace never) the other
  // namespaces belong to the helper's, so making them takes the helper's
  // CAP_SYS_ADMIN, and the init starts as the helper's root (sandbox_init.cpp).
  uint64_t flags = CLONE_PARENT | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS;
  if (newUser) flags |= CLONE_NEWUSER;
  if (newNetwork) flags |= CLONE_NEWNET;
  int pidfd = -1;
  pid_t pid = sys::clone3(flags, &pidfd, cgroupFd);
  if (pid < 0)
    throwErrno(cgroupFd >= 0 ? "clone3 into new namespaces and the sandbox's cgroup"
                             : "clone3 into new namespaces");
  if (pid == 0) {
    parentEnd.reset();
    runSandboxInit(childEnd.get(), newNetwork);
  }
  LaunchedInit init{pid, UniqueFd(pidfd), std::move(parentEnd), newUser, newNetwork, {}};
  // The init waits for its configuration, so its namespaces are there to be
  // read. stat(2) follows each link with the same ptrace check as open(2).
  const std::string dir = "/proc/" + std::to_string(pid) + "/ns/";
  for (size_t i = 0; i < kInitNamespaces.size(); ++i) {
    struct stat st;
    if (::stat((dir + kInitNamespaces[i]).c_str(), &st) == 0) init.namespaceInodes[i] = st.st_ino;
  }
  return init;
}

void startInit(LaunchedInit& init, const InitConfig& config) {
  try {
    if (config.newUserNamespace != init.newUserNamespace || config.newNetwork != init.newNetwork)
      throw Error("internal error: the sandbox's namespaces are not the init's");
    // The maps are made before anything is written: a caller with too many
    // groups to map is refused before the init does anything.
    // A warm init was cloned before its request: its namespace gets the
    // request's ids only here, before it is released.
    if (config.newUserNamespace) {
      std::string gids = idMapText(gidMappings(config.gid, config.groups, config.sandboxGid));
      writeProcFile(init.pid, "uid_map", idMapText({{config.sandboxUid, config.uid}}));
      writeProcFile(init.pid, "gid_map", gids);
    } else if (config.sandboxUid != config.uid || config.sandboxGid != config.gid) {
      throw Error("internal error: other ids than the caller's without a user namespace");
    }
    const std::string bytes = encodeInitConfig(config);
    UniqueFd memfd = memfdHolding("gpubox-init-config", bytes, "the sandbox configuration");
    initmsg::ToInitRecord go = {};
    go.type = initmsg::ToInit::Go;
    if (!sendRecord(init.control.get(), &go, sizeof(go), {memfd.get()}))
      throwErrno("release sandbox init");
  } catch (...) {
    abandon(init.pid, init.pidfd.get());
    throw;
  }
}

}  // namespace gpubox
