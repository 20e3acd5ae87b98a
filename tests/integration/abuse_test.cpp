// The helper survives hostile clients (invariant 5) and keeps serving the
// others: raw-socket clients send random bytes, a truncated message, a
// segment table announcing 100 MiB, deeply nested lists, thousands of file
// descriptors, and a flood of calls whose answers they never read; one
// connects and says nothing. Each must be disconnected (the test sees EOF),
// while the real `gpubox` CLI, as root and as uid 65534, keeps getting
// answers within a generous factor of the time it took before the abuse, the
// helper's memory and descriptors stay bounded, and it exits 0 on SIGTERM.
// Also: the helper's own capability sets, in every thread, are exactly the
// documented ones (docs/security.md, "The helper's privileges").
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <capnp/message.h>
#include <capnp/rpc.capnp.h>
#include <capnp/serialize.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <dirent.h>
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gpubox.capnp.h"
#include "harness.hpp"
#include "unique_fd.hpp"

namespace gpubox::itest {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// The shortened idle timeout the abuse helper runs with.
constexpr int kIdleSeconds = 3;

using Fd = gpubox::UniqueFd;

Fd connectTo(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0)
    ADD_FAILURE() << "connect " << path << ": " << std::strerror(errno);
  return Fd(fd);
}

// Writes what the helper will take; stops (returns false) once it has
// closed the connection.
bool sendAll(int fd, const void* data, size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    struct pollfd pfd = {fd, POLLOUT, 0};
    if (::poll(&pfd, 1, 20000) != 1) return false;
    ssize_t n = ::send(fd, p, size, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (n <= 0) return false;
    p += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

// True once the helper has closed the connection: reading (and discarding
// whatever it answered, such as Cap'n Proto's Abort message) reaches EOF or
// a reset within `timeout`.
bool closedByHelper(int fd, milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  char buf[65536];
  for (;;) {
    const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return false;
    struct pollfd pfd = {fd, POLLIN, 0};
    int r = ::poll(&pfd, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    ssize_t n = ::recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno == ECONNRESET)) return true;
  }
}

std::vector<uint8_t> randomBytes(size_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::vector<uint8_t> out(n);
  for (auto& b : out) b = static_cast<uint8_t>(gen());
  return out;
}

void putWord(std::vector<uint8_t>& out, uint64_t w) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<uint8_t>(w >> (8 * i)));
}

// A one-segment message's framing: segment count - 1, then the size in words.
void putSegmentTable(std::vector<uint8_t>& out, uint32_t words) {
  putWord(out, static_cast<uint64_t>(words) << 32);
}

std::vector<uint8_t> flat(capnp::MessageBuilder& message) {
  auto words = capnp::messageToFlatArray(message);
  auto bytes = words.asBytes();
  return std::vector<uint8_t>(bytes.begin(), bytes.end());
}

// Bootstrap, then `count` info() calls on the bootstrap capability, as the
// bytes a Cap'n Proto client would send; with `finish`, each call is
// followed by its Finish (what a client sends once it has the answer).
std::vector<uint8_t> bootstrapAndInfoCalls(size_t count, bool finish = true) {
  std::vector<uint8_t> out;
  {
    capnp::MallocMessageBuilder m;
    m.initRoot<capnp::rpc::Message>().initBootstrap().setQuestionId(0);
    out = flat(m);
  }
  for (size_t i = 0; i < count; ++i) {
    capnp::MallocMessageBuilder m;
    auto call = m.initRoot<capnp::rpc::Message>().initCall();
    call.setQuestionId(static_cast<uint32_t>(i + 1));
    call.initTarget().initPromisedAnswer().setQuestionId(0);
    call.setInterfaceId(capnp::typeId<wire::Helper>());
    call.setMethodId(0);  // info
    call.initParams().getContent().initAsAnyStruct(0, 0);
    auto bytes = flat(m);
    out.insert(out.end(), bytes.begin(), bytes.end());
    if (!finish) continue;
    capnp::MallocMessageBuilder f;
    f.initRoot<capnp::rpc::Message>().initFinish().setQuestionId(static_cast<uint32_t>(i + 1));
    bytes = flat(f);
    out.insert(out.end(), bytes.begin(), bytes.end());
  }
  return out;
}

