#include "daemon_context.hpp"

#include "cgroup_worker.hpp"
#include "init_pool.hpp"
#include "init_spawner.hpp"
#include "sessions.hpp"

namespace gpubox {

DaemonContext::DaemonContext(kj::UnixEventPort& p, kj::Timer& t)
    : port(p), timer(t), sessions(std::make_unique<SessionRegistry>(*this)) {}

DaemonContext::~DaemonContext() {
  // Sessions hold sandboxes whose end goes through the reaper: end them
  // while it still exists.
  sessions.reset();
  initPool.reset();
  hostNetPool.reset();
  initSpawner.reset();
  requestSpawner.reset();
}

}  // namespace gpubox
