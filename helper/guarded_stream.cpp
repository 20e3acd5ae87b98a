#include "guarded_stream.hpp"

#include <capnp/rpc.capnp.h>

namespace gpubox {

kj::Promise<kj::Maybe<capnp::MessageReaderAndFds>> GuardedMessageStream::tryReadMessage(
    kj::ArrayPtr<kj::AutoCloseFd> fdSpace, capnp::ReaderOptions options,
    kj::ArrayPtr<capnp::word> scratchSpace) {
  return inner_.tryReadMessage(fdSpace, options, scratchSpace)
      .then([guard = guard_](kj::Maybe<capnp::MessageReaderAndFds> message) {
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

}  // namespace gpubox
