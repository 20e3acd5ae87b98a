// gpubox-helper: the privileged half of gpubox. Holds CAP_SYS_ADMIN (never a
// setuid bit) and builds sandboxes for unprivileged clients over a Unix socket.
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <capnp/rpc-twoparty.h>
#include <kj/async-io.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <functional>
#include <optional>

#include "acceptor_thread.hpp"
#include "caller_policy.hpp"
#include "cgroup_worker.hpp"
#include "check_config.hpp"
#include "daemon_context.hpp"
#include "descriptor_limit.hpp"
#include "error.hpp"
#include "home_loop.hpp"
#include "init_pool.hpp"
#include "init_spawner.hpp"
#include "kernel_features.hpp"
#include "limits.hpp"
#include "listener.hpp"
#include "log.hpp"
#include "policy_reloader.hpp"
#include "privileges.hpp"
#include "rpc_loops.hpp"
#include "sandbox/process_title.hpp"
#include "sessions.hpp"
#include "span_trace.hpp"
#include "systemd_protocol.hpp"

namespace {

struct Options {
  std::string listen;
  std::string socketMode = "0666";
  unsigned idleExit = 0;
  bool traceSpans = false;
  std::string config = "/etc/gpubox/helper.toml";
  bool configGiven = false;
  std::string userNamespace;  // --user-namespace; unset: the policy's, else auto
  CLI::Option* userNamespaceOption = nullptr;
  std::string checkConfig;  // --check-config FILE: validate, print, exit
  std::string forUser;      // with --check-config: whose view to print
  std::string driverRoot = "/";
  std::string cgroupParent;
  // Limit flags as given, each with the policy key it stands for; only the
  // ones given on the command line are applied (over the policy's [defaults]).
  struct LimitFlag {
    const char* flag;
    const char* key;
    const char* help;
    std::string value;
    CLI::Option* option = nullptr;
  };
  std::vector<LimitFlag> limitFlags = {
      {"--default-memory", "memory",
       "Memory ceiling of a sandbox that sets no --memory: SIZE, auto (3/4 of RAM) or none "
       "[default: auto]"},
      {"--default-cpus", "cpus", "CPUs of a sandbox that sets no --cpus, or none [default: none]"},
      {"--default-pids", "pids", "Pids of a sandbox that sets no --pids, or none [default: 4096]"},
      {"--max-memory", "max_memory",
       "Most --memory a request may ask for, or none [default: none]"},
      {"--max-cpus", "max_cpus", "Most --cpus a request may ask for, or none [default: none]"},
      {"--max-pids", "max_pids", "Most --pids a request may ask for, or none [default: none]"},
      {"--max-timeout", "max_timeout",
       "Longest --timeout a command may ask for, also the timeout of one that sets none; or "
       "none [default: none]"},
      {"--default-session-ttl", "session_ttl", "TTL of a session that sets no --ttl [default: 1h]"},
      {"--max-session-ttl", "max_session_ttl",
       "Longest --ttl a session may ask for [default: 24h]"},
      {"--max-sandboxes-per-uid", "max_sandboxes",
       "Live sandboxes (sessions included) one uid may hold [default: 64]"},
      {"--max-sessions-per-uid", "max_sessions", "Sessions one uid may hold [default: 16]"},
  };
  std::string idleConnectionTimeout = "60s";
  size_t maxCallsPerConnection = 256;
  size_t warmInits = 4;
  size_t warmInitsHostNet = 0;         // the --net host pool's floor (it grows on demand)
  std::optional<size_t> warmInitsMax;  // unset: InitPool::defaultCeiling(warmInits)
  std::optional<size_t> poolSpawners;  // unset: InitSpawner::defaultCount of the CPUs
  std::optional<size_t> rpcThreads;    // unset: RpcLoops::defaultCount of the CPUs
};

// The CPUs this process may run on (its affinity mask), at least 1.
size_t usableCpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof(set), &set) != 0) return 1;
  return std::max(1, CPU_COUNT(&set));
}

// The limit flags given on the command line, as policy settings named by
// their flag (so a refusal says "--max-memory").
gpubox::policy::LimitSettings limitFlagSettings(const Options& o) {
  gpubox::policy::LimitSettings settings;
  for (const Options::LimitFlag& f : o.limitFlags) {
    if (f.option && f.option->count() > 0)
      gpubox::policy::assignLimit(settings, f.key, f.value, f.flag);
  }
  return settings;
}

