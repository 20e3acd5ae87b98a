// A control write that a signal interrupts is made again, not reported as a
// failure: the kernel checks for a pending signal before some cgroup writes
// (memory.limit_in_bytes), and the helper's loop thread takes SIGCHLD. A FIFO
// stands in for the control file, so that the write blocks until the test
// has signalled the writer; no root needed.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>

#include "cgroup_fs.hpp"
#include "unique_fd.hpp"

namespace gpubox::cgroup {
namespace {

std::atomic<bool> interrupted{false};
void noteSignal(int) {
  interrupted = true;
}

// Whether thread `tid` of this process sleeps (here: in the blocked write).
bool sleeping(pid_t tid) {
  std::ifstream in("/proc/self/task/" + std::to_string(tid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t close = text.rfind(')');
  return close != std::string::npos && close + 2 < text.size() && text[close + 2] == 'S';
}

class InterruptedControlWrite : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/gpubox-ctlXXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir = tmpl;
    ASSERT_EQ(::mkfifo((dir + "/ctl").c_str(), 0600), 0);
    reader = UniqueFd(::open((dir + "/ctl").c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
    ASSERT_TRUE(reader);
    // Fill the pipe, so that the next write blocks.
    filler = UniqueFd(::open((dir + "/ctl").c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC));
    ASSERT_TRUE(filler);
    ::fcntl(filler.get(), F_SETPIPE_SZ, 4096);
    const std::string block(4096, 'x');
    while (::write(filler.get(), block.data(), block.size()) > 0) {
    }
    dirFd = UniqueFd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    struct sigaction sa = {};
    sa.sa_handler = noteSignal;  // no SA_RESTART: the write ends with EINTR
    ASSERT_EQ(::sigaction(SIGUSR1, &sa, &previous), 0);
    interrupted = false;
  }
  void TearDown() override {
    ::sigaction(SIGUSR1, &previous, nullptr);
    ::unlink((dir + "/ctl").c_str());
    ::rmdir(dir.c_str());
  }

  // Signals the calling thread once it blocks in `write`, then empties the
  // pipe into `arrived`, less the filler.
  std::thread interruptThenDrain(std::string& arrived) {
    const pthread_t writer = ::pthread_self();
    const pid_t writerTid = ::gettid();
    return std::thread([this, writer, writerTid, &arrived]() {
      while (!sleeping(writerTid)) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      ::pthread_kill(writer, SIGUSR1);
      while (!interrupted) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      // Let the writer see EINTR and (with the retry) block again.
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      filler.reset();
      std::string all;
      char buf[4096];
      for (int idle = 0; idle < 2000; ++idle) {
        const ssize_t n = ::read(reader.get(), buf, sizeof buf);
        if (n == 0) break;  // every writer is gone
        if (n > 0) {
          all.append(buf, static_cast<size_t>(n));
          idle = 0;
        } else {
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
      }
      const size_t start = all.find_first_not_of('x');
      arrived = start == std::string::npos ? "" : all.substr(start);
    });
  }

  std::string dir;
  UniqueFd reader, filler, dirFd;
  struct sigaction previous = {};
};

TEST_F(InterruptedControlWrite, WriteControlWritesAgain) {
  std::string arrived;
  std::thread drain = interruptThenDrain(arrived);
  EXPECT_NO_THROW(writeControl(dirFd.get(), dir, "ctl", "18957385728"));
  drain.join();
  EXPECT_TRUE(interrupted);
  EXPECT_EQ(arrived, "18957385728");
}

TEST_F(InterruptedControlWrite, ControlWritesWriteAgain) {
  std::string arrived;
  std::thread drain = interruptThenDrain(arrived);
  ControlWrites writes{.file = "ctl", .values = {"c 195:0 rw"}};
  writes.carryOut(dirFd.get());
  drain.join();
  EXPECT_TRUE(interrupted);
  EXPECT_EQ(writes.err, 0) << writes.failure(dir);
  EXPECT_EQ(arrived, "c 195:0 rw");
}

}  // namespace
}  // namespace gpubox::cgroup
