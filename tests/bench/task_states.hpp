// What the tasks of one side of a throughput level were doing, sampled from
// /proc on a thread of the benchmark's own: running (or runnable), asleep, or
// blocked in the kernel, and for a blocked one where (its kernel stack).
// It answers, without perf (the GPU host has none), whether a side that
// leaves CPUs idle is held back by the kernel serialising it (its tasks
// blocked on one lock or grace period) or by waiting on each other.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <map>
#include <string>
#include <thread>
#include <vector>

namespace gpubox::bench {

struct TaskStates {
  size_t scans = 0;
  // Task samples: one per task seen in a scan, by its state.
  size_t running = 0, sleeping = 0, blocked = 0;
  // Blocked samples by "name: function (how it waits)", e.g.
  // "gpubox-helper: cgroup_bpf_prog_attach (__mutex_lock)".
  std::map<std::string, size_t> blockedIn;

  size_t samples() const { return running + sleeping + blocked; }
  // The MOST places with the most blocked samples, most first.
  std::vector<std::pair<std::string, size_t>> top(size_t most) const;
};

// Where a blocked task waits, from its kernel stack as /proc/PID/stack shows
// it (innermost frame first): the first frame that is not a generic way of
// waiting (a mutex, an rwsem, a completion, a grace period), with the
// generic one it called. "" when the stack says nothing.
std::string blockedWhere(const std::string& stack);

// The short name a task is counted under: its comm, with a kernel worker's
// "/u8:2-events_unbound" and the like dropped.
std::string taskGroup(const std::string& comm);

// Samples every task (threads included) whose name starts with one of
// PREFIXES, every PERIOD, from construction until stop(). Needs root for the
// blocked tasks' stacks (without it they are counted, under "?").
class TaskStateSampler {
 public:
  TaskStateSampler(std::vector<std::string> prefixes, std::chrono::milliseconds period);
  ~TaskStateSampler();
  TaskStateSampler(const TaskStateSampler&) = delete;
  TaskStateSampler& operator=(const TaskStateSampler&) = delete;

  TaskStates stop();

 private:
  void scan();
  void sampleTask(const std::string& taskDir, const std::string& comm, char state);

  std::vector<std::string> prefixes_;
  std::chrono::milliseconds period_;
  TaskStates states_;  // written by the sampling thread only, until it is joined
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace gpubox::bench
