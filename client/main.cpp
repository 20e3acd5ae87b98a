// gpubox: the unprivileged command-line client.
#include <signal.h>
#include <unistd.h>

#include <kj/async-unix.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <iostream>

#include "error.hpp"
#include "gpubox.capnp.h"
#include "gpubox/client.hpp"
#include "json_status.hpp"
#include "run_options.hpp"

extern char** environ;

namespace {

constexpr int kExitGpuboxError = 125;
constexpr int kExitNotExecutable = 126;
constexpr int kExitNotFound = 127;

int fail(const std::string& message) {
  std::fprintf(stderr, "gpubox: %s\n", message.c_str());
  return kExitGpuboxError;
}

void writeJson(std::optional<int> fd, const std::string& json) {
  if (!fd) return;
  std::string line = json + "\n";
  size_t done = 0;
  while (done < line.size()) {
    ssize_t n = ::write(*fd, line.data() + done, line.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    done += static_cast<size_t>(n);
  }
}

std::string currentDirectory() {
  std::vector<char> buf(4096);
  if (!::getcwd(buf.data(), buf.size())) throw gpubox::Error("cannot read the current directory");
  return buf.data();
}

int exitCodeOf(const gpubox::client::RunResult& r) {
  using Stage = gpubox::client::StartFailure::Stage;
  if (r.exitCode) return *r.exitCode;
  if (r.signal) return 128 + *r.signal;
  const auto& f = *r.notStarted;
  std::fprintf(stderr, "gpubox: %s\n", f.message.c_str());
  if (f.stage == Stage::Exec) return f.err == ENOENT ? kExitNotFound : kExitNotExecutable;
  return kExitGpuboxError;
}

int runCommand(const std::string& socket, const std::vector<std::string>& args) {
  gpubox::cli::RunOptions opts;
  try {
    opts = gpubox::cli::parseRunOptions(args, environ, currentDirectory());
  } catch (const gpubox::Error& e) {
    std::fprintf(stderr, "gpubox: %s\n%s\n", e.what(), gpubox::cli::kRunUsage);
    return kExitGpuboxError;
  }
  if (opts.help) {
    std::fputs(gpubox::cli::kRunHelp, stdout);
    return 0;
  }
  gpubox::RunReport report;
  try {
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) kj::UnixEventPort::captureSignal(sig);
    gpubox::client::Connection conn(gpubox::client::defaultSocketPath(socket));
    gpubox::client::RunRequest request;
    request.spec = opts.spec;
    request.command = opts.command;
    request.forwardSignals = true;
    gpubox::client::RunResult r = conn.run(request);
    report.exitCode = r.exitCode;
    report.signal = r.signal;
    report.commandPid = r.commandPid;
    report.sandboxPid = r.sandboxPid;
    report.wallNanos = r.wallNanos;
    report.namespaces = r.namespaces;
    report.mounts = r.mounts;
    report.gpus = r.gpus;
    report.cgroup = r.cgroup;
    if (r.notStarted) report.error = r.notStarted->message;
    int code = exitCodeOf(r);
    writeJson(opts.jsonStatusFd, gpubox::runReportJson(report));
    return code;
  } catch (const gpubox::Error& e) {
    report.error = e.what();
    writeJson(opts.jsonStatusFd, gpubox::runReportJson(report));
    return fail(e.what());
  }
}

int infoCommand(const std::string& socket, bool json) {
  gpubox::client::Connection conn(gpubox::client::defaultSocketPath(socket));
  gpubox::client::HelperInfo i = conn.info();
  gpubox::InfoReport r{i.version,  GPUBOX_VERSION, i.protocolMajor, i.protocolMinor, i.kernel,
                       i.features, i.cgroupMode,   i.callerUid,     i.callerGid};
  if (json) {
    std::cout << gpubox::infoReportJson(r) << "\n";
  } else {
    std::cout << "helper version:   " << r.helperVersion << "\n"
              << "client version:   " << r.clientVersion << "\n"
              << "protocol:         " << r.protocolMajor << "." << r.protocolMinor << " (client "
              << gpubox::wire::PROTOCOL_MAJOR << "." << gpubox::wire::PROTOCOL_MINOR << ")\n"
              << "kernel:           " << r.kernel << "\n"
              << "cgroups:          " << r.cgroupMode << "\n"
              << "you are:          uid " << r.callerUid << ", gid " << r.callerGid << "\n"
              << "kernel features:";
    for (const auto& f : r.features) std::cout << " " << f;
    std::cout << "\n";
  }
  if (i.protocolMajor != gpubox::wire::PROTOCOL_MAJOR)
    return fail("helper speaks protocol " + std::to_string(i.protocolMajor) + ".x, this client " +
                std::to_string(gpubox::wire::PROTOCOL_MAJOR) + ".x");
  return 0;
}

int gpusCommand(const std::string& socket, bool json);

}  // namespace

