#include "rpc_loops.hpp"

#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>

#include <capnp/rpc-twoparty.h>
#include <kj/async-io.h>
#include <kj/debug.h>

#include <algorithm>
#include <condition_variable>
#include <list>
#include <mutex>
#include <thread>

#include "connection_guard.hpp"
#include "error.hpp"
#include "guarded_stream.hpp"
#include "helper_calls.hpp"
#include "kj_error.hpp"
#include "log.hpp"
#include "privileges.hpp"
#include "rpc_server.hpp"
#include "wire_limits.hpp"

namespace gpubox {

namespace {

// Three stdio fds per exec; nothing else may arrive with a message (the
// kernel closes any more that a client sends).
constexpr unsigned kMaxFdsPerMessage = 3;
// Call data (params) of unanswered calls per connection before the helper
// stops reading from it: one largest message, with room to spare.
constexpr size_t kFlowLimitWords = 2 * 1024 * 1024;

// The bootstrap object for a peer the helper refuses: every call fails with
// the reason, so the client prints it instead of seeing a dropped connection.
class RefusedHelper final : public wire::Helper::Server {
 public:
  RefusedHelper(std::string why, std::shared_ptr<ConnectionGuard> guard)
      : why_(std::move(why)), guard_(std::move(guard)) {}
  DispatchCallResult dispatchCall(
      uint64_t interfaceId, uint16_t methodId,
      capnp::CallContext<capnp::AnyPointer, capnp::AnyPointer> context) override {
    return guard_->run(
        [&] { return wire::Helper::Server::dispatchCall(interfaceId, methodId, context); });
  }
  kj::Promise<void> info(InfoContext) override { return refuse(); }
  kj::Promise<void> create(CreateContext) override { return refuse(); }
  kj::Promise<void> gpus(GpusContext) override { return refuse(); }
  kj::Promise<void> createSession(CreateSessionContext) override { return refuse(); }
  kj::Promise<void> openSession(OpenSessionContext) override { return refuse(); }
  kj::Promise<void> removeSession(RemoveSessionContext) override { return refuse(); }
  kj::Promise<void> list(ListContext) override { return refuse(); }

 private:
  kj::Promise<void> refuse() { return callerError(why_); }
  std::string why_;
  std::shared_ptr<ConnectionGuard> guard_;
};

class LogErrors final : public kj::TaskSet::ErrorHandler {
 public:
  explicit LogErrors(const char* what) : what_(what) {}
  void taskFailed(kj::Exception&& e) override {
    logError(std::string(what_) + ": " + e.getDescription().cStr());
  }

 private:
  const char* what_;
};

}  // namespace

// One RPC thread. Everything but the constructor, the destructor, the
// executor and `connections` is touched on that thread only.
class RpcLoops::Loop {
 public:
  Loop(DaemonContext& ctx, const HomeLoop& home) : ctx_(ctx), home_(home) {
    // No signal for this thread: kj's event port expects SIGTERM, SIGINT and
    // SIGHUP to stay blocked in every thread but the home loop's, and a
    // signal's default action here would end the helper. A new thread
    // inherits the mask of the thread that creates it.
    sigset_t all, previous;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &previous);
    try {
      thread_ = std::thread([this] { main(); });
    } catch (...) {
      pthread_sigmask(SIG_SETMASK, &previous, nullptr);
      throw;
    }
    pthread_sigmask(SIG_SETMASK, &previous, nullptr);
    std::unique_lock lock(mutex_);
    started_.wait(lock, [this] { return executor_ || !startError_.empty(); });
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

  // Connections served, for RpcLoops::serve's choice.
  std::atomic<size_t> connections = 0;

  void accept(IncomingConnection in) {
    try {
      serve(std::move(in));
    } catch (const std::exception& e) {
      dropped(e.what());
    } catch (const kj::Exception& e) {
      dropped(e.getDescription().cStr());
    }
  }

  // Ends every connection, then the thread.
  void closeAll() {
    tasks_ = nullptr;  // each connection's end, which would close it again
    while (!connections_.empty()) close(connections_.begin());
    closed_ = true;
    KJ_IF_MAYBE (f, exit_) {
      (*f)->fulfill();
    }
  }

 private:
  struct Connection {
    ~Connection() {
      if (guard) guard->attach(nullptr);  // before the members (the network) go
    }
    HomeShared<ConnectionSandboxes> sandboxes;
    std::shared_ptr<ConnectionGuard> guard;
    kj::Own<kj::AsyncCapabilityStream> stream;
    kj::Own<GuardedMessageStream> messages;
    kj::Own<capnp::TwoPartyVatNetwork> network;
    kj::Own<capnp::RpcSystem<capnp::rpc::twoparty::VatId>> rpc;
  };
  using Connections = std::list<kj::Own<Connection>>;

