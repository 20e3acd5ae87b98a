// bench_exec_client: the warm path as a program that embeds libgpubox-client
// sees it (an agent runtime keeping one connection to the helper), timed
// against bubblewrap started from the same process.
//
//   bench_exec_client [--cli-batch CLI] SOCKET SESSION RUNS WARMUP BWRAP-ARGV...
//
// Run i times `Connection::exec(/bin/true).wait()` into SESSION, then one
// bwrap from fork to reap (run i+1: the other order), and prints "a MS" and
// "b MS" lines. With --cli-batch, side a is instead one line written to a
// `CLI exec SESSION --batch` started once, timed until its status record
// arrives: what an agent in any language pays per command through the CLI.
// bench_startup starts it as uid 65534 and makes the table rows; it is not
// meant to be run by hand.
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "gpubox/client.hpp"
#include "process.hpp"

namespace gpubox::bench {
namespace {

const std::vector<std::string> kEnv = {"PATH=/usr/bin:/bin", "HOME=/", "LANG=C"};

double msSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// `CLI --socket SOCKET exec SESSION --batch --json-status 3`, started once:
// each run writes a line and reads the record it answers with.
class BatchClient {
 public:
  BatchClient(const std::string& cli, const std::string& socket, const std::string& session) {
    int in[2], status[2];
    if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(status, O_CLOEXEC) != 0)
      throw std::runtime_error("pipe2");
    const Command command(
        {cli, "--socket", socket, "exec", session, "--batch", "--json-status", "3"}, kEnv, "/",
        std::nullopt);
    const int devNull = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork");
    if (pid_ == 0) {
      if (::dup2(in[0], 0) < 0 || ::dup2(devNull, 1) < 0 || ::dup2(status[1], 3) < 0) ::_exit(127);
      command.execInChild();
    }
    ::close(devNull);
    ::close(in[0]);
    ::close(status[1]);
    lines_ = in[1];
    records_ = status[0];
  }
  ~BatchClient() {
    ::close(lines_);  // end of input: the CLI exits
    ::close(records_);
    int st = 0;
    ::waitpid(pid_, &st, 0);
  }
  BatchClient(const BatchClient&) = delete;
  BatchClient& operator=(const BatchClient&) = delete;

  double timedTrue() {
    static const std::string kLine = "[\"/bin/true\"]\n";
    auto t0 = std::chrono::steady_clock::now();
    if (::write(lines_, kLine.data(), kLine.size()) != static_cast<ssize_t>(kLine.size()))
      throw std::runtime_error("writing a line to gpubox exec --batch");
    std::string record;
    while (record.empty() || record.back() != '\n') {
      char buf[4096];
      ssize_t n = ::read(records_, buf, sizeof buf);
      if (n <= 0) throw std::runtime_error("gpubox exec --batch ended without a record");
      record.append(buf, static_cast<size_t>(n));
    }
    const double ms = msSince(t0);
    if (record.find("\"exit_code\":0") == std::string::npos)
      throw std::runtime_error("gpubox exec --batch: /bin/true did not exit 0: " + record);
    return ms;
  }

 private:
  pid_t pid_ = -1;
  int lines_ = -1, records_ = -1;
};

int main(int argc, char** argv) {
  std::string cliBatch;
  if (argc > 2 && std::string(argv[1]) == "--cli-batch") {
    cliBatch = argv[2];
    argc -= 2;
    argv += 2;
  }
  if (argc < 6) {
    std::fprintf(stderr, "usage: %s [--cli-batch CLI] SOCKET SESSION RUNS WARMUP BWRAP-ARGV...\n",
                 argv[0]);
    return 2;
  }
  const std::string socket = argv[1], session = argv[2];
  const unsigned runs = static_cast<unsigned>(std::stoul(argv[3]));
  const unsigned warmup = static_cast<unsigned>(std::stoul(argv[4]));
  const Command bwrap(std::vector<std::string>(argv + 5, argv + argc), kEnv, "/", std::nullopt);
  Runner runner;
  std::function<double()> execOnce;
  std::optional<client::Connection> conn;
  std::optional<BatchClient> batch;
  client::ExecRequest request;
  if (cliBatch.empty()) {
    conn.emplace(socket);
    const int devNull = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (devNull < 0) throw std::runtime_error("open /dev/null");
    request.session = session;
    request.command.argv = {"/bin/true"};
    request.command.env = kEnv;
    request.stdoutFd = devNull;
    execOnce = [&] {
      auto t0 = std::chrono::steady_clock::now();
      client::RunResult r = conn->exec(request).wait();
      const double ms = msSince(t0);
      if (r.exitCode != 0)
        throw std::runtime_error("exec of /bin/true: " + r.reason + " " + r.message);
      return ms;
    };
  } else {
    batch.emplace(cliBatch, socket, session);
    execOnce = [&] { return batch->timedTrue(); };
  }
  for (unsigned i = 0; i < warmup; ++i) {
    execOnce();
    runner.timed(bwrap);
  }
  for (unsigned i = 0; i < runs; ++i) {
    if (i % 2 == 0) {
      std::printf("a %.4f\n", execOnce());
      std::printf("b %.4f\n", runner.timed(bwrap));
    } else {
      std::printf("b %.4f\n", runner.timed(bwrap));
      std::printf("a %.4f\n", execOnce());
    }
  }
  return 0;
}

}  // namespace
}  // namespace gpubox::bench

int main(int argc, char** argv) {
  try {
    return gpubox::bench::main(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_exec_client: %s\n", e.what());
    return 1;
  }
}
