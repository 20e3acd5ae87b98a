// The helper speaks systemd's protocols itself (helper/systemd_protocol.hpp):
// these tests play systemd's part with sockets of their own and drive the
// real helper and the real CLI.
//
//   socket activation  the listening socket as fd 3, LISTEN_PID/LISTEN_FDS
//   readiness          READY=1 and STOPPING=1 on a NOTIFY_SOCKET
//   the journal        native-protocol datagrams at /run/systemd/journal/socket,
//                      in a private mount namespace where the test's socket
//                      is mounted there (the host's journal is not touched)
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "harness.hpp"
#include "unique_fd.hpp"

namespace gpubox::itest {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;

using Fd = gpubox::UniqueFd;

struct sockaddr_un unixAddress(const std::string& path) {
  struct sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) throw std::runtime_error("path too long: " + path);
  path.copy(addr.sun_path, path.size());
  return addr;
}

// A Unix socket of `type` bound at `path` (listening, mode 0666, when a stream).
int boundSocket(const std::string& path, int type) {
  int fd = ::socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error("socket: " + std::string(std::strerror(errno)));
  struct sockaddr_un addr = unixAddress(path);
  if (::bind(fd, reinterpret_cast<struct sockaddr*>(&addr), sizeof(addr)) != 0)
    throw std::runtime_error("bind " + path + ": " + std::strerror(errno));
  if (type == SOCK_STREAM && ::listen(fd, 16) != 0)
    throw std::runtime_error("listen: " + std::string(std::strerror(errno)));
  ::chmod(path.c_str(), 0666);
  return fd;
}

// The next datagram on `fd`, or nullopt after `timeout`.
std::optional<std::string> receive(int fd, std::chrono::milliseconds timeout) {
  struct pollfd p = {fd, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return std::nullopt;
  std::vector<char> buf(1 << 16);
  ssize_t n = ::recv(fd, buf.data(), buf.size(), MSG_DONTWAIT);
  if (n < 0) return std::nullopt;
  return std::string(buf.data(), n);
}

// Waits for a datagram that contains `needle`, skipping others; all that
// arrived is appended to `seen` (for the failure message).
bool receiveContaining(int fd, const std::string& needle, std::string& seen,
                       std::chrono::milliseconds timeout = 30s) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    auto d = receive(fd, std::max(left, 1ms));
    if (!d) return false;
    seen += "[" + *d + "]\n";
    if (d->find(needle) != std::string::npos) return true;
  }
  return false;
}

std::string helperMode() {
  return testUserNamespaceMode();
}

// gpubox-helper started the way systemd starts a socket-activated service:
// `listenFd` becomes fd 3, LISTEN_FDS=1 and LISTEN_PID=<the helper's own
// pid> (written between fork and exec, the only place it can be known), or
// `listenPid` when given. Output goes to a log file in `dir`.
class ActivatedHelper {
 public:
  ActivatedHelper(const TempDir& dir, int listenFd, std::vector<std::string> env,
                  std::optional<pid_t> listenPid = std::nullopt)
      : log_(dir / "helper.log") {
    std::vector<std::string> argv{helperPath()};
    if (std::string mode = helperMode(); !mode.empty())
      argv.insert(argv.end(), {"--user-namespace", mode});
    env.insert(env.end(), {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                           "LANG=C", "LISTEN_FDS=1"});
    // Room for LISTEN_PID, filled in by the child.
    env.push_back(listenPid ? "LISTEN_PID=" + std::to_string(*listenPid)
                            : "LISTEN_PID=" + std::string(20, '\0'));
    std::vector<char*> argvC, envC;
    for (auto& a : argv) argvC.push_back(a.data());
    argvC.push_back(nullptr);
    for (auto& e : env) envC.push_back(e.data());
    envC.push_back(nullptr);
    char* pidSlot = env.back().data() + std::strlen("LISTEN_PID=");
    int logFd = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (logFd < 0) throw std::runtime_error("create " + log_);
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork");
    if (pid_ == 0) {
      if (!listenPid) {
        // Decimal digits of our own pid, without anything that allocates.
        char digits[20];
        int n = 0;
        for (pid_t p = ::getpid(); p > 0; p /= 10) digits[n++] = static_cast<char>('0' + p % 10);
        for (int i = 0; i < n; ++i) pidSlot[i] = digits[n - 1 - i];
      }
      int nul = ::open("/dev/null", O_RDONLY);
      if (nul < 0 || ::dup2(nul, 0) < 0 || ::dup2(logFd, 1) < 0 || ::dup2(logFd, 2) < 0)
        ::_exit(126);
      // dup2 to 3 clears close-on-exec; when it is 3 already, clear it here.
      if (listenFd == 3) {
        if (::fcntl(3, F_SETFD, 0) != 0) ::_exit(126);
      } else if (::dup2(listenFd, 3) < 0) {
        ::_exit(126);
      }
      ::syscall(SYS_close_range, 4u, ~0u, 0u);
      ::execve(argvC[0], argvC.data(), envC.data());
      ::_exit(127);
    }
    ::close(logFd);
  }
  ~ActivatedHelper() {
    if (!status_) {
      ::kill(pid_, SIGKILL);
      wait(10s);
    }
  }
  pid_t pid() const { return pid_; }
  std::string log() const {
    std::ifstream in(log_);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
  // The wait status once it exited, or nullopt after `timeout`.
  std::optional<int> wait(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!status_) {
      int st = 0;
      pid_t r = ::waitpid(pid_, &st, WNOHANG);
      if (r == pid_) status_ = st;
      if (status_ || std::chrono::steady_clock::now() >= deadline) break;
      std::this_thread::sleep_for(20ms);
    }
    return status_;
  }