// The helper's /proc/PID/status field (kB figures), as a number.
uint64_t statusKb(pid_t pid, const std::string& key) {
  std::string v = statusField(readFile("/proc/" + std::to_string(pid) + "/status"), key);
  return v.empty() ? 0 : std::stoull(v);
}

size_t openFds(pid_t pid) {
  size_t n = 0;
  DIR* d = ::opendir(("/proc/" + std::to_string(pid) + "/fd").c_str());
  if (!d) return 0;
  while (struct dirent* e = ::readdir(d))
    if (e->d_name[0] != '.') ++n;
  ::closedir(d);
  return n;
}

class Abuse : public HelperTest {
 protected:
  HelperOptions helperOptions() override {
    // A pool of fixed size (no growth on demand): the descriptors it holds
    // then do not change with load, and the counts below compare.
    // Two pool spawners, whatever the host's CPUs, so the capability check
    // below covers every spawner process there can be.
    return {.extraArgs = {"--idle-connection-timeout", std::to_string(kIdleSeconds) + "s",
                          "--warm-inits", "4", "--warm-inits-max", "4", "--pool-spawners", "2",
                          "--rpc-threads", "3"}};
  }

  void SetUp() override {
    HelperTest::SetUp();
    if (IsSkipped()) return;
    // Baselines, each the slowest of three runs (warm caches, busy CI).
    for (int i = 0; i < 3; ++i)
      for (size_t k = 0; k < kProbes.size(); ++k)
        baseline_[k] = std::max(baseline_[k], timeProbe(k));
    baseRssKb_ = statusKb(helper().pid(), "VmRSS");
    // Once the pool has made again the inits these runs took (it does so
    // after each sandbox's command ended), so the count is its steady one.
    pollUntil([&] { return initChildren(helper().pid()).size() == 4; }, std::chrono::seconds(10));
    baseFds_ = openFds(helper().pid());
  }

  void TearDown() override {
    if (helper_ && !IsSkipped()) {
      // Alive through all of it, and a clean stop.
      EXPECT_TRUE(helper().alive()) << helper().log();
      helper().kill(SIGTERM);
      auto status = helper().waitExit(std::chrono::seconds(30));
      ASSERT_TRUE(status.has_value()) << "helper did not stop on SIGTERM";
      EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0)
          << "wait status " << *status << "\n"
          << helper().log();
    }
    HelperTest::TearDown();
  }

  struct Probe {
    std::vector<std::string> args;
    uid_t uid;
  };
  const std::vector<Probe> kProbes = {{{"info"}, 0},
                                      {{"info"}, kNobodyUid},
                                      {{"run", "--", "true"}, 0},
                                      {{"run", "--", "true"}, kNobodyUid}};

  milliseconds timeProbe(size_t k) {
    const auto start = Clock::now();
    RunResult r = helper().cli(kProbes[k].args, RunOptions{.asUid = kProbes[k].uid});
    const auto took = std::chrono::duration_cast<milliseconds>(Clock::now() - start);
    EXPECT_EQ(r.exitCode, 0) << r.describe();
    return took;
  }

  // What the helper may keep after an abuse. Under AddressSanitizer (the
  // suite's ASan run builds the helper the same way as this test) freed
  // memory sits in ASan's quarantine (256 MiB by default) instead of going
  // back, so RSS cannot fall back the same way, and what is kept costs
  // about twice as much (redzones, shadow): a flood of unread answers that
  // leaves a plain helper 22 MiB larger (what its allocator keeps)
  // left an ASan one 362 MiB larger.
#if defined(__SANITIZE_ADDRESS__)
  static constexpr int64_t kRssAllowanceKb = (128 + 256) * 1024;
#else
  static constexpr int64_t kRssAllowanceKb = 64 * 1024;