// Bounds on each client's connection (helper-wide; not policy keys).
void applyConnectionOptions(const Options& o, gpubox::DaemonContext& ctx) {
  using namespace gpubox;
  ctx.limits.idleConnectionTimeoutMs =
      o.idleConnectionTimeout == "0" || o.idleConnectionTimeout == "none"
          ? 0
          : parseDurationMs("--idle-connection-timeout", o.idleConnectionTimeout);
  if (o.maxCallsPerConnection == 0)
    throw Error("--max-calls-per-connection must be at least 1 (a `gpubox run` needs 3)");
  ctx.limits.maxCallsPerConnection = o.maxCallsPerConnection;
}

// --warm-inits 0 turns both pools off: a floor for the --net host pool
// then asks for what cannot be, and is refused rather than ignored.
void checkPoolOptions(const Options& o) {
  if (o.warmInits == 0 && o.warmInitsHostNet > 0)
    throw gpubox::Error("--warm-inits-host-net " + std::to_string(o.warmInitsHostNet) +
                        ": --warm-inits 0 turns both warm pools off; give --warm-inits 1 or "
                        "more to keep inits for --net host");
}

// The user namespace setting: the flag wins over the policy's
// user_namespace, and auto applies when neither says.
gpubox::UserNamespaceChoice decideUserNamespace(const Options& o,
                                                const gpubox::policy::Policy& policy) {
  using gpubox::UserNamespaceMode;
  if (o.userNamespaceOption && o.userNamespaceOption->count() > 0) {
    UserNamespaceMode mode;
    try {
      mode = gpubox::parseUserNamespaceMode(o.userNamespace);
    } catch (const gpubox::Error& e) {
      throw gpubox::Error(std::string("--user-namespace: ") + e.what());
    }
    return gpubox::decideUserNamespace(mode, "--user-namespace " + o.userNamespace);
  }
  using Setting = gpubox::policy::UserNamespaceSetting;
  const Setting s = policy.userNamespace();
  if (s == Setting::Unset) return gpubox::decideUserNamespace(UserNamespaceMode::Auto);
  const UserNamespaceMode mode = s == Setting::Required ? UserNamespaceMode::Required
                                 : s == Setting::Never  ? UserNamespaceMode::Never
                                                        : UserNamespaceMode::Auto;
  return gpubox::decideUserNamespace(mode, std::string("user_namespace = \"") +
                                               gpubox::userNamespaceModeName(mode) + "\" in " +
                                               policy.source());
}

// Where sandbox cgroups go, and what a dead predecessor left there. Every
// default limit must be enforceable here: a helper that would hand out
// sandboxes without the ceilings its flags promise refuses to start.
void prepareCgroups(const Options& o, gpubox::DaemonContext& ctx) {
  using namespace gpubox;
  cgroup::ResourceLimits defaults{ctx.defaults.memoryBytes, ctx.defaults.cpuMillis,
                                  ctx.defaults.pids};
  // Named by what would set them: the policy's [defaults] or the flags.
  try {
    ctx.cgroupLayout = cgroup::prepareLayout(o.cgroupParent);
  } catch (const Error& e) {
    const bool needed = defaults.memoryBytes || defaults.cpuMillis || defaults.pids;
    if (!o.cgroupParent.empty()) throw;  // asked for by name: a misconfiguration
    if (needed)
      throw Error(std::string("cannot enforce the default limits: ") + e.what() +
                  " (give the helper a writable, delegated cgroup, or run it without default "
                  "limits: --default-memory none --default-cpus none --default-pids none)");
    ctx.cgroupsUnavailable = e.what();
    logError("cgroups: unavailable (" + ctx.cgroupsUnavailable +
             "): sandboxes get no cgroup; requests for --memory, --cpus, --pids or GPUs are "
             "refused");
    return;
  }
  for (const std::string& line : cgroup::describeLayout(ctx.cgroupLayout))
    logInfo("cgroups: " + line);
  if (std::string why = cgroup::unsupportedLimit(ctx.cgroupLayout, defaults); !why.empty())
    throw Error("cannot enforce the default limits: " + why +
                " (give the helper a delegated cgroup, or pass --default-memory none / "
                "--default-cpus none / --default-pids none)");
  for (const std::string& line : cgroup::cleanLeftovers(ctx.cgroupLayout))
    logInfo("recovered: " + line);
}

