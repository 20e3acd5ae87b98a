// HomeLoop and HomeShared with a real second thread, as the RPC threads use
// them: a call runs on the home loop and its result (or its error, word for
// word) comes back; what is posted runs there; a home-loop object whose
// last handle goes on another thread is released on the home loop; and a
// handle is refused (an assertion) off the home loop.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <kj/async-io.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "error.hpp"
#include "home_loop.hpp"
#include "loop_fixture.hpp"

namespace gpubox {
namespace {

using ::testing::HasSubstr;

// Records the thread its destructor runs on.
struct Tracked {
  explicit Tracked(std::atomic<std::thread::id>& where) : releasedOn(where) {}
  ~Tracked() { releasedOn = std::this_thread::get_id(); }
  std::atomic<std::thread::id>& releasedOn;
  int value = 42;
};

class HomeLoopTest : public LoopFixture {
 protected:
  // Runs BODY on a thread of its own with an event loop (an RPC thread's
  // situation), while this thread's loop turns until BODY is done.
  template <typename Body>
  void onAnotherLoop(Body body) {
    std::atomic<bool> done = false;
    std::thread other([&] {
      auto otherIo = kj::setupAsyncIo();
      body(otherIo.waitScope);
      done = true;
    });
    while (!done) io.provider->getTimer().afterDelay(1 * kj::MILLISECONDS).wait(io.waitScope);
    other.join();
  }
  // (Held by pointer: its destructor may throw, a fixture's may not.)
  std::unique_ptr<HomeLoop> homeOwner = std::make_unique<HomeLoop>(io.unixEventPort);
  HomeLoop& home = *homeOwner;
};

TEST_F(HomeLoopTest, ACallRunsOnTheHomeLoopAndItsResultComesBack) {
  const std::thread::id homeThread = std::this_thread::get_id();
  onAnotherLoop([&](kj::WaitScope& scope) {
    auto ranOn = home.call([]() { return std::this_thread::get_id(); }).wait(scope);
    EXPECT_EQ(ranOn, homeThread);
    // A promise's result, once it resolves there.
    auto later = home.call([this]() {
                       return io.provider->getTimer().afterDelay(5 * kj::MILLISECONDS).then([] {
                         return std::string("resolved on the home loop");
                       });
                     })
                     .wait(scope);
    EXPECT_EQ(later, "resolved on the home loop");
  });
}

TEST_F(HomeLoopTest, AGpuboxErrorReachesTheCallerWordForWord) {
  onAnotherLoop([&](kj::WaitScope& scope) {
    try {
      home.call([]() -> int { throw Error("session name 'x' is taken"); }).wait(scope);
      ADD_FAILURE() << "no error";
    } catch (const kj::Exception& e) {
      EXPECT_EQ(std::string(e.getDescription().cStr()), "session name 'x' is taken");
    }
  });
}

TEST_F(HomeLoopTest, WhatIsPostedRunsOnTheHomeLoop) {
  std::atomic<std::thread::id> ranOn;
  std::atomic<int> runs = 0;
  onAnotherLoop([&](kj::WaitScope&) {
    for (int i = 0; i < 100; ++i)
      home.post([&]() {
        ranOn = std::this_thread::get_id();
        ++runs;
      });
  });
  for (int i = 0; i < 100 && runs < 100; ++i)
    io.provider->getTimer().afterDelay(1 * kj::MILLISECONDS).wait(io.waitScope);
  EXPECT_EQ(runs, 100);
  EXPECT_EQ(ranOn, std::this_thread::get_id());
}

TEST_F(HomeLoopTest, TheLastHandleGoneElsewhereReleasesTheObjectOnTheHomeLoop) {
  std::atomic<std::thread::id> releasedOn;
  std::weak_ptr<Tracked> watch;
  {
    auto object = std::make_shared<Tracked>(releasedOn);
    watch = object;
    HomeShared<Tracked> handle(home, std::move(object));
    EXPECT_EQ(handle->value, 42);  // on the home loop: allowed
    std::thread other([handle = std::move(handle)]() mutable {
      HomeShared<Tracked> last = std::move(handle);
      (void)last;  // dropped here, on this thread
    });
    other.join();
  }
  EXPECT_FALSE(watch.expired()) << "released off the home loop";
  io.provider->getTimer().afterDelay(10 * kj::MILLISECONDS).wait(io.waitScope);
  EXPECT_TRUE(watch.expired());
  EXPECT_EQ(releasedOn.load(), std::this_thread::get_id());
}

TEST_F(HomeLoopTest, AHandleIsRefusedOffTheHomeLoop) {
  std::atomic<std::thread::id> releasedOn;
  HomeShared<Tracked> handle(home, std::make_shared<Tracked>(releasedOn));
  std::string refused;
  std::thread other([&] {
    try {
      (void)handle->value;
    } catch (const kj::Exception& e) {
      refused = e.getDescription().cStr();
    }
  });
  other.join();
  EXPECT_THAT(refused, HasSubstr("a home-loop object touched from another thread"));
}

}  // namespace
}  // namespace gpubox
