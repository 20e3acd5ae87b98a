// Runs inside a sandbox and makes escape attempts, one per argument. Each
// argument is "ATTEMPT" or "ATTEMPT:ARG[:ARG...]"; for each the probe prints
// one line "ARGUMENT => RESULT", where RESULT is "ok" (the attempt worked),
// the errno name of the refusal ("EPERM", "EROFS", ...), or an attempt's own
// report (ids, fds, forkbomb, cpuburn, ...). Every attempt is harmless
// whether it works or not: nothing is written, a sysctl is only opened for
// writing, a node made or a signal sent lands inside the sandbox or fails.
//
// "i386" and "x32" make a call through another ABI, which the default seccomp
// filter answers by ending the process (SIGSYS); run them one per invocation.
//
// Static (tests/escape/meson.build) so that it runs under any mount plan.
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/keyctl.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

namespace {

using Args = std::vector<std::string>;

std::string errName(int err) {
  const char* name = ::strerrorname_np(err);
  return name ? name : "errno" + std::to_string(err);
}

// "ok" for a call that returned >= 0, else the errno's name.
std::string outcome(long rc) {
  return rc >= 0 ? "ok" : errName(errno);
}

std::string arg(const Args& a, size_t i) {
  return i < a.size() ? a[i] : "";
}

long number(const Args& a, size_t i) {
  return std::strtol(arg(a, i).c_str(), nullptr, 0);
}

// Opens PATH with FLAGS; reports whether it opened. Opening a sysctl or a
// device for writing is the attempt; nothing is ever written.
std::string openOnly(const std::string& path, int flags) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return errName(errno);
  ::close(fd);
  return "ok";
}

std::string readFirstBytes(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return errName(errno);
  char buf[64];
  ssize_t n = ::read(fd, buf, sizeof buf);
  int err = errno;
  ::close(fd);
  if (n < 0) return errName(err);
  std::string text(buf, static_cast<size_t>(n));
  for (char& c : text)
    if (c == '\n' || c == '|') c = ' ';
  return "ok: " + text;
}

std::string createAndRemove(const std::string& path) {
  int fd = ::open(path.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
  if (fd < 0) return errName(errno);
  ::close(fd);
  ::unlink(path.c_str());
  return "ok";
}

std::string connectTo(int family, const sockaddr* addr, socklen_t len) {
  int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return "socket:" + errName(errno);
  std::string r = outcome(::connect(fd, addr, len));
  ::close(fd);
  return r;
}

std::string connectUnix(const std::string& path, bool abstract) {
  sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  size_t offset = abstract ? 1 : 0;  // abstract names start with a NUL byte
  std::strncpy(addr.sun_path + offset, path.c_str(), sizeof(addr.sun_path) - 1 - offset);
  socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + offset + path.size() +
                                         (abstract ? 0 : 1));
  return connectTo(AF_UNIX, reinterpret_cast<sockaddr*>(&addr), len);
}

std::string connectTcp(const std::string& host, long port) {
  if (host.find(':') != std::string::npos) {
    sockaddr_in6 a6 = {};
    a6.sin6_family = AF_INET6;
    a6.sin6_port = htons(static_cast<uint16_t>(port));
    if (::inet_pton(AF_INET6, host.c_str(), &a6.sin6_addr) != 1) return "bad address";
    return connectTo(AF_INET6, reinterpret_cast<sockaddr*>(&a6), sizeof a6);
  }
  sockaddr_in a4 = {};
  a4.sin_family = AF_INET;
  a4.sin_port = htons(static_cast<uint16_t>(port));
  if (::inet_pton(AF_INET, host.c_str(), &a4.sin_addr) != 1) return "bad address";
  return connectTo(AF_INET, reinterpret_cast<sockaddr*>(&a4), sizeof a4);
}

// Open descriptors, ascending, as "0,1,2" (the one reading the list excluded).
std::string openFds() {
  DIR* dir = ::opendir("/proc/self/fd");
  if (!dir) return "opendir:" + errName(errno);
  std::vector<int> fds;
  while (dirent* e = ::readdir(dir)) {
    if (e->d_name[0] == '.') continue;
    int fd = std::atoi(e->d_name);
    if (fd != ::dirfd(dir)) fds.push_back(fd);
  }
  ::closedir(dir);
  std::sort(fds.begin(), fds.end());
  std::string out;
  for (int fd : fds) out += (out.empty() ? "" : ",") + std::to_string(fd);
  return out;
}