#endif

  // The well-behaved clients still get their answers in their usual time
  // (a generous factor of the slowest of them before the abuse, and the
  // better of two tries: the machine is shared), and the helper holds no
  // more memory or descriptors than before, give or take.
  void expectOthersUnaffected(const std::string& after) {
    const int64_t slowest = std::max_element(baseline_.begin(), baseline_.end())->count();
    for (size_t k = 0; k < kProbes.size(); ++k) {
      const milliseconds took = std::min(timeProbe(k), timeProbe(k));
      EXPECT_LE(took.count(), kSlowdown * std::max<int64_t>(slowest, 1))
          << "gpubox " << kProbes[k].args[0] << " as uid " << kProbes[k].uid << " after " << after
          << " took " << took.count() << " ms; before, the slowest probe took " << slowest << " ms";
    }
    EXPECT_LT(statusKb(helper().pid(), "VmRSS"), baseRssKb_ + kRssAllowanceKb)
        << "helper RSS after " << after << "\n"
        << helper().log();
    EXPECT_TRUE(pollUntil([&] { return openFds(helper().pid()) <= baseFds_ + 2; },
                          std::chrono::seconds(10)))
        << "helper holds " << openFds(helper().pid()) << " fds after " << after << ", " << baseFds_
        << " before";
    EXPECT_TRUE(helper().alive()) << helper().log();
  }

  static constexpr int64_t kSlowdown = 30;
  std::vector<milliseconds> baseline_ = std::vector<milliseconds>(4, milliseconds(0));
  uint64_t baseRssKb_ = 0;
  size_t baseFds_ = 0;
};

TEST_F(Abuse, RandomBytesGetTheClientDisconnected) {
  for (uint32_t seed = 1; seed <= 8; ++seed) {
    Fd c = connectTo(helper().socketPath());
    auto bytes = randomBytes(64 * 1024, seed);
    sendAll(c.get(), bytes.data(), bytes.size());
    EXPECT_TRUE(closedByHelper(c.get(), std::chrono::seconds(10))) << "seed " << seed;
  }
  expectOthersUnaffected("random bytes");
}

TEST_F(Abuse, TruncatedMessageThenHangupOrSilence) {
  // The table announces 1000 words; 100 come. Then the client hangs up...
  {
    Fd c = connectTo(helper().socketPath());
    std::vector<uint8_t> msg;
    putSegmentTable(msg, 1000);
    msg.resize(msg.size() + 100 * 8, 0);
    ASSERT_TRUE(sendAll(c.get(), msg.data(), msg.size()));
    ::shutdown(c.get(), SHUT_WR);
    EXPECT_TRUE(closedByHelper(c.get(), std::chrono::seconds(10)));
  }
  // ... or says nothing more: the idle timeout ends it.
  Fd c = connectTo(helper().socketPath());
  std::vector<uint8_t> msg;
  putSegmentTable(msg, 1000);
  msg.resize(msg.size() + 100 * 8, 0);
  ASSERT_TRUE(sendAll(c.get(), msg.data(), msg.size()));
  expectOthersUnaffected("a truncated message");
  EXPECT_TRUE(closedByHelper(c.get(), std::chrono::seconds(4 * kIdleSeconds)));
  // Logged through the record writer (log.hpp): it may come a moment later.
  EXPECT_TRUE(pollUntil(
      [&] { return helper().log().find("closed an idle connection") != std::string::npos; },
      std::chrono::seconds(10)))
      << helper().log();
}

TEST_F(Abuse, HundredMebibyteSegmentIsRefusedUnread) {
  const uint64_t vmBefore = statusKb(helper().pid(), "VmPeak");
  Fd c = connectTo(helper().socketPath());
  std::vector<uint8_t> msg;
  putSegmentTable(msg, 100 * 1024 * 1024 / 8);
  putWord(msg, 0);
  ASSERT_TRUE(sendAll(c.get(), msg.data(), msg.size()));
  // Refused on reading the table: no waiting for the 100 MiB, nor an idle timeout.
  EXPECT_TRUE(closedByHelper(c.get(), std::chrono::seconds(kIdleSeconds - 1)));
  // Nothing the size of the announced segment was ever mapped.
  EXPECT_LT(statusKb(helper().pid(), "VmPeak"), vmBefore + 50 * 1024);
  expectOthersUnaffected("a 100 MiB segment table");
}

