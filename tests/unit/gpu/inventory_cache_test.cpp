// GpuInventoryCache: discovery off the event loop. Fake driver trees and fake
// discovery functions; the periodic backstop is set to an hour so that every
// refresh seen here came from refreshNow() or a change notification.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>

#include "error.hpp"
#include "gpu_inventory_cache.hpp"
#include "test_util.hpp"

using gpubox::GpuInventoryCache;
using gpubox::GpuInventoryCacheOptions;
using gpubox::GpuSnapshot;
using gpubox::testing::FakeDriverRoot;
using namespace std::chrono_literals;

namespace {

constexpr auto kWait = std::chrono::milliseconds(10s);

gpubox::gpu::Inventory noNvml(const std::string& root) {
  return gpubox::gpu::discover(root, {.useNvml = false});
}

GpuInventoryCacheOptions quiet() {
  return {.period = std::chrono::hours(1), .settle = 20ms, .discover = noNvml};
}

gpubox::gpu::Inventory withVersion(const std::string& version) {
  gpubox::gpu::Inventory inv;
  inv.driverRoot = "/fake";
  inv.driverVersion = version;
  return inv;
}

size_t gpuCount(const GpuSnapshot& snap) {
  return snap.inventory ? snap.inventory->gpus.size() : 0;
}

// Waits, without asking for a refresh, until a snapshot shows `n` GPUs.
bool waitForGpus(const GpuInventoryCache& cache, size_t n) {
  auto deadline = std::chrono::steady_clock::now() + kWait;
  while (std::chrono::steady_clock::now() < deadline) {
    auto snap = cache.snapshot();
    if (gpuCount(*snap) == n) return true;
    cache.waitForGeneration(snap->generation + 1, 100ms);
  }
  return false;
}

// The information file of a GPU the fake tree did not have, at minor 2.
std::string thirdGpuInformation() {
  return "Model: \t\t NVIDIA Fake H100 2\n"
         "GPU UUID: \t GPU-abc02022-1111-2222-3333-444455550002\n"
         "Bus Location: \t 0000:86:00.0\n"
         "Device Minor: \t 2\n"
         "GPU Excluded:\t No\n";
}

}  // namespace

TEST(GpuInventoryCache, FirstDiscoveryIsPublishedBeforeTheConstructorReturns) {
  FakeDriverRoot fake({.gpus = 0, .nodes = false});
  GpuInventoryCache cache(fake.root(), quiet());
  auto snap = cache.snapshot();
  ASSERT_NE(snap, nullptr);
  EXPECT_EQ(snap->generation, 1u);
  ASSERT_NE(snap->inventory, nullptr) << snap->error;
  EXPECT_EQ(snap->inventory->driverVersion, "550.54.14");
  EXPECT_EQ(snap->inventory->driverRoot, fake.root());
  // The same snapshot until something refreshes it.
  EXPECT_EQ(cache.snapshot(), snap);
}

TEST(GpuInventoryCache, RefreshNowSeesAChangeNoNotificationReports) {
  // proc/driver/nvidia/version is not watched (procfs sends no events), so
  // only an explicit refresh (SIGHUP) or the period can see it change.
  FakeDriverRoot fake({.gpus = 0, .nodes = false});
  GpuInventoryCache cache(fake.root(), quiet());
  fake.writeFile("proc/driver/nvidia/version",
                 "NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.159.04  Thu Jan  1\n");
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(cache.snapshot()->inventory->driverVersion, "550.54.14");
  uint64_t before = cache.snapshot()->generation;
  cache.refreshNow();
  ASSERT_TRUE(cache.waitForGeneration(before + 1, kWait));
  EXPECT_EQ(cache.snapshot()->inventory->driverVersion, "580.159.04");
}

TEST(GpuInventoryCache, SeesAGpuAddedAndRemovedThroughChangeNotifications) {
  GPUBOX_REQUIRE_ROOT();
  FakeDriverRoot fake({.gpus = 2});
  GpuInventoryCache cache(fake.root(), quiet());
  ASSERT_EQ(gpuCount(*cache.snapshot()), 2u) << cache.snapshot()->error;

  // The driver publishes the GPU, then its node appears: no refreshNow().
  fake.writeFile("proc/driver/nvidia/gpus/0000:86:00.0/information", thirdGpuInformation());
  fake.mknodChar("dev/nvidia2", FakeDriverRoot::kNvidiaMajor, 2);
  ASSERT_TRUE(waitForGpus(cache, 3))
      << gpubox::gpu::test::joined(cache.snapshot()->inventory->warnings);
  const gpubox::gpu::Gpu& added = cache.snapshot()->inventory->gpus[2];
  EXPECT_EQ(added.minor, 2u);
  EXPECT_EQ(added.uuid, "GPU-abc02022-1111-2222-3333-444455550002");

  // The node goes: the GPU is no longer offered.
  fake.remove("dev/nvidia2");
  ASSERT_TRUE(waitForGpus(cache, 2));
}

TEST(GpuInventoryCache, UnrelatedDeviceNodesDoNotCauseARefresh) {
  GPUBOX_REQUIRE_ROOT();
  FakeDriverRoot fake({.gpus = 1});
  std::atomic<int> calls = 0;
  GpuInventoryCache cache(
      fake.root(),
      {.period = std::chrono::hours(1), .settle = 20ms, .discover = [&](const std::string& root) {
         ++calls;
         return noNvml(root);
       }});
  fake.mknodChar("dev/null", 1, 3);
  fake.writeFile("dev/shm-file", "x");
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(calls.load(), 1);
  EXPECT_EQ(cache.snapshot()->generation, 1u);
}

