// Integration-test harness: starts the real gpubox-helper on a private socket
// and drives the real `gpubox` binary, as root or as an unprivileged uid.
//
// Paths of the binaries come from the environment (set by meson):
//   GPUBOX_HELPER  the gpubox-helper executable
//   GPUBOX_CLI     the gpubox executable
//
// Everything here cleans up after itself: temp dirs are removed, helper and
// client processes are killed and reaped in destructors.
#pragma once

#include <sys/types.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace gpubox::itest {

// The unprivileged identity used throughout (Debian's nobody/nogroup).
constexpr uid_t kNobodyUid = 65534;
constexpr gid_t kNobodyGid = 65534;

// Path of the helper / CLI binaries (from $GPUBOX_HELPER / $GPUBOX_CLI).
// Fails the current test (and returns "") when the variable is not set.
std::string helperPath();
std::string cliPath();
// gpubox-bwrap (from $GPUBOX_BWRAP), copied like the CLI to a place every
// uid can run it from.
std::string bwrapFrontPath();

bool isRoot();
// GTEST_SKIPs the current test with a printed reason when not running as root.
// Call it from SetUp() (a skip there skips the test body) or use
// GPUBOX_REQUIRE_ROOT() in a test body.
void requireRoot();
#define GPUBOX_REQUIRE_ROOT()                 \
  do {                                        \
    ::gpubox::itest::requireRoot();           \
    if (::testing::Test::IsSkipped()) return; \
  } while (0)

// ---------------------------------------------------------------- temp files

// A directory under /tmp, removed (recursively) on destruction. Created with
// `mode` and owned by uid:gid.
class TempDir {
 public:
  explicit TempDir(mode_t mode = 0755, uid_t uid = 0, gid_t gid = 0,
                   const std::string& prefix = "gpubox-it");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  TempDir(TempDir&& other) noexcept : path_(std::exchange(other.path_, "")) {}

  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// mkdir (one level) with an owner and mode (chmod'ed explicitly, so the umask
// does not matter). Throws std::runtime_error on failure.
void makeDir(const std::string& path, mode_t mode = 0755, uid_t uid = 0, gid_t gid = 0);
// Writes a file with an owner and mode. Throws on failure.
void writeFile(const std::string& path, const std::string& data, mode_t mode = 0644, uid_t uid = 0,
               gid_t gid = 0);
std::string readFile(const std::string& path);
bool pathExists(const std::string& path);

// ---------------------------------------------------------------- processes

struct RunOptions {
  // Run as this uid (and kNobodyGid-style gid below), with no supplementary
  // groups. Unset: keep the test's identity.
  std::optional<uid_t> asUid;
  std::optional<gid_t> asGid;  // default: same number as asUid
  // Written to the child's stdin, then stdin is closed.
  std::string stdinData;
  // Environment: a small fixed base (PATH, HOME=/, LANG=C) plus these
  // "KEY=VALUE" entries. With replaceEnv, only these entries.
  std::vector<std::string> env;
  bool replaceEnv = false;
  // Working directory of the child; empty: the test's own.
  std::string cwd;
  // Give up (SIGKILL the child) after this long.
  std::chrono::milliseconds timeout{std::chrono::seconds(60)};
  // When >= 3, the child gets a pipe at this fd number and result.extra
  // collects what is written to it (e.g. for --json-status FD).
  int extraFd = -1;
};

struct RunResult {
  int exitCode = -1;   // exit status, or -1 when killed by a signal
  int termSignal = 0;  // signal that killed it, else 0
  bool timedOut = false;
  std::string out, err, extra;

  // For assertion messages.
  std::string describe() const;
};

// A child process started with pipes on stdin/stdout/stderr (and optionally
// extraFd). finish() feeds stdin, collects the output with poll (no deadlock
// on large outputs) and reaps it. The destructor SIGKILLs and reaps a child
// that was never finished.
class Process {
 public:
  Process(const std::vector<std::string>& argv, const RunOptions& opts);
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  void kill(int sig);
  // Runs until the child exits and its pipes close (or the timeout passes).
  RunResult finish();