  void serve(IncomingConnection in) {
    auto conn = kj::heap<Connection>();
    conn->sandboxes =
        HomeShared<ConnectionSandboxes>(home_, std::make_shared<ConnectionSandboxes>());
    conn->guard = std::make_shared<ConnectionGuard>(ctx_.limits, ctx_.callsInFlight,
                                                    io_->provider->getTimer(), in.uid);
    kj::Own<wire::Helper::Server> bootstrap;
    if (in.peer)
      bootstrap = newHelperServer(ctx_, home_, std::move(*in.peer), conn->sandboxes, conn->guard);
    else
      bootstrap = kj::heap<RefusedHelper>(in.refusal, conn->guard);
    const int rawFd = in.fd.get();
    conn->stream = io_->lowLevelProvider->wrapUnixSocketFd(
        in.fd.release(), kj::LowLevelAsyncIoProvider::TAKE_OWNERSHIP |
                             kj::LowLevelAsyncIoProvider::ALREADY_CLOEXEC |
                             kj::LowLevelAsyncIoProvider::ALREADY_NONBLOCK);
    conn->messages = kj::heap<GuardedMessageStream>(*conn->stream, rawFd, conn->guard);
    conn->network = kj::heap<capnp::TwoPartyVatNetwork>(*conn->messages, kMaxFdsPerMessage,
                                                        capnp::rpc::twoparty::Side::SERVER,
                                                        clientReaderOptions());
    conn->guard->attach(conn->network.get());
    conn->rpc = kj::heap(
        capnp::makeRpcServer(*conn->network, capnp::Capability::Client(kj::mv(bootstrap))));
    conn->rpc->setFlowLimit(kFlowLimitWords);
    Connection* raw = conn.get();
    connections_.push_back(kj::mv(conn));
    auto it = std::prev(connections_.end());
    // The connection ends when the client goes (or sends what the helper
    // cannot read: Cap'n Proto then aborts it), when its guard closes it
    // (flooding, not reading its answers), or when it has idled too long.
    // Either way its capabilities are dropped, which closes its sandboxes
    // (killing everything in them).
    auto ended = raw->network->onDisconnect()
                     .catch_([](kj::Exception&&) {})
                     .exclusiveJoin(raw->guard->whenClosed())
                     .exclusiveJoin(raw->guard->whenIdle());
    tasks_->add(ended.then([this, it]() { close(it); }));
  }

  // A connection that could not be set up (out of memory, of fds): its
  // socket is closed, its client sees the connection drop.
  void dropped(const std::string& why) {
    logError("dropped a connection: " + why);
    --connections;
    --ctx_.liveConnections;
  }

  void close(Connections::iterator it) {
    // Killed on the home loop before the capabilities that reach them go.
    home_.post([sandboxes = (*it)->sandboxes]() { sandboxes->killAll(); });
    connections_.erase(it);
    --connections;
    --ctx_.liveConnections;
  }

  void main() {
    ::prctl(PR_SET_NAME, "gpubox-rpc", 0, 0, 0);
    try {
      dropThreadCapabilities();
      auto io = kj::setupAsyncIo();
      io_ = &io;
      LogErrors errors("connection error");
      tasks_ = kj::heap<kj::TaskSet>(errors);
      auto paf = kj::newPromiseAndFulfiller<void>();
      exit_ = kj::mv(paf.fulfiller);
      {
        std::lock_guard lock(mutex_);
        executor_ = kj::getCurrentThreadExecutor().addRef();
      }
      started_.notify_all();
      paf.promise.wait(io.waitScope);
      tasks_ = nullptr;
      io_ = nullptr;
    } catch (const std::exception& e) {
      fail(e.what());
    } catch (const kj::Exception& e) {
      fail(e.getDescription().cStr());
    }
  }

  void fail(const std::string& why) {
    {
      std::lock_guard lock(mutex_);
      if (executor_) {
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
  std::string startError_;
  std::atomic<bool> closed_ = false;
  std::thread thread_;
  // The thread's own.
  kj::AsyncIoContext* io_ = nullptr;
  Connections connections_;
  kj::Own<kj::TaskSet> tasks_;
  kj::Maybe<kj::Own<kj::PromiseFulfiller<void>>> exit_;
};

RpcLoops::RpcLoops(size_t count, DaemonContext& ctx, const HomeLoop& home)
    : handoffErrors_(kj::heap<LogErrors>("handing a connection to an RPC thread")) {
  handoffs_ = kj::heap<kj::TaskSet>(*handoffErrors_);
  for (size_t i = 0; i < std::max<size_t>(count, 1); ++i)
    loops_.push_back(std::make_unique<Loop>(ctx, home));
}

RpcLoops::~RpcLoops() = default;

size_t RpcLoops::defaultCount(size_t cpus) {
  return std::clamp<size_t>(cpus / 4, 1, 8);
}

void RpcLoops::serve(IncomingConnection connection) {
  // The fewest connections, the next in turn among equals.
  size_t best = next_ % loops_.size();
  for (size_t k = 1; k < loops_.size(); ++k) {
    const size_t i = (next_ + k) % loops_.size();
    if (loops_[i]->connections.load() < loops_[best]->connections.load()) best = i;
  }
  next_ = best + 1;
  Loop* loop = loops_[best].get();
  ++loop->connections;
  handoffs_->add(
      loop->executor().executeAsync([loop, connection = std::move(connection)]() mutable {
        loop->accept(std::move(connection));
      }));
}

kj::Promise<void> RpcLoops::stop() {
  auto stops = kj::heapArrayBuilder<kj::Promise<void>>(loops_.size());
  for (auto& loop : loops_)
    stops.add(loop->executor().executeAsync([l = loop.get()]() { l->closeAll(); }));
  return kj::joinPromises(stops.finish());
}

}  // namespace gpubox
