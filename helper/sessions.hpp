// Sessions: sandboxes that outlive the connection that created them, so an
// agent can run many commands in one prepared environment. A session belongs
// to the uid that created it (root may reach any), and ends on `session rm`,
// when its TTL passes, or after an idle timeout with no command running.
// Sessions live in the helper's memory only: they do not survive a restart.
#pragma once

#include <kj/async.h>
#include <kj/timer.h>

#include <map>
#include <memory>
#include <optional>
#include <string>

#include "daemon_context.hpp"
#include "peer.hpp"
#include "sandbox_factory.hpp"
#include "spec.hpp"

namespace gpubox {

struct SessionOptions {
  std::string name;            // empty: generated
  uint64_t ttlMs = 0;          // 0: the helper's default
  uint64_t idleTimeoutMs = 0;  // 0: none
};

// [A-Za-z0-9][A-Za-z0-9._-]{0,63}; throws gpubox::Error naming the problem.
void validateSessionName(const std::string& name);

class SessionRegistry {
 public:
  explicit SessionRegistry(DaemonContext& ctx) : ctx_(ctx) {}
  ~SessionRegistry();
  SessionRegistry(const SessionRegistry&) = delete;
  SessionRegistry& operator=(const SessionRegistry&) = delete;

  struct Created {
    std::shared_ptr<LiveSandbox> sandbox;
    uint64_t ttlMs = 0;
  };
  // Builds the sandbox and registers it. Throws gpubox::Error.
  Created create(const PeerIdentity& peer, const SandboxSpec& spec, const SessionOptions& options,
                 const SpanOrigin& origin = {});
  // The session NAME if PEER may use it; throws gpubox::Error saying why not.
  std::shared_ptr<LiveSandbox> open(const PeerIdentity& peer, const std::string& name);
  // Kills everything in it and forgets it. Throws like open().
  void remove(const PeerIdentity& peer, const std::string& name);
  // Remaining TTL of a live session (for the listing); nullopt if none.
  std::optional<uint64_t> ttlLeftMs(const std::string& name) const;
  std::optional<uint64_t> idleTimeoutMs(const std::string& name) const;
  // Shutdown: ends every session.
  void endAll();

 private:
  struct Session {
    std::shared_ptr<LiveSandbox> sandbox;
    uid_t uid = 0;
    uint64_t ttlMs = 0;
    uint64_t idleMs = 0;
    kj::TimePoint deadline = kj::origin<kj::TimePoint>();
    kj::Promise<void> ttlTimer = nullptr;
    kj::Promise<void> idleTimer = nullptr;
  };
  Session& owned(const PeerIdentity& peer, const std::string& name);
  // NAME by value: it may be the key of the entry this erases.
  void end(std::string name, EndReason why, const std::string& logWhy);
  // Ends NAME from a timer: deferred to a turn of its own, since ending
  // destroys the timer's promise.
  void endLater(const std::string& name, EndReason why, const std::string& logWhy);
  void activity(const std::string& name);
  std::string freshName() const;

  DaemonContext& ctx_;
  std::map<std::string, Session> sessions_;
};

}  // namespace gpubox
