#include "deferred_writer.hpp"

#include <utility>

#include "named_thread.hpp"

namespace gpubox {

DeferredWriter::DeferredWriter(size_t maxQueued, std::function<void(size_t)> onDropped)
    : maxQueued_(maxQueued), onDropped_(std::move(onDropped)) {}

DeferredWriter::~DeferredWriter() {
  stop();
}

void DeferredWriter::start(const char* name) {
  std::lock_guard lock(mutex_);
  if (running_) return;
  stopping_ = false;
  thread_ = startNamedThread(name, {}, [this] { run(); });
  running_ = true;
}

void DeferredWriter::stop() {
  {
    std::lock_guard lock(mutex_);
    if (!running_) return;
    stopping_ = true;
  }
  wake_.notify_one();
  thread_.join();
  std::lock_guard lock(mutex_);
  running_ = false;
}

bool DeferredWriter::submit(std::function<void()> write) {
  {
    std::unique_lock lock(mutex_);
    if (running_ && !stopping_) {
      if (queue_.size() >= maxQueued_) {
        ++dropped_;
        return false;
      }
      // The thread sleeps only on an empty queue: a write behind others
      // is found without a wake-up.
      const bool wasEmpty = queue_.empty();
      queue_.push_back(std::move(write));
      lock.unlock();
      if (wasEmpty) wake_.notify_one();
      return true;
    }
  }
  write();
  return true;
}

void DeferredWriter::run() {
  std::deque<std::function<void()>> batch;
  for (;;) {
    size_t dropped;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and nothing left
      batch.swap(queue_);
      dropped = std::exchange(dropped_, 0);
    }
    for (auto& write : batch) write();
    batch.clear();
    if (dropped > 0 && onDropped_) onDropped_(dropped);
  }
}

}  // namespace gpubox