TEST_F(Abuse, DeeplyNestedListsAreRefused) {
  // 100000 lists, each the only element of the one before: a root pointer
  // chain 100000 deep (within the size limit, far past the nesting limit).
  constexpr uint32_t kDepth = 100000;
  Fd c = connectTo(helper().socketPath());
  std::vector<uint8_t> msg;
  putSegmentTable(msg, kDepth + 1);
  // List pointer: offset 0 (the next word), element size 6 (pointer), 1 element.
  for (uint32_t i = 0; i < kDepth; ++i) putWord(msg, (uint64_t{(1 << 3) | 6} << 32) | 1);
  putWord(msg, 0);
  ASSERT_TRUE(sendAll(c.get(), msg.data(), msg.size()));
  EXPECT_TRUE(closedByHelper(c.get(), std::chrono::seconds(kIdleSeconds - 1)));
  expectOthersUnaffected("deeply nested lists");
}

TEST_F(Abuse, ThousandsOfFdsAreNotKept) {
  // As many as the kernel lets one message carry (SCM_MAX_FD, 253), over
  // and over, with bytes that are no message at all.
  constexpr int kPerMessage = 253;
  std::vector<int> fds;
  for (int i = 0; i < kPerMessage; ++i) fds.push_back(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  Fd c = connectTo(helper().socketPath());
  size_t sent = 0;
  for (int m = 0; m < 40; ++m) {
    char byte = static_cast<char>(m);
    struct iovec iov = {&byte, 1};
    std::vector<char> control(CMSG_SPACE(sizeof(int) * kPerMessage));
    struct msghdr mh = {};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = control.data();
    mh.msg_controllen = control.size();
    struct cmsghdr* cm = CMSG_FIRSTHDR(&mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int) * kPerMessage);
    std::memcpy(CMSG_DATA(cm), fds.data(), sizeof(int) * kPerMessage);
    if (::sendmsg(c.get(), &mh, MSG_NOSIGNAL) != 1) break;  // the helper hung up already
    sent += kPerMessage;
  }
  for (int fd : fds) ::close(fd);
  EXPECT_GE(sent, size_t{kPerMessage});
  EXPECT_TRUE(closedByHelper(c.get(), std::chrono::seconds(4 * kIdleSeconds)));
  expectOthersUnaffected(std::to_string(sent) + " fds");
}

TEST_F(Abuse, FloodOfCallsOverTheInFlightBound) {
  // 20000 info() calls at once: each is answered on the home loop, so they
  // are in flight for a while, and past --max-calls-per-connection (256)
  // each is refused; a client that goes on sending after as many refusals
  // is closed.
  Fd c = connectTo(helper().socketPath());
  auto bytes = bootstrapAndInfoCalls(20000);
  std::thread reader([&] { EXPECT_TRUE(closedByHelper(c.get(), std::chrono::seconds(30))); });
  sendAll(c.get(), bytes.data(), bytes.size());
  reader.join();
  // Logged through the record writer (log.hpp): it may come a moment later.
  EXPECT_TRUE(pollUntil(
      [&] { return helper().log().find("calls in a row over its limit") != std::string::npos; },
      std::chrono::seconds(10)))
      << helper().log();
  expectOthersUnaffected("a flood of calls over the in-flight bound");
}

// The bounds on answers, with the bound on calls in flight out of their
// way: 4096 calls in flight, more than the 1024 unfinished answers or the 256
// unread ones that close a connection.
class AbuseOfAnswers : public Abuse {
 protected:
  HelperOptions helperOptions() override {
    HelperOptions o = Abuse::helperOptions();
    o.extraArgs.push_back("--max-calls-per-connection");
    o.extraArgs.push_back("4096");
    return o;
  }
};

TEST_F(AbuseOfAnswers, FloodOfCallsWhoseAnswersAreNeverRead) {
  // 20000 info() calls, sent without reading a single answer: the answers
  // pile up in the helper until it stops serving this client (at 256).
  Fd c = connectTo(helper().socketPath());
  auto bytes = bootstrapAndInfoCalls(20000);
  sendAll(c.get(), bytes.data(), bytes.size());
  EXPECT_TRUE(pollUntil(
      [&] { return helper().log().find("does not read its answers") != std::string::npos; },
      std::chrono::seconds(30)))
      << helper().log();
  EXPECT_TRUE(closedByHelper(c.get(), std::chrono::seconds(10)));
  expectOthersUnaffected("a flood of unread calls");
}

