// gpubox: the unprivileged command-line client.
#include <signal.h>
#include <unistd.h>

#include <kj/async-unix.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <functional>

#include "command_end.hpp"
#include "error.hpp"
#include "exec_batch.hpp"
#include "gpubox.capnp.h"
#include "gpubox/client.hpp"
#include "json_status.hpp"
#include "limits.hpp"
#include "run_options.hpp"
#include "top_level_args.hpp"
#include "trace_spans.hpp"

extern char** environ;

namespace {

using gpubox::cli::exitCodeOf;
using gpubox::cli::fail;
using gpubox::cli::fillReport;
using gpubox::cli::kExitGpuboxError;
using gpubox::cli::writeJsonLine;

// What the listings print, to stdout. No <iostream> in the client
// (top_level_args.hpp says why).
void print(const std::string& text) {
  std::fwrite(text.data(), 1, text.size(), stdout);
}

std::string currentDirectory() {
  std::vector<char> buf(4096);
  if (!::getcwd(buf.data(), buf.size())) throw gpubox::Error("cannot read the current directory");
  return buf.data();
}

// Runs one command through START (a run or an exec) and turns its end into
// gpubox's exit status and the --json-status record.
int runAndReport(
    const std::string& socket, std::optional<int> jsonStatusFd, const std::string& session,
    const std::function<gpubox::client::RunResult(gpubox::client::Connection&)>& start) {
  gpubox::RunReport report;
  report.session = session;
  try {
    for (int sig : gpubox::cli::kForwardedSignals) kj::UnixEventPort::captureSignal(sig);
    gpubox::client::Connection conn(gpubox::client::defaultSocketPath(socket));
    gpubox::client::RunResult r = start(conn);
    fillReport(report, r);
    int code = exitCodeOf(r);
    writeJsonLine(jsonStatusFd, gpubox::runReportJson(report));
    // The command is over and everything it said is written: leave without
    // taking the connection down message by message. Its teardown would
    // send a Finish per call and a Release per capability, which the helper
    // (which ends the sandbox when the socket closes anyway) would answer
    // into a socket this process has closed by then. Closing it is enough.
    std::fflush(nullptr);
    std::_Exit(code);
  } catch (const gpubox::Error& e) {
    report.error = e.what();
    writeJsonLine(jsonStatusFd, gpubox::runReportJson(report));
    return fail(e.what());
  }
}

int runCommand(const std::string& socket, const std::vector<std::string>& args) {
  gpubox::cli::RunOptions opts;
  try {
    opts = gpubox::cli::parseRunOptions(args, environ, currentDirectory());
    gpubox::client::spans::mark("parsed");
  } catch (const gpubox::Error& e) {
    std::fprintf(stderr, "gpubox: %s\n%s\n", e.what(), gpubox::cli::kRunUsage);
    return kExitGpuboxError;
  }
  if (opts.help) {
    std::fputs(gpubox::cli::kRunHelp, stdout);
    return 0;
  }
  return runAndReport(socket, opts.jsonStatusFd, "", [&](gpubox::client::Connection& conn) {
    gpubox::client::RunRequest request;
    request.spec = opts.spec;
    request.command = opts.command;
    request.forwardSignals = true;
    // The facts are for the --json-status record only.
    request.sandboxFacts = opts.jsonStatusFd.has_value();
    return conn.run(request);
  });
}

int execCommand(const std::string& socket, const std::vector<std::string>& args) {
  gpubox::cli::ExecOptions opts;
  try {
    opts = gpubox::cli::parseExecOptions(args, environ);
    gpubox::client::spans::mark("parsed");
  } catch (const gpubox::Error& e) {
    std::fprintf(stderr, "gpubox: %s\nusage: gpubox exec NAME [OPTIONS] [--] CMD [ARG...]\n",
                 e.what());
    return kExitGpuboxError;
  }
  if (opts.help) {
    std::fputs(gpubox::cli::kExecHelp, stdout);
    return 0;
  }
  if (opts.batch) return gpubox::cli::runExecBatch(socket, opts);
  return runAndReport(socket, opts.jsonStatusFd, opts.session,
                      [&](gpubox::client::Connection& conn) {
                        gpubox::client::ExecRequest request;
                        request.session = opts.session;
                        request.command = opts.command;
                        request.forwardSignals = true;
                        request.sandboxFacts = opts.jsonStatusFd.has_value();
                        return conn.exec(request).wait();
                      });
}

int sessionCreate(const std::string& socket, const std::vector<std::string>& args) {
  gpubox::cli::SessionCreateOptions opts;
  try {
    opts = gpubox::cli::parseSessionCreateOptions(args, currentDirectory());
  } catch (const gpubox::Error& e) {
    std::fprintf(stderr, "gpubox: %s\nusage: gpubox session create [OPTIONS] [--name NAME]\n",
                 e.what());
    return kExitGpuboxError;
  }
  if (opts.help) {
    std::fputs(gpubox::cli::kSessionCreateHelp, stdout);
    return 0;
  }
  gpubox::client::Connection conn(gpubox::client::defaultSocketPath(socket));
  gpubox::client::SessionRequest request;
  request.spec = opts.spec;
  request.name = opts.name;
  request.ttlMs = opts.ttlMs;
  request.idleTimeoutMs = opts.idleTimeoutMs;
  gpubox::client::SessionInfo info = conn.createSession(request);
  if (opts.json) {
    nlohmann::json j;
    j["name"] = info.name;
    j["ttl_seconds"] = static_cast<double>(info.ttlMs) / 1000;
    j["idle_timeout_seconds"] = opts.idleTimeoutMs
                                    ? nlohmann::json(static_cast<double>(opts.idleTimeoutMs) / 1000)
                                    : nlohmann::json(nullptr);
    j["init_pid"] = info.initPid;
    j["cgroup"] = info.cgroup;
    j["gpus"] = info.gpus;
    j["limits"] = info.limits;
    j["namespaces"] = info.namespaces;
    j["mounts"] = info.mounts;
    print(j.dump() + "\n");
  } else {
    print(info.name + "\n");
  }
  return 0;
}

int psCommand(const std::string& socket, bool json) {
  gpubox::client::Connection conn(gpubox::client::defaultSocketPath(socket));
  auto list = conn.list();
  auto seconds = [](uint64_t ms) { return static_cast<double>(ms) / 1000; };
  if (json) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& l : list) {
      out.push_back(
          {{"name", l.name},
           {"kind", l.session ? "session" : "run"},
           {"uid", l.uid},
           {"age_seconds", seconds(l.ageMs)},
           {"processes", l.processes},
           {"memory_bytes", l.memoryBytes},
           {"memory_peak_bytes", l.memoryPeakBytes},
           {"cpu_seconds", static_cast<double>(l.cpuNanos) / 1e9},
           {"gpus", l.gpus},
           {"ttl_left_seconds",
            l.session ? nlohmann::json(seconds(l.ttlLeftMs)) : nlohmann::json(nullptr)},
           {"idle_timeout_seconds",
            l.idleTimeoutMs ? nlohmann::json(seconds(l.idleTimeoutMs)) : nlohmann::json(nullptr)},
           {"init_pid", l.initPid},
           {"cgroup", l.cgroup},
           {"command", l.command},
           {"limits", l.limits}});
    }
    print(out.dump(2) + "\n");
    return 0;
  }
  std::printf("%-20s %-7s %6s %8s %5s %9s %9s %8s %-9s %s\n", "NAME", "KIND", "UID", "AGE", "PROCS",
              "MEM", "PEAK", "CPU", "TTL LEFT", "GPUS");
  for (const auto& l : list) {
    std::string gpus;
    for (const auto& g : l.gpus) gpus += (gpus.empty() ? "" : ",") + g;
    std::printf("%-20s %-7s %6u %8s %5u %9s %9s %7.1fs %-9s %s\n", l.name.c_str(),
                l.session ? "session" : "run", l.uid, gpubox::formatDurationMs(l.ageMs).c_str(),
                l.processes, gpubox::formatSize(l.memoryBytes).c_str(),
                gpubox::formatSize(l.memoryPeakBytes).c_str(),
                static_cast<double>(l.cpuNanos) / 1e9,
                l.session ? gpubox::formatDurationMs(l.ttlLeftMs).c_str() : "-",
                gpus.empty() ? "-" : gpus.c_str());
  }
  return 0;
}