unsigned parseMode(const std::string& text) {
  size_t used = 0;
  unsigned long mode = 0;
  try {
    mode = std::stoul(text, &used, 8);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || mode > 0777)
    throw gpubox::Error("--socket-mode '" + text + "' is not an octal mode like 0660");
  return static_cast<unsigned>(mode);
}

// The socket's identity, so every sandbox can hide it (see mount_engine).
gpubox::MaskedSocket describeSocket(int fd) {
  struct sockaddr_un addr = {};
  socklen_t len = sizeof(addr);
  gpubox::MaskedSocket mask;
  if (::getsockname(fd, reinterpret_cast<struct sockaddr*>(&addr), &len) != 0 ||
      addr.sun_path[0] == '\0')
    return mask;
  mask.path.assign(addr.sun_path, strnlen(addr.sun_path, sizeof(addr.sun_path)));
  struct stat st;
  if (::stat(mask.path.c_str(), &st) == 0) {
    mask.dev = st.st_dev;
    mask.ino = st.st_ino;
  }
  return mask;
}

std::string joinNames(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& n : names) out += (out.empty() ? "" : ",") + n;
  return out.empty() ? "none" : out;
}

// Tells systemd (or whatever set NOTIFY_SOCKET) about a state change. A
// failure is logged, not fatal: the service manager decides what a missing
// READY=1 means (Type=notify units time out).
void notifyServiceManager(std::string_view state) {
  if (int err = gpubox::systemd::notify(state))
    gpubox::logError(gpubox::errnoMessage(
        "telling the service manager " + std::string(state) + " (NOTIFY_SOCKET)", err));
}