TEST_F(AbuseOfAnswers, FloodOfCallsNeverFinished) {
  // Answers read as they come, but never finished: the helper would keep
  // each one (results included) for good.
  Fd c = connectTo(helper().socketPath());
  auto bytes = bootstrapAndInfoCalls(20000, false);
  std::thread reader([&] { EXPECT_TRUE(closedByHelper(c.get(), std::chrono::seconds(30))); });
  sendAll(c.get(), bytes.data(), bytes.size());
  reader.join();
  // Logged through the record writer (log.hpp): it may come a moment later.
  EXPECT_TRUE(pollUntil([&] { return helper().log().find("never finished") != std::string::npos; },
                        std::chrono::seconds(10)))
      << helper().log();
  expectOthersUnaffected("a flood of unfinished calls");
}

TEST_F(Abuse, WellBehavedRawClientIsAnswered) {
  // The same bytes, a few calls, read as they come: answered, and the
  // connection stays until it idles out.
  Fd c = connectTo(helper().socketPath());
  auto bytes = bootstrapAndInfoCalls(3);
  ASSERT_TRUE(sendAll(c.get(), bytes.data(), bytes.size()));
  char buf[4096];
  struct pollfd pfd = {c.get(), POLLIN, 0};
  ASSERT_EQ(::poll(&pfd, 1, 10000), 1);
  EXPECT_GT(::recv(c.get(), buf, sizeof(buf), 0), 0);
  EXPECT_TRUE(closedByHelper(c.get(), std::chrono::seconds(4 * kIdleSeconds)));
}

TEST_F(Abuse, IdleConnectionIsClosedAndBusyOneIsNot) {
  Fd idle = connectTo(helper().socketPath());
  // A connection whose command runs longer than the idle timeout is busy.
  auto busy = helper().spawnCli({"run", "--", "sleep", std::to_string(2 * kIdleSeconds)},
                                RunOptions{.asUid = kNobodyUid});
  EXPECT_TRUE(closedByHelper(idle.get(), std::chrono::seconds(4 * kIdleSeconds)));
  RunResult r = busy->finish();
  EXPECT_EQ(r.exitCode, 0) << r.describe();
  expectOthersUnaffected("an idle connection");
}

std::vector<std::string> threadsNamed(pid_t pid, const std::string& name);  // below

