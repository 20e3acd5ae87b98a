// bench_exec_client: the warm path as a program that embeds libgpubox-client
// sees it (an agent runtime keeping one connection to the helper), timed
// against bubblewrap started from the same process.
//
//   bench_exec_client SOCKET SESSION RUNS WARMUP BWRAP-ARGV...
//
// Run i times `Connection::exec(/bin/true).wait()` into SESSION, then one
// bwrap from fork to reap (run i+1: the other order), and prints "a MS" and
// "b MS" lines. bench_startup starts it as uid 65534 and makes the table
// row; it is not meant to be run by hand.
#include <fcntl.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "gpubox/client.hpp"
#include "process.hpp"

namespace gpubox::bench {
namespace {

int main(int argc, char** argv) {
  if (argc < 6) {
    std::fprintf(stderr, "usage: %s SOCKET SESSION RUNS WARMUP BWRAP-ARGV...\n", argv[0]);
    return 2;
  }
  const std::string socket = argv[1], session = argv[2];
  const unsigned runs = static_cast<unsigned>(std::stoul(argv[3]));
  const unsigned warmup = static_cast<unsigned>(std::stoul(argv[4]));
  const Command bwrap(std::vector<std::string>(argv + 5, argv + argc),
                      {"PATH=/usr/bin:/bin", "HOME=/", "LANG=C"}, "/", std::nullopt);
  client::Connection conn(socket);
  const int devNull = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  if (devNull < 0) throw std::runtime_error("open /dev/null");
  client::ExecRequest request;
  request.session = session;
  request.command.argv = {"/bin/true"};
  request.command.env = {"PATH=/usr/bin:/bin", "HOME=/", "LANG=C"};
  request.stdoutFd = devNull;
  Runner runner;
  auto execOnce = [&] {
    auto t0 = std::chrono::steady_clock::now();
    client::RunResult r = conn.exec(request).wait();
    double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (r.exitCode != 0)
      throw std::runtime_error("exec of /bin/true: " + r.reason + " " + r.message);
    return ms;
  };
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
