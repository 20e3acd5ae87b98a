// Who is on the other end of a connection, as the kernel says (SO_PEERCRED,
// SO_PEERGROUPS, SO_PEERPIDFD), never as the request says.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "unique_fd.hpp"

namespace gpubox {

struct PeerIdentity {
  pid_t pid = 0;  // as the helper sees it
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary groups at connect time
};

// The identity of a connected Unix socket peer: `cred` as SO_PEERCRED gave
// it, and the peer's groups (SO_PEERGROUPS). Throws gpubox::Error.
PeerIdentity readPeerIdentity(int sock, const struct ucred& cred);

// The (pid namespace, user namespace) inodes of every live sandbox. A peer
// whose namespaces descend from one of these is inside a sandbox. A sandbox
// without a user namespace of its own (--user-namespace never) is known by
// its pid namespace alone (userNs 0): its user namespace is the helper's,
// which every client shares.
//
// Written on the home loop (a sandbox made, a sandbox ended) and read where
// clients are identified: the acceptor thread when connections are served on
// RPC threads (acceptor_thread.hpp), else the home loop. A sandbox is added
// before its first command can run, so no process inside it can connect
// before the check would see it.
class SandboxNamespaces {
 public:
  void add(ino_t pidNs, ino_t userNs) {
    std::lock_guard lock(mutex_);
    pidNs_.insert(pidNs);
    if (userNs != 0) userNs_.insert(userNs);
  }
  void remove(ino_t pidNs, ino_t userNs) {
    std::lock_guard lock(mutex_);
    if (auto it = pidNs_.find(pidNs); it != pidNs_.end()) pidNs_.erase(it);
    if (userNs == 0) return;
    if (auto it = userNs_.find(userNs); it != userNs_.end()) userNs_.erase(it);
  }
  bool containsPidNs(ino_t ino) const {
    std::lock_guard lock(mutex_);
    return pidNs_.count(ino) != 0;
  }
  bool containsUserNs(ino_t ino) const {
    std::lock_guard lock(mutex_);
    return userNs_.count(ino) != 0;
  }

 private:
  mutable std::mutex mutex_;
  std::multiset<ino_t> pidNs_;
  std::multiset<ino_t> userNs_;
};

// Refuses (throws gpubox::Error) a peer that runs inside a gpubox sandbox
// (its pid or user namespace, or any ancestor of them, is a sandbox's), or in
// another mount namespace than the helper's (its paths would not mean what
// they mean to the helper).
void checkPeerPlacement(const PeerIdentity& peer, int sock, const SandboxNamespaces& sandboxes);

// Inode of /proc/PID/ns/NAME.
ino_t namespaceInode(pid_t pid, const char* name);

}  // namespace gpubox
