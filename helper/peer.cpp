#include "peer.hpp"

#include <fcntl.h>
#include <linux/nsfs.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "error.hpp"
#include "sandbox/syscalls.hpp"

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

namespace gpubox {

namespace {

UniqueFd openNs(pid_t pid, const char* name) {
  std::string path = "/proc/" + std::to_string(pid) + "/ns/" + name;
  return UniqueFd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
}

ino_t inodeOf(int fd) {
  struct stat st;
  if (::fstat(fd, &st) != 0) throwErrno("stat namespace");
  return st.st_ino;
}

// Walks `fd` and its ancestors (NS_GET_PARENT) and reports whether any of
// them is in `set`. The walk ends at the helper's own level (EPERM) or the
// root (EPERM/ENOENT).
template <typename Pred>
bool anyAncestor(UniqueFd fd, Pred inSet) {
  for (int depth = 0; fd && depth < 64; ++depth) {
    if (inSet(inodeOf(fd.get()))) return true;
    fd = UniqueFd(::ioctl(fd.get(), NS_GET_PARENT));
  }
  return false;
}

// A pidfd for the peer that stays valid even if the pid is reused: from the
// socket itself where the kernel offers it (6.5+), else pidfd_open.
UniqueFd peerPidfd(int sock, pid_t pid) {
  int fd = -1;
  socklen_t len = sizeof(fd);
  if (::getsockopt(sock, SOL_SOCKET, SO_PEERPIDFD, &fd, &len) == 0 && fd >= 0) return UniqueFd(fd);
  return UniqueFd(sys::pidfdOpen(pid));
}

constexpr const char* kOtherMountNamespace =
    "request refused: the client runs in another mount namespace than the helper, so its paths "
    "would not mean the same thing";

// The helper never changes its own namespaces: they are read once.
struct HelperNamespaces {
  ino_t pid, user, mnt;
};
HelperNamespaces helperNamespaces() {
  const pid_t self = ::getpid();
  return {namespaceInode(self, "pid"), namespaceInode(self, "user"), namespaceInode(self, "mnt")};
}

}  // namespace

ino_t namespaceInode(pid_t pid, const char* name) {
  // stat(2) follows the namespace link as open(2) does, with the same
  // ptrace check, in one call instead of three (open, fstat, close): seven
  // namespaces are read for every sandbox.
  const std::string path = "/proc/" + std::to_string(pid) + "/ns/" + name;
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) throwErrno("stat " + path);
  return st.st_ino;
}

PeerIdentity readPeerIdentity(int sock, const struct ucred& cred) {
  PeerIdentity peer{cred.pid, cred.uid, cred.gid, {}};
  std::vector<gid_t> groups(64);
  for (;;) {
    socklen_t glen = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
    if (::getsockopt(sock, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &glen) == 0) {
      groups.resize(glen / sizeof(gid_t));
      break;
    }
    if (errno != ERANGE || groups.size() > 65536) throwErrno("SO_PEERGROUPS");
    groups.resize(glen / sizeof(gid_t) + 1);
  }
  peer.groups = std::move(groups);
  return peer;
}

void checkPeerPlacement(const PeerIdentity& peer, int sock, const SandboxNamespaces& sandboxes) {
  // pid 0: the peer's pid namespace is not a descendant of ours, so we cannot
  // even name it. Such a peer cannot be checked, so it is refused.
  if (peer.pid <= 0)
    throw Error("request refused: the client runs in a pid namespace the helper cannot see");
  UniqueFd pidfd = peerPidfd(sock, peer.pid);
  if (!pidfd) throwErrno("request refused: cannot pin the client process");
  // The common case, a client in the helper's own pid and user namespaces,
  // is settled by three stat(2)s: no sandbox's namespace is an ancestor of
  // the helper's, so only the namespaces themselves need asking about.
  static const HelperNamespaces helper = helperNamespaces();
  struct stat pidSt, userSt, mntSt;
  const std::string proc = "/proc/" + std::to_string(peer.pid) + "/ns/";
  if (::stat((proc + "pid").c_str(), &pidSt) == 0 &&
      ::stat((proc + "user").c_str(), &userSt) == 0 &&
      ::stat((proc + "mnt").c_str(), &mntSt) == 0 && pidSt.st_ino == helper.pid &&
      userSt.st_ino == helper.user) {
    // Read through the pid: make sure it still is the process the pidfd
    // pins (not a successor that reused the number).
    if (sys::pidfdSendSignal(pidfd.get(), 0) != 0)
      throw Error("request refused: the client process went away during authentication");
    if (sandboxes.containsPidNs(pidSt.st_ino) || sandboxes.containsUserNs(userSt.st_ino))
      throw Error("request refused: the client runs inside a gpubox sandbox");
    if (mntSt.st_ino != helper.mnt) throw Error(kOtherMountNamespace);
    return;
  }
  UniqueFd pidNs = openNs(peer.pid, "pid");
  UniqueFd userNs = openNs(peer.pid, "user");
  UniqueFd mntNs = openNs(peer.pid, "mnt");
  // The namespaces were opened through the pid: make sure it still is the
  // process the pidfd pins (not a successor that reused the number).
  if (sys::pidfdSendSignal(pidfd.get(), 0) != 0 || !pidNs || !userNs || !mntNs)
    throw Error("request refused: the client process went away during authentication");
  if (anyAncestor(std::move(pidNs), [&](ino_t i) { return sandboxes.containsPidNs(i); }) ||
      anyAncestor(std::move(userNs), [&](ino_t i) { return sandboxes.containsUserNs(i); }))
    throw Error("request refused: the client runs inside a gpubox sandbox");
  if (inodeOf(mntNs.get()) != helper.mnt) throw Error(kOtherMountNamespace);
}

}  // namespace gpubox
