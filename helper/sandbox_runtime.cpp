#include "sandbox_runtime.hpp"

#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>

#include <kj/debug.h>

#include "error.hpp"
#include "kj_error.hpp"
#include "log.hpp"
#include "sandbox/fd_passing.hpp"
#include "sandbox/syscalls.hpp"

namespace gpubox {

using initmsg::FromInit;

namespace {

void explainTimeout(ExecOutcome& out, const ExecOptions& o, bool sigkill) {
  const bool all = o.timeoutScope == initmsg::SignalScope::All;
  out.reason = EndReason::TimedOut;
  out.timeoutMs = o.timeoutMs;
  out.sigkillNeeded = sigkill;
  out.words =
      "timed out: --timeout " + formatDurationMs(o.timeoutMs) + " elapsed; sent SIGTERM to " +
      (all ? "every process" : "the command's process group") + "; " +
      (sigkill ? "SIGKILL was needed after --kill-after " + formatDurationMs(o.killAfterMs)
               : std::string(all ? "every process ended after it" : "the command ended after it"));
}

}  // namespace

SandboxRuntime::SandboxRuntime(kj::UnixEventPort& port, kj::Timer& timer, Reaper& reaper,
                               LaunchedInit init, std::shared_ptr<void> holdings,
                               CgroupWatch cgroup, std::function<void()> onEnd)
    : timer_(timer),
      reaper_(reaper),
      pid_(init.pid),
      pidfd_(std::move(init.pidfd)),
      control_(std::move(init.control)),
      holdings_(std::move(holdings)),
      cgroup_(std::move(cgroup)),
      onEnd_(std::move(onEnd)),
      observer_(port, control_.get(), kj::UnixEventPort::FdObserver::OBSERVE_READ) {
  // The control socket came non-blocking from its spawner (spawnInit), so
  // a send to an init that stopped reading fails with EAGAIN instead of
  // hanging the loop.
  // From the loop's next turn, not here: a warm init may have reported
  // already, and its records must meet what the creator sets up right after
  // constructing this (traceSpans, placeWhen, setOnActivity).
  readTask_ =
      kj::evalLater([this]() { return readLoop(); }).eagerlyEvaluate([this](kj::Exception&& e) {
        initGone("lost contact with the sandbox: " + std::string(e.getDescription().cStr()));
      });
}

SandboxRuntime::~SandboxRuntime() {
  placement_ = nullptr;
  for (auto& [id, state] : execs_) {
    state.timeout = nullptr;
    state.drain = nullptr;
  }
  initGone("the sandbox was closed");
  // SIGKILL to a pid namespace's init kills every process in it.
  sys::pidfdSendSignal(pidfd_.get(), SIGKILL);
  auto holdings = std::move(holdings_);
  auto onEnd = std::move(onEnd_);
  std::function<void()> release = [holdings = std::move(holdings),
                                   onEnd = std::move(onEnd)]() mutable {
    holdings.reset();
    if (onEnd) onEnd();
  };
  try {
    reaper_.reap(pidfd_, release);
  } catch (const kj::Exception&) {
    // No event loop any more (the helper is shutting down and Cap'n Proto is
    // dropping what it still held): reap right here. The init was just sent
    // SIGKILL, so this wait is short, and the cgroups and leases are still
    // released in order.
    siginfo_t info;
    while (::waitid(P_PIDFD, static_cast<id_t>(pidfd_.get()), &info, WEXITED) != 0 &&
           errno == EINTR) {
    }
    release();
  }
}

void SandboxRuntime::end(EndReason why) {
  if (!endedBy_ && !dead_) endedBy_ = why;
  sys::pidfdSendSignal(pidfd_.get(), SIGKILL);
}

size_t SandboxRuntime::running() const {
  size_t n = 0;
  for (const auto& [id, state] : execs_)
    if (!state.outcome) ++n;
  return n;
}

kj::Promise<void> SandboxRuntime::readLoop() {
  // One recvmmsg(2) takes what the init has sent since the last look (it
  // sends the end of its setup as several records at once); a batch that
  // is not full leaves nothing waiting, so the loop waits for the next
  // edge without a read that would only fail with EAGAIN.
  constexpr size_t kBatch = 8;
  static_assert(kBatch <= kMaxRecordBatch);
  for (;;) {
    std::array<initmsg::FromInitRecord, kBatch> recs;
    std::array<ssize_t, kBatch> sizes;
    ssize_t n = recvRecords(control_.get(), recs.data(), sizeof(recs[0]), kBatch, sizes.data());
    // An init that exits with a record of ours unread (a Placed that
    // crossed its SetupFailed) makes the kernel report ECONNRESET once,
    // ahead of what it sent before it went: read on, so its own words
    // (why setup failed) are what the caller gets.
    if (n < 0 && errno == ECONNRESET) continue;
    const auto gone = [this]() {
      initGone(ready_ ? "the sandbox's init exited unexpectedly"
                      : "the sandbox's init exited during setup");
      return kj::READY_NOW;
    };
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return gone();
    if (n < 0) n = 0;  // none was waiting
    for (ssize_t i = 0; i < n; ++i) {
      // The socket's end (a record of 0 bytes), or a record cut short.
      if (sizes[i] <= 0) return gone();
      if (sizes[i] == static_cast<ssize_t>(sizeof(recs[i]))) {
        recs[i].text[sizeof(recs[i].text) - 1] = '\0';
        handle(recs[i]);
      }
    }
    if (static_cast<size_t>(n) < kBatch)
      return observer_.whenBecomesReadable().then([this]() { return readLoop(); });
  }
}

void SandboxRuntime::handle(const initmsg::FromInitRecord& rec) {
  switch (rec.type) {
    case FromInit::Skipped:
      skipped_.push_back(static_cast<size_t>(rec.a));
      break;
    case FromInit::Hidden:
      hidden_.push_back(static_cast<size_t>(rec.a));
      break;
    case FromInit::Span:
      // Only during setup, while the init runs nothing but our code.
      if (spans_ && !ready_ && rec.c > 0)
        spans_->markAt(std::string("init:") + rec.text, static_cast<uint64_t>(rec.c));
      break;
    case FromInit::Ready:
      if (spans_) spans_->mark("ready");
      ready_ = true;
      for (auto& f : readyWaiters_) f->fulfill();
      readyWaiters_.clear();
      break;
    case FromInit::SetupFailed:
      initGone(std::string("sandbox setup failed: ") + rec.text);
      break;
    case FromInit::Started:
      if (spans_) spans_->mark("started");
      break;
    case FromInit::AllGone: {
      auto it = execs_.find(rec.id);
      if (it == execs_.end()) break;
      it->second.allGone = true;
      if (it->second.deferred) {
        ExecOutcome out = std::move(*it->second.deferred);
        it->second.deferred.reset();
        out.sigkillNeeded = out.sigkillNeeded || rec.a != 0;
        if (out.sigkillNeeded) explainTimeout(out, it->second.options, true);
        deliver(rec.id, std::move(out));
      }
      break;
    }
    case FromInit::StartFailed:
      if (spans_) {
        spans_->mark("start-failed");
        spans_->emit();
      }
      finishExec(rec.id, {.kind = ExecOutcome::Kind::NotStarted,
                          .value = rec.a,
                          .stage = static_cast<initmsg::StartStage>(rec.b),
                          .message = rec.text,
                          .reason = EndReason::NotStarted,
                          .words = std::string("not started: ") + rec.text});
      break;
    case FromInit::Exited: {
      ExecOutcome out;
      if (WIFSIGNALED(rec.a)) {
        out.kind = ExecOutcome::Kind::Signaled;
        out.value = WTERMSIG(rec.a);
      } else {
        out.kind = ExecOutcome::Kind::Exited;
        out.value = WEXITSTATUS(rec.a);
      }
      out.pid = rec.b;
      out.wallNanos = static_cast<uint64_t>(rec.c);
      if (spans_) {
        spans_->mark("exited");
        spans_->emit();
      }
      finishExec(rec.id, std::move(out));
      break;
    }
  }
}

void SandboxRuntime::explain(ExecState& state, ExecOutcome& out) {
  if (out.kind == ExecOutcome::Kind::NotStarted) return;
  const bool signaled = out.kind == ExecOutcome::Kind::Signaled;
  const bool oomKilled = oomKills() > state.oomKillsAtStart;
  if (state.timedOut) {
    explainTimeout(out, state.options, state.sigkillSent);
  } else if (signaled && out.value == SIGKILL && oomKilled) {
    out.reason = EndReason::OutOfMemory;
    out.words = cgroup_.oomWords;
  } else {
    out.reason = signaled ? EndReason::Signaled : EndReason::Exited;
    out.words = exitWords(signaled, out.value);
    // The command survived, but something of it did not (e.g. a compiler
    // child): worth saying, it usually explains a failure.
    if (oomKilled) out.words += " (a process of the sandbox was killed: " + cgroup_.oomWords + ")";
  }
}

void SandboxRuntime::finishExec(uint32_t id, ExecOutcome outcome) {
  auto it = execs_.find(id);
  if (it == execs_.end() || it->second.outcome) return;
  ExecState& state = it->second;
  if (state.deferred) return;
  explain(state, outcome);
  if (state.timedOut && state.options.timeoutScope == initmsg::SignalScope::All) {
    // "Timed out" means every process of the sandbox, not only the command:
    // report it once they are all gone, after SIGTERM or after the SIGKILL.
    if (state.sigkillSent && !state.allGone) {
      state.deferred = std::move(outcome);
      return;
    }
    if (!state.sigkillSent && cgroup_.processes && cgroup_.processes() > 1) {
      state.deferred = std::move(outcome);
      state.drain = drainThenDeliver(id).eagerlyEvaluate(nullptr);
      return;
    }
  }
  // A session's timed-out command may leave group members that ignored
  // SIGTERM: the kill-after stage still runs for them. Otherwise stop it.
  if (!state.timedOut) state.timeout = nullptr;
  deliver(id, std::move(outcome));
}

void SandboxRuntime::deliver(uint32_t id, ExecOutcome outcome) {
  ExecState& state = execs_.at(id);
  state.outcome = outcome;
  for (auto& w : state.waiters) w->fulfill(ExecOutcome(outcome));
  state.waiters.clear();
  if (!firstEnded_) {
    firstEnded_ = true;
    for (auto& f : firstEndedWaiters_) f->fulfill();
    firstEndedWaiters_.clear();
  }
  if (onActivity_) onActivity_();
}

// Polls the cgroup (a single small read every 50 ms, only while a timed-out
// sandbox winds down) until the init is the last process left.
kj::Promise<void> SandboxRuntime::drainThenDeliver(uint32_t id) {
  return timer_.afterDelay(50 * kj::MILLISECONDS).then([this, id]() -> kj::Promise<void> {
    ExecState& state = execs_.at(id);
    if (!state.deferred || state.sigkillSent) return kj::READY_NOW;  // AllGone will deliver
    if (cgroup_.processes() > 1) return drainThenDeliver(id);
    ExecOutcome out = std::move(*state.deferred);
    state.deferred.reset();
    deliver(id, std::move(out));
    return kj::READY_NOW;
  });
}

void SandboxRuntime::initGone(const std::string& why) {
  if (dead_) return;
  dead_ = why;
  for (auto& f : readyWaiters_) f->reject(callerError(why));
  readyWaiters_.clear();
  firstEnded_ = true;
  for (auto& f : firstEndedWaiters_) f->fulfill();
  firstEndedWaiters_.clear();
  for (auto& [id, state] : execs_) {
    state.timeout = nullptr;
    if (state.deferred) {
      // The command's own end is known; the rest of the sandbox is gone now.
      state.outcome = std::move(*state.deferred);
      state.deferred.reset();
      for (auto& w : state.waiters) w->fulfill(ExecOutcome(*state.outcome));
      state.waiters.clear();
      continue;
    }
    if (state.outcome) continue;
    if (endedBy_) {
      // The helper ended the sandbox on purpose: that is the command's end.
      ExecOutcome out{.kind = ExecOutcome::Kind::Signaled, .value = SIGKILL};
      out.reason = *endedBy_;
      out.words = *endedBy_ == EndReason::SessionRemoved ? "the session was removed"
                  : *endedBy_ == EndReason::SessionExpired
                      ? "the session expired (its --ttl or --idle-timeout passed)"
                      : "the sandbox was closed";
      state.outcome = out;
      for (auto& w : state.waiters) w->fulfill(ExecOutcome(out));
    } else {
      for (auto& w : state.waiters) w->reject(callerError(why));
    }
    state.waiters.clear();
  }
  if (onActivity_) onActivity_();
}

kj::Promise<void> SandboxRuntime::runTimeout(uint32_t id) {
  const ExecOptions options = execs_.at(id).options;
  return timer_.afterDelay(options.timeoutMs * kj::MILLISECONDS)
      .then([this, id, options]() -> kj::Promise<void> {
        ExecState& state = execs_.at(id);
        if (state.outcome || dead_) return kj::READY_NOW;
        state.timedOut = true;
        signal(id, SIGTERM, options.timeoutScope);
        return timer_.afterDelay(options.killAfterMs * kj::MILLISECONDS)
            .then([this, id, options]() {
              ExecState& st = execs_.at(id);
              if (dead_) return;
              // Processes still there after the grace period: the command's, or
              // (outcome known, held back) others of the sandbox. A command that
              // already ended in a session may have left group members: they get
              // the SIGKILL too, but the command did not need it.
              if (!st.outcome) st.sigkillSent = true;
              if (st.outcome && options.timeoutScope == initmsg::SignalScope::All) return;
              signal(id, SIGKILL, options.timeoutScope);
            });
      });
}

void SandboxRuntime::placeWhen(kj::Promise<void> placement) {
  placement_ = placement
                   .then([this]() {
                     if (spans_) spans_->mark("placed");
                     initmsg::ToInitRecord rec = {};
                     rec.type = initmsg::ToInit::Placed;
                     if (dead_ || sendRecord(control_.get(), &rec, sizeof(rec), {})) return;
                     // The init went first (its setup failed before it waited
                     // for this): the read loop reports why, from its record.
                     if (errno == EPIPE || errno == ECONNRESET) return;
                     throwErrno("tell the sandbox's init it joined its cgroups");
                   })
                   .eagerlyEvaluate([this](kj::Exception&& e) {
                     initGone(e.getDescription().cStr());
                     sys::pidfdSendSignal(pidfd_.get(), SIGKILL);
                   });
}

kj::Promise<void> SandboxRuntime::whenFirstEnded() {
  if (firstEnded_ || dead_) return kj::READY_NOW;
  auto paf = kj::newPromiseAndFulfiller<void>();
  firstEndedWaiters_.push_back(kj::mv(paf.fulfiller));
  return kj::mv(paf.promise);
}

kj::Promise<void> SandboxRuntime::whenReady() {
  if (ready_) return kj::READY_NOW;
  if (dead_) return callerError(dead_->c_str());
  auto paf = kj::newPromiseAndFulfiller<void>();
  readyWaiters_.push_back(kj::mv(paf.fulfiller));
  return kj::mv(paf.promise);
}

uint32_t SandboxRuntime::exec(int commandMemfd, const int stdio[3], const ExecOptions& options) {
  if (dead_) throw Error(*dead_);
  if (endedBy_)
    throw Error("the sandbox is ending (" + std::string(endReasonName(*endedBy_)) + ")");
  uint32_t id = nextId_++;
  initmsg::ToInitRecord rec = {};
  rec.type = initmsg::ToInit::Exec;
  rec.id = id;
  if (!sendRecord(control_.get(), &rec, sizeof(rec), {commandMemfd, stdio[0], stdio[1], stdio[2]}))
    throwErrno("send exec request to the sandbox");
  if (spans_) spans_->mark("exec");
  ExecState& state = execs_[id];
  state.options = options;
  // The sandbox's cgroup was made for it and nothing in it but the init
  // has run before its first command (an OOM kill of the init would have
  // ended the sandbox): its count is 0 then, and is not read.
  state.oomKillsAtStart = id == 1 ? 0 : oomKills();
  if (options.timeoutMs > 0)
    state.timeout = runTimeout(id).eagerlyEvaluate([](kj::Exception&& e) {
      logError(std::string("timeout handling failed: ") + e.getDescription().cStr());
    });
  if (onActivity_) onActivity_();
  return id;
}

kj::Promise<ExecOutcome> SandboxRuntime::wait(uint32_t id) {
  auto it = execs_.find(id);
  if (it == execs_.end()) return callerError("no such process");
  if (it->second.outcome) return ExecOutcome(*it->second.outcome);
  if (dead_) return callerError(dead_->c_str());
  auto paf = kj::newPromiseAndFulfiller<ExecOutcome>();
  it->second.waiters.push_back(kj::mv(paf.fulfiller));
  return kj::mv(paf.promise);
}

void SandboxRuntime::signal(uint32_t id, int signo, initmsg::SignalScope scope) {
  if (signo <= 0 || signo >= NSIG) throw Error("invalid signal number " + std::to_string(signo));
  initmsg::ToInitRecord rec = {};
  rec.type = initmsg::ToInit::Signal;
  rec.id = id;
  rec.signo = signo;
  rec.scope = scope;
  if (!dead_) sendRecord(control_.get(), &rec, sizeof(rec), {});
}

}  // namespace gpubox