int serve(const Options& opts) {
  if (::getuid() != ::geteuid())
    throw gpubox::Error(
        "gpubox-helper must not be installed setuid; start it from systemd or as root");
  gpubox::checkKernelSupport();
  // A client that hangs up mid-write must not kill the helper.
  ::signal(SIGPIPE, SIG_IGN);

  gpubox::UniqueFd listenFd = gpubox::socketFromSystemd();
  bool underSystemd = listenFd.valid();
  if (!listenFd && opts.listen.empty())
    throw gpubox::Error(
        "no socket: start gpubox-helper from gpubox.socket (systemd) or pass --listen PATH");

  auto io = kj::setupAsyncIo();
  gpubox::DaemonContext ctx(io.unixEventPort, io.provider->getTimer());
  // Fail-closed: a missing default config means nobody gets a GPU or the
  // host network; a missing file named on the command line is an error.
  ctx.policy = gpubox::policy::Policy::load(opts.config, opts.configGiven);
  ctx.driverRoot = opts.driverRoot;
  ctx.flagLimits = limitFlagSettings(opts);
  ctx.defaults = gpubox::helperWideDefaults(ctx.policy, ctx.flagLimits);
  applyConnectionOptions(opts, ctx);
  checkPoolOptions(opts);
  // Decided before any thread starts (the probe forks) and before the socket
  // exists: a helper that cannot keep its promise refuses to start.
  ctx.userNamespace = decideUserNamespace(opts, ctx.policy);
  gpubox::logInfo("user namespaces: " + ctx.userNamespace.reason);
  ctx.seccomp = gpubox::buildDefaultSeccompProfile();
  ctx.seccompNestedUserns = gpubox::buildDefaultSeccompProfile(true);
  // Start-up work that may need more than the helper keeps: creating its
  // cgroup parent in a hierarchy's root (mode 0555: CAP_DAC_OVERRIDE) and
  // removing what a dead predecessor left.
  prepareCgroups(opts, ctx);
  // From here on the helper holds only what it needs; this comes before
  // any thread exists (threads inherit the capabilities of the thread that
  // starts them, and later changes to this one would not reach them).
  gpubox::CapabilityDrop caps = gpubox::dropToKeptCapabilities();
  gpubox::logInfo("capabilities: kept " + joinNames(caps.kept) + "; every other one dropped");
  if (!caps.missing.empty())
    gpubox::logError("capabilities: not held at start: " + joinNames(caps.missing) +
                     " (the steps that need them will fail)");
  // The spawners of inits are forked here, after the drop and before the
  // first thread: they must be single-threaded (init_spawner.hpp).
  ctx.requestSpawner = std::make_unique<gpubox::RequestSpawner>();
  if (opts.warmInits > 0) {
    const size_t spawners =
        opts.poolSpawners.value_or(gpubox::InitSpawner::defaultCount(usableCpus()));
    ctx.initSpawner = std::make_unique<gpubox::InitSpawner>(io.unixEventPort, spawners);
    gpubox::logInfo("warm pool: " + std::to_string(opts.warmInits) + " inits, " +
                    std::to_string(opts.warmInitsHostNet) +
                    " for --net host (both more on demand), cloned by " +
                    std::to_string(ctx.initSpawner->count()) + " spawner process" +
                    (ctx.initSpawner->count() == 1 ? "" : "es"));
  }
  // After the spawners (they keep the limits the helper was started with,
  // and so do the sandboxes) and before the first thread.
  const gpubox::DescriptorLimit fds = gpubox::raiseDescriptorLimit();
  if (fds.softBefore != fds.soft)
    gpubox::logInfo("open files: soft limit raised from " + std::to_string(fds.softBefore) +
                    " to " + std::to_string(fds.soft) + " (the hard limit) for the helper");
  ctx.cgroupWorker = std::make_unique<gpubox::CgroupWorker>(io.unixEventPort);
  ctx.deviceWorker = std::make_unique<gpubox::CgroupWorker>(io.unixEventPort);
  // The first GPU discovery, before serving; later ones run off the loop.
  ctx.gpuInventory = std::make_unique<gpubox::GpuInventoryCache>(ctx.driverRoot);
  // The socket last: a helper that cannot start leaves none behind.
  if (!listenFd) listenFd = gpubox::listenOn(opts.listen, parseMode(opts.socketMode));
  gpubox::MaskedSocket mask = describeSocket(listenFd.get());
  if (!mask.path.empty()) ctx.helperSockets.push_back(mask);
  // Filled by the spawner as soon as the loop runs (init_pool.hpp).
  if (ctx.initSpawner) {
    auto pool = [&](bool newNetwork, size_t floor) {
      return std::make_unique<gpubox::InitPool>(
          ctx, *ctx.initSpawner, newNetwork, floor,
          opts.warmInitsMax.value_or(gpubox::InitPool::defaultCeiling(floor)));
    };
    ctx.initPool = pool(true, opts.warmInits);
    ctx.hostNetPool = pool(false, opts.warmInitsHostNet);
  }

  io.unixEventPort.captureSignal(SIGTERM);
  io.unixEventPort.captureSignal(SIGINT);
  io.unixEventPort.captureSignal(SIGHUP);
  // SIGHUP: read the policy again and look at the GPUs again (a driver
  // reload, a new MIG layout), each off the loop. (Declared here: it re-arms
  // itself until serve() returns.)
  gpubox::PolicyReloader reloader(ctx, opts.config, opts.configGiven);
  std::function<kj::Promise<void>()> onHangup = [&]() {
    return io.unixEventPort.onSignal(SIGHUP).then([&](siginfo_t) {
      gpubox::logInfo("SIGHUP: reloading the policy and refreshing the GPU inventory");
      ctx.gpuInventory->refreshNow();
      return reloader.reload().then([&]() { return onHangup(); });
    });
  };
  auto hangups = onHangup().eagerlyEvaluate(nullptr);
  // Connections are served on RPC threads; what their calls do to sandboxes
  // runs here, on the home loop (home_loop.hpp). The threads come last: the
  // spawners were forked before any thread, and these hold no capability.
  gpubox::HomeLoop home(io.unixEventPort);
  // Each sandbox's record, and the lines clients can cause at any rate, are
  // written on a thread of their own from here on (log.hpp), so a journal
  // that falls behind never holds up the loop. It
  // stops last, after the shutdown below has reaped every sandbox, writing
  // what is queued.
  gpubox::startSandboxRecordWriter();
  struct StopRecordWriter {
    ~StopRecordWriter() { gpubox::stopSandboxRecordWriter(); }
  } stopRecordWriter;
  // Inits are reaped on a thread of their own from here on (reaper.hpp),
  // which ends before the home loop it posts to: at the end of the shutdown
  // below, or here on the way out of a failed start.
  ctx.reaper.start(home);
  struct StopReaper {
    gpubox::Reaper& reaper;
    ~StopReaper() { reaper.stop(); }
  } stopReaper{ctx.reaper};
  const size_t rpcThreads = opts.rpcThreads.value_or(gpubox::RpcLoops::defaultCount(usableCpus()));
  auto rpcLoops = kj::heap<gpubox::RpcLoops>(rpcThreads, ctx, home, io);
  gpubox::logInfo(rpcLoops->count() == 0
                      ? std::string("serving connections on the main event loop (no RPC thread)")
                      : "serving connections on " + std::to_string(rpcLoops->count()) +
                            " RPC thread" + (rpcLoops->count() == 1 ? "" : "s"));
  // Without RPC threads the home loop accepts; with them a thread of its own
  // does, and hands each connection over itself (acceptor_thread.hpp).
  kj::Own<gpubox::Server> server;
  kj::Promise<void> serving = nullptr;
  std::optional<gpubox::AcceptorThread> acceptor;
  if (rpcLoops->count() == 0) {
    server = kj::heap<gpubox::Server>(ctx, io, std::move(listenFd), *rpcLoops);
    serving = server->run().eagerlyEvaluate([](kj::Exception&& e) {
      gpubox::logError(std::string("listener failed: ") + e.getDescription().cStr());
    });
  } else {
    acceptor.emplace(ctx, std::move(listenFd), *rpcLoops);
  }
  gpubox::logInfo("listening on " +
                  (mask.path.empty() ? std::string("systemd socket") : mask.path));
  if (underSystemd || std::getenv("NOTIFY_SOCKET")) notifyServiceManager("READY=1");

  auto stop = io.unixEventPort.onSignal(SIGTERM)
                  .exclusiveJoin(io.unixEventPort.onSignal(SIGINT))
                  .then([](siginfo_t) {});
  // Checked once a second: idle means no client, no sandbox, nothing to reap.
  // (Declared at this level: the loop re-arms itself until serve() returns.)
  kj::Timer& timer = io.provider->getTimer();
  auto idleSince = std::make_shared<kj::TimePoint>(timer.now());
  std::function<kj::Promise<void>()> loop;
  if (opts.idleExit > 0) {
    loop = [&, idleSince]() -> kj::Promise<void> {
      return timer.afterDelay(1 * kj::SECONDS).then([&, idleSince]() -> kj::Promise<void> {
        bool busy = ctx.liveConnections || ctx.liveSandboxes || ctx.reaper.pending();
        if (busy) *idleSince = timer.now();
        if (timer.now() - *idleSince >= opts.idleExit * kj::SECONDS) return kj::READY_NOW;
        return loop();
      });
    };
    stop = stop.exclusiveJoin(loop().then([]() { gpubox::logInfo("idle: exiting"); }));
  }
  stop.wait(io.waitScope);
  if (underSystemd) notifyServiceManager("STOPPING=1");
  // Orderly shutdown while the event loop still runs: closing every
  // connection kills every sandbox (the RPC threads post the kills here,
  // which runs them while it waits); then reap them all, which releases their
  // cgroups and leases, before anything they refer to goes away.
  serving = nullptr;
  server = nullptr;
  if (acceptor) {
    acceptor->requestStop();
    while (!acceptor->ended()) timer.afterDelay(1 * kj::MILLISECONDS).wait(io.waitScope);
    acceptor.reset();
  }
  rpcLoops->stop().wait(io.waitScope);
  rpcLoops = nullptr;
  home.drain();
  ctx.sessions->endAll();
  for (int i = 0; i < 500 && (ctx.liveSandboxes > 0 || ctx.reaper.pending() > 0); ++i)
    timer.afterDelay(10 * kj::MILLISECONDS).wait(io.waitScope);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  gpubox::rememberProcessArgs(argc, argv);
  CLI::App app{"gpubox-helper: builds GPU-capable sandboxes for unprivileged gpubox clients"};
  Options opts;
  app.add_option("--listen", opts.listen,
                 "Create and listen on this Unix socket (when not socket-activated by systemd)");
  app.add_option("--socket-mode", opts.socketMode, "Permissions of the --listen socket (octal)")
      ->capture_default_str();
  app.add_option("--idle-exit", opts.idleExit,
                 "Exit after this many seconds with no client and no sandbox (0: never)");
  auto* configOpt =
      app.add_option("--config", opts.config, "Policy file (TOML)")->capture_default_str();
  app.add_option("--driver-root", opts.driverRoot,
                 "Root under which the NVIDIA driver's /proc and /dev files are found")
      ->capture_default_str();
  app.add_option("--cgroup-parent", opts.cgroupParent,
                 "cgroup path under which sandbox cgroups are made (default: the helper's own "
                 "cgroup + /gpubox)");
  for (Options::LimitFlag& f : opts.limitFlags)
    f.option = app.add_option(f.flag, f.value,
                              std::string(f.help) + " (policy key: " + f.key + "; the flag wins)");
  opts.userNamespaceOption = app.add_option(
      "--user-namespace", opts.userNamespace,
      "Give each sandbox a user namespace of its own: auto (when the kernel allows), required "
      "(refuse to start otherwise) or never (build sandboxes in the helper's own user "
      "namespace) (policy key: user_namespace; the flag wins) [default: auto]");
  app.add_option("--check-config", opts.checkConfig,
                 "Validate this policy file, print the effective policy and exit (0: valid)");
  app.add_option("--for-user", opts.forUser,
                 "With --check-config: print what this user (name or uid) gets");
  app.add_option("--idle-connection-timeout", opts.idleConnectionTimeout,
                 "Close a connection that has had no call in flight and no sandbox for this "
                 "long (e.g. 60s, 5m; 0: never)")
      ->capture_default_str();
  app.add_option("--max-calls-per-connection", opts.maxCallsPerConnection,
                 "Calls one connection may have in flight; more are refused")
      ->capture_default_str();
  app.add_option("--warm-inits", opts.warmInits,
                 "Sandbox inits kept ready ahead of requests, in fresh namespaces and cgroups; "
                 "more (see --warm-inits-max) while requests find none ready (0: clone each "
                 "for its request; docs/performance.md)")
      ->capture_default_str()
      ->check(CLI::Range(0, 256));
  app.add_option("--warm-inits-host-net", opts.warmInitsHostNet,
                 "Warm inits kept in the host's network namespace, for --net host sandboxes "
                 "(gpubox-bwrap without --unshare-net); their pool grows while such requests "
                 "find none ready, as the other one does (none with --warm-inits 0)")
      ->capture_default_str()
      ->check(CLI::Range(0, 256));
  app.add_option("--warm-inits-max", opts.warmInitsMax,
                 "The most warm inits each pool keeps while requests find none ready (default: 4 "
                 "times its floor, at least 64; equal to it: a pool of fixed size)")
      ->check(CLI::Range(0, 1024));
  app.add_option("--pool-spawners", opts.poolSpawners,
                 "Processes that clone the warm pool's inits side by side (default: one per 8 "
                 "CPUs the helper may use, 1 to 8)")
      ->check(CLI::Range(1, 64));
  app.add_option("--rpc-threads", opts.rpcThreads,
                 "Threads that serve the clients' connections (Cap'n Proto), each with an event "
                 "loop of its own; 0: on the main event loop (default: 0 below 8 CPUs the helper "
                 "may use, else one per 8, up to 8)")
      ->check(CLI::Range(0, 64));
  app.add_flag("--trace-spans", opts.traceSpans,
               "Log each sandbox's start-up phases with their times (a debugging aid; see "
               "docs/performance.md)");
  app.set_version_flag("--version", std::string("gpubox-helper ") + GPUBOX_VERSION);
  CLI11_PARSE(app, argc, argv);
  opts.configGiven = configOpt->count() > 0;
  try {
    if (!opts.checkConfig.empty())
      return gpubox::checkConfig(opts.checkConfig, opts.forUser, limitFlagSettings(opts));
    if (!opts.forUser.empty()) throw gpubox::Error("--for-user goes with --check-config FILE");
    if (opts.traceSpans) gpubox::SpanTrace::enable();
    return serve(opts);
  } catch (const gpubox::Error& e) {
    std::fprintf(stderr, "gpubox-helper: %s\n", e.what());
    return 1;
  } catch (const kj::Exception& e) {
    std::fprintf(stderr, "gpubox-helper: %s\n", e.getDescription().cStr());
    return 1;
  }
}
