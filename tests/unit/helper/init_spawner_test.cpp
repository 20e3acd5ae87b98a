// What a spawner hands back: an init waiting for its configuration, whose
// control socket is non-blocking on the helper's end (so no send from the
// event loop can hang on an init that stopped reading) and blocking on the
// init's (which waits for its Go record instead of giving up at once).
#include "init_spawner.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>
#include <vector>

#include "sandbox/fd_passing.hpp"

namespace gpubox {
namespace {

TEST(SpawnerProcess, HandsBackAnInitWhoseControlSocketNeverBlocksTheHelper) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root: the init is cloned into new namespaces";
  SpawnerProcess spawner("gpubox-test-sp");
  ASSERT_TRUE(spawner.ask(/*newUser=*/true, /*newNetwork=*/true, -1));
  char reply[4096];
  std::vector<UniqueFd> fds;
  const ssize_t n = recvRecord(spawner.socket(), reply, sizeof(reply), &fds, 2);
  LaunchedInit init = SpawnerProcess::initFrom(n, reply, fds, true, true);
  ASSERT_GT(init.pid, 0);

  const int flags = ::fcntl(init.control.get(), F_GETFL);
  ASSERT_GE(flags, 0);
  EXPECT_TRUE(flags & O_NONBLOCK) << "the helper's end of the control socket blocks";

  // Its own end blocking, the init waits for Go; had its read failed with
  // EAGAIN it would have exited already.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  siginfo_t info = {};
  ASSERT_EQ(
      ::waitid(P_PIDFD, static_cast<id_t>(init.pidfd.get()), &info, WEXITED | WNOHANG | WNOWAIT),
      0);
  EXPECT_EQ(info.si_pid, 0) << "the init exited before its configuration came";

  // CLONE_PARENT made it this process's child: end and reap it.
  ASSERT_EQ(::syscall(SYS_pidfd_send_signal, init.pidfd.get(), SIGKILL, nullptr, 0), 0);
  ASSERT_EQ(::waitid(P_PIDFD, static_cast<id_t>(init.pidfd.get()), &info, WEXITED), 0);
  EXPECT_EQ(info.si_status, SIGKILL);
}

}  // namespace
}  // namespace gpubox
