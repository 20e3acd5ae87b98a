// The benchmark's task-state sampler (--task-states): how it reads a blocked
// task's kernel stack, and that it sees real tasks running, asleep and
// blocked, under their own names.
#include "task_states.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <ctime>
#include <thread>

namespace gpubox::bench {
namespace {

using ::testing::AnyOf;
using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Key;

TEST(BlockedWhere, NamesTheFunctionThatWaitsAndHow) {
  EXPECT_EQ(blockedWhere("[<0>] __mutex_lock.constprop.0+0x1a/0x40\n"
                         "[<0>] cgroup_bpf_prog_attach+0x2b/0x90\n"
                         "[<0>] __sys_bpf+0x1c/0x300\n"),
            "cgroup_bpf_prog_attach (__mutex_lock)");
  // A grace period under a lock: the outer and the inner way of waiting.
  EXPECT_EQ(blockedWhere("[<0>] synchronize_rcu_normal+0x10/0x20\n"
                         "[<0>] synchronize_rcu+0x10/0x20\n"
                         "[<0>] rcu_sync_enter+0x10/0x20\n"
                         "[<0>] percpu_down_write+0x10/0x20\n"
                         "[<0>] cgroup_procs_write_start+0x10/0x20\n"
                         "[<0>] __cgroup_procs_write+0x10/0x20\n"),
            "cgroup_procs_write_start (percpu_down_write > synchronize_rcu_normal)");
  EXPECT_EQ(blockedWhere("[<0>] wait_for_vfork_done+0x10/0x20\n[<0>] kernel_clone+0x1/0x2\n"),
            "wait_for_vfork_done");
  EXPECT_EQ(blockedWhere("[<0>] rcu_barrier+0x10/0x20\n"), "rcu_barrier");
  // An expedited grace period's funnel lock is how namespace_unlock waits.
  EXPECT_EQ(blockedWhere("[<0>] exp_funnel_lock+0x1/0x2\n[<0>] synchronize_rcu_expedited+0x1/0x2\n"
                         "[<0>] namespace_unlock+0x1/0x2\n[<0>] put_mnt_ns+0x1/0x2\n"),
            "namespace_unlock (synchronize_rcu_expedited > exp_funnel_lock)");
  EXPECT_EQ(blockedWhere(""), "");
}

TEST(TaskGroup, KernelWorkersAreOneGroup) {
  EXPECT_EQ(taskGroup("kworker/u8:2-events_unbound"), "kworker");
  EXPECT_EQ(taskGroup("gpubox-init"), "gpubox-init");
}

// A child named NAME doing BODY until killed.
template <typename Body>
pid_t child(const char* name, Body body) {
  pid_t pid = ::fork();
  if (pid == 0) {
    ::prctl(PR_SET_NAME, name);
    body();
    ::_exit(0);
  }
  return pid;
}

TEST(TaskStateSampler, SeesTasksRunningAsleepAndBlocked) {
  pid_t spin = child("gbxprobe-spin", [] {
    std::atomic<unsigned long> turns{0};
    for (;;) turns.fetch_add(1, std::memory_order_relaxed);
  });
  pid_t sleeper = child("gbxprobe-sleep", [] { ::pause(); });
  // A vfork parent waits in the kernel, uninterruptibly, until its child
  // execs or exits: blocked, in wait_for_vfork_done.
  pid_t vforker = child("gbxprobe-vfork", [] {
    if (::vfork() == 0) {
      timespec second{1, 0};
      ::nanosleep(&second, nullptr);
      ::_exit(0);
    }
  });
  ASSERT_GT(spin, 0);
  ASSERT_GT(sleeper, 0);
  ASSERT_GT(vforker, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));

  TaskStateSampler sampler({"gbxprobe-"}, std::chrono::milliseconds(10));
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  TaskStates seen = sampler.stop();

  for (pid_t p : {spin, sleeper}) ::kill(p, SIGKILL);
  for (pid_t p : {spin, sleeper, vforker}) ::waitpid(p, nullptr, 0);

  // About 40 scans on an idle machine; a few are enough for what follows.
  EXPECT_GE(seen.scans, 3u);
  EXPECT_GT(seen.running, 0u);
  EXPECT_GT(seen.sleeping, 0u);
  EXPECT_GT(seen.blocked, 0u);
  // Every scan saw the four (the vfork child sleeps under its parent's
  // name) and nothing else: not the benchmark's threads, not the rest of
  // the machine.
  EXPECT_GE(seen.samples(), 4 * seen.scans - 4);
  EXPECT_LE(seen.samples(), 4 * seen.scans);
  if (::geteuid() != 0) {
    GTEST_SKIP() << "not root: a blocked task's kernel stack is root's to read, so where it "
                    "waited was not checked";
  }
  // The scheduler's own frames never show in /proc/PID/stack; where
  // wait_for_vfork_done is inlined, its caller is the frame left.
  EXPECT_THAT(seen.blockedIn, Contains(Key(AnyOf(HasSubstr("gbxprobe-vfork: wait_for_vfork_done"),
                                                 HasSubstr("gbxprobe-vfork: kernel_clone")))));
}

}  // namespace
}  // namespace gpubox::bench
