#include "sandbox_cgroup.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <utility>

#include "cgroup_fs.hpp"
#include "cgroup_kill.hpp"
#include "device_bpf.hpp"
#include "error.hpp"

namespace gpubox::cgroup {

namespace {

// The v1 hierarchies a sandbox may get a directory in, in display order.
constexpr const char* kV1Order[] = {"memory", "cpu", "cpuacct", "pids", "devices"};

// Throws unless the host has what RULES.backend asks for.
void checkDeviceBackends(const Layout& layout, DeviceBackend backend) {
  const bool haveV1 = layout.v1Parents.contains("devices");
  const bool haveV2 = !layout.v2Parent.empty();
  if (backend == DeviceBackend::V1Only && !haveV1)
    throw Error("device cgroup: the cgroup v1 devices controller is not mounted");
  if (backend == DeviceBackend::BpfOnly && !haveV2)
    throw Error("device cgroup: no cgroup2 hierarchy is mounted");
  if (!haveV1 && !haveV2)
    throw Error("device cgroup: neither the cgroup v1 devices controller nor cgroup2 is mounted");
}

// "memory,cpuacct:/process_api/x/gpubox/sb-1-2": as /proc/PID/cgroup shows it.
std::string v1Display(const Layout& layout, const std::vector<std::string>& controllers,
                      const std::string& dir) {
  std::string names;
  for (const std::string& c : controllers) names += (names.empty() ? "" : ",") + c;
  std::string path = dir;
  if (const auto it = layout.mounts.v1.find(controllers.front()); it != layout.mounts.v1.end()) {
    const V1Mount& mount = it->second;
    if (dir.starts_with(mount.mountPoint + "/")) {
      path = dir.substr(mount.mountPoint.size());
      if (mount.root != "/") path = mount.root + path;
    }
  }
  return names + ":" + path;
}

}  // namespace

std::unique_ptr<SandboxCgroup> SandboxCgroup::create(const Layout& layout, const std::string& name,
                                                     const ResourceLimits& limits,
                                                     const DeviceRules* devices,
                                                     std::unique_ptr<DeviceWork>* deferDevices) {
  // Everything that can be checked without touching the hierarchies first,
  // so a bad request leaves nothing behind.
  validateCgroupName(name);
  checkLimits(layout, limits, devices);
  auto cg = createEmpty(layout, name, devices && devices->backend != DeviceBackend::BpfOnly);
  try {
    cg->applyLimits(limits);
    if (devices && deferDevices)
      *deferDevices = cg->planDevices(*devices);
    else if (devices)
      cg->setUpDevices(*devices);
  } catch (...) {
    cg->tryRemove();  // nothing has joined yet, so nothing is busy
    throw;
  }
  return cg;
}

void SandboxCgroup::checkLimits(const Layout& layout, const ResourceLimits& limits,
                                const DeviceRules* devices) {
  validateLimits(limits);
  if (const std::string why = unsupportedLimit(layout, limits); !why.empty()) throw Error(why);
  if (devices) {
    expandDeviceRules(*devices);
    checkDeviceBackends(layout, devices->backend);
  }
}

std::vector<SandboxCgroup::DirToMake> SandboxCgroup::planEmpty(const Layout& layout,
                                                               const std::string& name,
                                                               bool v1Devices) {
  return named(emptyShape(layout, v1Devices), name);
}

SandboxCgroup::EmptyShape SandboxCgroup::emptyShape(const Layout& layout, bool v1Devices) {
  // v1 hierarchies to use, grouped by directory: co-mounted controllers
  // ("cpu,cpuacct") share one.
  std::vector<std::pair<std::string, std::vector<std::string>>> v1Groups;
  for (const char* c : kV1Order) {
    const auto it = layout.v1Parents.find(c);
    if (it == layout.v1Parents.end()) continue;
    const bool isDevices = std::string_view(c) == "devices";
    if (isDevices && !v1Devices) continue;
    if (!isDevices && handledByV2(layout, c)) continue;
    auto group = v1Groups.begin();
    while (group != v1Groups.end() && group->first != it->second) ++group;
    if (group == v1Groups.end()) group = v1Groups.insert(group, {it->second, {}});
    group->second.emplace_back(c);
  }
  EmptyShape shape;
  if (!layout.v2Parent.empty()) {
    const std::string prefix = layout.v2Parent + "/";
    shape.dirs.push_back({layout.v2Parent, prefix, prefix, {}, true});
  }
  // v1Display of "PARENT/NAME" is v1Display of "PARENT/" followed by NAME.
  for (const auto& [parent, controllers] : v1Groups) {
    const std::string prefix = parent + "/";
    shape.dirs.push_back(
        {parent, prefix, v1Display(layout, controllers, prefix), controllers, false});
  }
  return shape;
}

std::vector<SandboxCgroup::DirToMake> SandboxCgroup::named(const EmptyShape& shape,
                                                           const std::string& name) {
  validateCgroupName(name);
  std::vector<DirToMake> plan = shape.dirs;
  for (DirToMake& dir : plan) {
    dir.path += name;
    dir.display += name;
  }
  return plan;
}

std::unique_ptr<SandboxCgroup> SandboxCgroup::adoptEmpty(const Layout& layout,
                                                         const std::vector<DirToMake>& plan,
                                                         std::vector<UniqueFd> fds,
                                                         const std::vector<MakeResult>& results) {
  auto cg = std::make_unique<SandboxCgroup>(Key{});
  cg->layout_ = layout;
  std::optional<Error> failure;
  for (size_t i = 0; i < plan.size(); ++i) {
    const MakeResult r = i < results.size() ? results[i] : MakeResult{MakeResult::Step::Dir, EIO};
    if (r.failed != MakeResult::Step::Done || i >= fds.size() || !fds[i]) {
      if (!failure) failure = makeCgroupError(plan[i].parent, plan[i].path, r);
      continue;
    }
    Dir dir{plan[i].path, plan[i].display, plan[i].controllers,
            std::make_shared<const UniqueFd>(std::move(fds[i]))};
    if (plan[i].v2)
      cg->v2_.emplace(std::move(dir));
    else
      cg->v1_.push_back(std::move(dir));
  }
  if (failure) {
    cg->tryRemove();
    throw *failure;
  }
  return cg;
}

void SandboxCgroup::makePlanned(const std::vector<DirToMake>& plan, std::vector<UniqueFd>& fds,
                                std::vector<MakeResult>& results) {
  for (MakeResult& r : results) r = {MakeResult::Step::Dir, ECANCELED};
  for (size_t i = 0; i < plan.size() && i < fds.size() && i < results.size(); ++i) {
    results[i] = makeCgroupDir(plan[i].parent, plan[i].path, &fds[i]);
    if (results[i].failed != MakeResult::Step::Done) return;
  }
}

std::unique_ptr<SandboxCgroup> SandboxCgroup::createEmpty(const Layout& layout,
                                                          const std::string& name, bool v1Devices) {
  const std::vector<DirToMake> plan = planEmpty(layout, name, v1Devices);
  std::vector<UniqueFd> fds(plan.size());
  std::vector<MakeResult> results(plan.size());
  makePlanned(plan, fds, results);
  return adoptEmpty(layout, plan, std::move(fds), results);
}

void SandboxCgroup::applyLimits(const ResourceLimits& limits) {
  std::unique_ptr<LimitWork> work = planLimits(limits);
  work->carryOut();
  finishLimits(*work);
}

SharedFd SandboxCgroup::shared(const Dir& dir, const char* what) {
  if (!dir.fd) throw Error(std::string(what) + ": " + dir.path + " is removed already");
  return dir.fd;
}

std::unique_ptr<SandboxCgroup::LimitWork> SandboxCgroup::planLimits(const ResourceLimits& limits) {
  if (limitsApplied_) throw Error("internal error: cgroup limits applied twice");
  limitsApplied_ = true;
  checkLimits(layout_, limits, nullptr);
  auto work = std::make_unique<LimitWork>();
  const auto add = [&](const Dir& dir, std::vector<PlannedLimit> planned) {
    if (planned.empty()) return;
    work->dirs.push_back({dir.path, shared(dir, "cgroup limits"), std::move(planned)});
  };
  if (v2_) add(*v2_, planV2Limits(v2_->raw(), layout_.v2Controllers, limits));
  for (const Dir& dir : v1_) add(dir, planV1Limits(dir.raw(), dir.controllers, limits));
  return work;
}

bool SandboxCgroup::LimitWork::empty() const {
  return dirs.empty();
}

void SandboxCgroup::LimitWork::carryOut() noexcept {
  for (Dir& dir : dirs)
    if (!carryOutLimits(dir.dir->get(), dir.limits)) return;
}

void SandboxCgroup::finishLimits(const LimitWork& work) {
  for (const LimitWork::Dir& dir : work.dirs)
    for (std::string& line : limitsInForce(dir.path, dir.limits))
      applied_.push_back(std::move(line));
}

std::unique_ptr<SandboxCgroup::DeviceWork> SandboxCgroup::planDevices(const DeviceRules& request) {
  if (devicesPlanned_) throw Error("internal error: device rules set up twice");
  devicesPlanned_ = true;
  checkDeviceBackends(layout_, request.backend);
  const ExpandedDeviceRules rules = expandDeviceRules(request);
  auto work = std::make_unique<DeviceWork>();
  work->policy = request.policy;
  // A warm init's cgroup has a v1 devices directory whatever it is used for.
  if (request.backend != DeviceBackend::BpfOnly) {
    for (const Dir& dir : v1_) {
      if (std::find(dir.controllers.begin(), dir.controllers.end(), "devices") ==
          dir.controllers.end())
        continue;
      DeviceWork::V1 v1{.path = dir.path, .dir = shared(dir, "device rules")};
      try {
        v1.writes = v1DeviceWrites(rules);
      } catch (const Error& e) {
        v1.refused = e.what();
      }
      work->v1.push_back(std::move(v1));
    }
  }
  if (v2_ && request.backend != DeviceBackend::V1Only) {
    work->v2Dir = shared(*v2_, "device rules");
    try {
      work->program =
          loadDeviceProgramShared(buildDeviceProgram(rules.allow, rules.deny, rules.defaultAllow));
    } catch (const Error& e) {
      work->programError = e.what();
    }
  }
  return work;
}

void SandboxCgroup::DeviceWork::carryOut() noexcept {
  for (V1& dir : v1) {
    if (!dir.refused.empty()) continue;
    for (ControlWrites& w : dir.writes) {
      w.carryOut(dir.dir->get());
      if (w.err != 0) break;
    }
  }
  if (program) attachError = attachDeviceProgram(v2Dir->get(), program->get());
}

void SandboxCgroup::finishDevices(const DeviceWork& work) {
  std::string v1Error, bpfError;
  for (const DeviceWork::V1& done : work.v1) {
    std::string failure = done.refused;
    for (const ControlWrites& w : done.writes)
      if (failure.empty() && w.err != 0) failure = w.failure(done.path);
    if (failure.empty()) {
      v1Devices_ = true;
      continue;
    }
    // Half-written rules must not stay in force: an allow-list missing
    // /dev/null would break the sandbox in ways nobody could explain. A
    // hierarchy shared with other controllers, or one a process has joined,
    // cannot be dropped, though.
    auto dir =
        std::find_if(v1_.begin(), v1_.end(), [&](const Dir& d) { return d.path == done.path; });
    if (dir == v1_.end() || dir->controllers.size() > 1 || ::rmdir(dir->path.c_str()) != 0)
      throw Error("cannot set up the sandbox's device cgroup: v1: " + failure);
    v1Error = failure;
    v1_.erase(dir);
    break;
  }
  if (work.program && work.attachError == 0) program_ = work.program;
  if (work.program && work.attachError != 0) bpfError = attachFailure(work.attachError);
  if (!work.program) bpfError = work.programError;
  if (!usesV1Devices() && !usesBpf()) {
    std::string message = "cannot set up the sandbox's device cgroup";
    if (!v1Error.empty()) message += ": v1: " + v1Error;
    if (!bpfError.empty())
      message += (v1Error.empty() ? ": " : "; ") + std::string("bpf: ") + bpfError;
    throw Error(message);
  }
  if (!v1Error.empty()) skipped_ = "cgroup v1 devices not used: " + v1Error;
  if (!bpfError.empty()) skipped_ = "cgroup v2 BPF device program not used: " + bpfError;
  std::string backends;
  if (usesV1Devices()) backends = "cgroup v1";
  if (usesBpf()) backends += (backends.empty() ? "" : " + ") + std::string("bpf");
  applied_.push_back(std::string("devices: ") + policyName(work.policy) + " (" + backends + ")");
}

void SandboxCgroup::setUpDevices(const DeviceRules& devices) {
  std::unique_ptr<DeviceWork> work = planDevices(devices);
  work->carryOut();
  finishDevices(*work);
}

SandboxCgroup::~SandboxCgroup() {
  if (tryRemove()) return;
  for (const Dir* dir : dirs())
    if (!dir->removed)
      std::fprintf(
          stderr, "gpubox-helper: %s\n",
          errnoMessage("cannot remove sandbox cgroup " + dir->path, dir->removeError).c_str());
}

std::vector<const SandboxCgroup::Dir*> SandboxCgroup::dirs() const {
  std::vector<const Dir*> all;
  if (v2_) all.push_back(&*v2_);
  for (const Dir& dir : v1_) all.push_back(&dir);
  return all;
}

std::vector<SandboxCgroup::Dir*> SandboxCgroup::dirs() {
  std::vector<Dir*> all;
  if (v2_) all.push_back(&*v2_);
  for (Dir& dir : v1_) all.push_back(&dir);
  return all;
}

void SandboxCgroup::attachV1(pid_t pid) {
  for (Dir& dir : v1_)
    if (!dir.removed) writeControl(dir.raw(), dir.path, "cgroup.procs", std::to_string(pid));
}

std::vector<std::string> SandboxCgroup::v1ProcsFiles() const {
  std::vector<std::string> files;
  for (const Dir& dir : v1_)
    if (!dir.removed) files.push_back(dir.path + "/cgroup.procs");
  return files;
}

void SandboxCgroup::attach(pid_t pid) {
  attachV1(pid);
  if (v2_ && !v2_->removed)
    writeControl(v2_->raw(), v2_->path, "cgroup.procs", std::to_string(pid));
}

namespace {

bool hasController(const std::vector<std::string>& controllers, const char* name) {
  return std::find(controllers.begin(), controllers.end(), name) != controllers.end();
}

}  // namespace

Stats SandboxCgroup::stats() const {
  Stats stats;
  // v1 first: where both have a figure (CPU time on hybrid hosts) the v2 one
  // wins, as it covers the whole sandbox whichever way it joined.
  for (const Dir& dir : v1_) {
    if (dir.removed) continue;
    if (hasController(dir.controllers, "memory")) readV1MemoryStats(dir.raw(), stats);
    if (hasController(dir.controllers, "cpuacct")) readV1CpuacctStats(dir.raw(), stats);
  }
  if (v2_ && !v2_->removed) readV2Stats(v2_->raw(), stats);
  stats.processes = processes();
  return stats;
}

uint64_t SandboxCgroup::oomKills() const {
  uint64_t kills = 0;
  for (const Dir& dir : v1_)
    if (!dir.removed && hasController(dir.controllers, "memory")) readV1OomKills(dir.raw(), kills);
  // Where memory is not a v2 controller here (a hybrid host), the v2
  // directory has no memory.events: not looked for at every command.
  if (v2_ && !v2_->removed && hasController(layout_.v2Controllers, "memory"))
    readV2OomKills(v2_->raw(), kills);
  return kills;
}

uint64_t SandboxCgroup::processes() const {
  uint64_t count = 0;
  if (v2_ && !v2_->removed && hasController(layout_.v2Controllers, "pids") &&
      readPidsCurrent(v2_->raw(), count))
    return count;
  for (const Dir& dir : v1_)
    if (!dir.removed && hasController(dir.controllers, "pids") && readPidsCurrent(dir.raw(), count))
      return count;
  // No pids controller: count the members instead.
  for (const Dir* dir : dirs())
    if (!dir->removed) return cgroupPids(dir->raw()).size();
  return 0;
}

size_t SandboxCgroup::killAll() {
  std::vector<int> fds;
  for (const Dir* dir : dirs())
    if (!dir->removed) fds.push_back(dir->raw());
  return killCgroupProcesses(fds);
}

bool SandboxCgroup::tryRemove() {
  const std::vector<std::string> paths = directories();
  std::vector<int> errors;
  for (const std::string& path : paths) errors.push_back(::rmdir(path.c_str()) == 0 ? 0 : errno);
  return noteRemoval(paths, errors);
}

bool SandboxCgroup::noteRemoval(const std::vector<std::string>& paths,
                                const std::vector<int>& errors) {
  for (size_t i = 0; i < paths.size() && i < errors.size(); ++i) {
    for (Dir* dir : dirs()) {
      if (dir->removed || dir->path != paths[i]) continue;
      if (errors[i] == 0 || errors[i] == ENOENT) {
        dir->removed = true;
        dir->fd.reset();
      } else {
        dir->removeError = errors[i];
      }
    }
  }
  for (const Dir* dir : dirs())
    if (!dir->removed) return false;
  return true;
}

std::vector<std::string> SandboxCgroup::directories() const {
  std::vector<std::string> paths;
  for (const Dir* dir : dirs())
    if (!dir->removed) paths.push_back(dir->path);
  return paths;
}

std::string SandboxCgroup::path() const {
  std::string s;
  for (const Dir* dir : dirs()) s += (s.empty() ? "" : " + ") + dir->display;
  return s;
}

}  // namespace gpubox::cgroup