 private:
  pid_t pid_ = -1;
  int stdinFd_ = -1, outFd_ = -1, errFd_ = -1, extraFd_ = -1;
  std::string stdinData_;
  std::chrono::milliseconds timeout_;
  bool reaped_ = false;
};

RunResult runProcess(const std::vector<std::string>& argv, const RunOptions& opts = {});

// The signal that ends `PROBE ABI` (a probe making one system call through
// another ABI: "i386", "x32") run here, outside any sandbox and filter; 0
// when this host's kernel runs the call. Some hosts end an i386 call (int
// 0x80) before any seccomp filter can see it (a PVM guest sends SIGSEGV);
// there a sandboxed process dies of that signal too, and the filter's
// SIGSYS cannot be observed. The test then says so and expects that signal.
int hostSignalForAbi(const std::string& probe, const std::string& abi);
// Runs the gpubox CLI with `args` (everything after the binary name).
RunResult runCli(const std::vector<std::string>& args, const RunOptions& opts = {});

// ---------------------------------------------------------------- the helper

// $GPUBOX_TEST_USER_NAMESPACE: when set (scripts/test.sh's second pass sets
// "never"), every HelperProcess gets `--user-namespace VALUE` unless its
// extraArgs already name a mode. "" when unset.
std::string testUserNamespaceMode();

// Whether this kernel lets the test (root) create a user namespace.
bool kernelAllowsUserNamespaces();

// What a helper started by HelperProcess without its own --user-namespace
// gives sandboxes: "host" under "never", "new" under "required", and under
// auto "new" exactly when this kernel lets root create a user namespace
// (probed here, independently of the helper).
std::string expectedUserNamespace();

struct HelperOptions {
  std::vector<std::string> extraArgs;  // e.g. {"--config", path, "--driver-root", dir}
  bool waitReady = true;               // wait until the socket accepts connections
  std::chrono::milliseconds readyTimeout{std::chrono::seconds(30)};
  // Started under this command (e.g. {"/usr/bin/unshare", "--pid", "--fork",
  // "--kill-child", "--mount-proc"}): pid() is then the wrapper's, and
  // signals go to it.
  std::vector<std::string> wrapper = {};
};

// A real gpubox-helper listening on <tempdir>/gpubox.sock. The temp dir is
// 0755 so uid 65534 can reach the socket (created 0666 by default). It also
// provides workDir(): a directory owned by 65534, mode 0777 (inside a
// sandbox even root has no CAP_DAC_OVERRIDE, so both callers need the mode
// bits), used as the client's cwd by cli(): the default sandbox plan binds it.
class HelperProcess {
 public:
  explicit HelperProcess(const HelperOptions& opts = {});
  ~HelperProcess();
  HelperProcess(const HelperProcess&) = delete;
  HelperProcess& operator=(const HelperProcess&) = delete;

  // Starts a new helper on the same socket with the same arguments (and the
  // same log file, appended to) after this one has exited or been killed:
  // what a service manager does after a crash. Throws when the old one still
  // runs, or when the new one does not come up.
  void restart();

  const std::string& socketPath() const { return socket_; }
  const std::string& dir() const { return dir_.path(); }
  const std::string& workDir() const { return work_.path(); }
  pid_t pid() const { return pid_; }

  // The helper's stderr (and stdout) so far: every start's, appended.
  std::string log() const;
  // The same, from the latest start (restart()) only.
  std::string logSinceStart() const;
  bool alive();
  // Waits for the helper to exit on its own. Returns its wait status.
  std::optional<int> waitExit(std::chrono::milliseconds timeout);
  // Sends `sig` to the helper (if it still runs).
  void kill(int sig);
  // SIGTERM, then SIGKILL after a grace period; reaps. Idempotent.
  void stop();

  // `gpubox --socket <socket> ARGS...`, cwd defaulting to workDir().
  RunResult cli(const std::vector<std::string>& args, RunOptions opts = {}) const;
  // `gpubox-bwrap ARGS...` with GPUBOX_SOCKET naming this helper, cwd
  // defaulting to workDir().
  RunResult bwrap(const std::vector<std::string>& args, RunOptions opts = {}) const;
  // `bash -c SCRIPT` with $BWRAP naming gpubox-bwrap and GPUBOX_SOCKET this
  // helper: for command lines that hand gpubox-bwrap file descriptors.
  RunResult bwrapScript(const std::string& script, RunOptions opts = {}) const;
  // Same, started in the background.
  std::unique_ptr<Process> spawnCli(const std::vector<std::string>& args,
                                    RunOptions opts = {}) const;
  std::vector<std::string> cliArgv(const std::vector<std::string>& args) const;

  // `gpubox ps --json` as `uid` (unset: root), parsed. A discarded json
  // value (is_discarded()) when the command failed or printed no JSON;
  // `raw`, when given, receives the run for assertion messages.
  nlohmann::json psJson(std::optional<uid_t> uid = std::nullopt, RunResult* raw = nullptr) const;

 private:
  void start();

