#include "harness.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace gpubox::itest {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

// Writing to a child that has already exited must not kill the test binary.
const bool kIgnoreSigpipe = [] {
  ::signal(SIGPIPE, SIG_IGN);
  return true;
}();

[[noreturn]] void fail(const std::string& what) {
  throw std::runtime_error(what + ": " + std::strerror(errno));
}

std::string envOr(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

// Closes every fd >= `from` except `keep`, in the child after fork.
void closeFrom(int from, int keep) {
  if (keep >= from) {
    if (keep > from) ::syscall(SYS_close_range, from, keep - 1, 0);
    ::syscall(SYS_close_range, keep + 1, ~0U, 0);
  } else {
    ::syscall(SYS_close_range, from, ~0U, 0);
  }
}

// A child that failed before exec reports it on stderr (fd 2) and exits 127
// (a distinctive code would collide with gpubox's own; the message tells).
[[noreturn]] void childFail(const char* what) {
  char buf[256];
  int n = std::snprintf(buf, sizeof buf, "harness child: %s: %s\n", what, std::strerror(errno));
  if (n > 0) (void)!::write(2, buf, static_cast<size_t>(n));
  ::_exit(127);
}

void resetSignals() {
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  for (int s = 1; s < NSIG; ++s) ::signal(s, SIG_DFL);
}

std::vector<char*> cStrings(std::vector<std::string>& v) {
  std::vector<char*> out;
  for (auto& s : v) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// Reads a /proc file with plain read(2). The process may exit mid-read
// (ESRCH); that yields "" rather than an exception (an ifstream's iterator
// throws there).
std::string readProcQuietly(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return n == 0 ? out : "";
}

pid_t parentOf(pid_t pid) {
  std::string stat = readProcQuietly("/proc/" + std::to_string(pid) + "/stat");
  auto close = stat.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream rest(stat.substr(close + 1));
  std::string state;
  pid_t ppid = -1;
  rest >> state >> ppid;
  return ppid;
}

std::vector<pid_t> allPids() {
  std::vector<pid_t> pids;
  DIR* d = ::opendir("/proc");
  if (!d) return pids;
  while (struct dirent* e = ::readdir(d)) {
    char* end = nullptr;
    long v = std::strtol(e->d_name, &end, 10);
    if (end && *end == '\0' && v > 0) pids.push_back(static_cast<pid_t>(v));
  }
  ::closedir(d);
  return pids;
}

std::string clip(const std::string& s) {
  constexpr size_t kMax = 3000;
  if (s.size() <= kMax) return s;
  return s.substr(0, kMax) + "... [" + std::to_string(s.size()) + " bytes]";
}

}  // namespace

std::string helperPath() {
  std::string p = envOr("GPUBOX_HELPER");
  if (p.empty()) ADD_FAILURE() << "GPUBOX_HELPER is not set (run the tests with meson test)";
  return p;
}

namespace {

// The CLI is run as uid 65534 and, by some tests, from inside sandboxes whose
// default plan hides /tmp. The build tree may be neither (a checkout under a
// 0700 home, or under /tmp), so the tests use a copy in a world-readable
// directory under /var/tmp. The CLI links libgpubox-client statically, so the
// copy stands alone.
class CliCopy {
 public:
  explicit CliCopy(const std::string& built, const std::string& name = "gpubox") {
    char tmpl[] = "/var/tmp/gpubox-it-cli-XXXXXX";
    if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp for the CLI copy failed");
    dir_ = tmpl;
    ::chmod(dir_.c_str(), 0755);
    path_ = dir_ + "/" + name;
    std::string data = readFile(built);
    writeFile(path_, data, 0755);
  }
  ~CliCopy() {
    ::unlink(path_.c_str());
    ::rmdir(dir_.c_str());
  }
  const std::string& path() const { return path_; }

 private:
  std::string dir_, path_;
};

}  // namespace

std::string cliPath() {
  std::string p = envOr("GPUBOX_CLI");
  if (p.empty()) {
    ADD_FAILURE() << "GPUBOX_CLI is not set (run the tests with meson test)";
    return p;
  }
  static CliCopy copy(p);
  return copy.path();
}

std::string bwrapFrontPath() {
  std::string p = envOr("GPUBOX_BWRAP");
  if (p.empty()) {
    ADD_FAILURE() << "GPUBOX_BWRAP is not set (run the tests with meson test)";
    return p;
  }
  static CliCopy copy(p, "gpubox-bwrap");
  return copy.path();
}

bool isRoot() {
  return ::geteuid() == 0;
}

void requireRoot() {
  if (!isRoot())
    GTEST_SKIP() << "needs root (euid is " << ::geteuid()
                 << "): the test starts a privileged gpubox-helper and switches to uid 65534";
}

void sleepFor(std::chrono::milliseconds d) {
  std::this_thread::sleep_for(d);
}

// ---------------------------------------------------------------- temp files

TempDir::TempDir(mode_t mode, uid_t uid, gid_t gid, const std::string& prefix) {
  std::string tmpl = "/tmp/" + prefix + "-XXXXXX";
  if (!::mkdtemp(tmpl.data())) fail("mkdtemp " + tmpl);
  path_ = tmpl;
  if (::chown(path_.c_str(), uid, gid) != 0) fail("chown " + path_);
  if (::chmod(path_.c_str(), mode) != 0) fail("chmod " + path_);
}

TempDir::~TempDir() {
  if (path_.empty()) return;
  std::error_code ec;
  // Make everything removable first (a test may leave 0500 directories).
  for (auto it = fs::recursive_directory_iterator(path_, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_directory(ec) && !it->is_symlink(ec))
      fs::permissions(it->path(), fs::perms::owner_all, fs::perm_options::add, ec);
  }
  fs::remove_all(path_, ec);
}

void makeDir(const std::string& path, mode_t mode, uid_t uid, gid_t gid) {
  if (::mkdir(path.c_str(), 0700) != 0) fail("mkdir " + path);
  if (::chown(path.c_str(), uid, gid) != 0) fail("chown " + path);
  if (::chmod(path.c_str(), mode) != 0) fail("chmod " + path);
}

void writeFile(const std::string& path, const std::string& data, mode_t mode, uid_t uid,
               gid_t gid) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) fail("create " + path);
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ::close(fd);
      fail("write " + path);
    }
    done += static_cast<size_t>(n);
  }
  if (::fchown(fd, uid, gid) != 0 || ::fchmod(fd, mode) != 0) {
    ::close(fd);
    fail("chown/chmod " + path);
  }
  ::close(fd);
}