std::string statusLine(const std::string& key) {
  FILE* f = std::fopen("/proc/self/status", "re");
  if (!f) return "?";
  char line[256];
  std::string value = "?";
  while (std::fgets(line, sizeof line, f)) {
    if (std::strncmp(line, key.c_str(), key.size()) == 0 && line[key.size()] == ':') {
      value = line + key.size() + 1;
      value.erase(0, value.find_first_not_of(" \t"));
      value.erase(value.find_last_not_of(" \t\n") + 1);
    }
  }
  std::fclose(f);
  return value;
}

// The identity and privileges this process ended up with.
std::string ids() {
  uid_t r, e, s;
  ::getresuid(&r, &e, &s);
  return "uid=" + std::to_string(r) + " euid=" + std::to_string(e) + " suid=" + std::to_string(s) +
         " CapPrm=" + statusLine("CapPrm") + " CapEff=" + statusLine("CapEff") +
         " NoNewPrivs=" + statusLine("NoNewPrivs");
}

// Every process this one can see in /proc, as "PID:COMM" (sorted by pid).
std::string visibleProcesses() {
  DIR* dir = ::opendir("/proc");
  if (!dir) return "opendir:" + errName(errno);
  std::map<long, std::string> found;
  while (dirent* e = ::readdir(dir)) {
    char* end;
    long pid = std::strtol(e->d_name, &end, 10);
    if (*end || pid <= 0) continue;
    std::string comm = readFirstBytes("/proc/" + std::string(e->d_name) + "/comm");
    if (comm.rfind("ok: ", 0) == 0) comm = comm.substr(4);
    while (!comm.empty() && comm.back() == ' ') comm.pop_back();
    found[pid] = comm;
  }
  ::closedir(dir);
  std::string out;
  for (const auto& [pid, comm] : found)
    out += (out.empty() ? "" : ",") + std::to_string(pid) + ":" + comm;
  return out;
}

std::string ptraceAttach(pid_t pid) {
  if (::ptrace(PTRACE_ATTACH, pid, nullptr, nullptr) != 0) return errName(errno);
  ::waitpid(pid, nullptr, __WALL);
  ::ptrace(PTRACE_DETACH, pid, nullptr, nullptr);
  return "ok";
}

std::string setnsPath(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "open:" + errName(errno);
  std::string r = outcome(::setns(fd, 0));
  ::close(fd);
  return r;
}