int sessionCommand(const std::string& socket, const std::vector<std::string>& args) {
  const char* usage = "usage: gpubox session create [OPTIONS] | rm NAME... | ls [--json]";
  if (args.empty()) {
    std::fprintf(stderr, "gpubox: %s\n", usage);
    return kExitGpuboxError;
  }
  std::vector<std::string> rest(args.begin() + 1, args.end());
  try {
    if (args[0] == "create") return sessionCreate(socket, rest);
    if (args[0] == "rm") {
      if (rest.empty()) return fail("session rm: no session name given");
      gpubox::client::Connection conn(gpubox::client::defaultSocketPath(socket));
      for (const std::string& name : rest) conn.removeSession(name);
      return 0;
    }
    if (args[0] == "ls") return psCommand(socket, rest.size() == 1 && rest[0] == "--json");
    if (args[0] == "-h" || args[0] == "--help") {
      std::printf("%s\n", usage);
      return 0;
    }
  } catch (const gpubox::Error& e) {
    return fail(e.what());
  }
  std::fprintf(stderr, "gpubox: unknown session command '%s'\n%s\n", args[0].c_str(), usage);
  return kExitGpuboxError;
}

int infoCommand(const std::string& socket, bool json) {
  gpubox::client::Connection conn(gpubox::client::defaultSocketPath(socket));
  gpubox::client::HelperInfo i = conn.info();
  gpubox::InfoReport r{i.version,
                       GPUBOX_VERSION,
                       i.protocolMajor,
                       i.protocolMinor,
                       i.kernel,
                       i.features,
                       i.cgroupMode,
                       i.callerUid,
                       i.callerGid,
                       i.limits,
                       i.cgroups,
                       i.userNamespace,
                       i.userNamespaceSetting,
                       i.userNamespaceReason,
                       i.warmPool,
                       i.warmPoolHostNet};
  if (json) {
    print(gpubox::infoReportJson(r) + "\n");
  } else {
    using std::to_string;
    std::string t =
        "helper version:   " + r.helperVersion + "\n" + "client version:   " + r.clientVersion +
        "\n" + "protocol:         " + to_string(r.protocolMajor) + "." +
        to_string(r.protocolMinor) + " (client " + to_string(gpubox::wire::PROTOCOL_MAJOR) + "." +
        to_string(gpubox::wire::PROTOCOL_MINOR) + ")\n" + "kernel:           " + r.kernel + "\n" +
        "cgroups:          " + r.cgroupMode + "\n" + "you are:          uid " +
        to_string(r.callerUid) + ", gid " + to_string(r.callerGid) + "\n" + "kernel features:";
    for (const auto& f : r.features) t += " " + f;
    t += "\n";
    for (const auto& l : r.limits) t += "limits:           " + l + "\n";
    for (const auto& c : r.cgroups) t += "enforced by:      " + c + "\n";
    if (!r.userNamespace.empty())
      t += "user namespace:   " + r.userNamespace + " (--user-namespace " + r.userNamespaceSetting +
           "; " + r.userNamespaceReason + ")\n";
    auto pool = [&](const char* label, const char* option, const gpubox::WarmPoolCounts& p) {
      t += label + to_string(p.ready) + " ready of " + to_string(p.size) + " (" + option + " " +
           to_string(p.floor) + ", up to " + to_string(p.ceiling) + " on demand); since start " +
           to_string(p.taken) + " requests took one, " + to_string(p.missed) +
           " found none ready\n";
    };
    if (r.warmPool) pool("warm pool:        ", "--warm-inits", *r.warmPool);
    if (r.warmPoolHostNet) pool("warm, --net host: ", "--warm-inits-host-net", *r.warmPoolHostNet);
    print(t);
  }
  if (i.protocolMajor != gpubox::wire::PROTOCOL_MAJOR)
    return fail("helper speaks protocol " + std::to_string(i.protocolMajor) + ".x, this client " +
                std::to_string(gpubox::wire::PROTOCOL_MAJOR) + ".x");
  return 0;
}