std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

bool pathExists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

// ---------------------------------------------------------------- processes

std::string RunResult::describe() const {
  std::ostringstream o;
  o << "exit=" << exitCode << " signal=" << termSignal << (timedOut ? " TIMED OUT" : "")
    << "\n--- stdout ---\n"
    << clip(out) << "\n--- stderr ---\n"
    << clip(err);
  if (!extra.empty()) o << "\n--- extra fd ---\n" << clip(extra);
  return o.str();
}

Process::Process(const std::vector<std::string>& argvIn, const RunOptions& opts)
    : stdinData_(opts.stdinData), timeout_(opts.timeout) {
  std::vector<std::string> argv = argvIn;
  std::vector<std::string> env;
  if (!opts.replaceEnv)
    env = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/", "LANG=C"};
  env.insert(env.end(), opts.env.begin(), opts.env.end());
  std::vector<char*> argvC = cStrings(argv);
  std::vector<char*> envC = cStrings(env);
  uid_t uid = opts.asUid.value_or(0);
  gid_t gid = opts.asGid.value_or(static_cast<gid_t>(uid));
  bool switchUser = opts.asUid.has_value();

  int in[2], out[2], err[2], extra[2] = {-1, -1};
  if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0)
    fail("pipe");
  if (opts.extraFd >= 3 && ::pipe2(extra, O_CLOEXEC) != 0) fail("pipe");

  pid_ = ::fork();
  if (pid_ < 0) fail("fork");
  if (pid_ == 0) {
    resetSignals();
    // Move the pipe ends out of the way of the target numbers first.
    int e = extra[1] >= 0 ? ::fcntl(extra[1], F_DUPFD_CLOEXEC, 64) : -1;
    if (::dup2(in[0], 0) < 0 || ::dup2(out[1], 1) < 0 || ::dup2(err[1], 2) < 0) childFail("dup2");
    if (e >= 0 && ::dup2(e, opts.extraFd) < 0) childFail("dup2 extra fd");
    closeFrom(3, e >= 0 ? opts.extraFd : -1);
    if (!opts.cwd.empty() && ::chdir(opts.cwd.c_str()) != 0) childFail("chdir");
    if (switchUser) {
      if (::setgroups(0, nullptr) != 0) childFail("setgroups");
      if (::setresgid(gid, gid, gid) != 0) childFail("setresgid");
      if (::setresuid(uid, uid, uid) != 0) childFail("setresuid");
    }
    ::execve(argvC[0], argvC.data(), envC.data());
    childFail(argvC[0]);
  }
  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);
  if (extra[1] >= 0) ::close(extra[1]);
  stdinFd_ = in[1];
  outFd_ = out[0];
  errFd_ = err[0];
  extraFd_ = extra[0];
}

