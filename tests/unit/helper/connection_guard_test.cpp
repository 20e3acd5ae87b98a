// ConnectionGuard's bounds without a socket: calls held in flight (promises
// that never resolve, like a wait() on a command that keeps running), the
// refusal past the per-connection and the helper-wide bounds, closing a
// connection that keeps pushing or never finishes its answers, and the idle
// timeout.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <kj/async-io.h>

#include <memory>
#include <string>
#include <vector>

#include "connection_guard.hpp"
#include "daemon_context.hpp"
#include "loop_fixture.hpp"

namespace gpubox {
namespace {

using ::testing::HasSubstr;
using Result = capnp::Capability::Server::DispatchCallResult;

class Guard : public LoopFixture {
 protected:
  // A call whose answer never comes, until `held` is cleared.
  Result hang() { return {kj::Promise<void>(kj::NEVER_DONE), false}; }
  Result instant() { return {kj::Promise<void>(kj::READY_NOW), false}; }

  // The reason a call was refused, or "" when it was let through (its
  // promise is kept in `held`, so it stays in flight).
  std::string call(ConnectionGuard& guard, bool staysInFlight = true) {
    Result r = guard.run([&] { return staysInFlight ? hang() : instant(); });
    bool refused = r.promise.poll(io.waitScope);
    if (!refused) {
      held.push_back(kj::mv(r.promise));
      return "";
    }
    try {
      r.promise.wait(io.waitScope);
    } catch (const kj::Exception& e) {
      return e.getDescription().cStr();
    }
    return "";
  }
  bool closed(kj::Promise<void>& whenClosed) { return whenClosed.poll(io.waitScope); }

  std::unique_ptr<std::vector<kj::Promise<void>>> heldOwner =
      std::make_unique<std::vector<kj::Promise<void>>>();
  std::vector<kj::Promise<void>>& held = *heldOwner;
};

TEST_F(Guard, CallsPastThePerConnectionBoundAreRefusedWithTheReason) {
  ctx.limits.maxCallsPerConnection = 3;
  auto guard = std::make_shared<ConnectionGuard>(ctx.limits, ctx.callsInFlight, ctx.timer, 1000);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(call(*guard), "") << "call " << i;
  EXPECT_EQ(ctx.callsInFlight, 3u);
  EXPECT_THAT(call(*guard), HasSubstr("this connection has 3 calls in flight, its limit"));
  // An answer frees a place.
  held.pop_back();
  EXPECT_EQ(ctx.callsInFlight, 2u);
  EXPECT_EQ(call(*guard), "");
}

TEST_F(Guard, TheHelperWideBoundCountsEveryConnection) {
  ctx.limits.maxCallsTotal = 4;
  auto a = std::make_shared<ConnectionGuard>(ctx.limits, ctx.callsInFlight, ctx.timer, 1000);
  auto b = std::make_shared<ConnectionGuard>(ctx.limits, ctx.callsInFlight, ctx.timer, 1001);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(call(*a), "");
    EXPECT_EQ(call(*b), "");
  }
  EXPECT_THAT(call(*a), HasSubstr("the helper has 4 calls in flight from all clients"));
  EXPECT_THAT(call(*b), HasSubstr("from all clients"));
}

TEST_F(Guard, AConnectionThatKeepsPushingPastTheBoundIsClosed) {
  ctx.limits.maxCallsPerConnection = 2;
  auto guard = std::make_shared<ConnectionGuard>(ctx.limits, ctx.callsInFlight, ctx.timer, 1000);
  auto whenClosed = guard->whenClosed();
  EXPECT_EQ(call(*guard), "");
  EXPECT_EQ(call(*guard), "");
  EXPECT_NE(call(*guard), "");
  EXPECT_NE(call(*guard), "");
  EXPECT_FALSE(closed(whenClosed)) << "two refusals in a row are within the bound";
  EXPECT_NE(call(*guard), "");
  EXPECT_TRUE(closed(whenClosed));
}

TEST_F(Guard, AnswersNeverFinishedCloseTheConnection) {
  ctx.limits.maxOpenAnswersPerConnection = 5;
  auto guard = std::make_shared<ConnectionGuard>(ctx.limits, ctx.callsInFlight, ctx.timer, 1000);
  auto whenClosed = guard->whenClosed();
  for (int i = 0; i < 5; ++i) guard->answerOpened();
  guard->answerFinished();
  guard->answerOpened();
  EXPECT_FALSE(closed(whenClosed));
  guard->answerOpened();
  EXPECT_TRUE(closed(whenClosed));
}

TEST_F(Guard, IdleMeansNoCallAndNoSandboxForTheWholeTimeout) {
  ctx.limits.idleConnectionTimeoutMs = 200;
  auto guard = std::make_shared<ConnectionGuard>(ctx.limits, ctx.callsInFlight, ctx.timer, 1000);
  auto idle = guard->whenIdle();
  auto sandbox = guard->holdSandbox();
  EXPECT_EQ(call(*guard), "");
  io.provider->getTimer().afterDelay(500 * kj::MILLISECONDS).wait(io.waitScope);
  EXPECT_FALSE(idle.poll(io.waitScope)) << "a call in flight and a sandbox: busy";
  held.clear();
  io.provider->getTimer().afterDelay(500 * kj::MILLISECONDS).wait(io.waitScope);
  EXPECT_FALSE(idle.poll(io.waitScope)) << "a sandbox held: busy";
  sandbox.reset();
  io.provider->getTimer().afterDelay(100 * kj::MILLISECONDS).wait(io.waitScope);
  EXPECT_FALSE(idle.poll(io.waitScope)) << "idle for less than the timeout";
  io.provider->getTimer().afterDelay(1200 * kj::MILLISECONDS).wait(io.waitScope);
  EXPECT_TRUE(idle.poll(io.waitScope));
}

TEST_F(Guard, NoIdleTimeoutWhenItIsZero) {
  ctx.limits.idleConnectionTimeoutMs = 0;
  auto guard = std::make_shared<ConnectionGuard>(ctx.limits, ctx.callsInFlight, ctx.timer, 1000);
  auto idle = guard->whenIdle();
  io.provider->getTimer().afterDelay(300 * kj::MILLISECONDS).wait(io.waitScope);
  EXPECT_FALSE(idle.poll(io.waitScope));
}

}  // namespace
}  // namespace gpubox
