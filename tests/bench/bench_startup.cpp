// bench_startup: whole-process timings of gpubox against bubblewrap.
//
// Starts a private gpubox-helper (as root, like a real one) and times, from
// fork to reap, commands started as uid 65534: `gpubox run` with several
// plans, `gpubox exec` into a session, `gpubox --version`, each interleaved
// run by run with its bubblewrap (or /bin/true) counterpart so that a slow
// moment of the machine hits both sides; then sandboxes per second with
// concurrent clients, and the helper's memory. Prints one table.
//
//   build/tests/bench/bench_startup --runs 300
//
// Needs root (the helper, and switching to uid 65534), /usr/bin/bwrap and
// a kernel that lets uid 65534 create user namespaces (for bubblewrap).
// It measures; it never passes or fails on a time. See docs/performance.md.
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent_command_lines.hpp"
#include "fake_driver.hpp"
#include "measure.hpp"
#include "process.hpp"
#include "stats.hpp"
#include "task_states.hpp"

namespace gpubox::bench {
namespace {

struct Options : Rounds {
  std::vector<unsigned> concurrency = {1, 2, 8, 16, 32};
  unsigned runsPerClient = 20;
  unsigned idleSessions = 100;
  unsigned rssRuns = 10000;
  unsigned rssClients = 8;
  bool gpu = true;
  bool spans = false;
  bool throughputOnly = false;  // only the throughput rows (comparing helper settings)
  unsigned taskStatesMs = 0;    // > 0: sample the tasks' states at that period (--task-states)
  std::string helper, cli, bwrapFront, execClient, bwrap = "/usr/bin/bwrap";
  std::vector<std::string> helperArgs;  // given to every helper started (e.g. --rpc-threads 2)
};

const std::vector<std::string> kEnv = {"PATH=/usr/bin:/bin", "HOME=/", "LANG=C"};
// The plan both tools get in the explicit-plan rows.
const std::vector<std::string> kPlan = {"--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"};

std::vector<std::string> concat(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// Where meson puts the helper and the CLI, relative to this executable
// (build/tests/bench/bench_startup).
// A policy file TEXT in DIR, for a helper's --config; its path.
std::string writePolicy(const std::string& dir, const std::string& text) {
  const std::string path = dir + "/helper.toml";
  std::FILE* f = std::fopen(path.c_str(), "w");
  if (!f) throw std::runtime_error("cannot write " + path);
  const bool written = std::fputs(text.c_str(), f) >= 0;
  if (std::fclose(f) != 0 || !written) throw std::runtime_error("cannot write " + path);
  return path;
}

std::string besideBuild(const std::string& rel) {
  auto self = std::filesystem::read_symlink("/proc/self/exe");
  return (self.parent_path() / ".." / ".." / rel).lexically_normal().string();
}

// "10.7 MiB (anonymous 1.1)": VmRSS, and of it the helper's own memory.
std::string mib(const Rss& rss) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.1f MiB (anonymous %.1f)",
                static_cast<double>(rss.total) / 1024.0, static_cast<double>(rss.anon) / 1024.0);
  return buf;
}

// Exit status for "cannot run here" (what meson counts as a skip).
constexpr int kCannotRunHere = 77;

int benchmark(const Options& o) {
  if (::geteuid() != 0) {
    std::fprintf(stderr,
                 "bench_startup: not run: needs root (it starts a gpubox-helper and runs "
                 "commands as uid 65534)\n");
    return kCannotRunHere;
  }
  if (::access(o.bwrap.c_str(), X_OK) != 0) {
    std::fprintf(stderr, "bench_startup: not run: %s is not there (apt-get install bubblewrap)\n",
                 o.bwrap.c_str());
    return kCannotRunHere;
  }
  unsigned maxClients = *std::max_element(o.concurrency.begin(), o.concurrency.end());
  TempDir work("gpubox-bench");
  // Uid 65534 must reach the CLI (the build tree may be private) and run
  // the default plan from a directory of its own under /tmp.
  std::string cli = copyExecutable(o.cli, work.path(), "gpubox");
  std::string front = copyExecutable(o.bwrapFront, work.path(), "gpubox-bwrap");
  std::string cwd = work.path() + "/cwd";
  std::filesystem::create_directory(cwd);
  if (::chown(cwd.c_str(), kNobody, kNobody) != 0 || ::chmod(cwd.c_str(), 0777) != 0)
    throw std::runtime_error("cannot prepare " + cwd);
  // A workspace as Codex's command line expects it (the drop-in rows).
  std::filesystem::create_directory(cwd + "/.git");
  std::string helperDir = work.path() + "/helper";
  std::filesystem::create_directory(helperDir);
  // A sandbox counts against its uid until its init is reaped, which on a
  // saturated machine comes after its client has already asked for the next
  // one: with 32 back-to-back clients on 2 cores, 48 were counted at once.
  std::string caps = std::to_string(std::max(2 * maxClients, o.idleSessions) + 16);
  std::vector<std::string> capArgs =
      concat({"--max-sandboxes-per-uid", caps, "--max-sessions-per-uid", caps}, o.helperArgs);
  Helper helper(o.helper, helperDir, capArgs);
  const Rss rssFresh = rssKiB(helper.pid());

  auto gpubox = [&](const Helper& h, std::vector<std::string> args, const std::string& dir = "/") {
    return Command(concat({cli, "--socket", h.socket()}, args), kEnv, dir, kNobody);
  };
  auto bwrap = [&](std::vector<std::string> args, const std::string& dir = "/",
                   std::vector<std::string> command = {"/bin/true"}) {
    return Command(
        concat(concat(concat({o.bwrap, "--unshare-all", "--die-with-parent"}, args), {"--"}),
               command),
        kEnv, dir, kNobody);
  };
  const Command gpuboxPlan = gpubox(helper, concat(concat({"run"}, kPlan), {"--", "/bin/true"}));
  const Command bwrapPlan = bwrap(kPlan);

  std::vector<Pair> pairs;
  std::fprintf(stderr, "bench_startup: %u runs each (+%u warm-up), helper pid %d\n", o.runs,
               o.warmup, helper.pid());
  // --throughput-only leaves out every latency row (and the memory rows):
  // what comparing helper settings on a many-core host needs, in seconds.
  const bool latency = !o.throughputOnly;
  if (latency)
    pairs.push_back(interleave("run, same plan", "gpubox run", gpuboxPlan, "bwrap", bwrapPlan, o));
  // The default plan: host root read-only, fresh /dev /proc /tmp /run, /sys
  // read-only, the working directory writable. HOME=/ hides nothing.
  if (latency)
    pairs.push_back(interleave(
        "run, default plan", "gpubox run (default)",
        gpubox(helper, {"run", "--", "/bin/true"}, cwd), "bwrap (same plan)",
        bwrap({"--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
               "--tmpfs", "/run", "--ro-bind", "/sys", "/sys", "--bind", cwd, cwd, "--chdir", cwd},
              cwd),
        o));

  // Time to the first byte of the sandboxed command's stdout: what an agent
  // waiting on a command's output sees.
  if (latency)
    pairs.push_back(interleave(
        "first stdout byte", "gpubox run -- echo",
        gpubox(helper, concat(concat({"run"}, kPlan), {"--", "/bin/echo", "x"})), "bwrap -- echo",
        bwrap(kPlan, "/", {"/bin/echo", "x"}), o, &Runner::timedFirstByte));

  // An init cloned for its request (by the helper's requests' spawner):
  // what a request that finds the warm pool empty, or asks for --net host,
  // pays. A helper of its own with --warm-inits 0.
  if (latency) {
    std::string coldDir = work.path() + "/cold-helper";
    std::filesystem::create_directory(coldDir);
    Helper cold(o.helper, coldDir, concat({"--warm-inits", "0"}, capArgs));
    pairs.push_back(interleave("run, init cloned for it", "gpubox run (no pool)",
                               gpubox(cold, concat(concat({"run"}, kPlan), {"--", "/bin/true"})),
                               "bwrap", bwrapPlan, o));
  }

  // The host's network (--net host; gpubox-bwrap without --unshare-net, as
  // a bwrap-based agent with network access runs): served by the pool of
  // inits in the host's network namespace, which grows from empty at the
  // first such request. Against bwrap --share-net. A helper of its own,
  // whose policy grants uid 65534 the host's network.
  if (latency) {
    std::string hostNetDir = work.path() + "/host-net-helper";
    std::filesystem::create_directory(hostNetDir);
    const std::string config =
        writePolicy(hostNetDir, "[[allow]]\nusers = [65534]\nhost_network = true\n");
    Helper hostNet(o.helper, hostNetDir, concat({"--config", config}, capArgs));
    pairs.push_back(interleave(
        "run, host network", "gpubox run --net host",
        gpubox(hostNet, concat(concat({"run", "--net", "host"}, kPlan), {"--", "/bin/true"})),
        "bwrap --share-net", bwrap(concat(kPlan, {"--share-net"})), o));

    // The drop-in: an agent's own bwrap command line, unchanged, given to
    // gpubox-bwrap (found through GPUBOX_SOCKET) and to bwrap. Codex's
    // workspace-write line (docs/agents.md) with the working directory as
    // its workspace and /bin/true as the command; with --unshare-net, and
    // without it (network access on: the --net host pool, this helper's
    // policy). gpubox-bwrap's sandboxes also get the namespaces the line
    // leaves out (ipc, uts, cgroup), bwrap's do not.
    auto codexLine = [&](bool unshareNet) {
      return testing::codexWorkspaceWrite(cwd, {"/bin/true"}, unshareNet);
    };
    auto dropIn = [&](const Helper& h, bool unshareNet) {
      return Command(concat({front}, codexLine(unshareNet)),
                     concat(kEnv, {"GPUBOX_SOCKET=" + h.socket()}), cwd, kNobody);
    };
    auto plainBwrap = [&](bool unshareNet) {
      return Command(concat({o.bwrap}, codexLine(unshareNet)), kEnv, cwd, kNobody);
    };
    pairs.push_back(interleave("drop-in, Codex's line", "gpubox-bwrap", dropIn(helper, true),
                               "bwrap", plainBwrap(true), o));
    pairs.push_back(interleave("drop-in, with network", "gpubox-bwrap", dropIn(hostNet, false),
                               "bwrap", plainBwrap(false), o));
  }

  std::vector<SpanTable> spanTables;  // --spans
  std::optional<std::string> gpuSkipped;
  // Kept for the throughput rows below.
  std::optional<testing::FakeDriverRoot> fakeDriver;
  std::unique_ptr<Helper> gpuHelperHeld;
  std::optional<Command> gpuRunHeld, bwrapDevHeld;
  if (!o.gpu) {
    gpuSkipped = "--no-gpu";
  } else if (!testing::FakeDriverRoot::canMknod()) {
    gpuSkipped = "cannot mknod the fake driver's nodes here";
  } else {
    // Eight GPUs: the `--gpu 0` rows use the first (its sandbox sees only
    // it), the rows below as many as they ask for.
    constexpr int kFakeGpus = 8;
    testing::FakeDriverRoot& fake =
        fakeDriver.emplace(testing::FakeDriverRoot::Options{.gpus = kFakeGpus});
    std::string gpuDir = work.path() + "/gpu-helper";
    std::filesystem::create_directory(gpuDir);
    const std::string config =
        writePolicy(gpuDir, "[[allow]]\nusers = [65534]\ngpus = [\"all\"]\nmax_gpus = " +
                                std::to_string(kFakeGpus) + "\n");
    gpuHelperHeld = std::make_unique<Helper>(
        o.helper, gpuDir, concat({"--config", config, "--driver-root", fake.root()}, capArgs));
    Helper& gpuHelper = *gpuHelperHeld;
    std::vector<std::string> devBinds;
    for (const char* node : {"nvidia0", "nvidiactl", "nvidia-uvm", "nvidia-uvm-tools"})
      devBinds.insert(devBinds.end(), {"--dev-bind", fake.path(std::string("dev/") + node),
                                       "/dev/" + std::string(node)});
    const Command gpuRun =
        gpubox(gpuHelper, concat(concat({"run", "--gpu", "0"}, kPlan), {"--", "/bin/true"}));
    gpuRunHeld.emplace(gpuRun);
    bwrapDevHeld.emplace(bwrap(concat(kPlan, devBinds)));
    if (latency) {
      pairs.push_back(interleave("run --gpu 0 (fake driver)", "gpubox run --gpu 0", gpuRun,
                                 "bwrap + --dev-binds", *bwrapDevHeld, o));
      const Command noGpuRun =
          gpubox(gpuHelper, concat(concat({"run"}, kPlan), {"--", "/bin/true"}));
      pairs.push_back(interleave("--gpu 0 vs no GPU", "gpubox run --gpu 0", gpuRun,
                                 "gpubox run (same helper)", noGpuRun, o));
      // How the cost grows with the GPUs a sandbox gets: each adds its
      // node, its /proc/driver/nvidia/gpus directory and its /sys link.
      for (int k : {2, kFakeGpus}) {
        const std::string count = "count:" + std::to_string(k);
        auto withGpus = [&](const std::vector<std::string>& command) {
          return gpubox(gpuHelper, concat(concat({"run", "--gpu", count}, kPlan), command));
        };
        // The row is only what it says if the sandbox sees K GPUs.
        const std::string seen =
            Runner().output(withGpus({"--", "/bin/sh", "-c", "ls -d /dev/nvidia[0-9]*"}));
        if (std::count(seen.begin(), seen.end(), '\n') != k)
          throw std::runtime_error("--gpu " + count + ": the sandbox saw these GPU nodes:\n" +
                                   seen);
        pairs.push_back(interleave(std::to_string(k) + " GPUs vs no GPU",
                                   "gpubox run --gpu " + count, withGpus({"--", "/bin/true"}),
                                   "gpubox run (same helper)", noGpuRun, o));
      }
    }
    if (latency && o.spans) {
      std::string tracedDir = work.path() + "/gpu-spans-helper";
      std::filesystem::create_directory(tracedDir);
      Helper traced(
          o.helper, tracedDir,
          concat({"--trace-spans", "--config", config, "--driver-root", fake.root()}, capArgs));
      spanTables.push_back(traceRuns(
          "gpubox run --gpu 0", traced,
          gpubox(traced, concat(concat({"run", "--gpu", "0"}, kPlan), {"--", "/bin/true"})), o));
    }
  }

  Runner control;
  if (latency) {
    control.timed(gpubox(helper, concat({"session", "create", "--name", "bench-warm"}, kPlan)));
    pairs.push_back(interleave("exec into a session", "gpubox exec",
                               gpubox(helper, {"exec", "bench-warm", "--", "/bin/true"}), "bwrap",
                               bwrapPlan, o));
    // The same warm path through libgpubox-client in one long-lived process
    // (what an agent runtime that embeds it pays per command: no client
    // process), and through one `gpubox exec --batch` that process keeps
    // open (what an agent in any other language pays), each interleaved
    // with bwrap started from that same process.
    std::string execClient = copyExecutable(o.execClient, work.path(), "bench_exec_client");
    auto longLived = [&](const std::string& name, const std::string& label,
                         std::vector<std::string> mode) {
      std::string out =
          control.output(Command(concat(concat(concat({execClient}, mode),
                                               {helper.socket(), "bench-warm",
                                                std::to_string(o.runs), std::to_string(o.warmup)}),
                                        bwrapPlan.argv()),
                                 kEnv, "/", kNobody));
      Pair p{name, label, "bwrap", {}, {}};
      std::istringstream lines(out);
      std::string side;
      double ms = 0;
      while (lines >> side >> ms) (side == "a" ? p.a : p.b).push_back(ms);
      if (p.a.size() != o.runs || p.b.size() != o.runs)
        throw std::runtime_error("bench_exec_client printed " + std::to_string(p.a.size()) +
                                 " and " + std::to_string(p.b.size()) + " times, not " +
                                 std::to_string(o.runs) + " each");
      std::fprintf(stderr, "  done: %s\n", p.name.c_str());
      pairs.push_back(std::move(p));
    };
    longLived("exec, libgpubox-client", "Connection::exec", {});
    longLived("exec, one --batch CLI", "gpubox exec --batch", {"--cli-batch", cli});
    control.timed(gpubox(helper, {"session", "rm", "bench-warm"}));
    pairs.push_back(interleave("client start-up", "gpubox --version",
                               Command({cli, "--version"}, kEnv, "/", kNobody), "/bin/true",
                               Command({"/bin/true"}, kEnv, "/", kNobody), o));
  }

  // Where a `run` spends its time, from a helper of its own started with
  // --trace-spans (kept apart so that the rows above time the helper as
  // it is normally run).
  if (latency && o.spans) {
    std::string spansDir = work.path() + "/spans-helper";
    std::filesystem::create_directory(spansDir);
    Helper traced(o.helper, spansDir, concat({"--trace-spans"}, capArgs));
    spanTables.insert(
        spanTables.begin(),
        traceRuns("gpubox run", traced,
                  gpubox(traced, concat(concat({"run"}, kPlan), {"--", "/bin/true"})), o));
  }

  // Throughput: each level runs gpubox and bwrap in turn (order alternating
  // by level), never both at once.
  // The --gpu 0 levels (fake driver, one shared GPU) against bwrap with the
  // same --dev-binds, the same way.
  // Each level also reads the helper's CPU around its gpubox side (whether
  // the home loop is near its ceiling at that level) and its warm pool's
  // counts (gpubox info, as root): the share of runs that found no warm
  // init ready and had one cloned for them.
  struct Level {
    unsigned clients;
    Throughput g, b;
    HelperCpu cpu;                // per sandbox
    double poolMisses = -1;       // share of the runs; < 0: unknown
    TaskStates gStates, bStates;  // with --task-states
  };
  // One side's runs, its tasks sampled meanwhile with --task-states: the
  // side's own processes and threads, its commands (/bin/true) and the
  // kernel's workers (a namespace's cleanup runs on them).
  auto sampled = [&](const Command& command, unsigned clients, const char* prefix,
                     TaskStates& states) {
    std::optional<TaskStateSampler> sampler;
    if (o.taskStatesMs)
      sampler.emplace(std::vector<std::string>{prefix, "true", "kworker"},
                      std::chrono::milliseconds(o.taskStatesMs));
    Throughput t = concurrent(command, clients, o.runsPerClient);
    if (sampler) states = sampler->stop();
    return t;
  };
  auto poolCounts = [&](const Helper& h) -> std::pair<double, double> {
    nlohmann::json info = nlohmann::json::parse(
        control.output(Command({cli, "--socket", h.socket(), "info", "--json"}, kEnv, "/", 0)),
        nullptr, false);
    if (info.is_discarded() || !info["warm_pool"].is_object()) return {-1, -1};
    return {info["warm_pool"]["taken"].get<double>(), info["warm_pool"]["missed"].get<double>()};
  };
  auto measureLevels = [&](const Command& a, const Command& b, const Helper& h, const char* what) {
    std::vector<Level> out;
    for (size_t i = 0; i < o.concurrency.size(); ++i) {
      unsigned c = o.concurrency[i];
      Level l{c, {}, {}, {}, -1, {}, {}};
      auto gpuboxSide = [&] {
        const auto [taken0, missed0] = poolCounts(h);
        HelperCpu before = HelperCpu::of(h.pid());
        l.g = sampled(a, c, "gpubox", l.gStates);
        l.cpu = HelperCpu::of(h.pid()).perSandboxSince(before, l.g.latencies.size());
        const auto [taken1, missed1] = poolCounts(h);
        const double asked = (taken1 - taken0) + (missed1 - missed0);
        if (taken0 >= 0 && taken1 >= 0 && asked > 0) l.poolMisses = (missed1 - missed0) / asked;
      };
      if (i % 2 == 0) {
        gpuboxSide();
        l.b = sampled(b, c, "bwrap", l.bStates);
      } else {
        l.b = sampled(b, c, "bwrap", l.bStates);
        gpuboxSide();
      }
      std::fprintf(stderr, "  done: throughput%s, %u clients\n", what, c);
      out.push_back(std::move(l));
    }
    return out;
  };
  std::vector<Level> levels = measureLevels(gpuboxPlan, bwrapPlan, helper, "");
  std::vector<Level> gpuLevels;
  if (gpuRunHeld) gpuLevels = measureLevels(*gpuRunHeld, *bwrapDevHeld, *gpuHelperHeld, " --gpu 0");

  // Memory: the helper alone (its sessions' inits are processes of their own).
  struct Memory {
    Rss warm, sessions, beforeRuns, afterRuns;
    unsigned clients = 0;
    Throughput load;
    HelperCpu cpu;  // per sandbox over the load
  } m;
  if (latency) {
    m.warm = rssKiB(helper.pid());
    std::vector<std::string> names;
    for (unsigned i = 0; i < o.idleSessions; ++i) {
      names.push_back("bench-idle-" + std::to_string(i));
      control.timed(gpubox(helper, concat({"session", "create", "--name", names.back()}, kPlan)));
    }
    m.sessions = rssKiB(helper.pid());
    if (!names.empty()) control.timed(gpubox(helper, concat({"session", "rm"}, names)));
    std::this_thread::sleep_for(std::chrono::milliseconds(500));  // the reaper's turn
    m.beforeRuns = rssKiB(helper.pid());
    m.clients = std::max(1u, o.rssClients);
    // The helper's own CPU over the same runs: its home loop (the main
    // thread) is the one part of it that every sandbox passes through in
    // turn; the RPC threads share the connections' part.
    HelperCpu before = HelperCpu::of(helper.pid());
    m.load = concurrent(gpuboxPlan, m.clients, (o.rssRuns + m.clients - 1) / m.clients);
    m.cpu = HelperCpu::of(helper.pid()).perSandboxSince(before, m.load.latencies.size());
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    m.afterRuns = rssKiB(helper.pid());
  }
  if (latency) std::fprintf(stderr, "  done: memory\n");

  // ---------------------------------------------------------------- table
  if (latency) {
    std::printf(
        "gpubox start-up benchmark: %u runs each, interleaved A/B, as uid 65534; "
        "times in ms, fork to reap (first stdout byte: fork to the byte)\n",
        o.runs);
    std::printf("%-26s %-24s %7s %7s %7s | %-24s %7s %7s %7s | %6s\n", "benchmark", "A", "median",
                "p90", "p99", "B", "median", "p90", "p99", "A/B");
    for (const auto& p : pairs) printPair(p);
    if (gpuSkipped)
      std::printf("%-26s skipped: %s\n", "run --gpu 0 (fake driver)", gpuSkipped->c_str());
    std::printf("A/B: the median of the per-pair ratios\n\n");
    for (const SpanTable& t : spanTables) printSpans(t, o.runs);
  }
  std::printf(
      "throughput: `run` (same plan) vs bwrap, %u runs per client; sandboxes/s and "
      "latency (ms)\n",
      o.runsPerClient);
  auto printLevels = [](const std::vector<Level>& rows) {
    std::printf("%-8s %12s %8s %8s | %12s %8s %8s | %6s | %9s %9s %9s %9s %9s\n", "clients",
                "gpubox /s", "median", "p99", "bwrap /s", "median", "p99", "ratio", "home ms",
                "home busy", "rpc ms", "helper ms", "pool miss");
    for (const auto& l : rows) {
      char misses[16] = "-";
      if (l.poolMisses >= 0) std::snprintf(misses, sizeof misses, "%.0f%%", 100 * l.poolMisses);
      // The home loop's share of one CPU at that rate: near 100%, the loop
      // is what caps the helper.
      char homeBusy[16];
      std::snprintf(homeBusy, sizeof homeBusy, "%.0f%%", l.cpu.home * l.g.perSecond / 10.0);
      std::printf(
          "%-8u %12.1f %8.2f %8.2f | %12.1f %8.2f %8.2f | %6.2f | %9.3f %9s %9.3f %9.3f %9s\n",
          l.clients, l.g.perSecond, median(l.g.latencies), percentile(l.g.latencies, 99),
          l.b.perSecond, median(l.b.latencies), percentile(l.b.latencies, 99),
          l.b.perSecond > 0 ? l.g.perSecond / l.b.perSecond : 0, l.cpu.home, homeBusy, l.cpu.rpc,
          l.cpu.whole, misses);
    }
  };
  // Whether a level is bound by the CPUs (busy near 100%: the sandboxes
  // per second are the CPUs over the CPU per sandbox) or by something that
  // serialises (busy well below it).
  auto printMachineCpu = [](const std::vector<Level>& rows) {
    std::printf("%-8s %12s %8s | %12s %8s | %9s\n", "clients", "gpubox cpu", "busy", "bwrap cpu",
                "busy", "cpu ratio");
    for (const auto& l : rows)
      std::printf("%-8u %12.2f %7.0f%% | %12.2f %7.0f%% | %9.2f\n", l.clients, l.g.machineCpuMs,
                  100 * l.g.machineBusy, l.b.machineCpuMs, 100 * l.b.machineBusy,
                  l.b.machineCpuMs > 0 ? l.g.machineCpuMs / l.b.machineCpuMs : 0);
  };
  // Where each side's tasks were (--task-states): a side that leaves CPUs
  // idle either waits on itself (asleep: a client on its helper, a helper
  // on its init) or is serialised by the kernel (blocked: the D rows'
  // places name the lock or grace period).
  auto printTaskStates = [&](const std::vector<Level>& rows) {
    if (!o.taskStatesMs) return;
    std::printf("%-8s %-7s %6s %8s %8s %8s | %s\n", "clients", "side", "scans", "running", "asleep",
                "blocked", "where the blocked ones were (tasks, on average)");
    // Tasks at a time, on average over the scans: comparable between the
    // sides, whose numbers of tasks differ (the helper's idle threads).
    auto line = [](unsigned clients, const char* side, const TaskStates& t) {
      const double scans = t.scans ? static_cast<double>(t.scans) : 1.0;
      std::string where;
      for (const auto& [place, count] : t.top(4)) {
        char tasks[24];
        std::snprintf(tasks, sizeof tasks, " %.2f", static_cast<double>(count) / scans);
        where += (where.empty() ? "" : "; ") + place + tasks;
      }
      std::printf("%-8u %-7s %6zu %8.2f %8.2f %8.2f | %s\n", clients, side, t.scans,
                  static_cast<double>(t.running) / scans, static_cast<double>(t.sleeping) / scans,
                  static_cast<double>(t.blocked) / scans, where.empty() ? "-" : where.c_str());
    };
    for (const auto& l : rows) {
      line(l.clients, "gpubox", l.gStates);
      line(l.clients, "bwrap", l.bStates);
    }
    std::printf(
        "task states: every %u ms, each task named gpubox* or bwrap* (threads included), true or "
        "kworker*, from /proc/PID/stat; running: running or runnable (R), asleep (S), blocked in "
        "the kernel (D), where from /proc/PID/stack; tasks at a time, on average over the scans\n",
        o.taskStatesMs);
  };
  printLevels(levels);
  std::printf(
      "ratio: gpubox sandboxes/s over bwrap's; home busy: the home loop's share of one CPU at that "
      "rate (near 100%%: the loop caps the helper); home/rpc/helper ms: the helper's CPU per "
      "sandbox "
      "in its home loop, its RPC threads and all its threads, over that level's gpubox runs; pool "
      "miss: the share of them that found no warm init ready\n");
  printMachineCpu(levels);
  std::printf(
      "cpu: the machine's busy CPU time per sandbox over that side of the level (ms, every "
      "process's, the benchmark's own fork, exec and wait included; /proc/stat); busy: the share "
      "of all %ld CPUs' time that was busy\n",
      ::sysconf(_SC_NPROCESSORS_ONLN));
  printTaskStates(levels);
  std::printf("\n");
  if (!gpuLevels.empty()) {
    std::printf(
        "throughput: `run --gpu 0` (fake driver, one GPU shared) vs bwrap with the same "
        "--dev-binds, %u runs per client\n",
        o.runsPerClient);
    printLevels(gpuLevels);
    printMachineCpu(gpuLevels);
    printTaskStates(gpuLevels);
    std::printf("\n");
  }
  if (!latency) return 0;
  std::printf(
      "helper memory (VmRSS of gpubox-helper, and of it RssAnon: its own heap and stacks, the rest "
      "being its binary's and libraries' pages; its sandboxes' inits not counted)\n");
  auto row = [](const std::string& label, const std::string& value) {
    std::printf("  %-48s %s\n", (label + ":").c_str(), value.c_str());
  };
  char note[96];
  row("fresh, idle", mib(rssFresh));
  row("idle after the runs above", mib(m.warm));
  std::snprintf(note, sizeof note, "; %+.1f KiB per session",
                o.idleSessions
                    ? (static_cast<double>(m.sessions.total) - static_cast<double>(m.warm.total)) /
                          o.idleSessions
                    : 0.0);
  row("with " + std::to_string(o.idleSessions) + " idle sessions", mib(m.sessions) + note);
  row("sessions removed, before " + std::to_string(m.load.latencies.size()) + " runs (" +
          std::to_string(m.clients) + " clients)",
      mib(m.beforeRuns));
  std::snprintf(note, sizeof note, "; %+ld KiB, anonymous %+ld KiB; %.1f runs/s",
                static_cast<long>(m.afterRuns.total) - static_cast<long>(m.beforeRuns.total),
                static_cast<long>(m.afterRuns.anon) - static_cast<long>(m.beforeRuns.anon),
                m.load.perSecond);
  row("after them", mib(m.afterRuns) + note);
  std::printf(
      "helper CPU per sandbox over those runs: home loop %.2f ms, RPC threads %.2f ms, whole "
      "helper %.2f ms (the home loop alone could start about %.0f sandboxes/s)\n",
      m.cpu.home, m.cpu.rpc, m.cpu.whole, m.cpu.home > 0 ? 1000.0 / m.cpu.home : 0.0);
  return 0;
}

}  // namespace
}  // namespace gpubox::bench

