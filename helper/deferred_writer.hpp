// Writes done on a thread of their own, in the order they were asked for:
// how the helper writes its per-sandbox records (log.cpp). One record a
// sandbox is hundreds or thousands a second on a busy host, each a datagram
// to journald or a line on stderr, and journald (or whatever reads stderr)
// takes them at its own pace: a write that met a full queue there would
// stop the loop that ends sandboxes. Callers only queue. Past a bound,
// more are dropped and counted, and the thread reports how many once it has
// caught up, so a stalled reader costs memory up to the bound and no more.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

namespace gpubox {

class DeferredWriter {
 public:
  // ON_DROPPED(N) runs on the thread after it has written everything that
  // was queued, when N writes were dropped meanwhile.
  DeferredWriter(size_t maxQueued, std::function<void(size_t dropped)> onDropped);
  ~DeferredWriter();  // stop()
  DeferredWriter(const DeferredWriter&) = delete;
  DeferredWriter& operator=(const DeferredWriter&) = delete;

  // Starts the thread, named NAME, holding no capability (startNamedThread).
  // Throws gpubox::Error.
  void start(const char* name);
  // Carries out what is queued, then joins the thread. Later writes run at
  // once again.
  void stop();

  // Queues WRITE for the thread; runs it at once, on the caller's thread,
  // when the thread does not run. False (WRITE dropped and counted) when
  // maxQueued writes already wait.
  bool submit(std::function<void()> write);

 private:
  void run();

  const size_t maxQueued_;
  const std::function<void(size_t)> onDropped_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> queue_;
  size_t dropped_ = 0;
  bool running_ = false;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace gpubox
