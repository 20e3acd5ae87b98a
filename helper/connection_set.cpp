#include "connection_set.hpp"

#include <capnp/rpc-twoparty.h>
#include <kj/debug.h>

#include "connection_guard.hpp"
#include "error.hpp"
#include "guarded_stream.hpp"
#include "helper_calls.hpp"
#include "kj_error.hpp"
#include "log.hpp"
#include "log_task_errors.hpp"
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

}  // namespace

struct ConnectionSet::Connection {
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

ConnectionSet::ConnectionSet(DaemonContext& ctx, const HomeLoop& home, kj::AsyncIoContext& io,
                             std::atomic<size_t>& served)
    : ctx_(ctx),
      home_(home),
      io_(io),
      served_(served),
      errors_(kj::heap<LogTaskErrors>("connection error")),
      tasks_(kj::heap<kj::TaskSet>(*errors_)) {}

ConnectionSet::~ConnectionSet() {
  closeAll();
}

void ConnectionSet::accept(IncomingConnection in) {
  try {
    serve(std::move(in));
  } catch (const std::exception& e) {
    dropped(e.what());
  } catch (const kj::Exception& e) {
    dropped(e.getDescription().cStr());
  }
}

void ConnectionSet::closeAll() {
  tasks_ = nullptr;  // each connection's end, which would close it again
  while (!connections_.empty()) close(connections_.begin());
}

void ConnectionSet::serve(IncomingConnection in) {
  if (!tasks_) throw Error("the helper is stopping");
  auto conn = kj::heap<Connection>();
  conn->sandboxes = HomeShared<ConnectionSandboxes>(home_, std::make_shared<ConnectionSandboxes>());
  conn->guard = std::make_shared<ConnectionGuard>(ctx_.limits, ctx_.callsInFlight,
                                                  io_.provider->getTimer(), in.uid);
  kj::Own<wire::Helper::Server> bootstrap;
  if (in.peer)
    bootstrap = newHelperServer(ctx_, home_, std::move(*in.peer), conn->sandboxes, conn->guard,
                                in.acceptedNs);
  else
    bootstrap = kj::heap<RefusedHelper>(in.refusal, conn->guard);
  const int rawFd = in.fd.get();
  conn->stream = io_.lowLevelProvider->wrapUnixSocketFd(
      in.fd.release(), kj::LowLevelAsyncIoProvider::TAKE_OWNERSHIP |
                           kj::LowLevelAsyncIoProvider::ALREADY_CLOEXEC |
                           kj::LowLevelAsyncIoProvider::ALREADY_NONBLOCK);
  conn->messages = kj::heap<GuardedMessageStream>(*conn->stream, rawFd, conn->guard);
  conn->network = kj::heap<capnp::TwoPartyVatNetwork>(*conn->messages, kMaxFdsPerMessage,
                                                      capnp::rpc::twoparty::Side::SERVER,
                                                      clientReaderOptions());
  conn->guard->attach(conn->network.get());
  conn->rpc =
      kj::heap(capnp::makeRpcServer(*conn->network, capnp::Capability::Client(kj::mv(bootstrap))));
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

// A connection that could not be set up: its socket is closed, its client
// sees the connection drop.
void ConnectionSet::dropped(const std::string& why) {
  logEventError("dropped a connection: " + why);
  --served_;
  --ctx_.liveConnections;
}

void ConnectionSet::close(Connections::iterator it) {
  // Killed on the home loop before the capabilities that reach them go.
  home_.post([sandboxes = (*it)->sandboxes]() { sandboxes->killAll(); });
  connections_.erase(it);
  --served_;
  --ctx_.liveConnections;
}

}  // namespace gpubox
