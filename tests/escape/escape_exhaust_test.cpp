// Escape attempts that try to take the host or the helper down: a fork
// bomb under --pids, a memory hog under --memory, CPU spinners under
// --cpus, and malformed bytes on the helper's socket.
//
// Which layer stops them, in both user-namespace modes: the sandbox's
// cgroup (pids.max, memory.max / memory.limit_in_bytes, the CPU quota),
// joined before anything of the sandbox runs; the helper's event loop never
// waits on a sandbox, and its reader limits turn malformed input into a
// dropped connection.
#include <grp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>

#include "escape_check.hpp"
#include "harness.hpp"

namespace gpubox::escape {
namespace {

using namespace std::chrono_literals;
using itest::kNobodyUid;

class ExhaustEscape : public ProbeEscapeTest {
 protected:
  // "served in N ms" when another sandbox of the caller's runs to the end
  // within 30 s, else what happened.
  std::string anotherSandbox() {
    auto start = std::chrono::steady_clock::now();
    itest::RunOptions o = as();
    o.timeout = 30s;
    auto r = helper().cli({"run", "--", "echo", "served"}, o);
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                  std::chrono::steady_clock::now() - start)
                  .count();
    if (r.exitCode == 0 && r.out == "served\n") return "served";
    return "not served (" + endedAs(r) + ", after " + std::to_string(ms) + " ms): " + r.err;
  }
};

TEST_P(ExhaustEscape, ForkBombUnderPids64) {
  const std::string marker = helper().workDir() + "/bomb-at-peak";
  const std::string attempt = "forkbomb:100000:3000:" + marker;
  itest::RunOptions o = as();
  o.timeout = 60s;
  auto bomb = helper().spawnCli({"run", "--pids", "64", "--", probe_, attempt}, o);
  bool peaked = itest::pollUntil([&] { return itest::pathExists(marker); }, 30s);
  check(caller(), "fork bomb under --pids 64: another sandbox while it holds every pid",
        exactly("served"), peaked ? anotherSandbox() : "the bomb never peaked");
  auto r = bomb->finish();
  auto results = parseProbeOutput(r.out);
  std::string got = results.count(attempt) ? results[attempt] : "no result (" + endedAs(r) + ")";
  check(caller(), "fork bomb under --pids 64 [forkbomb]",
        matching("stopped:EAGAIN:N with N < 64",
                 [](const std::string& g) {
                   return g.rfind("stopped:EAGAIN:", 0) == 0 && std::atoi(g.c_str() + 15) < 64;
                 }),
        got);
}

TEST_P(ExhaustEscape, MemoryHogUnder64M) {
  const std::string attempt = "memhog:1024";
  auto r = helper().cli({"run", "--memory", "64M", "--", probe_, attempt}, as());
  bool said = r.err.find("gpubox: out of memory") != std::string::npos;
  auto results = parseProbeOutput(r.out);
  std::string got = results.count(attempt) ? "survived: " + results[attempt]
                                           : endedAs(r) + (said ? ", out of memory" : "");
  check(caller(), "touch 1 GiB under --memory 64M [" + attempt + "]",
        exactly("exit 137, out of memory"), got);
  check(caller(), "after the memory hog: another sandbox", exactly("served"), anotherSandbox());
}

TEST_P(ExhaustEscape, CpuSpinnersUnderATenthOfACpu) {
  // Four spinning threads for 1.5 s under --cpus 0.1: about 150 ms of CPU
  // time; an unlimited sandbox would get up to 6000 ms.
  const std::string attempt = "cpuburn:1500:4";
  auto r = helper().cli({"run", "--cpus", "0.1", "--", probe_, attempt}, as());
  auto results = parseProbeOutput(r.out);
  std::string got = results.count(attempt) ? results[attempt] : "no result (" + endedAs(r) + ")";
  check(caller(), "4 spinning threads for 1.5 s under --cpus 0.1 [" + attempt + "]",
        matching("cpu_ms <= 450",
                 [](const std::string& g) {
                   return g.rfind("cpu_ms=", 0) == 0 && std::atol(g.c_str() + 7) <= 450;
                 }),
        got);
}

GPUBOX_INSTANTIATE_CALLERS(ExhaustEscape);

// ------------------------------------------------------- malformed requests
// (A fuller abuse test of the helper lives elsewhere; these are quick
// attempts made as the unprivileged user.)

std::string u32(uint32_t v) {
  return std::string(reinterpret_cast<const char*>(&v), 4);
}

// Connects to the helper as `uid` and sends `bytes` (what it can: the helper
// may hang up first). Runs in a child that drops to `uid`.
void sendAs(uid_t uid, const std::string& socketPath, const std::string& bytes) {
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (::setgroups(0, nullptr) != 0 || ::setresgid(uid, uid, uid) != 0 ||
        ::setresuid(uid, uid, uid) != 0)
      ::_exit(1);
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr = {};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, socketPath.c_str(), sizeof(addr.sun_path) - 1);
    if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) ::_exit(2);
    timeval tv = {5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    size_t done = 0;
    while (done < bytes.size()) {
      ssize_t n = ::send(fd, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
      if (n <= 0) break;
      done += static_cast<size_t>(n);
    }
    ::_exit(0);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
}

class MalformedRequests : public itest::HelperTest {};

TEST_F(MalformedRequests, TheHelperKeepsServing) {
  std::mt19937 rng(20261129);
  std::string junk(128 * 1024, '\0');
  for (auto& c : junk) c = static_cast<char>(rng());
  std::string garbageFrames;
  for (int i = 0; i < 64; ++i)
    garbageFrames += u32(0) + u32(4) + u32(0xdeadbeefu) + u32(0x7fffffffu) + u32(0xffffffffu) +
                     u32(0x00000001u) + u32(0xfffffffcu) + u32(0x7fffffffu) + u32(0) + u32(0);
  const std::vector<std::pair<std::string, std::string>> attempts = {
      {"128 KiB of random bytes", junk},
      {"a frame header claiming 2^32 segments",
       u32(0xffffffffu) + u32(0xffffffffu) + std::string(4096, '\xff')},
      {"well-framed messages with out-of-bounds pointers", garbageFrames},
      {"a half-sent frame, then hang up", u32(0) + u32(1000) + std::string(100, 'x')},
  };
  for (const auto& [what, bytes] : attempts) {
    sendAs(kNobodyUid, helper().socketPath(), bytes);
    itest::RunOptions o;
    o.asUid = kNobodyUid;
    o.timeout = 30s;
    auto r = run({"--", "echo", "served"}, o);
    std::string got = !helper().alive()                        ? "helper dead"
                      : r.exitCode == 0 && r.out == "served\n" ? "alive and serving"
                                                               : "not serving: " + r.describe();
    check(kNobodyUid, "crash the helper with " + what, exactly("alive and serving"), got);
  }
}

}  // namespace
}  // namespace gpubox::escape
