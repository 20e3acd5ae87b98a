#include "cgroup_worker.hpp"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdio>
#include <tuple>

#include "error.hpp"
#include "kj_error.hpp"
#include "log.hpp"
#include "signal_free_thread.hpp"

namespace gpubox {

struct MadeDirs {
  std::vector<cgroup::SandboxCgroup::DirToMake> plan;  // the job's, handed back
  std::vector<UniqueFd> fds;
  std::vector<cgroup::MakeResult> results;
};

// Everything the worker touches is made and freed on the loop's thread.
struct CgroupWorker::Job {
  Job* next = nullptr;  // in requests_ or results_
  // A join: the pid written to each cgroup.procs.
  char pid[16] = {};
  size_t pidLength = 0;
  std::vector<std::string> procs;
  size_t failedAt = 0;  // index into procs; procs.size() when all succeeded
  int err = 0;
  // A removal: each directory, and rmdir's errno for it (sized beforehand).
  std::vector<std::string> dirs;
  std::vector<int> removeErrors;
  // A making: each directory and its parent, and what came of it (sized
  // beforehand).
  std::vector<cgroup::SandboxCgroup::DirToMake> toMake;
  std::vector<UniqueFd> madeFds;
  std::vector<cgroup::MakeResult> madeResults;
  kj::Own<kj::PromiseFulfiller<void>> joined;               // a join's
  kj::Own<kj::PromiseFulfiller<std::vector<int>>> removed;  // a removal's
  kj::Own<kj::PromiseFulfiller<MadeDirs>> made;             // a making's
  // Device rules to put in force.
  std::unique_ptr<cgroup::SandboxCgroup::DeviceWork> devices;
  kj::Own<kj::PromiseFulfiller<std::unique_ptr<cgroup::SandboxCgroup::DeviceWork>>> devicesDone;
  // Limits to write.
  std::unique_ptr<cgroup::SandboxCgroup::LimitWork> limits;
  kj::Own<kj::PromiseFulfiller<std::unique_ptr<cgroup::SandboxCgroup::LimitWork>>> limitsDone;
};

void CgroupWorker::JobList::push(Job* job) {
  job->next = nullptr;
  if (tail)
    tail->next = job;
  else
    head = job;
  tail = job;
  ++size;
}

CgroupWorker::Job* CgroupWorker::JobList::pop() {
  Job* job = head;
  if (!job) return nullptr;
  head = job->next;
  if (!head) tail = nullptr;
  job->next = nullptr;
  --size;
  return job;
}

CgroupWorker::CgroupWorker(kj::UnixEventPort& port)
    : resultsReady_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)),
      observer_(port, resultsReady_.get(), kj::UnixEventPort::FdObserver::OBSERVE_READ) {
  if (!resultsReady_) throwErrno("eventfd for the cgroup worker");
  // The worker must never take a signal meant for the helper (SIGTERM, SIGHUP).
  worker_ = startSignalFreeThread([this] { work(); });
  collecting_ = collect().eagerlyEvaluate([](kj::Exception&& e) {
    logError(std::string("cgroup worker failed: ") + e.getDescription().cStr());
  });
}

CgroupWorker::~CgroupWorker() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;  // the worker carries out what is queued and returns
  }
  wake_.notify_one();
  if (worker_.joinable()) worker_.join();
}

void CgroupWorker::work() {
  for (;;) {
    Job* job;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || requests_.head != nullptr; });
      job = requests_.pop();
      if (!job) return;  // stopping, and nothing left to do
    }
    for (size_t i = 0; i < job->dirs.size(); ++i)
      job->removeErrors[i] = ::rmdir(job->dirs[i].c_str()) == 0 ? 0 : errno;
    if (!job->toMake.empty())
      cgroup::SandboxCgroup::makePlanned(job->toMake, job->madeFds, job->madeResults);
    if (job->limits) job->limits->carryOut();
    if (job->devices) job->devices->carryOut();
    job->failedAt = job->procs.size();
    for (size_t i = 0; i < job->procs.size(); ++i) {
      UniqueFd file(::open(job->procs[i].c_str(), O_WRONLY | O_CLOEXEC));
      if (!file) {
        job->err = errno;
        job->failedAt = i;
        break;
      }
      ssize_t w;
      do {
        w = ::write(file.get(), job->pid, job->pidLength);
      } while (w < 0 && errno == EINTR);
      if (w != static_cast<ssize_t>(job->pidLength)) {
        job->err = w < 0 ? errno : EIO;
        job->failedAt = i;
        break;
      }
    }
    bool first;
    {
      std::lock_guard lock(mutex_);
      first = results_.head == nullptr;
      results_.push(job);
    }
    if (first) {
      const uint64_t one = 1;
      // Cannot fail short of a counter at its maximum, which one write per
      // empty list never reaches.
      [[maybe_unused]] ssize_t n = ::write(resultsReady_.get(), &one, sizeof one);
    }
  }
}