TEST(GpuInventoryCache, SnapshotDoesNotWaitForARefreshUnderWay) {
  std::atomic<int> calls = 0;
  std::promise<void> entered;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  GpuInventoryCache cache("/fake",
                          {.period = std::chrono::hours(1), .discover = [&](const std::string&) {
                             if (++calls == 1) return withVersion("1");
                             entered.set_value();
                             released.wait();
                             return withVersion("2");
                           }});
  cache.refreshNow();
  ASSERT_EQ(entered.get_future().wait_for(kWait), std::future_status::ready);

  // Discovery is blocked right now; snapshot() answers at once with the old one.
  auto start = std::chrono::steady_clock::now();
  auto snap = cache.snapshot();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
  EXPECT_EQ(snap->generation, 1u);
  EXPECT_EQ(snap->inventory->driverVersion, "1");
  EXPECT_FALSE(cache.waitForGeneration(2, 50ms));

  release.set_value();
  ASSERT_TRUE(cache.waitForGeneration(2, kWait));
  EXPECT_EQ(cache.snapshot()->inventory->driverVersion, "2");
  // A request that still holds the old snapshot keeps it intact.
  EXPECT_EQ(snap->inventory->driverVersion, "1");
}

TEST(GpuInventoryCache, AFailedDiscoveryIsPublishedWithItsMessage) {
  std::atomic<bool> fail = true;
  GpuInventoryCache cache("/fake",
                          {.period = std::chrono::hours(1), .discover = [&](const std::string&) {
                             if (fail) throw gpubox::Error("/fake/proc/x: malformed");
                             return withVersion("1");
                           }});
  auto snap = cache.snapshot();
  EXPECT_EQ(snap->inventory, nullptr);
  EXPECT_EQ(snap->error, "/fake/proc/x: malformed");
  try {
    snap->inventoryOrThrow();
    FAIL() << "no error";
  } catch (const gpubox::Error& e) {
    EXPECT_STREQ(e.what(), "/fake/proc/x: malformed");
  }
  fail = false;
  cache.refreshNow();
  ASSERT_TRUE(cache.waitForGeneration(2, kWait));
  EXPECT_EQ(cache.snapshot()->inventoryOrThrow().driverVersion, "1");
  EXPECT_EQ(cache.snapshot()->error, "");
}

TEST(GpuInventoryCache, ARelativeDriverRootIsAnErrorForGpuCallersOnly) {
  GpuInventoryCache cache("relative/root", quiet());
  auto snap = cache.snapshot();
  EXPECT_EQ(snap->inventory, nullptr);
  EXPECT_NE(snap->error.find("not absolute"), std::string::npos) << snap->error;
}

TEST(GpuInventoryCache, WarningsAreLoggedOncePerChange) {
  std::atomic<int> calls = 0;
  ::testing::internal::CaptureStderr();
  {
    GpuInventoryCache cache("/fake",
                            {.period = std::chrono::hours(1), .discover = [&](const std::string&) {
                               auto inv = withVersion("1");
                               inv.warnings.push_back("first-warning");
                               if (++calls >= 3) inv.warnings.push_back("second-warning");
                               return inv;
                             }});
    for (uint64_t g = 2; g <= 4; ++g) {
      cache.refreshNow();
      ASSERT_TRUE(cache.waitForGeneration(g, kWait));
    }
  }
  std::string log = ::testing::internal::GetCapturedStderr();
  auto count = [&](const std::string& needle) {
    size_t n = 0;
    for (size_t at = log.find(needle); at != std::string::npos; at = log.find(needle, at + 1)) ++n;
    return n;
  };
  EXPECT_EQ(count("first-warning"), 1u) << log;
  EXPECT_EQ(count("second-warning"), 1u) << log;
}

TEST(GpuInventoryCache, DestructionStopsAnIdleRefresherAtOnce) {
  FakeDriverRoot fake({.gpus = 0, .nodes = false});
  auto start = std::chrono::steady_clock::now();
  {
    GpuInventoryCache cache(fake.root(), quiet());  // an hour until its next refresh
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
}

TEST(GpuInventoryCache, DestructionWaitsForARefreshUnderWayAndStartsNoOther) {
  std::atomic<int> calls = 0;
  std::promise<void> entered;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  auto cache = std::make_unique<GpuInventoryCache>(
      "/fake", GpuInventoryCacheOptions{.period = std::chrono::hours(1),
                                        .discover = [&](const std::string&) {
                                          if (++calls == 2) {
                                            entered.set_value();
                                            released.wait();
                                          }
                                          return withVersion("1");
                                        }});
  cache->refreshNow();
  ASSERT_EQ(entered.get_future().wait_for(kWait), std::future_status::ready);
  cache->refreshNow();  // asked while one runs: must not outlive the cache
  std::thread releaser([&] {
    std::this_thread::sleep_for(100ms);
    release.set_value();
  });
  cache.reset();
  releaser.join();
  EXPECT_EQ(calls.load(), 2);
}
