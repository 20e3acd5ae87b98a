// recvRecords: what the helper's loop reads from an init in one call. It
// takes every waiting record up to its batch, in order, says when none
// waits (EAGAIN), marks the peer's end and a record cut short, and leaves
// no descriptor of a record that carried some open.
#include "fd_passing.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <string>

namespace gpubox {
namespace {

struct Record {
  uint32_t n;
  char text[60];
};

class RecvRecords : public ::testing::Test {
 protected:
  void SetUp() override {
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
    ours_.reset(sv[0]);
    theirs_.reset(sv[1]);
  }
  void send(uint32_t n, const std::vector<int>& fds = {}) {
    Record r = {};
    r.n = n;
    std::snprintf(r.text, sizeof r.text, "record %u", n);
    ASSERT_TRUE(sendRecord(theirs_.get(), &r, sizeof r, fds));
  }
  UniqueFd ours_, theirs_;
};

size_t openFds() {
  size_t n = 0;
  DIR* d = ::opendir("/proc/self/fd");
  while (::readdir(d)) ++n;
  ::closedir(d);
  return n;
}

TEST_F(RecvRecords, NoneWaitingIsEagain) {
  std::array<Record, 4> recs;
  std::array<ssize_t, 4> sizes;
  errno = 0;
  EXPECT_EQ(recvRecords(ours_.get(), recs.data(), sizeof(Record), 4, sizes.data()), -1);
  EXPECT_EQ(errno, EAGAIN);
}

TEST_F(RecvRecords, ABatchBeyondItsBoundIsRefused) {
  std::array<Record, kMaxRecordBatch + 1> recs;
  std::array<ssize_t, kMaxRecordBatch + 1> sizes;
  send(1);
  errno = 0;
  EXPECT_EQ(recvRecords(ours_.get(), recs.data(), sizeof(Record), recs.size(), sizes.data()), -1);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_EQ(recvRecords(ours_.get(), recs.data(), sizeof(Record), kMaxRecordBatch, sizes.data()),
            1);
}

TEST_F(RecvRecords, TakesEveryWaitingRecordInOrderUpToItsBatch) {
  for (uint32_t i = 1; i <= 5; ++i) send(i);
  std::array<Record, 3> recs;
  std::array<ssize_t, 3> sizes;
  ASSERT_EQ(recvRecords(ours_.get(), recs.data(), sizeof(Record), 3, sizes.data()), 3);
  for (uint32_t i = 0; i < 3; ++i) {
    EXPECT_EQ(sizes[i], static_cast<ssize_t>(sizeof(Record)));
    EXPECT_EQ(recs[i].n, i + 1);
    EXPECT_STREQ(recs[i].text, ("record " + std::to_string(i + 1)).c_str());
  }
  // Two were left: a batch that is not full says none is left waiting.
  ASSERT_EQ(recvRecords(ours_.get(), recs.data(), sizeof(Record), 3, sizes.data()), 2);
  EXPECT_EQ(recs[0].n, 4u);
  EXPECT_EQ(recs[1].n, 5u);
  errno = 0;
  EXPECT_EQ(recvRecords(ours_.get(), recs.data(), sizeof(Record), 3, sizes.data()), -1);
  EXPECT_EQ(errno, EAGAIN);
}

TEST_F(RecvRecords, ClosesTheDescriptorsARecordCarried) {
  const size_t before = openFds();
  {
    UniqueFd a(::open("/dev/null", O_RDONLY | O_CLOEXEC)), b(::open("/", O_RDONLY | O_CLOEXEC));
    send(7, {a.get(), b.get()});
  }
  std::array<Record, 2> recs;
  std::array<ssize_t, 2> sizes;
  ASSERT_EQ(recvRecords(ours_.get(), recs.data(), sizeof(Record), 2, sizes.data()), 1);
  EXPECT_EQ(recs[0].n, 7u);
  EXPECT_EQ(openFds(), before) << "a descriptor sent with a record stayed open";
}

TEST_F(RecvRecords, MarksARecordCutShortAndThePeersEnd) {
  const std::string tooLong(sizeof(Record) + 10, 'x');
  ASSERT_TRUE(sendRecord(theirs_.get(), tooLong.data(), tooLong.size(), {}));
  send(2);
  theirs_.reset();
  std::array<Record, 4> recs;
  std::array<ssize_t, 4> sizes;
  const ssize_t n = recvRecords(ours_.get(), recs.data(), sizeof(Record), 4, sizes.data());
  ASSERT_GE(n, 3);
  EXPECT_EQ(sizes[0], -1) << "a record longer than asked for is cut short";
  EXPECT_EQ(sizes[1], static_cast<ssize_t>(sizeof(Record)));
  EXPECT_EQ(recs[1].n, 2u);
  EXPECT_EQ(sizes[2], 0) << "the peer's end reads as a record of 0 bytes";
}

}  // namespace
}  // namespace gpubox
