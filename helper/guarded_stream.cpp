#include "guarded_stream.hpp"

#include <capnp/rpc.capnp.h>
#include <poll.h>

namespace gpubox {

kj::Promise<kj::Maybe<capnp::MessageReaderAndFds>> GuardedMessageStream::tryReadMessage(
    kj::ArrayPtr<kj::AutoCloseFd> fdSpace, capnp::ReaderOptions options,
    kj::ArrayPtr<capnp::word> scratchSpace) {
  return inner_.tryReadMessage(fdSpace, options, scratchSpace)
      .then([guard = guard_, ended = readEnded_](kj::Maybe<capnp::MessageReaderAndFds> message) {
        if (message == nullptr) *ended = true;
        KJ_IF_MAYBE (m, message) {
          // Only the root's tag: the RPC system reads (and checks) the rest.
          switch (m->reader->getRoot<capnp::rpc::Message>().which()) {
            case capnp::rpc::Message::CALL:
            case capnp::rpc::Message::BOOTSTRAP:
              guard->answerOpened();
              break;
            case capnp::rpc::Message::FINISH:
              guard->answerFinished();
              break;
            default:
              break;
          }
        }
        return message;
      });
}

bool GuardedMessageStream::peerHungUp() {
  if (*hungUp_) return true;
  if (!*readEnded_) return false;
  // POLLHUP on a Unix stream socket: both directions are shut, which the
  // peer's close does; a peer that only shut its writing side still reads
  // what is sent, and gets it.
  struct pollfd p = {fd_, POLLOUT, 0};
  *hungUp_ = ::poll(&p, 1, 0) == 1 && (p.revents & POLLHUP) != 0;
  return *hungUp_;
}

}  // namespace gpubox
