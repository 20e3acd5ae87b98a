#include "sessions.hpp"

#include "caller_policy.hpp"

#include <sys/random.h>

#include <cstdio>

#include "error.hpp"
#include "log.hpp"

namespace gpubox {

namespace {

constexpr const char* kRestartNote =
    " (it ended, was removed, or the helper restarted: sessions do not survive a helper restart)";

std::string owner(uid_t uid) {
  return "uid " + std::to_string(uid);
}

}  // namespace

void validateSessionName(const std::string& name) {
  if (name.empty() || name.size() > 64)
    throw Error("session name '" + name + "' must be 1 to 64 characters");
  auto alnum = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
  };
  if (!alnum(name[0])) throw Error("session name '" + name + "' must start with a letter or digit");
  for (char c : name)
    if (!alnum(c) && c != '.' && c != '_' && c != '-')
      throw Error("session name '" + name + "' has a character other than [A-Za-z0-9._-]");
}

SessionRegistry::~SessionRegistry() {
  endAll();
}

std::string SessionRegistry::freshName() const {
  for (;;) {
    unsigned char bytes[4];
    if (::getrandom(bytes, sizeof bytes, 0) != sizeof bytes) throwErrno("getrandom");
    char name[16];
    std::snprintf(name, sizeof name, "s-%02x%02x%02x%02x", bytes[0], bytes[1], bytes[2], bytes[3]);
    if (!sessions_.count(name)) return name;
  }
}

SessionRegistry::Created SessionRegistry::create(const PeerIdentity& peer, const SandboxSpec& spec,
                                                 const SessionOptions& options,
                                                 const SpanOrigin& origin) {
  std::string name = options.name.empty() ? freshName() : options.name;
  validateSessionName(name);
  if (auto it = sessions_.find(name); it != sessions_.end()) {
    if (!it->second.sandbox->runtime->ended())
      throw Error("session name '" + name + "' is taken; choose another or leave --name out");
    sessions_.erase(it);  // its init died on its own: the name is free again
  }
  const SandboxDefaults d = callerPolicy(ctx_, peer).defaults;
  uint64_t ttl = options.ttlMs ? options.ttlMs : d.sessionTtlMs;
  if (ttl > d.maxSessionTtlMs)
    throw Error("--ttl " + formatDurationMs(ttl) + ": above the ceiling of " +
                formatDurationMs(d.maxSessionTtlMs) + " (" + d.origin.maxSessionTtl + ")");
  size_t mine = 0;
  for (const auto& [n, s] : sessions_)
    if (s.uid == peer.uid && !s.sandbox->runtime->ended()) ++mine;
  if (mine >= d.sessionsPerUid)
    throw Error("uid " + std::to_string(peer.uid) + " already has " + std::to_string(mine) +
                " sessions, the most allowed (" + d.origin.sessionsPerUid + ": " +
                std::to_string(d.sessionsPerUid) + "); remove one with gpubox session rm");

  std::shared_ptr<LiveSandbox> sandbox = buildSandbox(ctx_, peer, spec, name, origin);
  Session& s = sessions_[name];
  s.sandbox = sandbox;
  s.uid = peer.uid;
  s.ttlMs = ttl;
  s.idleMs = options.idleTimeoutMs;
  s.deadline = ctx_.timer.now() + ttl * kj::MILLISECONDS;
  s.ttlTimer = ctx_.timer.atTime(s.deadline).then([this, name, ttl]() {
    endLater(name, EndReason::SessionExpired, "its --ttl " + formatDurationMs(ttl) + " passed");
  });
  s.ttlTimer = s.ttlTimer.eagerlyEvaluate(nullptr);
  sandbox->runtime->setOnActivity([this, name]() { activity(name); });
  activity(name);
  logEventInfo("session " + name + " created by uid " + std::to_string(peer.uid) + ", ttl " +
               formatDurationMs(ttl));
  return {sandbox, ttl};
}

SessionRegistry::Session& SessionRegistry::owned(const PeerIdentity& peer,
                                                 const std::string& name) {
  auto it = sessions_.find(name);
  if (it == sessions_.end()) throw Error("no session named '" + name + "'" + kRestartNote);
  Session& s = it->second;
  if (peer.uid != 0 && s.uid != peer.uid)
    throw Error("session '" + name + "' belongs to " + owner(s.uid) + "; " + owner(peer.uid) +
                " may not use it");
  if (s.sandbox->runtime->ended()) {
    sessions_.erase(it);
    throw Error("session '" + name + "' has ended (its init exited unexpectedly)");
  }
  return s;
}

std::shared_ptr<LiveSandbox> SessionRegistry::open(const PeerIdentity& peer,
                                                   const std::string& name) {
  return owned(peer, name).sandbox;
}

void SessionRegistry::remove(const PeerIdentity& peer, const std::string& name) {
  owned(peer, name);
  end(name, EndReason::SessionRemoved, "removed by uid " + std::to_string(peer.uid));
}

void SessionRegistry::end(std::string name, EndReason why, const std::string& logWhy) {
  auto it = sessions_.find(name);
  if (it == sessions_.end()) return;
  Session s = std::move(it->second);
  sessions_.erase(it);
  s.sandbox->runtime->setOnActivity(nullptr);
  s.sandbox->runtime->end(why);
  logEventInfo("session " + name + " of uid " + std::to_string(s.uid) + " ended: " + logWhy);
}

void SessionRegistry::endLater(const std::string& name, EndReason why, const std::string& logWhy) {
  kj::evalLater([this, name, why, logWhy]() {
    end(name, why, logWhy);
  }).detach([](kj::Exception&& e) {
    logError(std::string("ending a session failed: ") + e.getDescription().cStr());
  });
}

void SessionRegistry::activity(const std::string& name) {
  auto it = sessions_.find(name);
  if (it == sessions_.end()) return;
  Session& s = it->second;
  if (s.sandbox->runtime->ended()) {
    // Its init is gone (setup failed, or it was killed): release what the
    // session holds (cgroup, GPU lease) now, not at its TTL.
    endLater(name, EndReason::HelperError, "its sandbox's init exited");
    return;
  }
  if (s.idleMs == 0) return;
  if (s.sandbox->runtime->running() > 0) {
    s.idleTimer = nullptr;  // busy: not idle
    return;
  }
  uint64_t idle = s.idleMs;
  s.idleTimer = ctx_.timer.afterDelay(idle * kj::MILLISECONDS)
                    .then([this, name, idle]() {
                      endLater(name, EndReason::SessionExpired,
                               "idle for its --idle-timeout " + formatDurationMs(idle));
                    })
                    .eagerlyEvaluate(nullptr);
}

std::optional<uint64_t> SessionRegistry::ttlLeftMs(const std::string& name) const {
  auto it = sessions_.find(name);
  if (it == sessions_.end()) return std::nullopt;
  kj::Duration left = it->second.deadline - ctx_.timer.now();
  return left < 0 * kj::MILLISECONDS ? 0 : static_cast<uint64_t>(left / kj::MILLISECONDS);
}

std::optional<uint64_t> SessionRegistry::idleTimeoutMs(const std::string& name) const {
  auto it = sessions_.find(name);
  if (it == sessions_.end()) return std::nullopt;
  return it->second.idleMs;
}

void SessionRegistry::endAll() {
  while (!sessions_.empty())
    end(sessions_.begin()->first, EndReason::SessionRemoved, "the helper is stopping");
}

}  // namespace gpubox
