#include "process.hpp"

#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace gpubox::bench {

namespace {

[[noreturn]] void fail(const std::string& what) {
  throw std::runtime_error(what + ": " + std::strerror(errno));
}

// In a child after fork: report on stderr and exit 127.
[[noreturn]] void childFail(const char* what) {
  char buf[256];
  int n = std::snprintf(buf, sizeof buf, "bench child: %s: %s\n", what, std::strerror(errno));
  if (n > 0) (void)!::write(2, buf, static_cast<size_t>(n));
  ::_exit(127);
}

double msSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

bool canConnect(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

}  // namespace

// ---------------------------------------------------------------- Command

Command::Command(std::vector<std::string> argv, std::vector<std::string> env, std::string cwd,
                 std::optional<uid_t> uid)
    : argv_(std::move(argv)), env_(std::move(env)), cwd_(std::move(cwd)), uid_(uid) {
  prepare();
}

Command::Command(const Command& other)
    : argv_(other.argv_), env_(other.env_), cwd_(other.cwd_), uid_(other.uid_) {
  prepare();
}

void Command::prepare() {
  argvC_.clear();
  envC_.clear();
  for (auto& s : argv_) argvC_.push_back(s.data());
  argvC_.push_back(nullptr);
  for (auto& s : env_) envC_.push_back(s.data());
  envC_.push_back(nullptr);
}

Command Command::withEnv(const std::string& entry) const {
  std::vector<std::string> env = env_;
  env.push_back(entry);
  return Command(argv_, std::move(env), cwd_, uid_);
}

std::string Command::describe() const {
  std::string out = uid_ ? "(uid " + std::to_string(*uid_) + ") " : "";
  for (const auto& a : argv_) out += a + " ";
  return out;
}

void Command::execInChild() const {
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  if (uid_) {
    if (::setgroups(0, nullptr) != 0) childFail("setgroups");
    if (::setresgid(*uid_, *uid_, *uid_) != 0) childFail("setresgid");
    if (::setresuid(*uid_, *uid_, *uid_) != 0) childFail("setresuid");
  }
  if (::chdir(cwd_.c_str()) != 0) childFail("chdir");
  ::execve(argvC_[0], argvC_.data(), envC_.data());
  childFail(argvC_[0]);
}

// ---------------------------------------------------------------- Runner

Runner::Runner() {
  devNull_ = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (devNull_ < 0) fail("open /dev/null");
  errFile_ = ::memfd_create("bench-stderr", MFD_CLOEXEC);
  if (errFile_ < 0) fail("memfd_create");
}

Runner::~Runner() {
  ::close(devNull_);
  ::close(errFile_);
}

std::string Runner::stderrText() {
  std::string out;
  char buf[4096];
  ssize_t n;
  off_t at = 0;
  while ((n = ::pread(errFile_, buf, sizeof buf, at)) > 0) {
    out.append(buf, static_cast<size_t>(n));
    at += n;
  }
  return out;
}

int Runner::wait(pid_t pid, const Command& command) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) fail("waitpid " + command.describe());
  return status;
}

double Runner::timed(const Command& command) {
  if (::ftruncate(errFile_, 0) != 0) fail("ftruncate");
  auto t0 = std::chrono::steady_clock::now();  // CLOCK_MONOTONIC on Linux
  lastForkNs_ = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(t0.time_since_epoch()).count());
  pid_t pid = ::fork();
  if (pid < 0) fail("fork");
  if (pid == 0) {
    if (::dup2(devNull_, 0) < 0 || ::dup2(devNull_, 1) < 0) childFail("dup2");
    if (::dup2(errFile_, 2) < 0) childFail("dup2");
    command.execInChild();
  }
  int status = wait(pid, command);
  double ms = msSince(t0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw std::runtime_error(command.describe() + "failed (wait status " + std::to_string(status) +
                             "): " + stderrText());
  return ms;
}