// Capabilities: every thread of the running helper holds exactly the
// documented set (docs/security.md), bounding set included, and nothing
// inheritable or ambient.
TEST_F(Abuse, HelperThreadsHoldExactlyTheDocumentedCapabilities) {
  // CAP_SYS_ADMIN 21, CAP_NET_ADMIN 12, CAP_SETUID 7, CAP_SETGID 6,
  // CAP_SETFCAP 31, CAP_SETPCAP 8, CAP_SYS_PTRACE 19, CAP_KILL 5.
  const uint64_t documented = (1ull << 21) | (1ull << 12) | (1ull << 7) | (1ull << 6) |
                              (1ull << 31) | (1ull << 8) | (1ull << 19) | (1ull << 5);
  char mask[17];
  std::snprintf(mask, sizeof(mask), "%016llx", static_cast<unsigned long long>(documented));
  const std::string task = "/proc/" + std::to_string(helper().pid()) + "/task";
  std::vector<std::string> tids;
  DIR* d = ::opendir(task.c_str());
  ASSERT_NE(d, nullptr);
  while (struct dirent* e = ::readdir(d))
    if (e->d_name[0] != '.') tids.push_back(e->d_name);
  ::closedir(d);
  // The home loop, the GPU inventory's thread, the cgroup workers, the RPC
  // threads, which read what clients send, and the reaper, which hold
  // nothing, and the acceptor, which identifies clients: CAP_SYS_PTRACE and
  // CAP_KILL only.
  EXPECT_GE(tids.size(), 7u);
  char acceptorMask[17];
  std::snprintf(acceptorMask, sizeof(acceptorMask), "%016llx",
                static_cast<unsigned long long>((1ull << 19) | (1ull << 5)));
  size_t rpcThreads = 0, acceptors = 0;
  for (const std::string& tid : tids) {
    const std::string status = readFile(task + "/" + tid + "/status");
    const std::string comm = readFile(task + "/" + tid + "/comm");
    // The reaper thread reaps the helper's own children, and the record
    // writer writes to the journal or stderr: no capability.
    const bool rpc = comm == "gpubox-rpc\n" || comm == "gpubox-reap\n" || comm == "gpubox-log\n";
    const bool acceptor = comm == "gpubox-accept\n";
    rpcThreads += rpc;
    acceptors += acceptor;
    const std::string held = rpc ? "0000000000000000" : acceptor ? acceptorMask : mask;
    EXPECT_EQ(statusField(status, "CapEff"), held) << "thread " << tid;
    EXPECT_EQ(statusField(status, "CapPrm"), held) << "thread " << tid;
    EXPECT_EQ(statusField(status, "CapBnd"), mask) << "thread " << tid;
    EXPECT_EQ(statusField(status, "CapInh"), "0000000000000000") << "thread " << tid;
    EXPECT_EQ(statusField(status, "CapAmb"), "0000000000000000") << "thread " << tid;
  }
  EXPECT_GE(rpcThreads, 1u) << "no thread named gpubox-rpc";
  EXPECT_EQ(acceptors, 1u) << "one thread named gpubox-accept (the helper has RPC threads)";
  EXPECT_EQ(threadsNamed(helper().pid(), "gpubox-reap").size(), 1u);
  EXPECT_EQ(threadsNamed(helper().pid(), "gpubox-log").size(), 1u);
  // The spawners of inits (processes of the helper's: the warm pool's and
  // the one for requests the pool does not serve) hold the same. A
  // warm init a spawner has just cloned is the helper's child too
  // (CLONE_PARENT) and carries the spawner's name until its first steps
  // rename it: wait for those to pass.
  std::set<pid_t> spawners;
  pollUntil(
      [&] {
        spawners = childrenNamed(helper().pid(), "gpubox-spawner");
        return spawners.size() == 2;
      },
      std::chrono::seconds(5));
  ASSERT_EQ(spawners.size(), 2u) << "two gpubox-spawner children of the helper (the pool's)";
  const std::set<pid_t> requests = childrenNamed(helper().pid(), "gpubox-reqspawn");
  ASSERT_EQ(requests.size(), 1u) << "one gpubox-reqspawn child of the helper (the requests')";
  spawners.insert(*requests.begin());
  for (pid_t spawner : spawners) {
    const std::string status = readFile("/proc/" + std::to_string(spawner) + "/status");
    EXPECT_EQ(statusField(status, "CapEff"), mask) << "spawner " << spawner;
    EXPECT_EQ(statusField(status, "CapPrm"), mask) << "spawner " << spawner;
    EXPECT_EQ(statusField(status, "CapBnd"), mask) << "spawner " << spawner;
    EXPECT_EQ(statusField(status, "CapInh"), "0000000000000000") << "spawner " << spawner;
    EXPECT_EQ(statusField(status, "CapAmb"), "0000000000000000") << "spawner " << spawner;
  }
  EXPECT_THAT(helper().log(), ::testing::HasSubstr("capabilities: kept cap_sys_admin,"));
  // And with them it still does its job, for both callers.
  expectOthersUnaffected("reading capabilities");
}

// RPC threads (--rpc-threads 3 here): connections are spread over them, and
// a session made over one connection is reached from connections that other
// threads serve, as root and as uid 65534.
uint64_t threadCpuNanos(pid_t pid, const std::string& tid) {
  return std::stoull(readFile("/proc/" + std::to_string(pid) + "/task/" + tid + "/schedstat"));
}

std::vector<std::string> threadsNamed(pid_t pid, const std::string& name) {
  std::vector<std::string> out;
  const std::string task = "/proc/" + std::to_string(pid) + "/task";
  DIR* d = ::opendir(task.c_str());
  if (!d) return out;
  while (struct dirent* e = ::readdir(d))
    if (e->d_name[0] != '.' && readFile(task + "/" + e->d_name + "/comm") == name + "\n")
      out.push_back(e->d_name);
  ::closedir(d);
  return out;
}

TEST_F(Abuse, EveryRpcThreadServesConnections) {
  const std::vector<std::string> rpc = threadsNamed(helper().pid(), "gpubox-rpc");
  ASSERT_EQ(rpc.size(), 3u) << "--rpc-threads 3";
  std::vector<uint64_t> before;
  for (const std::string& tid : rpc) before.push_back(threadCpuNanos(helper().pid(), tid));
  for (int i = 0; i < 9; ++i) {
    RunResult r = helper().cli({"run", "--", "/bin/true"},
                               RunOptions{.asUid = i % 2 ? kNobodyUid : uid_t{0}});
    ASSERT_EQ(r.exitCode, 0) << r.describe();
  }
  for (size_t k = 0; k < rpc.size(); ++k)
    EXPECT_GT(threadCpuNanos(helper().pid(), rpc[k]), before[k])
        << "RPC thread " << rpc[k] << " served none of 9 connections";
}