kj::Promise<void> CgroupWorker::attach(pid_t pid, std::vector<std::string> procs) {
  if (procs.empty()) return kj::READY_NOW;
  auto job = std::make_unique<Job>();
  job->pidLength = static_cast<size_t>(std::snprintf(job->pid, sizeof job->pid, "%d", pid));
  job->procs = std::move(procs);
  auto paf = kj::newPromiseAndFulfiller<void>();
  job->joined = kj::mv(paf.fulfiller);
  if (int err = queue(job))
    return callerError(errnoMessage("cannot queue a cgroup v1 attach", err));
  return kj::mv(paf.promise);
}

kj::Promise<std::vector<int>> CgroupWorker::remove(std::vector<std::string> dirs) {
  if (dirs.empty()) return std::vector<int>{};
  const size_t count = dirs.size();
  auto job = std::make_unique<Job>();
  job->removeErrors.assign(count, 0);
  job->dirs = std::move(dirs);
  auto paf = kj::newPromiseAndFulfiller<std::vector<int>>();
  job->removed = kj::mv(paf.fulfiller);
  if (queue(job) != 0) return std::vector<int>(count, EAGAIN);
  return kj::mv(paf.promise);
}

kj::Promise<std::unique_ptr<cgroup::SandboxCgroup>> CgroupWorker::makeEmpty(
    const cgroup::Layout& layout, std::vector<cgroup::SandboxCgroup::DirToMake> plan) {
  auto job = std::make_unique<Job>();
  const size_t count = plan.size();
  job->toMake = std::move(plan);
  job->madeFds.resize(count);
  job->madeResults.resize(count);
  auto paf = kj::newPromiseAndFulfiller<MadeDirs>();
  job->made = kj::mv(paf.fulfiller);
  if (int err = queue(job))
    return callerError(errnoMessage("cannot queue the making of a cgroup", err));
  return paf.promise.then([&layout](MadeDirs made) {
    return cgroup::SandboxCgroup::adoptEmpty(layout, made.plan, std::move(made.fds), made.results);
  });
}

kj::Promise<std::unique_ptr<CgroupWorker::DeviceWork>> CgroupWorker::setUpDevices(
    std::unique_ptr<DeviceWork> work) {
  auto job = std::make_unique<Job>();
  job->devices = std::move(work);
  auto paf = kj::newPromiseAndFulfiller<std::unique_ptr<DeviceWork>>();
  job->devicesDone = kj::mv(paf.fulfiller);
  if (int err = queue(job))
    return callerError(errnoMessage("cannot queue the sandbox's device rules", err));
  return kj::mv(paf.promise);
}

kj::Promise<std::unique_ptr<CgroupWorker::LimitWork>> CgroupWorker::writeLimits(
    std::unique_ptr<LimitWork> work) {
  auto job = std::make_unique<Job>();
  job->limits = std::move(work);
  auto paf = kj::newPromiseAndFulfiller<std::unique_ptr<LimitWork>>();
  job->limitsDone = kj::mv(paf.fulfiller);
  if (int err = queue(job))
    return callerError(errnoMessage("cannot queue the sandbox's cgroup limits", err));
  return kj::mv(paf.promise);
}

int CgroupWorker::queue(std::unique_ptr<Job>& job) {
  Job* raw = job.get();
  bool sleeping;
  {
    std::lock_guard lock(mutex_);
    if (requests_.size >= kMaxQueued) return EAGAIN;
    sleeping = requests_.head == nullptr;
    requests_.push(raw);
  }
  pending_.emplace(raw, std::move(job));
  // A worker with jobs queued before this one takes it without a wake.
  if (sleeping) wake_.notify_one();
  return 0;
}

kj::Promise<void> CgroupWorker::collect() {
  return observer_.whenBecomesReadable().then([this] {
    // One read takes the whole counter (not EFD_SEMAPHORE); a write after it
    // wakes this again.
    uint64_t count;
    [[maybe_unused]] ssize_t n = ::read(resultsReady_.get(), &count, sizeof count);
    JobList done;
    {
      std::lock_guard lock(mutex_);
      std::swap(done, results_);
    }
    while (Job* raw = done.pop()) {
      auto it = pending_.find(raw);
      if (it == pending_.end()) continue;
      std::unique_ptr<Job> job = std::move(it->second);
      pending_.erase(it);
      finish(std::move(job));
    }
    return collect();
  });
}

void CgroupWorker::finish(std::unique_ptr<Job> job) {
  if (job->removed)
    job->removed->fulfill(std::move(job->removeErrors));
  else if (job->made)
    job->made->fulfill(
        MadeDirs{std::move(job->toMake), std::move(job->madeFds), std::move(job->madeResults)});
  else if (job->devicesDone)
    job->devicesDone->fulfill(std::move(job->devices));
  else if (job->limitsDone)
    job->limitsDone->fulfill(std::move(job->limits));
  else if (job->failedAt == job->procs.size())
    job->joined->fulfill();
  else
    job->joined->reject(callerError(errnoMessage(
        "joining the sandbox's cgroup (" + job->procs[job->failedAt] + ")", job->err)));
}

}  // namespace gpubox