Process::~Process() {
  if (pid_ > 0 && !reaped_) {
    ::kill(pid_, SIGKILL);
    int st;
    while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
    }
  }
  for (int fd : {stdinFd_, outFd_, errFd_, extraFd_})
    if (fd >= 0) ::close(fd);
}

void Process::kill(int sig) {
  if (pid_ > 0 && !reaped_) ::kill(pid_, sig);
}

RunResult Process::finish() {
  RunResult r;
  if (reaped_) return r;
  const auto start = std::chrono::steady_clock::now();
  auto deadline = start + timeout_;
  // After the child exits, sandboxed processes may still hold the pipes for
  // a moment; give them this long to let go.
  std::optional<std::chrono::steady_clock::time_point> exitedAt;
  int status = 0;
  size_t written = 0;
  if (stdinData_.empty() && stdinFd_ >= 0) {
    ::close(stdinFd_);
    stdinFd_ = -1;
  }
  if (stdinFd_ >= 0) ::fcntl(stdinFd_, F_SETFL, O_NONBLOCK);
  std::string* sinks[3] = {&r.out, &r.err, &r.extra};
  int* fds[3] = {&outFd_, &errFd_, &extraFd_};
  std::vector<char> buf(1 << 16);
  for (;;) {
    if (!exitedAt) {
      pid_t w = ::waitpid(pid_, &status, WNOHANG);
      if (w == pid_) {
        reaped_ = true;
        exitedAt = std::chrono::steady_clock::now();
      }
    }
    bool anyOpen = outFd_ >= 0 || errFd_ >= 0 || extraFd_ >= 0;
    if (exitedAt && !anyOpen) break;
    auto now = std::chrono::steady_clock::now();
    if (exitedAt && now - *exitedAt > 10s) break;  // pipes held by someone else
    if (!exitedAt && now > deadline && !r.timedOut) {
      r.timedOut = true;
      ::kill(pid_, SIGKILL);
    }
    if (r.timedOut && now > deadline + 10s) break;

    struct pollfd pfds[4];
    int n = 0;
    int map[4];
    for (int i = 0; i < 3; ++i) {
      if (*fds[i] >= 0) {
        pfds[n] = {*fds[i], POLLIN, 0};
        map[n++] = i;
      }
    }
    if (stdinFd_ >= 0) {
      pfds[n] = {stdinFd_, POLLOUT, 0};
      map[n++] = 3;
    }
    int rc = ::poll(pfds, static_cast<nfds_t>(n), 100);
    if (rc < 0 && errno != EINTR) fail("poll");
    if (rc <= 0) continue;
    for (int k = 0; k < n; ++k) {
      if (!pfds[k].revents) continue;
      int i = map[k];
      if (i == 3) {
        ssize_t w = ::write(stdinFd_, stdinData_.data() + written, stdinData_.size() - written);
        if (w > 0) written += static_cast<size_t>(w);
        if ((w < 0 && errno != EAGAIN && errno != EINTR) || written == stdinData_.size()) {
          ::close(stdinFd_);
          stdinFd_ = -1;
        }
        continue;
      }
      ssize_t got = ::read(*fds[i], buf.data(), buf.size());
      if (got > 0) {
        sinks[i]->append(buf.data(), static_cast<size_t>(got));
      } else if (got == 0 || (errno != EAGAIN && errno != EINTR)) {
        ::close(*fds[i]);
        *fds[i] = -1;
      }
    }
  }
  if (!reaped_) {
    // Pipes closed before the exit was noticed, or we gave up: reap now.
    if (r.timedOut) ::kill(pid_, SIGKILL);
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    reaped_ = true;
  }
  if (WIFEXITED(status)) r.exitCode = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) r.termSignal = WTERMSIG(status);
  return r;
}

