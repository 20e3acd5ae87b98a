#include "connection_guard.hpp"

#include "log.hpp"

namespace gpubox {

ConnectionGuard::ConnectionGuard(const HelperLimits& limits, std::atomic<size_t>& callsInFlight,
                                 kj::Timer& timer, uid_t uid)
    : limits_(limits),
      callsInFlightTotal_(callsInFlight),
      timer_(timer),
      uid_(uid),
      lastActivity_(timer.now()) {
  auto paf = kj::newPromiseAndFulfiller<void>();
  closer_ = kj::mv(paf.fulfiller);
  closed_ = kj::mv(paf.promise);
}

std::string ConnectionGuard::overBound() {
  const HelperLimits& l = limits_;
  // Each queued answer holds a whole message (at least 8 KiB): bound their
  // number as well as their bytes.
  if (network_ && (network_->getCurrentQueueCount() > l.maxQueuedAnswers ||
                   network_->getCurrentQueueSize() > l.maxQueuedAnswerBytes)) {
    close("it does not read its answers (" + std::to_string(network_->getCurrentQueueCount()) +
          " answers, " + std::to_string(network_->getCurrentQueueSize()) +
          " bytes queued; limits " + std::to_string(l.maxQueuedAnswers) + ", " +
          std::to_string(l.maxQueuedAnswerBytes) + ")");
    return "this connection does not read its answers; the helper closes it";
  }
  std::string why;
  if (callsInFlight_ >= l.maxCallsPerConnection)
    why = "this connection has " + std::to_string(callsInFlight_) +
          " calls in flight, its limit; wait for their answers before sending more";
  else if (const size_t total = callsInFlightTotal_.load(); total >= l.maxCallsTotal)
    why = "the helper has " + std::to_string(total) +
          " calls in flight from all clients, its limit; try again later";
  if (why.empty()) return why;
  // A client that reads the refusals and keeps sending anyway is flooding.
  if (++refusedInARow_ > l.maxCallsPerConnection)
    close("it sent " + std::to_string(refusedInARow_) + " calls in a row over its limit");
  return why;
}

void ConnectionGuard::answerOpened() {
  if (++openAnswers_ > limits_.maxOpenAnswersPerConnection)
    close("it holds " + std::to_string(openAnswers_) +
          " answers it never finished (Cap'n Proto Finish), limit " +
          std::to_string(limits_.maxOpenAnswersPerConnection));
}

void ConnectionGuard::began() {
  ++callsInFlight_;
  ++callsInFlightTotal_;
  lastActivity_ = timer_.now();
}

void ConnectionGuard::ended() {
  --callsInFlight_;
  --callsInFlightTotal_;
  refusedInARow_ = 0;
  lastActivity_ = timer_.now();
}

std::shared_ptr<void> ConnectionGuard::holdSandbox() {
  ++sandboxesHeld_;
  return std::shared_ptr<void>(nullptr, [self = shared_from_this()](void*) {
    --self->sandboxesHeld_;
    self->lastActivity_ = self->timer_.now();
  });
}

kj::Promise<void> ConnectionGuard::whenClosed() {
  KJ_IF_MAYBE (p, closed_) {
    auto promise = kj::mv(*p);
    closed_ = nullptr;
    return promise;
  }
  return kj::NEVER_DONE;
}

kj::Promise<void> ConnectionGuard::whenIdle() {
  const kj::Duration timeout = limits_.idleConnectionTimeoutMs * kj::MILLISECONDS;
  if (timeout == 0 * kj::MILLISECONDS) return kj::NEVER_DONE;
  // While a call or a sandbox keeps the connection busy, look again every
  // second (or sooner, for a shorter timeout); once idle, wake when it could
  // first have been idle for the whole timeout.
  auto next = idle() ? timer_.atTime(lastActivity_ + timeout)
                     : timer_.afterDelay(kj::min(timeout, 1 * kj::SECONDS));
  return next.then([this, timeout]() -> kj::Promise<void> {
    if (!idle() || timer_.now() - lastActivity_ < timeout) return whenIdle();
    logEventInfo("closed an idle connection (uid " + std::to_string(uid_) +
                 "): no call and no sandbox for " +
                 std::to_string(limits_.idleConnectionTimeoutMs) + " ms");
    return kj::READY_NOW;
  });
}

void ConnectionGuard::close(const std::string& why) {
  if (!closer_->isWaiting()) return;
  logEventError("closed a connection (uid " + std::to_string(uid_) + "): " + why);
  closer_->fulfill();
}

}  // namespace gpubox