 private:
  std::string log_;
  pid_t pid_ = -1;
  std::optional<int> status_;
};

TEST(SocketActivation, ServesThePassedSocketAndTellsSystemd) {
  GPUBOX_REQUIRE_ROOT();
  TempDir dir;
  const std::string sock = dir / "gpubox.sock";
  Fd listening(boundSocket(sock, SOCK_STREAM));
  Fd notify(boundSocket(dir / "notify", SOCK_DGRAM));
  ActivatedHelper h(dir, listening.get(), {"NOTIFY_SOCKET=" + dir / "notify"});

  std::string seen;
  ASSERT_TRUE(receiveContaining(notify.get(), "READY=1", seen))
      << "no READY=1; datagrams: " << seen << "\nhelper log:\n"
      << h.log();
  // The passed socket, named by its path.
  EXPECT_THAT(h.log(), HasSubstr("listening on " + sock));
  // Exactly what a notify socket receives: nothing but the state.
  EXPECT_EQ(seen, "[READY=1]\n");

  for (uid_t uid : {uid_t{0}, kNobodyUid}) {
    RunOptions o;
    o.asUid = uid;
    o.cwd = "/";
    auto r = runCli({"--socket", sock, "run", "--", "sh", "-c", "echo activated; id -u"}, o);
    EXPECT_EQ(r.exitCode, 0) << "uid " << uid << ": " << r.describe() << "\nhelper log:\n"
                             << h.log();
    EXPECT_EQ(r.out, "activated\n" + std::to_string(uid) + "\n") << r.describe();
    auto t = runCli({"--socket", sock, "run", "--", "true"}, o);
    EXPECT_EQ(t.exitCode, 0) << "uid " << uid << ": " << t.describe();
  }

  ASSERT_EQ(::kill(h.pid(), SIGTERM), 0);
  seen.clear();
  EXPECT_TRUE(receiveContaining(notify.get(), "STOPPING=1", seen))
      << "no STOPPING=1; datagrams: " << seen << "\nhelper log:\n"
      << h.log();
  auto st = h.wait(60s);
  ASSERT_TRUE(st.has_value()) << "the helper did not exit on SIGTERM:\n" << h.log();
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << "status " << *st << "\n" << h.log();
}

TEST(SocketActivation, VariablesForAnotherProcessAreIgnored) {
  GPUBOX_REQUIRE_ROOT();
  TempDir dir;
  Fd listening(boundSocket(dir / "gpubox.sock", SOCK_STREAM));
  // LISTEN_PID of another process (init): the fds were not meant for us, so
  // the helper has no socket, as if nothing had been passed.
  ActivatedHelper h(dir, listening.get(), {}, pid_t{1});
  auto st = h.wait(30s);
  ASSERT_TRUE(st.has_value()) << "the helper kept running:\n" << h.log();
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) != 0) << "status " << *st << "\n" << h.log();
  EXPECT_THAT(h.log(), HasSubstr("no socket")) << h.log();
  EXPECT_THAT(h.log(), HasSubstr("--listen")) << h.log();
}

