// The message stream under one client's RPC connection, which tells its
// ConnectionGuard how many answers the client holds open: every Call (and
// Bootstrap) makes the helper keep an answer, results included, until the
// client's Finish for it. A client that never finishes would otherwise make
// the helper keep every answer it ever gave.
//
// It also keeps the helper from writing to a client that is gone. When a
// client ends, the RPC system still sends it an Abort, and the Releases of
// the capabilities its last calls lent (a command's stdio), which often come
// after the client has exited. Into a closed socket such a write fails with
// EPIPE, and kj turns the failure into two exceptions, each with a stack
// trace (`backtrace(3)`): at 8 clients that was 43% of connections, and
// about 3.5% of the event loop's samples. Such a message could never be
// read, so it is not written.
#pragma once

#include <capnp/serialize-async.h>

#include <memory>

#include "connection_guard.hpp"

namespace gpubox {

class GuardedMessageStream final : public capnp::MessageStream {
 public:
  // `fd` is the socket under `stream`, which keeps owning it.
  GuardedMessageStream(kj::AsyncCapabilityStream& stream, int fd,
                       std::shared_ptr<ConnectionGuard> guard)
      : inner_(stream),
        fd_(fd),
        guard_(std::move(guard)),
        watchHangUp_(stream.whenWriteDisconnected()
                         .then([hungUp = hungUp_]() { *hungUp = true; })
                         .eagerlyEvaluate(nullptr)) {}

  kj::Promise<kj::Maybe<capnp::MessageReaderAndFds>> tryReadMessage(
      kj::ArrayPtr<kj::AutoCloseFd> fdSpace, capnp::ReaderOptions options,
      kj::ArrayPtr<capnp::word> scratchSpace) override;
  kj::Promise<void> writeMessage(
      kj::ArrayPtr<const int> fds,
      kj::ArrayPtr<const kj::ArrayPtr<const capnp::word>> segments) override {
    if (peerHungUp()) return kj::READY_NOW;
    return inner_.writeMessage(fds, segments);
  }
  kj::Promise<void> writeMessages(
      kj::ArrayPtr<kj::ArrayPtr<const kj::ArrayPtr<const capnp::word>>> messages) override {
    if (peerHungUp()) return kj::READY_NOW;
    return inner_.writeMessages(messages);
  }
  kj::Maybe<int> getSendBufferSize() override { return inner_.getSendBufferSize(); }
  kj::Promise<void> end() override { return inner_.end(); }

 private:
  // Whether the client has closed its socket altogether, so that nothing
  // written could reach it: epoll said so (POLLHUP), or, once the client's
  // end has read as closed and epoll has not said so yet, poll(2) does.
  // Until then every write goes out as before.
  bool peerHungUp();

  capnp::AsyncCapabilityMessageStream inner_;
  int fd_;
  std::shared_ptr<ConnectionGuard> guard_;
  // Set when a read found the client's end closed (shared with the read's
  // continuation, which may run after this stream is gone).
  std::shared_ptr<bool> readEnded_ = std::make_shared<bool>(false);
  std::shared_ptr<bool> hungUp_ = std::make_shared<bool>(false);
  kj::Promise<void> watchHangUp_;
};

}  // namespace gpubox