int main(int argc, char** argv) {
  gpubox::bench::Options o;
  o.helper = gpubox::bench::besideBuild("helper/gpubox-helper");
  o.cli = gpubox::bench::besideBuild("client/gpubox");
  o.bwrapFront = gpubox::bench::besideBuild("client/gpubox-bwrap");
  o.execClient = gpubox::bench::besideBuild("tests/bench/bench_exec_client");
  CLI::App app{"bench_startup: gpubox start-up, throughput and memory against bubblewrap"};
  app.add_option("--runs", o.runs, "Interleaved runs of each side per latency row")
      ->capture_default_str();
  app.add_option("--warmup", o.warmup, "Untimed runs of each side first")->capture_default_str();
  app.add_option("--concurrency", o.concurrency, "Concurrent client counts for throughput")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--runs-per-client", o.runsPerClient, "Runs each concurrent client makes")
      ->capture_default_str();
  app.add_option("--idle-sessions", o.idleSessions, "Idle sessions for the memory row")
      ->capture_default_str();
  app.add_option("--rss-runs", o.rssRuns, "Runs between the two memory readings")
      ->capture_default_str();
  app.add_option("--rss-clients", o.rssClients, "Concurrent clients making those runs")
      ->capture_default_str();
  bool noGpu = false;
  app.add_flag("--no-gpu", noGpu, "Leave out the --gpu 0 rows (fake driver tree)");
  app.add_flag("--throughput-only", o.throughputOnly,
               "Only the throughput rows, with the helper's CPU per sandbox at each level (to "
               "compare helper settings, e.g. --rpc-threads)");
  bool taskStates = false;
  unsigned taskStatesMs = 5;
  app.add_flag("--task-states", taskStates,
               "Sample what each side's tasks are doing during the throughput levels (running, "
               "asleep, blocked in the kernel and where; root reads the stacks)");
  app.add_option("--task-states-every", taskStatesMs, "Its period (ms)")->capture_default_str();
  app.add_flag("--spans", o.spans,
               "Also time the phases of a run with a helper started with --trace-spans");
  app.add_option("--helper", o.helper, "gpubox-helper binary")->capture_default_str();
  app.add_option("--cli", o.cli, "gpubox binary")->capture_default_str();
  app.add_option("--bwrap-front", o.bwrapFront, "gpubox-bwrap binary (the drop-in rows)")
      ->capture_default_str();
  app.add_option("--exec-client", o.execClient,
                 "bench_exec_client binary (the libgpubox-client row)")
      ->capture_default_str();
  app.add_option("--bwrap", o.bwrap, "bubblewrap binary")->capture_default_str();
  app.add_option("--helper-arg", o.helperArgs,
                 "An argument for every helper the benchmark starts (repeat it: --helper-arg "
                 "--rpc-threads --helper-arg 2)")
      ->allow_extra_args(false);
  CLI11_PARSE(app, argc, argv);
  o.gpu = !noGpu;
  o.taskStatesMs = taskStates ? std::max(1u, taskStatesMs) : 0;
  if (o.runs == 0 || o.concurrency.empty() ||
      std::find(o.concurrency.begin(), o.concurrency.end(), 0u) != o.concurrency.end()) {
    std::fprintf(stderr, "bench_startup: --runs and every --concurrency must be at least 1\n");
    return 2;
  }
  try {
    return gpubox::bench::benchmark(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_startup: %s\n", e.what());
    return 1;
  }
}