double Runner::timedFirstByte(const Command& command) {
  if (::ftruncate(errFile_, 0) != 0) fail("ftruncate");
  int pipeFds[2];
  if (::pipe2(pipeFds, O_CLOEXEC) != 0) fail("pipe2");
  auto t0 = std::chrono::steady_clock::now();
  pid_t pid = ::fork();
  if (pid < 0) fail("fork");
  if (pid == 0) {
    if (::dup2(devNull_, 0) < 0 || ::dup2(pipeFds[1], 1) < 0) childFail("dup2");
    if (::dup2(errFile_, 2) < 0) childFail("dup2");
    command.execInChild();
  }
  ::close(pipeFds[1]);
  char byte;
  ssize_t n;
  while ((n = ::read(pipeFds[0], &byte, 1)) < 0 && errno == EINTR) {
  }
  const double ms = msSince(t0);
  char rest[4096];
  while (::read(pipeFds[0], rest, sizeof rest) > 0) {
  }
  ::close(pipeFds[0]);
  const int status = wait(pid, command);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw std::runtime_error(command.describe() + "failed (wait status " + std::to_string(status) +
                             "): " + stderrText());
  if (n != 1) throw std::runtime_error(command.describe() + "printed nothing on stdout");
  return ms;
}

std::string Runner::output(const Command& command) {
  if (::ftruncate(errFile_, 0) != 0) fail("ftruncate");
  int out = ::memfd_create("bench-stdout", MFD_CLOEXEC);
  if (out < 0) fail("memfd_create");
  pid_t pid = ::fork();
  if (pid < 0) fail("fork");
  if (pid == 0) {
    if (::dup2(devNull_, 0) < 0 || ::dup2(out, 1) < 0 || ::dup2(errFile_, 2) < 0) childFail("dup2");
    command.execInChild();
  }
  int status = wait(pid, command);
  std::string text;
  char buf[4096];
  ssize_t n;
  off_t at = 0;
  while ((n = ::pread(out, buf, sizeof buf, at)) > 0) {
    text.append(buf, static_cast<size_t>(n));
    at += n;
  }
  ::close(out);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw std::runtime_error(command.describe() + "failed (wait status " + std::to_string(status) +
                             "): " + stderrText());
  return text;
}

// ---------------------------------------------------------------- TempDir