  HelperOptions opts_;
  TempDir dir_;
  TempDir work_;
  std::string socket_;
  std::string logPath_;
  size_t logStart_ = 0;
  pid_t pid_ = -1;
  std::optional<int> status_;
};

// How many sandboxes hold GPU INDEX, per `gpubox gpus --json` as root
// (998: no such GPU, 999: no JSON).
unsigned gpuHolders(const HelperProcess& h, unsigned index);

// True once the socket at `path` accepts a connection (connect() succeeds).
bool canConnect(const std::string& path);

// Pids of host processes whose argv equals `argv` exactly (from /proc/*/cmdline).
std::vector<pid_t> findProcesses(const std::vector<std::string>& argv);
// True while `pid` exists and is not a zombie.
bool pidRunning(pid_t pid);
// Pids of PARENT's children whose comm is NAME (and not zombies).
std::set<pid_t> childrenNamed(pid_t parent, const std::string& name);
// HELPER's children named gpubox-init: its warm inits (--warm-inits) while
// no sandbox runs, plus every sandbox's init.
std::set<pid_t> initChildren(pid_t helper);
// Whether the cgroup directory DIR holds exactly one process and it is a
// warm init of HELPER: a child named gpubox-init with no children of its
// own (a sandbox's init has its command). Such directories belong to no
// sandbox yet (helper/init_pool.hpp).
bool holdsOnlyAWarmInit(const std::string& dir, pid_t helper);

// ---------------------------------------------------------------- JSON, cgroups

// Parses `text` (surrounding whitespace allowed); a discarded value
// (is_discarded()) when it is not one JSON document.
nlohmann::json parseJson(const std::string& text);
// The element of the JSON array `list` whose "name" is `name`; null if none.
nlohmann::json findByName(const nlohmann::json& list, const std::string& name);

// The host directories named by a sandbox's "cgroup" field (of --json-status,
// `gpubox ps --json`, `session create --json`): parts separated by " + " (or
// ", "), each either an absolute cgroup v2 path ("/sys/fs/cgroup/...", or a
// path inside the cgroup2 mount), or a v1 "controller[,controller]:/path"
// resolved against the hierarchy mounted with that controller (from
// /proc/self/mountinfo). Parts that cannot be resolved are returned as-is so
// that assertions show them.
std::vector<std::string> cgroupHostDirs(const std::string& field);
// Where the hierarchy with `controller` ("memory", "pids", "cpuacct", or ""
// for the cgroup2 one) is mounted on the host; "" when it is not.
std::string cgroupMount(const std::string& controller);
// Every cgroup (v1 and v2) hierarchy's mount point on the host.
std::vector<std::string> cgroupMounts();

void sleepFor(std::chrono::milliseconds d);

// Polls `pred` every 50 ms until it is true or `timeout` passes.
template <typename Pred>
bool pollUntil(Pred pred, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (pred()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    sleepFor(std::chrono::milliseconds(50));
  }
}

// Splits on '\n', dropping a trailing empty line.
std::vector<std::string> lines(const std::string& text);
// "KEY=VALUE" lines (what the syscall probe prints) as a map; other lines
// are ignored.
std::map<std::string, std::string> parseProbe(const std::string& out);
// The string elements of a JSON array (e.g. --json-status "limits"); [] for
// anything else.
std::vector<std::string> stringsOf(const nlohmann::json& j);
// The value of "Key:" in a /proc/<pid>/status-style text, trimmed; "" if absent.
std::string statusField(const std::string& text, const std::string& key);

}  // namespace gpubox::itest

namespace gpubox::itest {

// A test with a fresh helper (per test). Skips (with the reason) when not
// root. Override helperOptions() to pass --config/--driver-root etc.
class HelperTest : public ::testing::Test {
 protected:
  void SetUp() override {
    requireRoot();
    if (IsSkipped()) return;
    helper_ = std::make_unique<HelperProcess>(helperOptions());
  }
  void TearDown() override { helper_.reset(); }
  virtual HelperOptions helperOptions() { return {}; }

  HelperProcess& helper() { return *helper_; }
  // `gpubox run ARGS...` against this test's helper.
  RunResult run(const std::vector<std::string>& args, RunOptions opts = {}) {
    std::vector<std::string> full{"run"};
    full.insert(full.end(), args.begin(), args.end());
    return helper_->cli(full, std::move(opts));
  }

  std::unique_ptr<HelperProcess> helper_;
};

// The same, parameterized on the caller's uid: 0 (root) and 65534 (nobody).
class CallerTest : public HelperTest, public ::testing::WithParamInterface<uid_t> {
 protected:
  uid_t caller() const { return GetParam(); }
  RunOptions as(RunOptions opts = {}) const {
    opts.asUid = GetParam();
    return opts;
  }
  RunResult runAs(const std::vector<std::string>& args, RunOptions opts = {}) {
    return run(args, as(std::move(opts)));
  }
};

inline std::string callerName(const ::testing::TestParamInfo<uid_t>& info) {
  return info.param == 0 ? "root" : "uid" + std::to_string(info.param);
}

#define GPUBOX_INSTANTIATE_CALLERS(Suite)                                            \
  INSTANTIATE_TEST_SUITE_P(Callers, Suite,                                           \
                           ::testing::Values(uid_t{0}, ::gpubox::itest::kNobodyUid), \
                           ::gpubox::itest::callerName)

}  // namespace gpubox::itest
