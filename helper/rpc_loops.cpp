#include "rpc_loops.hpp"

#include <sys/prctl.h>

#include <kj/debug.h>

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "error.hpp"
#include "log.hpp"
#include "log_task_errors.hpp"
#include "privileges.hpp"
#include "signal_free_thread.hpp"

namespace gpubox {

// One RPC thread and the connections it serves. Its ConnectionSet is made,
// used and destroyed on the thread; from outside only the executor and the
// set's count are touched.
class RpcLoops::Loop {
 public:
  Loop(DaemonContext& ctx, const HomeLoop& home) : ctx_(ctx), home_(home) {
    // No signal for this thread (signal_free_thread.hpp).
    thread_ = startSignalFreeThread([this] { main(); });
    std::unique_lock lock(mutex_);
    started_.wait(lock, [this] { return set_ != nullptr || !startError_.empty(); });
    if (!startError_.empty()) {
      lock.unlock();
      thread_.join();
      throw Error("an RPC thread did not start: " + startError_);
    }
  }

  // After RpcLoops::stop(); otherwise (the helper failing on its way up)
  // the thread is asked to end here, blocking the home loop until it has.
  ~Loop() {
    if (!thread_.joinable()) return;
    if (!closed_) {
      try {
        executor_->executeSync([this]() { closeAll(); });
      } catch (const kj::Exception&) {
        // Its loop has already ended.
      }
    }
    thread_.join();
  }

  const kj::Executor& executor() const { return *executor_; }
  // Connections handed to this thread and not ended yet.
  std::atomic<size_t> served = 0;

  // On the home loop: closes every connection and resolves once the thread
  // has ended its loop (the home loop must run meanwhile: see main()).
  kj::Promise<void> stop() {
    if (end_->ended) return kj::READY_NOW;
    auto paf = kj::newPromiseAndFulfiller<void>();
    end_->fulfiller = kj::mv(paf.fulfiller);
    closing_ = executor_->executeAsync([this]() { closeAll(); })
                   .catch_([](kj::Exception&&) {})  // its loop already ended
                   .eagerlyEvaluate(nullptr);
    return kj::mv(paf.promise);
  }

  // On the thread.
  void accept(IncomingConnection in) { set_->accept(std::move(in)); }
  // On the thread: ends every connection, then the thread.
  void closeAll() {
    set_->closeAll();
    closed_ = true;
    KJ_IF_MAYBE (f, exit_) {
      (*f)->fulfill();
    }
  }

 private:
  void main() {
    ::prctl(PR_SET_NAME, "gpubox-rpc", 0, 0, 0);
    try {
      dropThreadCapabilities();
      auto io = kj::setupAsyncIo();
      ConnectionSet set(ctx_, home_, io, served);
      auto paf = kj::newPromiseAndFulfiller<void>();
      exit_ = kj::mv(paf.fulfiller);
      {
        std::lock_guard lock(mutex_);
        executor_ = kj::getCurrentThreadExecutor().addRef();
        set_ = &set;
      }
      started_.notify_all();
      paf.promise.wait(io.waitScope);  // closeAll() has ended every connection
      exit_ = nullptr;
      // What Cap'n Proto still holds goes with the loop, here; a call it
      // cancels waits for the home loop to drop its side, which it can
      // because it runs until the post below.
    } catch (const std::exception& e) {
      fail(e.what());
    } catch (const kj::Exception& e) {
      fail(e.getDescription().cStr());
    }
    home_.post([end = end_]() {
      end->ended = true;
      KJ_IF_MAYBE (f, end->fulfiller) {
        (*f)->fulfill();
      }
    });
  }

  void fail(const std::string& why) {
    {
      std::lock_guard lock(mutex_);
      if (set_) {
        logError("an RPC thread stopped: " + why);
        return;
      }
      startError_ = why;
    }
    started_.notify_all();
  }

  DaemonContext& ctx_;
  const HomeLoop& home_;
  std::mutex mutex_;
  std::condition_variable started_;
  kj::Own<const kj::Executor> executor_;
  ConnectionSet* set_ = nullptr;  // the thread's, while its loop runs
  std::string startError_;
  std::atomic<bool> closed_ = false;
  kj::Maybe<kj::Own<kj::PromiseFulfiller<void>>> exit_;
  // The home loop's: whether the thread has ended, told by its last post,
  // which may run after this object is gone (a helper failing on its way up).
  struct End {
    bool ended = false;
    kj::Maybe<kj::Own<kj::PromiseFulfiller<void>>> fulfiller;
  };
  std::shared_ptr<End> end_ = std::make_shared<End>();
  kj::Promise<void> closing_ = nullptr;
  std::thread thread_;
};

RpcLoops::RpcLoops(size_t count, DaemonContext& ctx, const HomeLoop& home,
                   kj::AsyncIoContext& homeIo)
    : ctx_(ctx), handoffErrors_(kj::heap<LogTaskErrors>("handing a connection to an RPC thread")) {
  handoffs_ = kj::heap<kj::TaskSet>(*handoffErrors_);
  if (count == 0) local_ = kj::heap<ConnectionSet>(ctx, home, homeIo, localServed_);
  for (size_t i = 0; i < count; ++i) loops_.push_back(std::make_unique<Loop>(ctx, home));
}

RpcLoops::~RpcLoops() = default;

size_t RpcLoops::defaultCount(size_t cpus) {
  return cpus < 8 ? 0 : std::clamp<size_t>(cpus / 8, 1, 8);
}

void RpcLoops::serve(IncomingConnection connection) {
  KJ_IF_MAYBE (local, local_) {
    ++localServed_;
    (*local)->accept(std::move(connection));
    return;
  }
  Loop* loop = &leastBusy();
  ++loop->served;
  handoffs_->add(loop->executor()
                     .executeAsync([loop, connection = std::move(connection)]() mutable {
                       loop->accept(std::move(connection));
                     })
                     .catch_([this, loop](kj::Exception&& e) {
                       // The thread's loop has ended (it failed): the connection is
                       // closed here, and counted as ended.
                       --loop->served;
                       --ctx_.liveConnections;
                       kj::throwFatalException(kj::mv(e));
                     }));
}

void RpcLoops::serveFromAcceptor(IncomingConnection connection) {
  Loop& loop = leastBusy();
  ++loop.served;
  try {
    loop.executor().executeSync([&loop, &connection]() { loop.accept(std::move(connection)); });
  } catch (const kj::Exception& e) {
    // As in serve(): the thread's loop has ended (it failed); the
    // connection is closed here, and counted as ended.
    --loop.served;
    --ctx_.liveConnections;
    logError(std::string("handing a connection to an RPC thread: ") + e.getDescription().cStr());
  }
}

RpcLoops::Loop& RpcLoops::leastBusy() {
  // The fewest connections, the next in turn among equals.
  size_t best = next_ % loops_.size();
  for (size_t k = 1; k < loops_.size(); ++k) {
    const size_t i = (next_ + k) % loops_.size();
    if (loops_[i]->served < loops_[best]->served) best = i;
  }
  next_ = best + 1;
  return *loops_[best];
}

kj::Promise<void> RpcLoops::stop() {
  KJ_IF_MAYBE (local, local_) {
    (*local)->closeAll();
    return kj::READY_NOW;
  }
  auto stops = kj::heapArrayBuilder<kj::Promise<void>>(loops_.size());
  for (auto& loop : loops_) stops.add(loop->stop());
  return kj::joinPromises(stops.finish());
}

}  // namespace gpubox
