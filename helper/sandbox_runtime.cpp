#include "sandbox_runtime.hpp"

#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/debug.h>

#include "error.hpp"
#include "kj_error.hpp"
#include "sandbox/fd_passing.hpp"
#include "sandbox/syscalls.hpp"
#include "spec_wire.hpp"

namespace gpubox {

using initmsg::FromInit;

SandboxRuntime::SandboxRuntime(kj::UnixEventPort& port, Reaper& reaper, LaunchedInit init,
                               std::shared_ptr<void> holdings, std::function<void()> onEnd)
    : reaper_(reaper),
      pid_(init.pid),
      pidfd_(std::move(init.pidfd)),
      control_(std::move(init.control)),
      holdings_(std::move(holdings)),
      onEnd_(std::move(onEnd)),
      observer_(port, control_.get(), kj::UnixEventPort::FdObserver::OBSERVE_READ) {
  readTask_ = readLoop().eagerlyEvaluate([this](kj::Exception&& e) {
    failAll("lost contact with the sandbox: " + std::string(e.getDescription().cStr()));
  });
}

SandboxRuntime::~SandboxRuntime() {
  failAll("the sandbox was closed");
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

void SandboxRuntime::kill() {
  sys::pidfdSendSignal(pidfd_.get(), SIGKILL);
}

kj::Promise<void> SandboxRuntime::readLoop() {
  for (;;) {
    initmsg::FromInitRecord rec = {};
    ssize_t n = recvRecord(control_.get(), &rec, sizeof(rec), nullptr, 0, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      return observer_.whenBecomesReadable().then([this]() { return readLoop(); });
    }
    if (n <= 0) {
      failAll(ready_ ? "the sandbox's init exited unexpectedly"
                     : "the sandbox's init exited during setup");
      return kj::READY_NOW;
    }
    if (n == static_cast<ssize_t>(sizeof(rec))) {
      rec.text[sizeof(rec.text) - 1] = '\0';
      handle(rec);
    }
  }
}

void SandboxRuntime::handle(const initmsg::FromInitRecord& rec) {
  switch (rec.type) {
    case FromInit::Skipped:
      skipped_.push_back(static_cast<size_t>(rec.a));
      break;
    case FromInit::Ready:
      ready_ = true;
      for (auto& f : readyWaiters_) f->fulfill();
      readyWaiters_.clear();
      break;
    case FromInit::SetupFailed:
      failAll(std::string("sandbox setup failed: ") + rec.text);
      break;
    case FromInit::Started:
      break;
    case FromInit::StartFailed:
      finishExec(rec.id, {.kind = ExecOutcome::Kind::NotStarted,
                          .value = rec.a,
                          .stage = static_cast<initmsg::StartStage>(rec.b),
                          .message = rec.text});
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
      finishExec(rec.id, std::move(out));
      break;
    }
  }
}

void SandboxRuntime::finishExec(uint32_t id, ExecOutcome outcome) {
  auto it = execs_.find(id);
  if (it == execs_.end() || it->second.outcome) return;
  it->second.outcome = outcome;
  for (auto& w : it->second.waiters) w->fulfill(ExecOutcome(outcome));
  it->second.waiters.clear();
}

void SandboxRuntime::failAll(const std::string& why) {
  if (dead_) return;
  dead_ = why;
  for (auto& f : readyWaiters_) f->reject(callerError(why));
  readyWaiters_.clear();
  for (auto& [id, state] : execs_) {
    for (auto& w : state.waiters) w->reject(callerError(why));
    state.waiters.clear();
  }
}

kj::Promise<void> SandboxRuntime::whenReady() {
  if (ready_) return kj::READY_NOW;
  if (dead_) return callerError(dead_->c_str());
  auto paf = kj::newPromiseAndFulfiller<void>();
  readyWaiters_.push_back(kj::mv(paf.fulfiller));
  return kj::mv(paf.promise);
}

uint32_t SandboxRuntime::exec(const Command& cmd, const int stdio[3]) {
  if (dead_) throw Error(*dead_);
  capnp::MallocMessageBuilder message;
  commandToWire(cmd, message.initRoot<wire::Command>());
  auto words = capnp::messageToFlatArray(message);
  auto bytes = words.asBytes();
  if (bytes.size() > initmsg::kMaxExecPayload) throw Error("command and environment are too large");
  UniqueFd memfd(::memfd_create("gpubox-exec", MFD_CLOEXEC));
  if (!memfd) throwErrno("memfd_create");
  if (::write(memfd.get(), bytes.begin(), bytes.size()) != static_cast<ssize_t>(bytes.size()))
    throwErrno("write exec request");
  uint32_t id = nextId_++;
  initmsg::ToInitRecord rec = {};
  rec.type = initmsg::ToInit::Exec;
  rec.id = id;
  if (!sendRecord(control_.get(), &rec, sizeof(rec), {memfd.get(), stdio[0], stdio[1], stdio[2]}))
    throwErrno("send exec request to the sandbox");
  execs_[id];
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

void SandboxRuntime::signal(uint32_t id, int signo) {
  if (signo <= 0 || signo >= NSIG) throw Error("invalid signal number " + std::to_string(signo));
  initmsg::ToInitRecord rec = {};
  rec.type = initmsg::ToInit::Signal;
  rec.id = id;
  rec.signo = signo;
  if (!dead_) sendRecord(control_.get(), &rec, sizeof(rec), {});
}

}  // namespace gpubox
