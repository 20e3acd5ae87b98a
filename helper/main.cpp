// gpubox-helper: the privileged half of gpubox. Holds CAP_SYS_ADMIN (never a
// setuid bit) and builds sandboxes for unprivileged clients over a Unix socket.
#include <signal.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <capnp/rpc-twoparty.h>
#include <kj/async-io.h>
#include <CLI/CLI.hpp>

#include <cstdio>
#include <cstring>
#include <functional>

#include "daemon_context.hpp"
#include "error.hpp"
#include "kernel_features.hpp"
#include "listener.hpp"
#include "log.hpp"

namespace {

struct Options {
  std::string listen;
  std::string socketMode = "0666";
  unsigned idleExit = 0;
  std::string config = "/etc/gpubox/helper.toml";
  bool configGiven = false;
  std::string driverRoot = "/";
};

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

int serve(const Options& opts) {
  if (::getuid() != ::geteuid())
    throw gpubox::Error(
        "gpubox-helper must not be installed setuid; start it from systemd or as root");
  gpubox::checkKernelSupport();
  // A client that hangs up mid-write must not kill the helper.
  ::signal(SIGPIPE, SIG_IGN);

  gpubox::UniqueFd listenFd = gpubox::socketFromSystemd();
  bool underSystemd = listenFd.valid();
  if (!listenFd) {
    if (opts.listen.empty())
      throw gpubox::Error(
          "no socket: start gpubox-helper from gpubox.socket (systemd) or pass --listen PATH");
    listenFd = gpubox::listenOn(opts.listen, parseMode(opts.socketMode));
  }

  auto io = kj::setupAsyncIo();
  gpubox::DaemonContext ctx(io.unixEventPort);
  // Fail-closed: a missing default config means nobody gets a GPU or the
  // host network; a missing file named on the command line is an error.
  ctx.policy = gpubox::policy::Policy::load(opts.config, opts.configGiven);
  ctx.driverRoot = opts.driverRoot;
  gpubox::MaskedSocket mask = describeSocket(listenFd.get());
  if (!mask.path.empty()) ctx.helperSockets.push_back(mask);

  io.unixEventPort.captureSignal(SIGTERM);
  io.unixEventPort.captureSignal(SIGINT);
  auto server = kj::heap<gpubox::Server>(ctx, io, std::move(listenFd));
  auto serving = server->run().eagerlyEvaluate([](kj::Exception&& e) {
    gpubox::logError(std::string("listener failed: ") + e.getDescription().cStr());
  });
  gpubox::logInfo("listening on " +
                  (mask.path.empty() ? std::string("systemd socket") : mask.path));
  if (underSystemd || std::getenv("NOTIFY_SOCKET")) sd_notify(0, "READY=1");

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
  if (underSystemd) sd_notify(0, "STOPPING=1");
  // Orderly shutdown while the event loop still runs: closing every
  // connection kills every sandbox; then reap them all, which releases their
  // cgroups and leases, before anything they refer to goes away.
  serving = nullptr;
  server = nullptr;
  for (int i = 0; i < 500 && (ctx.liveSandboxes > 0 || ctx.reaper.pending() > 0); ++i)
    timer.afterDelay(10 * kj::MILLISECONDS).wait(io.waitScope);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
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
  app.set_version_flag("--version", std::string("gpubox-helper ") + GPUBOX_VERSION);
  CLI11_PARSE(app, argc, argv);
  opts.configGiven = configOpt->count() > 0;
  try {
    return serve(opts);
  } catch (const gpubox::Error& e) {
    std::fprintf(stderr, "gpubox-helper: %s\n", e.what());
    return 1;
  } catch (const kj::Exception& e) {
    std::fprintf(stderr, "gpubox-helper: %s\n", e.getDescription().cStr());
    return 1;
  }
}
