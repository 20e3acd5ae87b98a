// GuardedMessageStream over a real socket pair: a message for a client that
// has closed its socket is not written (the write would fail with EPIPE, and
// kj would throw), while a client that only shut its writing side still gets
// what is sent.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <capnp/message.h>
#include <capnp/rpc.capnp.h>
#include <kj/async-io.h>

#include <memory>

#include "connection_guard.hpp"
#include "guarded_stream.hpp"
#include "loop_fixture.hpp"
#include "unique_fd.hpp"

namespace gpubox {
namespace {

class GuardedStream : public LoopFixture {
 protected:
  void SetUp() override {
    // As in the helper: a failed write reports EPIPE instead of killing us.
    ::signal(SIGPIPE, SIG_IGN);
    int fds[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fds), 0);
    client = UniqueFd(fds[1]);
    helperFd = fds[0];
    stream =
        std::make_unique<kj::Own<kj::AsyncCapabilityStream>>(io.lowLevelProvider->wrapUnixSocketFd(
            fds[0], kj::LowLevelAsyncIoProvider::TAKE_OWNERSHIP |
                        kj::LowLevelAsyncIoProvider::ALREADY_CLOEXEC |
                        kj::LowLevelAsyncIoProvider::ALREADY_NONBLOCK));
    guard = std::make_shared<ConnectionGuard>(ctx.limits, ctx.callsInFlight, ctx.timer, 0);
    messages = std::make_unique<GuardedMessageStream>(**stream, helperFd, guard);
  }

  // Reads until the client's end reads as closed, as the RPC system does.
  void readToEnd() {
    auto read = messages->tryReadMessage(nullptr, capnp::ReaderOptions(), nullptr);
    EXPECT_TRUE(read.wait(io.waitScope) == nullptr);
  }

  // Writes an Abort, the message the RPC system sends to a peer that is gone.
  void writeAbort() {
    capnp::MallocMessageBuilder message;
    message.initRoot<capnp::rpc::Message>().initAbort().setReason("peer disconnected");
    messages->writeMessage(nullptr, message.getSegmentsForOutput()).wait(io.waitScope);
  }

  UniqueFd client;
  int helperFd = -1;
  // (Held by pointer: kj's destructors may throw, a fixture's may not.)
  std::unique_ptr<kj::Own<kj::AsyncCapabilityStream>> stream;
  std::shared_ptr<ConnectionGuard> guard;
  std::unique_ptr<GuardedMessageStream> messages;
};

TEST_F(GuardedStream, NothingIsWrittenToAClientThatClosedItsSocket) {
  client.reset();
  readToEnd();
  // Without the check this write fails with EPIPE and throws.
  EXPECT_NO_THROW(writeAbort());
}

TEST_F(GuardedStream, AClientThatOnlyShutItsWritingSideStillGetsWhatIsSent) {
  ASSERT_EQ(::shutdown(client.get(), SHUT_WR), 0);
  readToEnd();
  writeAbort();
  char buf[256];
  EXPECT_GT(::read(client.get(), buf, sizeof buf), 0);
}

TEST_F(GuardedStream, WritesGoOutWhileTheClientsEndIsOpen) {
  writeAbort();
  char buf[256];
  EXPECT_GT(::read(client.get(), buf, sizeof buf), 0);
}

}  // namespace
}  // namespace gpubox
