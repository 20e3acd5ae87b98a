#include "gpu_inventory_cache.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "error.hpp"
#include "log.hpp"
#include "signal_free_thread.hpp"

namespace gpubox {

namespace {

using Clock = std::chrono::steady_clock;

// Node changes only: CUDA processes open and close /dev/nvidia* all the
// time, and IN_OPEN/IN_CLOSE_WRITE on them must not cost a discovery each.
constexpr uint32_t kDevMask = IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_ATTRIB |
                              IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR;
// Spec files are rewritten in place, so a finished write counts too.
constexpr uint32_t kFilesMask = kDevMask | IN_CLOSE_WRITE;

int msUntil(Clock::time_point deadline) {
  auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::clamp<decltype(left)>(left, 0, 24 * 3600 * 1000));
}

std::string summaryOf(const GpuSnapshot& snap) {
  if (!snap.inventory) return "";
  const gpu::Inventory& inv = *snap.inventory;
  if (inv.driverVersion.empty()) return "no NVIDIA driver loaded";
  std::string out = std::to_string(inv.gpus.size()) + " GPU(s), driver " + inv.driverVersion;
  for (const gpu::Gpu& g : inv.gpus)
    out += "; " + std::to_string(g.index) + ": " + g.busId + " " + g.uuid;
  return out;
}

}  // namespace

const gpu::Inventory& GpuSnapshot::inventoryOrThrow() const {
  if (!inventory) throw Error(error);
  return *inventory;
}

GpuInventoryCache::GpuInventoryCache(std::string driverRoot, GpuInventoryCacheOptions options)
    : root_(std::move(driverRoot)), options_(std::move(options)) {
  wake_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake_) throwErrno("gpu inventory: eventfd");
  inotify_.reset(::inotify_init1(IN_CLOEXEC | IN_NONBLOCK));
  if (!inotify_)
    logError(errnoMessage("gpu inventory: inotify (GPU changes are seen every " +
                              std::to_string(options_.period.count()) + " ms only)",
                          errno));

  // The refresher must take no signal (signal_free_thread.hpp).
  thread_ = startSignalFreeThread([this] { run(); });

  std::unique_lock lock(mutex_);
  published_.wait(lock, [this] { return current_ != nullptr || exited_; });
  if (!current_) {
    lock.unlock();
    stop_ = true;
    thread_.join();
    throw Error("gpu inventory: the first discovery did not finish");
  }
}

GpuInventoryCache::~GpuInventoryCache() {
  stop_ = true;
  uint64_t one = 1;
  // Cannot fail short of a full counter, and a full counter wakes the thread too.
  [[maybe_unused]] ssize_t n = ::write(wake_.get(), &one, sizeof one);
  if (thread_.joinable()) thread_.join();
}

std::shared_ptr<const GpuSnapshot> GpuInventoryCache::snapshot() const {
  std::lock_guard lock(mutex_);
  return current_;
}

void GpuInventoryCache::refreshNow() {
  refreshAsked_ = true;
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(wake_.get(), &one, sizeof one);
}

bool GpuInventoryCache::waitForGeneration(uint64_t generation,
                                          std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  return published_.wait_for(lock, timeout,
                             [&] { return current_ && current_->generation >= generation; });
}

void GpuInventoryCache::run() {
  try {
    loop();
  } catch (const std::exception& e) {
    // Only resource exhaustion gets here; requests keep the last snapshot.
    logError(std::string("gpu inventory: refresher stopped, GPU changes are no longer seen: ") +
             e.what());
  }
  std::lock_guard lock(mutex_);
  exited_ = true;
  published_.notify_all();
}

void GpuInventoryCache::loop() {
  // Even the first discovery runs here, so inventories come from this
  // thread's malloc arena and this thread never frees the main thread's
  // memory. Why: the helper clone3()s sandbox inits with a raw syscall, which
  // skips glibc's fork handlers, so an init inherits each malloc lock as it
  // was; one this thread held would hang the init at its next malloc. This
  // thread never holds the main thread's arena (unless MALLOC_ARENA_MAX=1
  // makes them one). Not airtight: an init that frees a chunk the main thread
  // recycled from this arena needs this arena's lock.
  refresh();
  Clock::time_point next = Clock::now() + options_.period;
  while (!stop_) {
    struct pollfd fds[2] = {{wake_.get(), POLLIN, 0}, {inotify_.get(), POLLIN, 0}};
    int n = ::poll(fds, 2, msUntil(next));
    if (n < 0 && errno != EINTR) throwErrno("gpu inventory: poll");
    if (n > 0 && (fds[0].revents & POLLIN)) drainWake();
    if (stop_) break;
    bool changed = n > 0 && (fds[1].revents & POLLIN) && drainInotify();
    if (changed) settle();
    if (stop_) break;
    if (refreshAsked_.exchange(false) || changed || Clock::now() >= next) {
      refresh();
      next = Clock::now() + options_.period;
    }
  }
}