// With RPC threads the acceptor thread, not the home loop, identifies each
// client; the placement check still reads every live sandbox's namespaces
// there. A command inside a sandbox, reaching the socket through a bind at
// another path, is refused, as root and as uid 65534, and the helper goes on
// serving everyone else.
TEST_F(Abuse, TheAcceptorThreadRefusesAClientInsideASandbox) {
  const std::string inner =
      "/mnt/h/" + std::string(std::strrchr(helper().socketPath().c_str(), '/') + 1);
  for (uid_t uid : {uid_t{0}, kNobodyUid}) {
    RunResult r =
        helper().cli({"run", "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "--tmpfs",
                      "/mnt", "--ro-bind", helper().dir(), "/mnt/h", "--", "sh", "-c",
                      cliPath() + " --socket " + inner + " run -- echo ESCAPED; echo run=$?"},
                     RunOptions{.asUid = uid});
    EXPECT_EQ(r.exitCode, 0) << r.describe();
    EXPECT_THAT(r.out, ::testing::HasSubstr("run=125")) << r.describe();
    EXPECT_THAT(r.out, ::testing::Not(::testing::HasSubstr("ESCAPED"))) << r.describe();
    EXPECT_THAT(r.err, ::testing::HasSubstr("runs inside a gpubox sandbox")) << r.describe();
  }
  EXPECT_EQ(threadsNamed(helper().pid(), "gpubox-accept").size(), 1u);
  expectOthersUnaffected("clients refused from inside sandboxes");
}

// Out of file descriptors (RLIMIT_NOFILE 2, with 0 and 1 open), accept4
// fails with EMFILE while the connection waits in the backlog, so the
// listening socket stays readable: the acceptor thread logs it and backs off
// instead of spinning. Below even the two descriptors its poll(2) watches
// (RLIMIT_NOFILE 0: EINVAL), likewise. Once
// descriptors are free again it serves the connection that waited, as uid
// 65534 (the first case) and as root (the second).
TEST_F(Abuse, TheAcceptorBacksOffWhileOutOfDescriptorsAndRecovers) {
  const pid_t pid = helper().pid();
  const std::vector<std::string> acceptor = threadsNamed(pid, "gpubox-accept");
  ASSERT_EQ(acceptor.size(), 1u);
  struct rlimit normal = {};
  ASSERT_EQ(::prlimit(pid, RLIMIT_NOFILE, nullptr, &normal), 0);
  struct Case {
    uid_t uid;
    rlim_t limit;
    std::string logged;
  };
  // Nothing else runs in the helper meanwhile: no sandbox, and a pool of
  // fixed size, full.
  for (int fd : {0, 1})
    ASSERT_EQ(
        ::access(("/proc/" + std::to_string(pid) + "/fd/" + std::to_string(fd)).c_str(), F_OK), 0)
        << "the helper's fd " << fd << " is not open";
  for (const Case& c : {Case{kNobodyUid, 2, "accept: Too many open files"},
                        Case{0, 0, "accept: poll: Invalid argument"}}) {
    const size_t logBefore = helper().log().size();
    struct rlimit tight = {c.limit, normal.rlim_max};
    ASSERT_EQ(::prlimit(pid, RLIMIT_NOFILE, &tight, nullptr), 0);
    const uint64_t cpuBefore = threadCpuNanos(pid, acceptor[0]);
    std::unique_ptr<Process> waiting =
        helper().spawnCli({"run", "--", "echo", "served"}, RunOptions{.asUid = c.uid});
    const bool logged =
        pollUntil([&] { return helper().log().find(c.logged, logBefore) != std::string::npos; },
                  std::chrono::seconds(10));
    std::this_thread::sleep_for(std::chrono::seconds(1));
    const uint64_t cpuNs = threadCpuNanos(pid, acceptor[0]) - cpuBefore;
    ASSERT_EQ(::prlimit(pid, RLIMIT_NOFILE, &normal, nullptr), 0);
    EXPECT_TRUE(logged) << "no \"" << c.logged << "\" in the log:\n" << helper().log();
    // Retrying every 100 ms takes microseconds a second; a thread spinning
    // on the readable socket would take the whole second.
    EXPECT_LT(cpuNs, 300'000'000u) << "the acceptor thread spun (limit " << c.limit << ")";
    RunResult r = waiting->finish();
    EXPECT_EQ(r.exitCode, 0) << r.describe();
    EXPECT_EQ(r.out, "served\n") << r.describe();
  }
  expectOthersUnaffected("accepting while out of descriptors");
}