TEST(SocketActivation, ADatagramSocketIsRefused) {
  GPUBOX_REQUIRE_ROOT();
  TempDir dir;
  Fd dgram(boundSocket(dir / "dgram.sock", SOCK_DGRAM));
  ActivatedHelper h(dir, dgram.get(), {});
  auto st = h.wait(30s);
  ASSERT_TRUE(st.has_value()) << "the helper kept running:\n" << h.log();
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) != 0) << "status " << *st << "\n" << h.log();
  EXPECT_THAT(h.log(), HasSubstr("gpubox-helper: "));
  EXPECT_THAT(h.log(), HasSubstr("not a listening AF_UNIX stream socket")) << h.log();
}

// Runs the helper (--listen) in a private mount namespace in which
// `journalDir` is mounted on /run/systemd/journal, with JOURNAL_STREAM set as
// systemd sets it. Where /run/systemd/journal does not exist, a tmpfs on its
// nearest existing parent makes room for it, in that namespace only.
std::unique_ptr<Process> helperWithJournal(const TempDir& dir, const std::string& journalDir) {
  const std::string script = R"(set -e
d=/run/systemd/journal
p=$d
while [ ! -d "$p" ]; do p=$(dirname "$p"); done
if [ "$p" != "$d" ]; then mount -t tmpfs tmpfs "$p"; mkdir -p "$d"; fi
mount --bind "$1" "$d"
shift
exec "$@")";
  std::vector<std::string> argv{
      "/usr/bin/unshare", "--mount",    "--propagation", "private",
      "/bin/sh",          "-c",         script,          "sh",
      journalDir,         helperPath(), "--listen",      dir / "gpubox.sock"};
  if (std::string mode = helperMode(); !mode.empty())
    argv.insert(argv.end(), {"--user-namespace", mode});
  RunOptions o;
  o.env = {"JOURNAL_STREAM=8:12345"};
  o.timeout = 60s;
  return std::make_unique<Process>(argv, o);
}

TEST(Journal, MessagesArriveAsNativeProtocolDatagrams) {
  GPUBOX_REQUIRE_ROOT();
  TempDir dir;
  TempDir journal;
  Fd sink(boundSocket(journal / "socket", SOCK_DGRAM));
  auto p = helperWithJournal(dir, journal.path());
  std::string seen;
  bool got = receiveContaining(sink.get(), "MESSAGE=listening on", seen);
  p->kill(SIGTERM);
  RunResult r = p->finish();
  ASSERT_TRUE(got) << "no listening message in the journal; datagrams:\n" << seen << r.describe();
  EXPECT_THAT(seen, HasSubstr("MESSAGE=listening on " + dir / "gpubox.sock" + "\n"));
  EXPECT_THAT(seen, HasSubstr("SYSLOG_IDENTIFIER=gpubox-helper\n"));
  EXPECT_THAT(seen, HasSubstr("PRIORITY=6\n"));
  // Sent to the journal, so not also on stderr.
  EXPECT_THAT(r.err, Not(HasSubstr("listening on"))) << r.describe();
}

TEST(Journal, WithoutAJournalTheMessagesGoToStderr) {
  GPUBOX_REQUIRE_ROOT();
  TempDir dir;
  TempDir empty;  // no socket in it: nobody is listening
  auto p = helperWithJournal(dir, empty.path());
  bool listening = false;
  for (int i = 0; i < 300 && !listening; ++i) {
    struct stat st;
    listening = ::stat((dir / "gpubox.sock").c_str(), &st) == 0;
    std::this_thread::sleep_for(100ms);
  }
  // The socket comes a moment before the line that says so.
  std::this_thread::sleep_for(1s);
  p->kill(SIGTERM);
  RunResult r = p->finish();
  ASSERT_TRUE(listening) << r.describe();
  EXPECT_THAT(r.err, HasSubstr("gpubox-helper: listening on " + dir / "gpubox.sock"))
      << r.describe();
}

}  // namespace
}  // namespace gpubox::itest