TempDir::TempDir(const std::string& prefix, mode_t mode) {
  std::string tmpl = "/tmp/" + prefix + "-XXXXXX";
  if (!::mkdtemp(tmpl.data())) fail("mkdtemp " + tmpl);
  path_ = tmpl;
  if (::chmod(path_.c_str(), mode) != 0) fail("chmod " + path_);
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

// ---------------------------------------------------------------- Helper

namespace {

// The helpers this benchmark has running, for its signal handler: a
// benchmark ended by SIGTERM (run-on-device.sh's `timeout`), SIGINT or SIGHUP
// stops them on its way out, as ~Helper would have. Without it a root
// helper and its warm inits would outlive the benchmark and share the
// machine with whatever is measured next. (PR_SET_PDEATHSIG would not
// last: the kernel clears it when the helper drops capabilities.)
// A benchmark starts at most six helpers; a table full of them (never)
// would only leave the seventeenth to ~Helper.
std::array<std::atomic<pid_t>, 16> liveHelpers{};

void stopHelpersAndDie(int sig) {
  for (auto& pid : liveHelpers)
    if (const pid_t p = pid.load(); p > 0) ::kill(p, SIGTERM);
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

void rememberHelper(pid_t pid) {
  static std::once_flag handlers;
  std::call_once(handlers, [] {
    for (int sig : {SIGTERM, SIGINT, SIGHUP}) ::signal(sig, stopHelpersAndDie);
  });
  for (auto& slot : liveHelpers) {
    pid_t empty = 0;
    if (slot.compare_exchange_strong(empty, pid)) return;
  }
}

void forgetHelper(pid_t pid) {
  for (auto& slot : liveHelpers) {
    pid_t mine = pid;
    if (slot.compare_exchange_strong(mine, 0)) return;
  }
}

}  // namespace

Helper::Helper(const std::string& binary, const std::string& dir,
               std::vector<std::string> extraArgs)
    : socket_(dir + "/gpubox.sock"), logPath_(dir + "/helper.log") {
  std::vector<std::string> argv = {binary, "--listen", socket_};
  argv.insert(argv.end(), extraArgs.begin(), extraArgs.end());
  Command command(argv, {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C"}, "/", std::nullopt);
  int logFd = ::open(logPath_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (logFd < 0) fail("create " + logPath_);
  pid_ = ::fork();
  if (pid_ < 0) fail("fork");
  if (pid_ == 0) {
    int nul = ::open("/dev/null", O_RDONLY);
    if (nul < 0 || ::dup2(nul, 0) < 0 || ::dup2(logFd, 1) < 0 || ::dup2(logFd, 2) < 0)
      childFail("redirect");
    ::syscall(SYS_close_range, 3, ~0U, 0);
    command.execInChild();
  }
  ::close(logFd);
  rememberHelper(pid_);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!canConnect(socket_)) {
    // Seen exited without reaping it, so that its pid cannot be reused
    // while the signal handler may still name it.
    siginfo_t info = {};
    if (::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
        info.si_pid == pid_) {
      forgetHelper(pid_);
      ::waitpid(pid_, nullptr, 0);
      pid_ = -1;
      throw std::runtime_error("gpubox-helper exited at start; its log:\n" + log());
    }
    if (std::chrono::steady_clock::now() > deadline) {
      // A constructor that throws has no destructor to stop it.
      ::kill(pid_, SIGKILL);
      forgetHelper(pid_);
      ::waitpid(pid_, nullptr, 0);
      pid_ = -1;
      throw std::runtime_error("gpubox-helper did not listen within 30 s; its log:\n" + log());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

Helper::~Helper() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);
  forgetHelper(pid_);  // before it is reaped: a reused pid is never signalled
  for (int i = 0; i < 1000; ++i) {
    if (::waitpid(pid_, nullptr, WNOHANG) == pid_) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
}

std::string Helper::log() const {
  try {
    return readFile(logPath_);
  } catch (const std::exception&) {
    return "";
  }
}

// ---------------------------------------------------------------- files

std::string readFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Rss rssKiB(pid_t pid) {
  std::string path = "/proc/" + std::to_string(pid) + "/status";
  std::istringstream in(readFile(path));
  std::string line;
  Rss rss;
  bool total = false;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) rss.total = std::stoul(line.substr(6)), total = true;
    if (line.rfind("RssAnon:", 0) == 0) rss.anon = std::stoul(line.substr(8));
  }
  if (!total) throw std::runtime_error(path + " has no VmRSS line");
  return rss;
}

double cpuMs(const std::string& statPath) {
  // Fields 14 and 15 (utime, stime), counted after the ")" that ends the
  // command name (which may hold spaces).
  std::string stat = readFile(statPath);
  std::istringstream in(stat.substr(stat.rfind(')') + 2));
  std::string field;
  unsigned long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && in >> field; ++i) {
    if (i == 14) utime = std::stoul(field);
    if (i == 15) stime = std::stoul(field);
  }
  return 1000.0 * static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

// A thread's time on a CPU: schedstat's first field, in nanoseconds (the
// stat file counts clock ticks, 10 ms each: too coarse for a short level of
// the benchmark); stat where the kernel has no schedstat.
double taskCpuMs(const std::string& taskDir) {
  try {
    return static_cast<double>(std::stoull(readFile(taskDir + "/schedstat"))) / 1e6;
  } catch (const std::exception&) {
    return cpuMs(taskDir + "/stat");
  }
}

double threadCpuMs(pid_t pid, pid_t tid) {
  return taskCpuMs("/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid));
}

// Every live thread of PID whose name is COMM (all of them if COMM is empty).
double threadsCpuMs(pid_t pid, const std::string& comm) {
  const std::string task = "/proc/" + std::to_string(pid) + "/task";
  double total = 0;
  for (const auto& entry : std::filesystem::directory_iterator(task)) {
    try {
      if (comm.empty() || readFile(entry.path().string() + "/comm") == comm + "\n")
        total += taskCpuMs(entry.path().string());
    } catch (const std::exception&) {
      // A thread that ended meanwhile.
    }
  }
  return total;
}

double processCpuMs(pid_t pid) {
  return threadsCpuMs(pid, "");
}

MachineCpu MachineCpu::now() {
  std::istringstream stat(readFile("/proc/stat"));
  std::string cpu;
  unsigned long long user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0,
                     steal = 0;
  if (!(stat >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq) || cpu != "cpu")
    throw std::runtime_error("/proc/stat: no cpu line");
  stat >> steal;  // absent before Linux 2.6.11
  const double msPerTick = 1000.0 / static_cast<double>(::sysconf(_SC_CLK_TCK));
  const double busy = static_cast<double>(user + nice + system + irq + softirq + steal);
  return {busy * msPerTick, (busy + static_cast<double>(idle + iowait)) * msPerTick};
}

std::string copyExecutable(const std::string& from, const std::string& dir,
                           const std::string& name) {
  std::string to = dir + "/" + name;
  std::filesystem::copy_file(from, to, std::filesystem::copy_options::overwrite_existing);
  if (::chmod(to.c_str(), 0755) != 0) fail("chmod " + to);
  return to;
}

}  // namespace gpubox::bench