RunResult runProcess(const std::vector<std::string>& argv, const RunOptions& opts) {
  Process p(argv, opts);
  return p.finish();
}

int hostSignalForAbi(const std::string& probe, const std::string& abi) {
  const RunResult r = runProcess({probe, abi});
  if (r.termSignal != 0)
    std::cout << "NOTE: outside any sandbox this kernel ends a " << abi
              << " system call with signal " << r.termSignal
              << " before any seccomp filter sees it; the sandbox's process must end the same way"
              << std::endl;
  return r.termSignal;
}

RunResult runCli(const std::vector<std::string>& args, const RunOptions& opts) {
  std::vector<std::string> argv{cliPath()};
  argv.insert(argv.end(), args.begin(), args.end());
  return runProcess(argv, opts);
}

// ---------------------------------------------------------------- the helper

bool canConnect(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  struct sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  bool ok = ::connect(fd, reinterpret_cast<struct sockaddr*>(&addr), sizeof(addr)) == 0;
  ::close(fd);
  return ok;
}

HelperProcess::HelperProcess(const HelperOptions& opts)
    : opts_(opts),
      dir_(0755, 0, 0, "gpubox-it-helper"),
      work_(0777, kNobodyUid, kNobodyGid, "gpubox-it-work") {
  socket_ = dir_.path() + "/gpubox.sock";
  logPath_ = dir_.path() + "/helper.log";
  start();
}

std::string testUserNamespaceMode() {
  return envOr("GPUBOX_TEST_USER_NAMESPACE");
}