void GpuInventoryCache::refresh() {
  // Watch before reading, so a change during discovery causes another one.
  // Directories that appeared since the last time (a driver loaded, a CDI
  // directory made) are watched from now on; re-adding a watch is harmless.
  addWatches();
  auto snap = std::make_shared<GpuSnapshot>();
  try {
    gpu::Inventory inv = options_.discover ? options_.discover(root_) : gpu::discover(root_);
    snap->inventory = std::make_shared<const gpu::Inventory>(std::move(inv));
  } catch (const std::exception& e) {
    snap->error = e.what();
    if (snap->error.empty()) snap->error = "GPU discovery failed under " + root_;
  }
  logChanges(*snap);
  std::shared_ptr<const GpuSnapshot> old;
  {
    std::lock_guard lock(mutex_);
    snap->generation = current_ ? current_->generation + 1 : 1;
    old = std::exchange(current_, std::move(snap));
  }
  published_.notify_all();
  // `old` goes here, on this thread, unless a request still holds it.
}

void GpuInventoryCache::logChanges(const GpuSnapshot& snap) {
  // Once per change, not per refresh or per request.
  if (snap.error != lastError_) {
    if (!snap.error.empty())
      logError("gpu discovery: " + snap.error);
    else
      logInfo("gpu discovery works again");
    lastError_ = snap.error;
  }
  if (!snap.inventory) return;
  const std::vector<std::string>& warnings = snap.inventory->warnings;
  for (const std::string& w : warnings)
    if (std::find(lastWarnings_.begin(), lastWarnings_.end(), w) == lastWarnings_.end())
      logError("gpu discovery: " + w);
  lastWarnings_ = warnings;
  std::string summary = summaryOf(snap);
  if (summary != lastSummary_) {
    logInfo("gpu inventory under " + root_ + ": " + summary);
    lastSummary_ = std::move(summary);
  }
}

void GpuInventoryCache::addWatches() {
  // A relative root is refused by discovery; watching it would watch the cwd.
  if (!inotify_ || root_.empty() || root_[0] != '/') return;
  std::string root = root_;
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  if (root == "/") root.clear();
  const std::pair<const char*, Watched> dirs[] = {
      {"/dev", Watched::Dev},
      {"/dev/nvidia-caps", Watched::Other},
      // procfs accepts the watch but sends no events; the period covers it.
      // A fake driver tree in tests does send them.
      {"/proc/driver/nvidia/gpus", Watched::Other},
      {"/etc/cdi", Watched::Other},
      {"/var/run/cdi", Watched::Other},
  };
  for (const auto& [rel, kind] : dirs) {
    int wd = ::inotify_add_watch(inotify_.get(), (root + rel).c_str(),
                                 kind == Watched::Dev ? kDevMask : kFilesMask);
    if (wd >= 0) watches_[wd] = kind;  // ENOENT and the like: not there (yet)
  }
}

bool GpuInventoryCache::drainInotify() {
  bool relevant = false;
  alignas(struct inotify_event) char buf[16384];
  while (true) {
    ssize_t n = ::read(inotify_.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // EAGAIN: drained
    for (ssize_t off = 0; off < n;) {
      const auto* ev = reinterpret_cast<const struct inotify_event*>(buf + off);
      off += static_cast<ssize_t>(sizeof(struct inotify_event) + ev->len);
      if (ev->mask & IN_Q_OVERFLOW) {
        relevant = true;
        continue;
      }
      auto it = watches_.find(ev->wd);
      if (it == watches_.end()) continue;
      if (ev->mask & IN_IGNORED) {
        // The directory went away (driver unloaded); re-added when it is back.
        watches_.erase(it);
        relevant = true;
        continue;
      }
      // /dev sees every device on the host; only NVIDIA's nodes matter.
      if (it->second == Watched::Dev && !(ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF)) &&
          std::strncmp(ev->len ? ev->name : "", "nvidia", 6) != 0)
        continue;
      relevant = true;
    }
  }
  return relevant;
}

void GpuInventoryCache::settle() {
  Clock::time_point cap = Clock::now() + 20 * options_.settle;
  while (!stop_ && Clock::now() < cap) {
    struct pollfd fds[2] = {{wake_.get(), POLLIN, 0}, {inotify_.get(), POLLIN, 0}};
    int quiet = std::min(static_cast<int>(options_.settle.count()), msUntil(cap));
    int n = ::poll(fds, 2, quiet);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    if (fds[0].revents & POLLIN) drainWake();
    if (fds[1].revents & POLLIN) drainInotify();
  }
}

void GpuInventoryCache::drainWake() {
  uint64_t count;
  while (::read(wake_.get(), &count, sizeof count) > 0) {
  }
}

}  // namespace gpubox
