// GpuInventoryCache: the helper's view of the host's GPUs, kept off the
// event loop. Discovery reads driver files and initialises NVML (9 ms with
// persistence mode, seconds without), so it runs once at start and then on a
// thread of its own; requests only take the latest immutable snapshot.
//
// A refresh happens when the driver's files change (inotify on <root>/dev for
// nvidia* nodes, <root>/dev/nvidia-caps, <root>/proc/driver/nvidia/gpus and
// the CDI spec directories), periodically as a backstop (procfs sends no
// inotify events, so a GPU that only shows up there is seen on the next
// period), and when refreshNow() asks (SIGHUP).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "gpu.hpp"
#include "unique_fd.hpp"

namespace gpubox {

// One discovery's outcome. Immutable once published.
struct GpuSnapshot {
  std::shared_ptr<const gpu::Inventory> inventory;  // null when discovery failed
  std::string error;                                // why it failed, as discover() said
  uint64_t generation = 0;                          // 1 for the first discovery, +1 per refresh

  // The inventory, or throws gpubox::Error with the failed discovery's message.
  const gpu::Inventory& inventoryOrThrow() const;
};

struct GpuInventoryCacheOptions {
  // Backstop: the longest a change inotify cannot see goes unnoticed.
  std::chrono::milliseconds period{std::chrono::seconds(30)};
  // After a change notification, wait until the tree has been quiet this
  // long (a driver load creates several nodes in a row), at most 20 times it.
  std::chrono::milliseconds settle{100};
  // How to discover; empty means gpu::discover(driverRoot) with NVML. Tests
  // pass one without NVML, or one that blocks.
  std::function<gpu::Inventory(const std::string& driverRoot)> discover = {};
};

class GpuInventoryCache {
 public:
  // Returns once the first discovery has been published (blocking at start
  // is fine; serving requests before it would be wrong). A failed discovery
  // is not an error here: it is published, and only callers asking for a GPU
  // see its message.
  explicit GpuInventoryCache(std::string driverRoot, GpuInventoryCacheOptions options = {});
  // Stops the refresher and joins it; a discovery under way is finished first.
  ~GpuInventoryCache();
  GpuInventoryCache(const GpuInventoryCache&) = delete;
  GpuInventoryCache& operator=(const GpuInventoryCache&) = delete;

  // The latest published snapshot. O(1): never waits for a discovery.
  std::shared_ptr<const GpuSnapshot> snapshot() const;

  // Asks for a refresh and returns at once (async-signal-safe: one write to
  // an eventfd).
  void refreshNow();

  // Waits until a snapshot of at least `generation` is published; false on
  // timeout. For tests and tools: never call it on the event loop.
  bool waitForGeneration(uint64_t generation, std::chrono::milliseconds timeout) const;

 private:
  enum class Watched { Dev, Other };

  void run();
  void loop();
  void refresh();
  void logChanges(const GpuSnapshot& snap);
  void addWatches();
  bool drainInotify();  // true when an event concerns the driver's files
  void settle();
  void drainWake();

  const std::string root_;
  const GpuInventoryCacheOptions options_;

  mutable std::mutex mutex_;
  mutable std::condition_variable published_;
  std::shared_ptr<const GpuSnapshot> current_;  // guarded by mutex_
  bool exited_ = false;                         // guarded by mutex_: the refresher gave up

  UniqueFd wake_;     // eventfd: stop or refresh asked
  UniqueFd inotify_;  // invalid when inotify is unavailable: periodic refresh only
  std::atomic<bool> stop_{false};
  std::atomic<bool> refreshAsked_{false};

  // Only the refresher thread touches these.
  std::map<int, Watched> watches_;
  std::vector<std::string> lastWarnings_;
  std::string lastError_;
  std::string lastSummary_;

  std::thread thread_;  // last: started once everything above exists
};

}  // namespace gpubox