bool kernelAllowsUserNamespaces() {
  pid_t pid = ::fork();
  if (pid < 0) fail("fork");
  if (pid == 0) _exit(::unshare(CLONE_NEWUSER) == 0 ? 0 : 1);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

std::string expectedUserNamespace() {
  std::string mode = testUserNamespaceMode();
  if (mode == "never") return "host";
  if (mode == "required") return "new";
  // auto (or unset): whatever this kernel lets root do, found out here, not
  // from the helper under test.
  return kernelAllowsUserNamespaces() ? "new" : "host";
}

void HelperProcess::start() {
  std::vector<std::string> argv = opts_.wrapper;
  argv.insert(argv.end(), {helperPath(), "--listen", socket_});
  argv.insert(argv.end(), opts_.extraArgs.begin(), opts_.extraArgs.end());
  // The suite's second pass (scripts/test.sh) runs every helper in another
  // mode; a test that names a mode itself keeps it.
  const bool named = std::find(opts_.extraArgs.begin(), opts_.extraArgs.end(),
                               "--user-namespace") != opts_.extraArgs.end();
  if (std::string mode = testUserNamespaceMode(); !mode.empty() && !named)
    argv.insert(argv.end(), {"--user-namespace", mode});
  // And with connections served on RPC threads (GPUBOX_TEST_RPC_THREADS),
  // unless the test names a count.
  const bool threadsNamed = std::find(opts_.extraArgs.begin(), opts_.extraArgs.end(),
                                      "--rpc-threads") != opts_.extraArgs.end();
  if (std::string threads = envOr("GPUBOX_TEST_RPC_THREADS"); !threads.empty() && !threadsNamed)
    argv.insert(argv.end(), {"--rpc-threads", threads});
  std::vector<char*> argvC = cStrings(argv);
  std::vector<std::string> env{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                               "LANG=C"};
  std::vector<char*> envC = cStrings(env);
  int logFd = ::open(logPath_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (logFd < 0) fail("create " + logPath_);
  struct stat st;
  logStart_ = ::fstat(logFd, &st) == 0 ? static_cast<size_t>(st.st_size) : 0;
  status_.reset();
  pid_ = ::fork();
  if (pid_ < 0) fail("fork");
  if (pid_ == 0) {
    resetSignals();
    int nul = ::open("/dev/null", O_RDONLY);
    if (nul < 0 || ::dup2(nul, 0) < 0 || ::dup2(logFd, 1) < 0 || ::dup2(logFd, 2) < 0)
      childFail("redirect");
    closeFrom(3, -1);
    ::execve(argvC[0], argvC.data(), envC.data());
    childFail(argvC[0]);
  }
  ::close(logFd);
  if (!opts_.waitReady) return;
  // After a restart the old socket file may still be there: wait for the
  // new helper itself to accept (a connect to a dead socket fails anyway).
  bool ready =
      pollUntil([&] { return canConnect(socket_) || !alive(); }, opts_.readyTimeout) && alive();
  if (!ready) {
    std::string why = alive() ? "did not accept connections in time" : "exited";
    stop();
    throw std::runtime_error("gpubox-helper " + why + "; its log:\n" + log());
  }
}

void HelperProcess::restart() {
  if (alive()) throw std::runtime_error("HelperProcess::restart(): the helper still runs");
  start();
}

HelperProcess::~HelperProcess() {
  stop();
}

std::string HelperProcess::log() const {
  try {
    return readFile(logPath_);
  } catch (const std::exception&) {
    return "";
  }
}

std::string HelperProcess::logSinceStart() const {
  std::string all = log();
  return logStart_ <= all.size() ? all.substr(logStart_) : all;
}

bool HelperProcess::alive() {
  if (status_) return false;
  int st;
  pid_t w = ::waitpid(pid_, &st, WNOHANG);
  if (w == pid_) {
    status_ = st;
    return false;
  }
  return true;
}

std::optional<int> HelperProcess::waitExit(std::chrono::milliseconds timeout) {
  pollUntil([&] { return !alive(); }, timeout);
  return status_;
}

void HelperProcess::kill(int sig) {
  if (pid_ > 0 && alive()) ::kill(pid_, sig);
}

void HelperProcess::stop() {
  if (pid_ <= 0 || status_) return;
  // The helper's direct children are sandbox inits (pid 1 of their pid
  // namespaces): SIGKILL on them takes their whole namespace down.
  std::vector<pid_t> children;
  for (pid_t p : allPids())
    if (parentOf(p) == pid_) children.push_back(p);
  ::kill(pid_, SIGTERM);
  if (auto stopped = waitExit(5s)) {
    // An orderly stop ends every sandbox and session and exits 0; anything
    // else (a crash in the shutdown path, a sanitizer report) fails the test.
    // (Under a wrapper such as unshare --fork, the status is the wrapper's.)
    if (opts_.wrapper.empty() && (!WIFEXITED(*stopped) || WEXITSTATUS(*stopped) != 0))
      ADD_FAILURE() << "the helper did not stop cleanly on SIGTERM (wait status " << *stopped
                    << "); its log:\n"
                    << log();
  } else {
    ADD_FAILURE() << "the helper did not stop within 5 s of SIGTERM; its log:\n" << log();
    ::kill(pid_, SIGKILL);
    int st;
    while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
    }
    status_ = st;
  }
  for (pid_t c : children) ::kill(c, SIGKILL);
}

unsigned gpuHolders(const HelperProcess& h, unsigned index) {
  nlohmann::json j = parseJson(h.cli({"gpus", "--json"}).out);
  if (!j.is_array()) return 999;
  for (const auto& g : j)
    if (g["index"] == index) return g["holders"].get<unsigned>();
  return 998;
}

std::vector<std::string> HelperProcess::cliArgv(const std::vector<std::string>& args) const {
  std::vector<std::string> argv{cliPath(), "--socket", socket_};
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

RunResult HelperProcess::cli(const std::vector<std::string>& args, RunOptions opts) const {
  if (opts.cwd.empty()) opts.cwd = work_.path();
  return runProcess(cliArgv(args), opts);
}

RunResult HelperProcess::bwrap(const std::vector<std::string>& args, RunOptions opts) const {
  if (opts.cwd.empty()) opts.cwd = work_.path();
  opts.env.push_back("GPUBOX_SOCKET=" + socket_);
  std::vector<std::string> argv{bwrapFrontPath()};
  argv.insert(argv.end(), args.begin(), args.end());
  return runProcess(argv, opts);
}

RunResult HelperProcess::bwrapScript(const std::string& script, RunOptions opts) const {
  if (opts.cwd.empty()) opts.cwd = work_.path();
  opts.env.push_back("GPUBOX_SOCKET=" + socket_);
  opts.env.push_back("BWRAP=" + bwrapFrontPath());
  return runProcess({"/bin/bash", "-c", script}, opts);
}

std::unique_ptr<Process> HelperProcess::spawnCli(const std::vector<std::string>& args,
                                                 RunOptions opts) const {
  if (opts.cwd.empty()) opts.cwd = work_.path();
  return std::make_unique<Process>(cliArgv(args), opts);
}

nlohmann::json HelperProcess::psJson(std::optional<uid_t> uid, RunResult* raw) const {
  RunOptions o;
  o.asUid = uid;
  o.timeout = 30s;
  RunResult r = cli({"ps", "--json"}, o);
  if (raw) *raw = r;
  if (r.exitCode != 0) return nlohmann::json(nlohmann::json::value_t::discarded);
  return parseJson(r.out);
}

bool pidRunning(pid_t pid) {
  std::string stat = readProcQuietly("/proc/" + std::to_string(pid) + "/stat");
  auto close = stat.rfind(')');
  if (close == std::string::npos || close + 2 >= stat.size()) return false;
  char state = stat[close + 2];
  return state != 'Z' && state != 'X';
}

nlohmann::json parseJson(const std::string& text) {
  return nlohmann::json::parse(text, nullptr, false);
}

nlohmann::json findByName(const nlohmann::json& list, const std::string& name) {
  if (!list.is_array()) return nullptr;
  for (const auto& e : list)
    if (e.is_object() && e.contains("name") && e["name"].is_string() && e["name"] == name) return e;
  return nullptr;
}

namespace {

struct CgroupHierarchy {
  std::string mountPoint;
  std::vector<std::string> controllers;  // empty for cgroup2
  bool v2 = false;
};

std::vector<CgroupHierarchy> cgroupHierarchies() {
  std::vector<CgroupHierarchy> out;
  for (const auto& l : lines(readProcQuietly("/proc/self/mountinfo"))) {
    // id parent maj:min root mountpoint options [optional...] - fstype source superopts
    auto dash = l.find(" - ");
    if (dash == std::string::npos) continue;
    std::istringstream head(l.substr(0, dash)), tail(l.substr(dash + 3));
    std::string id, parent, dev, root, mountPoint, fstype, source, superOpts;
    head >> id >> parent >> dev >> root >> mountPoint;
    tail >> fstype >> source >> superOpts;
    if (fstype != "cgroup" && fstype != "cgroup2") continue;
    CgroupHierarchy h;
    h.mountPoint = mountPoint;
    h.v2 = fstype == "cgroup2";
    std::istringstream opts(superOpts);
    for (std::string o; std::getline(opts, o, ',');) h.controllers.push_back(o);
    out.push_back(h);
  }
  return out;
}

}  // namespace

std::string cgroupMount(const std::string& controller) {
  for (const auto& h : cgroupHierarchies()) {
    if (controller.empty() ? h.v2
                           : !h.v2 && std::find(h.controllers.begin(), h.controllers.end(),
                                                controller) != h.controllers.end())
      return h.mountPoint;
  }
  return "";
}

std::vector<std::string> cgroupMounts() {
  std::vector<std::string> out;
  for (const auto& h : cgroupHierarchies())
    if (std::find(out.begin(), out.end(), h.mountPoint) == out.end()) out.push_back(h.mountPoint);
  return out;
}

std::vector<std::string> cgroupHostDirs(const std::string& field) {
  std::vector<std::string> parts;
  std::string rest = field;
  for (;;) {
    size_t plus = rest.find(" + ");
    size_t comma = rest.find(", ");
    size_t cut = std::min(plus, comma);
    parts.push_back(rest.substr(0, cut));
    if (cut == std::string::npos) break;
    rest = rest.substr(cut + 3 - (cut == comma ? 1 : 0));
  }
  std::vector<std::string> out;
  for (std::string p : parts) {
    size_t b = p.find_first_not_of(" \t");
    size_t e = p.find_last_not_of(" \t\n");
    if (b == std::string::npos) continue;
    p = p.substr(b, e - b + 1);
    if (p.rfind("/sys/fs/cgroup", 0) == 0) {
      out.push_back(p);
      continue;
    }
    if (p[0] == '/') {
      // A path inside the cgroup2 hierarchy.
      std::string v2 = cgroupMount("");
      out.push_back(!v2.empty() && pathExists(v2 + p) ? v2 + p : p);
      continue;
    }
    size_t colon = p.find(":/");
    if (colon == std::string::npos) {
      out.push_back(p);
      continue;
    }
    std::string controllers = p.substr(0, colon), path = p.substr(colon + 1);
    if (controllers == "0" || controllers == "unified" || controllers == "cgroup2") {
      std::string v2 = cgroupMount("");
      out.push_back(v2.empty() ? p : v2 + (path == "/" ? "" : path));
      continue;
    }
    std::string first = controllers.substr(0, controllers.find(','));
    std::string mount = cgroupMount(first);
    out.push_back(mount.empty() ? p : mount + (path == "/" ? "" : path));
  }
  return out;
}

std::set<pid_t> initChildren(pid_t helper) {
  return childrenNamed(helper, "gpubox-init");
}

std::set<pid_t> childrenNamed(pid_t parent, const std::string& name) {
  std::set<pid_t> out;
  DIR* proc = ::opendir("/proc");
  if (!proc) return out;
  while (struct dirent* e = ::readdir(proc)) {
    const pid_t pid = static_cast<pid_t>(std::atoi(e->d_name));
    if (pid <= 0) continue;
    std::string stat;
    try {
      stat = readFile("/proc/" + std::to_string(pid) + "/stat");
    } catch (const std::exception&) {
      continue;  // gone meanwhile
    }
    // "pid (comm) state ppid ...": comm may hold spaces, so from the last ')'.
    const size_t close = stat.rfind(')');
    if (close == std::string::npos || stat.find("(" + name + ")") == std::string::npos) continue;
    int ppid = 0;
    char state = 0;
    if (std::sscanf(stat.c_str() + close + 1, " %c %d", &state, &ppid) == 2 && ppid == parent &&
        state != 'Z')
      out.insert(pid);
  }
  ::closedir(proc);
  return out;
}

bool holdsOnlyAWarmInit(const std::string& dir, pid_t helper) {
  std::string procs;
  try {
    procs = readFile(dir + "/cgroup.procs");
  } catch (const std::exception&) {
    return false;
  }
  const auto pids = lines(procs);
  if (pids.size() != 1) return false;
  const pid_t pid = static_cast<pid_t>(std::atoi(pids[0].c_str()));
  if (!initChildren(helper).contains(pid)) return false;
  try {
    return readFile("/proc/" + pids[0] + "/task/" + pids[0] + "/children").empty();
  } catch (const std::exception&) {
    return false;
  }
}

std::vector<pid_t> findProcesses(const std::vector<std::string>& argv) {
  std::string want;
  for (const auto& a : argv) {
    want += a;
    want.push_back('\0');
  }
  std::vector<pid_t> found;
  for (pid_t p : allPids()) {
    std::string cmd = readProcQuietly("/proc/" + std::to_string(p) + "/cmdline");
    if (!cmd.empty() && cmd == want) found.push_back(p);
  }
  return found;
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::string cur;
  std::istringstream in(text);
  while (std::getline(in, cur)) out.push_back(cur);
  return out;
}

std::map<std::string, std::string> parseProbe(const std::string& out) {
  std::map<std::string, std::string> result;
  for (const auto& line : lines(out)) {
    auto eq = line.find('=');
    if (eq != std::string::npos) result[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return result;
}

std::vector<std::string> stringsOf(const nlohmann::json& j) {
  std::vector<std::string> out;
  if (!j.is_array()) return out;
  for (const auto& e : j)
    if (e.is_string()) out.push_back(e.get<std::string>());
  return out;
}

std::string statusField(const std::string& text, const std::string& key) {
  for (const auto& l : lines(text)) {
    if (l.rfind(key + ":", 0) != 0) continue;
    std::string v = l.substr(key.size() + 1);
    size_t b = v.find_first_not_of(" \t");
    size_t e = v.find_last_not_of(" \t\r");
    return b == std::string::npos ? "" : v.substr(b, e - b + 1);
  }
  return "";
}

}  // namespace gpubox::itest