// fork() in a loop; children pause. Reports how many were made before fork
// failed (or "unbounded" past LIMIT). With HOLD_MS, keeps them that long
// after writing MARKER (a file the test waits for: the bomb is at its peak),
// then kills them all.
std::string forkBomb(long limit, long holdMs, const std::string& marker) {
  std::vector<pid_t> kids;
  std::string result;
  for (;;) {
    pid_t pid = ::fork();
    if (pid == 0) {
      ::pause();
      ::_exit(0);
    }
    if (pid < 0) {
      result = "stopped:" + errName(errno) + ":" + std::to_string(kids.size());
      break;
    }
    kids.push_back(pid);
    if (static_cast<long>(kids.size()) >= limit) {
      result = "unbounded:" + std::to_string(kids.size());
      break;
    }
  }
  if (!marker.empty()) {
    int fd = ::open(marker.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    if (fd >= 0) ::close(fd);
  }
  if (holdMs > 0) ::usleep(static_cast<useconds_t>(holdMs * 1000));
  for (pid_t k : kids) ::kill(k, SIGKILL);
  for (pid_t k : kids) ::waitpid(k, nullptr, 0);
  return result;
}

// Touches MIB mebibytes, one page at a time. Surviving it means no ceiling
// stopped the allocation.
std::string memoryHog(long mib) {
  std::vector<char*> blocks;
  for (long i = 0; i < mib; ++i) {
    void* p = ::mmap(nullptr, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return "mmap:" + errName(errno) + " after " + std::to_string(i) + " MiB";
    std::memset(p, 0x5a, 1 << 20);
    blocks.push_back(static_cast<char*>(p));
  }
  return "ok: touched " + std::to_string(mib) + " MiB";
}

double processCpuMs() {
  timespec ts;
  ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

// THREADS threads spin for MS milliseconds of wall time; reports the CPU
// time they got together.
std::string cpuBurn(long ms, long threads) {
  std::atomic<bool> stop{false};
  std::vector<std::thread> spinners;
  for (long i = 0; i < threads; ++i)
    spinners.emplace_back([&] {
      volatile unsigned long n = 0;
      while (!stop.load(std::memory_order_relaxed)) n = n + 1;
    });
  ::usleep(static_cast<useconds_t>(ms * 1000));
  stop = true;
  for (auto& t : spinners) t.join();
  return "cpu_ms=" + std::to_string(static_cast<long>(processCpuMs())) +
         " wall_ms=" + std::to_string(ms);
}

long rawClone(unsigned long flags) {
  long pid = ::syscall(SYS_clone, flags | SIGCHLD, nullptr, nullptr, nullptr, 0);
  if (pid == 0) ::_exit(0);
  if (pid > 0) ::waitpid(static_cast<pid_t>(pid), nullptr, 0);
  return pid;
}

using Attempt = std::function<std::string(const Args&)>;

const std::map<std::string, Attempt>& attempts() {
  static const std::map<std::string, Attempt> a = {
    // files
    {"read", [](const Args& x) { return readFirstBytes(arg(x, 1)); }},
    {"open-write", [](const Args& x) { return openOnly(arg(x, 1), O_WRONLY); }},
    {"create", [](const Args& x) { return createAndRemove(arg(x, 1)); }},
    {"open", [](const Args& x) { return openOnly(arg(x, 1), O_RDONLY); }},
    {"open-rw", [](const Args& x) { return openOnly(arg(x, 1), O_RDWR); }},
    // the mount API, old and new
    {"mount-tmpfs",
     [](const Args& x) {
       return outcome(::mount("none", arg(x, 1).c_str(), "tmpfs", 0, nullptr));
     }},
    {"remount-rw",
     [](const Args& x) {
       return outcome(::mount(nullptr, arg(x, 1).c_str(), nullptr, MS_REMOUNT | MS_BIND, nullptr));
     }},
    {"umount", [](const Args& x) { return outcome(::umount2(arg(x, 1).c_str(), MNT_DETACH)); }},
    {"fsopen", [](const Args&) { return outcome(::syscall(SYS_fsopen, "tmpfs", 0)); }},
    {"fspick",
     [](const Args& x) { return outcome(::syscall(SYS_fspick, AT_FDCWD, arg(x, 1).c_str(), 0)); }},
    {"open_tree",
     [](const Args& x) {
       return outcome(::syscall(SYS_open_tree, AT_FDCWD, arg(x, 1).c_str(), OPEN_TREE_CLONE));
     }},
    {"move_mount",
     [](const Args& x) {
       return outcome(
           ::syscall(SYS_move_mount, AT_FDCWD, arg(x, 1).c_str(), AT_FDCWD, arg(x, 2).c_str(), 0));
     }},
    {"mount_setattr-rw",
     [](const Args& x) {
       mount_attr attr = {};
       attr.attr_clr = MOUNT_ATTR_RDONLY;
       return outcome(
           ::syscall(SYS_mount_setattr, AT_FDCWD, arg(x, 1).c_str(), 0, &attr, sizeof attr));
     }},
    {"pivot_root",
     [](const Args& x) {
       return outcome(::syscall(SYS_pivot_root, arg(x, 1).c_str(), arg(x, 2).c_str()));
     }},
    {"chroot", [](const Args& x) { return outcome(::chroot(arg(x, 1).c_str())); }},
    {"mknod-char",
     [](const Args& x) {
       dev_t dev =
           ::makedev(static_cast<unsigned>(number(x, 2)), static_cast<unsigned>(number(x, 3)));
       long rc = ::mknod(arg(x, 1).c_str(), S_IFCHR | 0666, dev);
       if (rc == 0) ::unlink(arg(x, 1).c_str());
       return outcome(rc);
     }},
    // namespaces
    {"unshare-user", [](const Args&) { return outcome(::unshare(CLONE_NEWUSER)); }},
    {"unshare-mnt", [](const Args&) { return outcome(::unshare(CLONE_NEWNS)); }},
    {"unshare-net", [](const Args&) { return outcome(::unshare(CLONE_NEWNET)); }},
    {"clone-newuser", [](const Args&) { return outcome(rawClone(CLONE_NEWUSER)); }},
    {"setns", [](const Args& x) { return setnsPath(arg(x, 1)); }},
    {"fds", [](const Args&) { return openFds(); }},
    // processes
    {"procs", [](const Args&) { return visibleProcesses(); }},
    {"kill",
     [](const Args& x) {
       return outcome(::kill(static_cast<pid_t>(number(x, 1)), static_cast<int>(number(x, 2))));
     }},
    {"ptrace", [](const Args& x) { return ptraceAttach(static_cast<pid_t>(number(x, 1))); }},
    {"pidfd_open",
     [](const Args& x) { return outcome(::syscall(SYS_pidfd_open, number(x, 1), 0)); }},
    // privileges
    {"ids", [](const Args&) { return ids(); }},
    {"setuid0", [](const Args&) { return outcome(::setuid(0)); }},
    // the kernel surface the seccomp filter closes
    {"keyctl",
     [](const Args&) {
       return outcome(::syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, nullptr));
     }},
    {"add_key",
     [](const Args&) {
       return outcome(
           ::syscall(SYS_add_key, "user", "gpubox-escape", "v", 1, KEY_SPEC_PROCESS_KEYRING));
     }},
    {"bpf", [](const Args&) { return outcome(::syscall(SYS_bpf, 0 /*MAP_CREATE*/, nullptr, 0)); }},
    {"userfaultfd", [](const Args&) { return outcome(::syscall(SYS_userfaultfd, 0)); }},
    {"perf_event_open",
     [](const Args&) { return outcome(::syscall(SYS_perf_event_open, nullptr, 0, -1, -1, 0)); }},
    {"open_by_handle_at",
     [](const Args&) { return outcome(::syscall(SYS_open_by_handle_at, -1, nullptr, 0)); }},
    {"kexec_load",
     [](const Args&) { return outcome(::syscall(SYS_kexec_load, 0, 0, nullptr, 0)); }},
    {"init_module",
     [](const Args&) { return outcome(::syscall(SYS_init_module, nullptr, 0, "")); }},
    // terminals
    {"tiocsti",
     [](const Args& x) {
       char c = 'Z';
       return outcome(::ioctl(static_cast<int>(number(x, 1)), TIOCSTI, &c));
     }},
    {"open-tty", [](const Args&) { return openOnly("/dev/tty", O_RDWR); }},
    // sockets
    {"connect-unix", [](const Args& x) { return connectUnix(arg(x, 1), false); }},
    {"connect-abstract", [](const Args& x) { return connectUnix(arg(x, 1), true); }},
    {"connect-tcp",
     [](const Args& x) {
       // The host part of an IPv6 address holds colons: the port is the last field.
       std::string host;
       for (size_t i = 1; i + 1 < x.size(); ++i) host += (i > 1 ? ":" : "") + x[i];
       return connectTcp(host, number(x, x.size() - 1));
     }},
    // resources
    {"forkbomb", [](const Args& x) { return forkBomb(number(x, 1), number(x, 2), arg(x, 3)); }},
    {"memhog", [](const Args& x) { return memoryHog(number(x, 1)); }},
    {"cpuburn", [](const Args& x) { return cpuBurn(number(x, 1), number(x, 2)); }},
#if defined(__x86_64__)
    {"x32", [](const Args&) { return outcome(::syscall(0x40000000L | SYS_getpid)); }},
    {"i386",
     [](const Args&) {
       long rc;
       // getpid through the 32-bit entry point (int 0x80, eax = 20).
       asm volatile("int $0x80" : "=a"(rc) : "a"(20L) : "memory");
       return rc < 0 ? errName(static_cast<int>(-rc)) : std::string("ok");
     }},
#endif
  };
  return a;
}

Args split(const std::string& s) {
  Args out;
  size_t start = 0;
  for (;;) {
    size_t colon = s.find(':', start);
    out.push_back(s.substr(start, colon - start));
    if (colon == std::string::npos) return out;
    start = colon + 1;
  }
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    Args parts = split(argv[i]);
    auto it = attempts().find(parts[0]);
    std::string result = it == attempts().end() ? "unknown attempt" : it->second(parts);
    std::printf("%s => %s\n", argv[i], result.c_str());
    std::fflush(stdout);
  }
  return 0;
}