TEST_F(Abuse, ASessionIsReachedFromConnectionsOnEveryRpcThread) {
  for (uid_t uid : {uid_t{0}, kNobodyUid}) {
    const std::string name = "across-" + std::to_string(uid);
    RunOptions as{.asUid = uid};
    RunResult made = helper().cli({"session", "create", "--name", name}, as);
    ASSERT_EQ(made.exitCode, 0) << made.describe();
    RunResult first =
        helper().cli({"exec", name, "--", "sh", "-c", "echo made-by-the-first > /tmp/first"}, as);
    ASSERT_EQ(first.exitCode, 0) << first.describe();
    // Each exec is a connection of its own, and the next one goes to
    // another thread: every thread reaches the same sandbox.
    for (int i = 0; i < 4; ++i) {
      RunResult r = helper().cli({"exec", name, "--", "sh", "-c", "cat /tmp/first; id -u"}, as);
      ASSERT_EQ(r.exitCode, 0) << r.describe();
      EXPECT_EQ(r.out, "made-by-the-first\n" + std::to_string(uid) + "\n") << r.describe();
    }
    RunResult removed = helper().cli({"session", "rm", name}, as);
    EXPECT_EQ(removed.exitCode, 0) << removed.describe();
  }
  expectOthersUnaffected("sessions used across RPC threads");
}

// SIGTERM while clients are mid-call on every RPC thread (waiting on
// commands, making sandboxes, opening a session): the helper stops in order
// (threads asked to close their connections, the kills they post run on the
// home loop, every init reaped) instead of deadlocking between threads, and
// leaves no sandboxed process behind.
TEST_F(Abuse, StopsInOrderWhileRpcThreadsAreMidCall) {
  RunResult made = helper().cli({"session", "create", "--name", "busy"});
  ASSERT_EQ(made.exitCode, 0) << made.describe();
  const std::string secs = "41999";
  std::vector<std::unique_ptr<Process>> clients;
  for (int i = 0; i < 6; ++i)
    clients.push_back(helper().spawnCli({"run", "--", "sleep", secs},
                                        RunOptions{.asUid = i % 2 ? kNobodyUid : uid_t{0}}));
  clients.push_back(helper().spawnCli({"exec", "busy", "--", "sleep", secs}));
  ASSERT_TRUE(pollUntil(
      [&] {
        return findProcesses({"sleep", secs}).size() == 7;
      },
      std::chrono::seconds(30)))
      << helper().log();
  // And some still arriving as the signal lands.
  for (int i = 0; i < 4; ++i)
    clients.push_back(
        helper().spawnCli({"run", "--", "/bin/true"}, RunOptions{.asUid = kNobodyUid}));
  helper().kill(SIGTERM);
  auto status = helper().waitExit(std::chrono::seconds(30));
  ASSERT_TRUE(status.has_value()) << "the helper did not stop within 30 s\n" << helper().log();
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << "wait status " << *status;
  EXPECT_TRUE(pollUntil(
      [&] {
        return findProcesses({"sleep", secs}).empty();
      },
      std::chrono::seconds(10)))
      << "sandboxed sleeps outlived the helper";
  for (size_t i = 0; i < clients.size(); ++i) {
    RunResult r = clients[i]->finish();
    // The sleeps' clients lost their helper; the late ones may have finished.
    if (i < 7) {
      EXPECT_NE(r.exitCode, 0) << "a client whose helper stopped under it: " << r.describe();
    }
  }
  helper_.reset();  // stopped already; nothing for TearDown to check
}

}  // namespace
}  // namespace gpubox::itest
