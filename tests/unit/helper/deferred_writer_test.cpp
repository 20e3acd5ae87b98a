// DeferredWriter: writes carried out on its thread in the order asked for;
// a caller never waits on a write that blocks; past the bound, writes are
// dropped, counted and reported once the thread has caught up; stopping
// carries out what is queued, and afterwards writes run at once.
#include "deferred_writer.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

namespace gpubox {
namespace {

TEST(DeferredWriter, CarriesOutWritesInOrderOnItsThread) {
  std::mutex m;
  std::vector<int> done;
  std::vector<std::thread::id> where;
  DeferredWriter writer(10000, {});
  writer.start("gpubox-test-w");
  for (int i = 0; i < 2000; ++i)
    ASSERT_TRUE(writer.submit([&, i] {
      std::lock_guard lock(m);
      done.push_back(i);
      where.push_back(std::this_thread::get_id());
    }));
  writer.stop();
  ASSERT_EQ(done.size(), 2000u) << "stop() left writes undone";
  for (int i = 0; i < 2000; ++i) EXPECT_EQ(done[i], i);
  for (const auto& id : where) EXPECT_NE(id, std::this_thread::get_id());
}

TEST(DeferredWriter, NeverMakesTheCallerWaitAndReportsWhatItDropped) {
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::promise<size_t> reported;
  std::atomic<int> written{0};
  DeferredWriter writer(5, [&](size_t n) { reported.set_value(n); });
  writer.start("gpubox-test-w");
  // The first write blocks, as a write to a journal that stopped reading.
  std::promise<void> blocking;
  ASSERT_TRUE(writer.submit([&] {
    blocking.set_value();
    released.wait();
    ++written;
  }));
  blocking.get_future().wait();
  const auto t0 = std::chrono::steady_clock::now();
  int accepted = 0, dropped = 0;
  for (int i = 0; i < 8; ++i) (writer.submit([&] { ++written; }) ? accepted : dropped)++;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(1));
  EXPECT_EQ(accepted, 5);
  EXPECT_EQ(dropped, 3);
  release.set_value();
  auto report = reported.get_future();
  ASSERT_EQ(report.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_EQ(report.get(), 3u);
  writer.stop();
  EXPECT_EQ(written.load(), 6);
}

TEST(DeferredWriter, WritesAtOnceWhenItsThreadDoesNotRun) {
  DeferredWriter writer(1, {});
  std::thread::id where;
  ASSERT_TRUE(writer.submit([&] { where = std::this_thread::get_id(); }));
  EXPECT_EQ(where, std::this_thread::get_id()) << "before start()";
  writer.start("gpubox-test-w");
  writer.stop();
  where = {};
  ASSERT_TRUE(writer.submit([&] { where = std::this_thread::get_id(); }));
  EXPECT_EQ(where, std::this_thread::get_id()) << "after stop()";
}

}  // namespace
}  // namespace gpubox
