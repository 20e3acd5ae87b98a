#include "task_states.hpp"

#include "process.hpp"

#include <dirent.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <sstream>
#include <stdexcept>

namespace gpubox::bench {

namespace {

// A /proc file's text, or "" when its task has gone meanwhile (a
// sandbox's processes come and go between a scan's readdir and its reads).
std::string readIfThere(const std::string& path) {
  try {
    return readFile(path);
  } catch (const std::runtime_error&) {
    return {};
  }
}

struct StatLine {
  std::string comm;
  char state = '?';
  long threads = 1;
};

// "PID (COMM) STATE PPID ..." (COMM may hold spaces and parentheses: it
// ends at the last ')'). Threads are the 20th field.
bool parseStat(const std::string& text, StatLine& out) {
  size_t open = text.find('('), close = text.rfind(')');
  if (open == std::string::npos || close == std::string::npos || close < open) return false;
  out.comm = text.substr(open + 1, close - open - 1);
  std::istringstream rest(text.substr(close + 1));
  std::string field;
  for (int i = 3; i <= 20 && rest >> field; ++i) {
    if (i == 3) out.state = field.empty() ? '?' : field[0];
    if (i == 20) out.threads = std::strtol(field.c_str(), nullptr, 10);
  }
  return true;
}

bool isNumber(const char* name) {
  if (!*name) return false;
  for (; *name; ++name)
    if (!std::isdigit(static_cast<unsigned char>(*name))) return false;
  return true;
}

// Kernel functions that only say how a task waits, not for what.
bool genericWait(const std::string& fn) {
  static const char* const kGeneric[] = {
      "__mutex_lock",    "mutex_lock",        "rwsem_down",          "down_",
      "__down",          "percpu_down",       "__percpu_down",       "percpu_rwsem",
      "wait_for_common", "__wait_for_common", "wait_for_completion", "schedule",
      "io_schedule",     "__wait_rcu_gp",     "synchronize_rcu",     "rcu_sync_enter",
      "rcu_barrier",     "exp_funnel_lock",   "wait_on_bit",         "out_of_line_wait_on_bit",
      "__flush_work",    "flush_work",        "__flush_workqueue"};
  for (const char* g : kGeneric)
    if (fn.starts_with(g)) return true;
  return false;
}

}  // namespace

std::vector<std::pair<std::string, size_t>> TaskStates::top(size_t most) const {
  std::vector<std::pair<std::string, size_t>> out(blockedIn.begin(), blockedIn.end());
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  });
  if (out.size() > most) out.resize(most);
  return out;
}

std::string blockedWhere(const std::string& stack) {
  // Lines "[<0>] name+0x12/0x80", innermost first.
  std::vector<std::string> frames;
  std::istringstream lines(stack);
  std::string line;
  while (std::getline(lines, line)) {
    size_t start = line.find("] ");
    if (start == std::string::npos) continue;
    std::string fn = line.substr(start + 2);
    fn = fn.substr(0, fn.find('+'));
    // A compiler's clone of a function is the same function here.
    fn = fn.substr(0, fn.find('.'));
    if (!fn.empty()) frames.push_back(fn);
  }
  std::string inner, outer;
  for (const std::string& fn : frames) {
    if (!genericWait(fn)) {
      if (inner.empty()) return fn;
      return fn + " (" + (outer == inner ? inner : outer + " > " + inner) + ")";
    }
    if (inner.empty()) inner = fn;
    outer = fn;
  }
  return inner;
}

std::string taskGroup(const std::string& comm) {
  // Kernel workers are named by their pool and current work
  // ("kworker/u8:2-events_unbound"); one group for all of them.
  return comm.substr(0, comm.find('/'));
}

TaskStateSampler::TaskStateSampler(std::vector<std::string> prefixes,
                                   std::chrono::milliseconds period)
    : prefixes_(std::move(prefixes)), period_(period) {
  thread_ = std::thread([this] {
    while (!stopping_.load(std::memory_order_relaxed)) {
      scan();
      std::this_thread::sleep_for(period_);
    }
  });
}

TaskStateSampler::~TaskStateSampler() {
  if (thread_.joinable()) stop();
}

TaskStates TaskStateSampler::stop() {
  stopping_ = true;
  thread_.join();
  return states_;
}

void TaskStateSampler::sampleTask(const std::string& taskDir, const std::string& comm, char state) {
  switch (state) {
    case 'R':
      ++states_.running;
      break;
    case 'S':
      ++states_.sleeping;
      break;
    case 'D': {
      ++states_.blocked;
      std::string where = blockedWhere(readIfThere(taskDir + "/stack"));
      ++states_.blockedIn[taskGroup(comm) + ": " + (where.empty() ? "?" : where)];
      break;
    }
    default:
      break;  // an idle kernel thread (I), a zombie, a stopped task
  }
}

void TaskStateSampler::scan() {
  DIR* proc = ::opendir("/proc");
  if (!proc) return;
  ++states_.scans;
  auto wanted = [&](const std::string& comm) {
    return std::any_of(prefixes_.begin(), prefixes_.end(),
                       [&](const std::string& p) { return comm.starts_with(p); });
  };
  while (const dirent* e = ::readdir(proc)) {
    if (!isNumber(e->d_name)) continue;
    const std::string dir = std::string("/proc/") + e->d_name;
    StatLine process;
    if (!parseStat(readIfThere(dir + "/stat"), process) || !wanted(process.comm)) continue;
    if (process.threads <= 1) {
      sampleTask(dir, process.comm, process.state);
      continue;
    }
    // A threaded process (the helper): each thread under its own name.
    DIR* tasks = ::opendir((dir + "/task").c_str());
    if (!tasks) continue;
    while (const dirent* t = ::readdir(tasks)) {
      if (!isNumber(t->d_name)) continue;
      const std::string taskDir = dir + "/task/" + t->d_name;
      StatLine thread;
      if (parseStat(readIfThere(taskDir + "/stat"), thread))
        sampleTask(taskDir, thread.comm, thread.state);
    }
    ::closedir(tasks);
  }
  ::closedir(proc);
}

}  // namespace gpubox::bench
