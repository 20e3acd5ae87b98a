#include "kernel_features.hpp"

#include <sched.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "cgroup_mode.hpp"
#include "error.hpp"

namespace gpubox {

namespace {

struct Version {
  int major = 0, minor = 0;
};

Version kernelVersion() {
  struct utsname u;
  if (::uname(&u) != 0) throwErrno("uname");
  Version v;
  std::sscanf(u.release, "%d.%d", &v.major, &v.minor);
  return v;
}

bool atLeast(Version v, int major, int minor) {
  return v.major > major || (v.major == major && v.minor >= minor);
}

std::string maxUserNamespaces() {
  std::ifstream in("/proc/sys/user/max_user_namespaces");
  std::string value;
  in >> value;
  return value;
}

}  // namespace

std::string userNamespaceRefusal() {
  // In a child, so the helper itself stays where it is; the child is single
  // threaded (unshare(CLONE_NEWUSER) refuses threaded callers) and only makes
  // the namespace and exits with the errno.
  pid_t pid = ::fork();
  if (pid < 0) throwErrno("fork to probe user namespaces");
  if (pid == 0) _exit(::unshare(CLONE_NEWUSER) == 0 ? 0 : (errno & 0xff));
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) throwErrno("wait for the user namespace probe");
  }
  if (!WIFEXITED(status)) return "the probe died with signal " + std::to_string(WTERMSIG(status));
  int err = WEXITSTATUS(status);
  if (err == 0) return "";
  std::string why = std::string("unshare(CLONE_NEWUSER): ") + std::strerror(err);
  if (err == ENOSPC) why += " (user.max_user_namespaces = " + maxUserNamespaces() + ")";
  return why;
}

void checkKernelSupport() {
  Version v = kernelVersion();
  struct Need {
    int major, minor;
    const char* what;
  };
  const Need needs[] = {
      {5, 3, "clone3 with CLONE_PIDFD"},
      {5, 2, "open_tree/move_mount/fsopen (new mount API)"},
      {5, 6, "openat2 with RESOLVE_IN_ROOT"},
      {5, 12, "mount_setattr (atomic recursive read-only binds)"},
  };
  for (const Need& n : needs) {
    if (!atLeast(v, n.major, n.minor))
      throw Error("this kernel (" + std::to_string(v.major) + "." + std::to_string(v.minor) +
                  ") lacks " + n.what + ", which needs Linux " + std::to_string(n.major) + "." +
                  std::to_string(n.minor) + "; gpubox refuses to run rather than isolate less");
  }
}

std::vector<std::string> kernelFeaturesInUse() {
  Version v = kernelVersion();
  std::vector<std::string> f = {"clone3+pidfd",
                                "open_tree/move_mount",
                                "fsopen/fsmount",
                                "mount_setattr",
                                "openat2(RESOLVE_IN_ROOT)",
                                "pivot_root",
                                "SO_PEERCRED+SO_PEERGROUPS"};
  if (atLeast(v, 6, 5)) f.push_back("SO_PEERPIDFD");
  f.push_back("cgroup:" + cgroupModeName());
  return f;
}

std::string cgroupModeName() {
  try {
    return cgroup::modeName(cgroup::detectMounts().mode);
  } catch (const Error&) {
    return "unknown";
  }
}

}  // namespace gpubox
