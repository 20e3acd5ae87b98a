// The message stream under one client's RPC connection, which tells its
// ConnectionGuard how many answers the client holds open: every Call (and
// Bootstrap) makes the helper keep an answer, results included, until the
// client's Finish for it. A client that never finishes would otherwise make
// the helper keep every answer it ever gave.
#pragma once

#include <capnp/serialize-async.h>

#include <memory>

#include "connection_guard.hpp"

namespace gpubox {

class GuardedMessageStream final : public capnp::MessageStream {
 public:
  GuardedMessageStream(kj::AsyncCapabilityStream& stream, std::shared_ptr<ConnectionGuard> guard)
      : inner_(stream), guard_(std::move(guard)) {}

  kj::Promise<kj::Maybe<capnp::MessageReaderAndFds>> tryReadMessage(
      kj::ArrayPtr<kj::AutoCloseFd> fdSpace, capnp::ReaderOptions options,
      kj::ArrayPtr<capnp::word> scratchSpace) override;
  kj::Promise<void> writeMessage(
      kj::ArrayPtr<const int> fds,
      kj::ArrayPtr<const kj::ArrayPtr<const capnp::word>> segments) override {
    return inner_.writeMessage(fds, segments);
  }
  kj::Promise<void> writeMessages(
      kj::ArrayPtr<kj::ArrayPtr<const kj::ArrayPtr<const capnp::word>>> messages) override {
    return inner_.writeMessages(messages);
  }
  kj::Maybe<int> getSendBufferSize() override { return inner_.getSendBufferSize(); }
  kj::Promise<void> end() override { return inner_.end(); }

 private:
  capnp::AsyncCapabilityMessageStream inner_;
  std::shared_ptr<ConnectionGuard> guard_;
};

}  // namespace gpubox
