// What one client connection may make the helper hold: calls in flight (per
// connection and in all), answers queued for a client that does not read
// them, and time spent connected with nothing to do. A connection over a
// bound has its calls refused with the reason; one that keeps pushing, stops
// reading, or idles past the timeout is closed. Other clients go on.
#pragma once

#include <capnp/capability.h>
#include <capnp/rpc-twoparty.h>
#include <kj/async.h>
#include <kj/timer.h>

#include <sys/types.h>
#include <atomic>
#include <memory>
#include <string>

#include "daemon_context.hpp"
#include "kj_error.hpp"

namespace gpubox {

// Lives on the RPC thread that serves its connection (rpc_loops.hpp): TIMER
// is that thread's; CALLS_IN_FLIGHT counts over every connection.
class ConnectionGuard : public std::enable_shared_from_this<ConnectionGuard> {
 public:
  ConnectionGuard(const HelperLimits& limits, std::atomic<size_t>& callsInFlight, kj::Timer& timer,
                  uid_t uid);

  // Runs one incoming call (`dispatch`: the generated Server::dispatchCall)
  // within the bounds, counting it until its answer is ready; over a bound
  // the call fails with the reason instead.
  template <typename Dispatch>
  capnp::Capability::Server::DispatchCallResult run(Dispatch&& dispatch) {
    if (std::string why = overBound(); !why.empty())
      return {kj::Promise<void>(callerError(why)), false};
    auto result = dispatch();
    began();
    result.promise =
        result.promise.attach(kj::defer([self = shared_from_this()]() { self->ended(); }));
    return result;
  }

  // The client's Call or Bootstrap opened an answer; its Finish closed one.
  // Past HelperLimits::maxOpenAnswersPerConnection the connection is closed.
  void answerOpened();
  void answerFinished() {
    if (openAnswers_ > 0) --openAnswers_;
  }

  // A Sandbox capability of this connection exists (the RAII token's life).
  std::shared_ptr<void> holdSandbox();

  // The connection's network, for the size of its queue of unsent answers
  // (the listener clears it before the network goes).
  void attach(capnp::TwoPartyVatNetwork* network) { network_ = network; }
  // Resolves when the guard closes the connection (see close()).
  kj::Promise<void> whenClosed();
  // Resolves once the connection has had no call and no sandbox for the idle
  // timeout (never, when the timeout is 0).
  kj::Promise<void> whenIdle();
  // Closes the connection (once), logging `why`.
  void close(const std::string& why);

 private:
  std::string overBound();
  void began();
  void ended();
  bool idle() const { return callsInFlight_ == 0 && sandboxesHeld_ == 0; }

  const HelperLimits& limits_;
  std::atomic<size_t>& callsInFlightTotal_;
  kj::Timer& timer_;
  uid_t uid_;
  capnp::TwoPartyVatNetwork* network_ = nullptr;
  size_t callsInFlight_ = 0;
  size_t sandboxesHeld_ = 0;
  size_t refusedInARow_ = 0;
  size_t openAnswers_ = 0;
  kj::TimePoint lastActivity_;
  kj::Own<kj::PromiseFulfiller<void>> closer_;
  kj::Maybe<kj::Promise<void>> closed_;
};

}  // namespace gpubox