int gpusCommand(const std::string& socket, bool json);

}  // namespace

int main(int argc, char** argv) {
  gpubox::client::spans::mark("main");
  using Command = gpubox::cli::TopLevel::Command;
  gpubox::cli::TopLevel top;
  try {
    top = gpubox::cli::parseTopLevel(std::vector<std::string>(argv + 1, argv + argc));
  } catch (const gpubox::Error& e) {
    std::fprintf(stderr,
                 "gpubox: %s\nusage: gpubox [--socket PATH] run|exec|session|ps|info|gpus ...\n",
                 e.what());
    return kExitGpuboxError;
  }
  // run, exec and session: their options are bubblewrap-style and
  // order-sensitive (and exec's command has options of its own), so each
  // has its own parser.
  switch (top.command) {
    case Command::Run:
      return runCommand(top.socket, top.rest);
    case Command::Exec:
      return execCommand(top.socket, top.rest);
    case Command::Session:
      return sessionCommand(top.socket, top.rest);
    case Command::Version:
      print(std::string("gpubox ") + GPUBOX_VERSION + "\n");
      return 0;
    case Command::Help:
      print(gpubox::cli::topLevelUsage());
      return 0;
    default:
      break;
  }
  if (top.help) {
    print(gpubox::cli::listingUsage(top.command));
    return 0;
  }
  try {
    if (top.command == Command::Info) return infoCommand(top.socket, top.json);
    if (top.command == Command::Gpus) return gpusCommand(top.socket, top.json);
    return psCommand(top.socket, top.json);
  } catch (const gpubox::Error& e) {
    return fail(e.what());
  }
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
    print(out.dump(2) + "\n");
    return 0;
  }
  if (list.empty()) print("no GPUs\n");
  for (const auto& g : list) {
    std::string line = std::to_string(g.index) + "  " + g.uuid + "  " + g.model + "  bus " +
                       g.busId + "  minor " + std::to_string(g.minor) + "  " +
                       (g.allowed ? "allowed" : "not allowed") + "  held by " +
                       std::to_string(g.holders) + " sandbox(es)";
    if (!g.mig.empty()) {
      line += "  MIG:";
      for (const auto& m : g.mig) line += " " + m;
    }
    print(line + "\n");
  }
  return 0;
}
}  // namespace
