// The reaper with its thread, as gpubox-helper runs it: a killed child is
// reaped off the home loop and its release runs on the home loop; a child
// still alive is not touched; stop() reaps in place what is left; and
// before start() (and after stop()) a reap happens at once. Real children,
// no root needed.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <functional>
#include <memory>
#include <thread>

#include "home_loop.hpp"
#include "loop_fixture.hpp"
#include "reaper.hpp"
#include "sandbox/syscalls.hpp"
#include "unique_fd.hpp"

namespace gpubox {
namespace {

struct Child {
  pid_t pid = -1;
  UniqueFd pidfd;
};

// A child that sleeps until it is killed.
Child sleepingChild() {
  Child c;
  c.pid = ::fork();
  if (c.pid == 0) {
    ::pause();
    ::_exit(0);
  }
  c.pidfd = UniqueFd(sys::pidfdOpen(c.pid));
  return c;
}

// Whether PID is still a child of ours to wait for (alive or a zombie).
bool stillOurs(pid_t pid) {
  siginfo_t info = {};
  return ::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0;
}

class ReaperTest : public LoopFixture {
 protected:
  void turnUntil(const std::function<bool()>& done) {
    for (int i = 0; i < 2000 && !done(); ++i)
      io.provider->getTimer().afterDelay(1 * kj::MILLISECONDS).wait(io.waitScope);
  }
  // (Held by pointer: its destructor may throw, a fixture's may not.)
  std::unique_ptr<HomeLoop> homeOwner = std::make_unique<HomeLoop>(io.unixEventPort);
  HomeLoop& home = *homeOwner;
  Reaper reaper;
};

TEST_F(ReaperTest, AKilledChildIsReapedAndReleasedOnTheHomeLoop) {
  reaper.start(home);
  Child c = sleepingChild();
  ASSERT_TRUE(c.pidfd);
  std::thread::id releasedOn;
  int releases = 0;
  std::function<void()> after = [&] {
    releasedOn = std::this_thread::get_id();
    ++releases;
  };
  ASSERT_EQ(sys::pidfdSendSignal(c.pidfd.get(), SIGKILL), 0);
  reaper.reap(c.pidfd, after);
  EXPECT_FALSE(c.pidfd) << "the reaper owns the pidfd";
  EXPECT_EQ(reaper.pending(), 1u);
  turnUntil([&] { return releases > 0; });
  EXPECT_EQ(releases, 1);
  EXPECT_EQ(releasedOn, std::this_thread::get_id());
  EXPECT_EQ(reaper.pending(), 0u);
  EXPECT_FALSE(stillOurs(c.pid)) << "not reaped";
  reaper.stop();
}

TEST_F(ReaperTest, ALiveChildWaitsAndStopReapsWhatIsLeft) {
  reaper.start(home);
  Child alive = sleepingChild();
  int releases = 0;
  std::function<void()> after = [&] { ++releases; };
  const pid_t pid = alive.pid;
  reaper.reap(alive.pidfd, after);
  // Not killed yet: nothing happens, however long the loop turns.
  for (int i = 0; i < 50; ++i)
    io.provider->getTimer().afterDelay(1 * kj::MILLISECONDS).wait(io.waitScope);
  EXPECT_EQ(releases, 0);
  EXPECT_TRUE(stillOurs(pid));
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  reaper.stop();  // reaps it here, and releases it
  EXPECT_EQ(releases, 1);
  EXPECT_EQ(reaper.pending(), 0u);
  EXPECT_FALSE(stillOurs(pid));
}

TEST_F(ReaperTest, WithoutItsThreadAReapHappensAtOnce) {
  Child c = sleepingChild();
  int releases = 0;
  std::function<void()> after = [&] { ++releases; };
  ASSERT_EQ(sys::pidfdSendSignal(c.pidfd.get(), SIGKILL), 0);
  reaper.reap(c.pidfd, after);  // before start()
  EXPECT_EQ(releases, 1);
  EXPECT_FALSE(stillOurs(c.pid));
}

TEST_F(ReaperTest, ManyChildrenAreEachReleasedOnce) {
  reaper.start(home);
  std::vector<pid_t> pids;
  int releases = 0;
  for (int i = 0; i < 40; ++i) {
    Child c = sleepingChild();
    pids.push_back(c.pid);
    std::function<void()> after = [&] { ++releases; };
    ASSERT_EQ(sys::pidfdSendSignal(c.pidfd.get(), SIGKILL), 0);
    reaper.reap(c.pidfd, after);
  }
  turnUntil([&] { return releases == 40; });
  EXPECT_EQ(releases, 40);
  EXPECT_EQ(reaper.pending(), 0u);
  for (pid_t pid : pids) EXPECT_FALSE(stillOurs(pid)) << pid;
  reaper.stop();
  EXPECT_EQ(releases, 40);
}

}  // namespace
}  // namespace gpubox