// `gpubox [--socket PATH] run ...` is split off before CLI11 sees it: run's
// options are bubblewrap-style and order-sensitive, so they get their own parser.
bool splitRun(int argc, char** argv, std::string* socket, std::vector<std::string>* runArgs) {
  int i = 1;
  std::string sock;
  while (i < argc) {
    std::string a = argv[i];
    if (a == "--socket" && i + 1 < argc) {
      sock = argv[i + 1];
      i += 2;
    } else if (a.rfind("--socket=", 0) == 0) {
      sock = a.substr(9);
      ++i;
    } else {
      break;
    }
  }
  if (i >= argc || std::string(argv[i]) != "run") return false;
  *socket = sock;
  runArgs->assign(argv + i + 1, argv + argc);
  return true;
}

int main(int argc, char** argv) {
  {
    std::string socket;
    std::vector<std::string> runArgs;
    if (splitRun(argc, argv, &socket, &runArgs)) return runCommand(socket, runArgs);
  }
  CLI::App app{"gpubox: run commands in GPU-capable sandboxes built by gpubox-helper"};
  app.require_subcommand(1);
  std::string socket;
  app.add_option("--socket", socket,
                 "Helper socket (default: $GPUBOX_SOCKET, else /run/gpubox/gpubox.sock)");
  app.set_version_flag("--version", std::string("gpubox ") + GPUBOX_VERSION);
  app.add_subcommand("run", "Run a command in a new sandbox (see gpubox run --help)");
  bool infoJson = false, gpusJson = false;
  auto* info = app.add_subcommand("info", "Show the helper's version and kernel features");
  info->add_flag("--json", infoJson, "Print JSON");
  auto* gpus = app.add_subcommand("gpus", "List the GPUs you may use");
  gpus->add_flag("--json", gpusJson, "Print JSON");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "gpubox: %s\nusage: gpubox [--socket PATH] run|info|gpus ...\n", e.what());
    return kExitGpuboxError;
  }
  try {
    if (info->parsed()) return infoCommand(socket, infoJson);
    if (gpus->parsed()) return gpusCommand(socket, gpusJson);
  } catch (const gpubox::Error& e) {
    return fail(e.what());
  }
  return kExitGpuboxError;
}

namespace {
int gpusCommand(const std::string& socket, bool json) {
  gpubox::client::Connection conn(gpubox::client::defaultSocketPath(socket));
  auto list = conn.gpus();
  if (json) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& g : list) {
      out.push_back({{"index", g.index},
                     {"uuid", g.uuid},
                     {"model", g.model},
                     {"bus_id", g.busId},
                     {"minor", g.minor},
                     {"mig", g.mig},
                     {"holders", g.holders},
                     {"allowed", g.allowed}});
    }
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  if (list.empty()) std::cout << "no GPUs\n";
  for (const auto& g : list) {
    std::cout << g.index << "  " << g.uuid << "  " << g.model << "  bus " << g.busId << "  minor "
              << g.minor << "  " << (g.allowed ? "allowed" : "not allowed") << "  held by "
              << g.holders << " sandbox(es)";
    if (!g.mig.empty()) {
      std::cout << "  MIG:";
      for (const auto& m : g.mig) std::cout << " " << m;
    }
    std::cout << "\n";
  }
  return 0;
}
}  // namespace
