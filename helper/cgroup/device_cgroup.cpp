#include "device_cgroup.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <thread>

#include "cgroup_mode.hpp"
#include "device_bpf.hpp"
#include "error.hpp"

namespace gpubox::cgroup {

namespace {

constexpr int kNvidiaMajor = 195;
// NVIDIA's minor space: 0..253 GPUs, 254 nvidia-modeset, 255 nvidiactl.
constexpr int kNvidiaMinors = 256;

// The nodes of bwrap's minimal /dev (plus the pty master and slaves): what
// every program expects to open.
const std::array<DeviceRule, 8> kStandardNodes = {{
    {'c', 1, 3, "rwm"},     // null
    {'c', 1, 5, "rwm"},     // zero
    {'c', 1, 7, "rwm"},     // full
    {'c', 1, 8, "rwm"},     // random
    {'c', 1, 9, "rwm"},     // urandom
    {'c', 5, 0, "rwm"},     // tty
    {'c', 5, 2, "rwm"},     // ptmx
    {'c', 136, -1, "rwm"},  // pts/*
}};

void validateName(const std::string& name) {
  const bool ok = !name.empty() && name.size() <= 128 && name != "." && name != ".." &&
                  name.find_first_not_of(
                      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                      "0123456789._-") == std::string::npos;
  if (!ok) throw Error("invalid device cgroup name '" + name + "'");
}

// Writes one value to a cgroup control file of the directory DIRFD; cgroup
// files take one value per write(2).
void writeControl(int dirFd, const std::string& dir, const char* file, const std::string& value) {
  UniqueFd fd(::openat(dirFd, file, O_WRONLY | O_CLOEXEC));
  if (!fd) throwErrno("opening " + dir + "/" + file);
  const ssize_t n = ::write(fd.get(), value.data(), value.size());
  if (n != static_cast<ssize_t>(value.size()))
    throwErrno("writing '" + value + "' to " + dir + "/" + file, n < 0 ? errno : EIO);
}

// mkdir that refuses to adopt an existing directory: a stale or foreign
// cgroup of the same name could carry other rules or other processes.
std::pair<std::string, UniqueFd> makeCgroup(const std::string& parent, const std::string& name) {
  if (::mkdir(parent.c_str(), 0755) != 0 && errno != EEXIST)
    throwErrno("creating cgroup " + parent);
  const std::string dir = parent + "/" + name;
  if (::mkdir(dir.c_str(), 0755) != 0) {
    if (errno == EEXIST)
      throw Error("cgroup " + dir + " already exists (a sandbox name was reused?)");
    throwErrno("creating cgroup " + dir);
  }
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) {
    const int err = errno;
    ::rmdir(dir.c_str());
    throwErrno("opening cgroup " + dir, err);
  }
  return {dir, std::move(fd)};
}

// rmdir, retried briefly: a cgroup stays busy for a moment after its last
// process has exited while the kernel finishes tearing the task down.
bool removeCgroup(const std::string& dir, int& err) {
  for (int attempt = 0; attempt < 50; ++attempt) {
    if (::rmdir(dir.c_str()) == 0 || errno == ENOENT) return true;
    err = errno;
    if (err != EBUSY) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return false;
}

unsigned maskOf(const std::string& access) {
  unsigned mask = 0;
  for (char c : access) mask |= c == 'r' ? 1u : c == 'w' ? 2u : c == 'm' ? 4u : 0u;
  return mask;
}

std::string accessOf(unsigned mask) {
  std::string s;
  if (mask & 1u) s += 'r';
  if (mask & 2u) s += 'w';
  if (mask & 4u) s += 'm';
  return s;
}

}  // namespace

void validate(const DeviceRule& rule) {
  const bool typeOk = rule.type == 'c' || rule.type == 'b' || rule.type == 'a';
  const bool accessOk = !rule.access.empty() && rule.access.size() <= 3 &&
                        rule.access.find_first_not_of("rwm") == std::string::npos;
  // The BPF context and v1 both carry 32-bit major/minor numbers, but the
  // kernel's dev_t has 12-bit majors and 20-bit minors.
  const bool numbersOk =
      rule.major >= -1 && rule.major < (1 << 12) && rule.minor >= -1 && rule.minor < (1 << 20);
  // v1 reads "a" as "every device" and ignores numbers after it; require the
  // rule to say exactly that so both backends mean the same thing.
  const bool allOk = rule.type != 'a' || (rule.major == -1 && rule.minor == -1);
  if (!typeOk || !accessOk || !numbersOk || !allOk)
    throw Error("invalid device rule '" + toString(rule) + "'");
}

std::string toString(const DeviceRule& rule) {
  if (rule.type == 'a') return "a";
  const auto num = [](int n) { return n < 0 ? std::string("*") : std::to_string(n); };
  return std::string(1, rule.type) + " " + num(rule.major) + ":" + num(rule.minor) + " " +
         rule.access;
}

std::unique_ptr<DeviceCgroup> DeviceCgroup::create(const std::string& name, DevicePolicy policy,
                                                   const std::vector<DeviceRule>& allowRules,
                                                   const std::vector<int>& extraDenyMajors,
                                                   DeviceBackend backend) {
  validateName(name);
  std::vector<DeviceRule> allow;
  std::vector<DeviceRule> deny;
  if (policy == DevicePolicy::AllowListed) {
    allow.assign(kStandardNodes.begin(), kStandardNodes.end());
  } else {
    deny.push_back({'c', kNvidiaMajor, -1, "rwm"});
    for (int major : extraDenyMajors) deny.push_back({'c', major, -1, "rwm"});
  }
  for (const DeviceRule& rule : allowRules) {
    validate(rule);
    // Under DenyNvidia everything else is allowed already; a wildcard-major
    // exception would only undo the denials.
    if (policy == DevicePolicy::DenyNvidia && rule.major < 0)
      throw Error("device rule '" + toString(rule) +
                  "' is not a valid exception to the NVIDIA denial (name a major)");
    allow.push_back(rule);
  }
  for (const DeviceRule& rule : deny) validate(rule);

  const Mounts mounts = detectMounts();
  const bool haveV1 = !mounts.v1DevicesMount.empty();
  const bool haveV2 = !mounts.v2Mount.empty();
  if (backend == DeviceBackend::V1Only && !haveV1)
    throw Error("device cgroup: the cgroup v1 devices controller is not mounted");
  if (backend == DeviceBackend::BpfOnly && !haveV2)
    throw Error("device cgroup: no cgroup2 hierarchy is mounted");
  if (!haveV1 && !haveV2)
    throw Error("device cgroup: neither the cgroup v1 devices controller nor cgroup2 is mounted");

  auto cg = std::make_unique<DeviceCgroup>(Key{});
  std::string v1Error, bpfError;
  if (haveV1 && backend != DeviceBackend::BpfOnly) {
    try {
      cg->setUpV1(mounts.v1DevicesMount, name, policy, allow, deny);
    } catch (const Error& e) {
      v1Error = e.what();
    }
  }
  if (haveV2 && backend != DeviceBackend::V1Only) {
    try {
      cg->setUpBpf(v2SandboxParent(mounts), name, policy, allow, deny);
    } catch (const Error& e) {
      bpfError = e.what();
    }
  }
  if (!cg->usesV1() && !cg->usesBpf()) {
    std::string message = "cannot set up the sandbox's device cgroup";
    if (!v1Error.empty()) message += ": v1: " + v1Error;
    if (!bpfError.empty())
      message += (v1Error.empty() ? ": " : "; ") + std::string("bpf: ") + bpfError;
    throw Error(message);
  }
  if (!v1Error.empty()) cg->skipped_ = "cgroup v1 devices not used: " + v1Error;
  if (!bpfError.empty()) cg->skipped_ = "cgroup v2 BPF device program not used: " + bpfError;
  return cg;
}

void DeviceCgroup::setUpV1(const std::string& mount, const std::string& name, DevicePolicy policy,
                           const std::vector<DeviceRule>& allow,
                           const std::vector<DeviceRule>& deny) {
  // Under the hierarchy's root, not the helper's own devices cgroup: a v1
  // child can never be granted more than its parent, and systemd may have
  // restricted the helper's own (DevicePolicy=).
  auto [dir, fd] = makeCgroup(mount + "/gpubox", name);
  try {
    if (policy == DevicePolicy::AllowListed) {
      writeControl(fd.get(), dir, "devices.deny", "a");
      for (const DeviceRule& rule : allow)
        writeControl(fd.get(), dir, "devices.allow", toString(rule));
    } else {
      // Default allow (fails unless the parent allows all), then the
      // denials. v1 cannot carve an allowed minor out of a denied "195:*"
      // (an allow write only removes an identical deny entry), so with
      // exceptions the NVIDIA minors 0..255 are denied one by one. Minors
      // above 255 of major 195 are then not denied by v1; the driver never
      // uses them, and where BPF is also in use it denies them.
      writeControl(fd.get(), dir, "devices.allow", "a");
      for (const DeviceRule& d : deny) {
        unsigned whole = 0;     // access allowed on every minor of this major
        bool specific = false;  // some exception names single minors
        for (const DeviceRule& a : allow) {
          if (a.type != 'c' || a.major != d.major) continue;
          if (a.minor < 0)
            whole |= maskOf(a.access);
          else
            specific = true;
        }
        if (whole == 7u) continue;  // the whole major is allowed after all
        if (!specific) {
          writeControl(fd.get(), dir, "devices.deny",
                       toString({'c', d.major, -1, accessOf(7u & ~whole)}));
          continue;
        }
        if (d.major != kNvidiaMajor)
          throw Error("cgroup v1 cannot deny major " + std::to_string(d.major) +
                      " except for single minors");
        for (int minor = 0; minor < kNvidiaMinors; ++minor) {
          unsigned mask = whole;
          for (const DeviceRule& a : allow)
            if (a.type == 'c' && a.major == d.major && a.minor == minor) mask |= maskOf(a.access);
          if (mask != 7u)
            writeControl(fd.get(), dir, "devices.deny",
                         toString({'c', d.major, minor, accessOf(7u & ~mask)}));
        }
      }
    }
  } catch (...) {
    ::rmdir(dir.c_str());
    throw;
  }
  v1Display_ = "devices:/gpubox/" + name;
  v1Dir_ = std::move(dir);
  v1Fd_ = std::move(fd);
}

void DeviceCgroup::setUpBpf(const std::string& parent, const std::string& name, DevicePolicy policy,
                            const std::vector<DeviceRule>& allow,
                            const std::vector<DeviceRule>& deny) {
  // Build and load before creating the directory: most failures (no bpf(2),
  // no CAP_BPF) then leave nothing behind.
  UniqueFd program = loadDeviceProgram(
      buildDeviceProgram(allow, deny, /*defaultAllow=*/policy == DevicePolicy::DenyNvidia));
  auto [dir, fd] = makeCgroup(parent, name);
  try {
    attachDeviceProgram(fd.get(), program.get());
  } catch (...) {
    ::rmdir(dir.c_str());
    throw;
  }
  v2Dir_ = std::move(dir);
  v2Fd_ = std::move(fd);
  program_ = std::move(program);
}

DeviceCgroup::~DeviceCgroup() {
  for (const std::string& dir : directories()) {
    int err = 0;
    if (!removeCgroup(dir, err))
      std::fprintf(stderr, "gpubox-helper: %s\n",
                   errnoMessage("cannot remove device cgroup " + dir, err).c_str());
  }
}

void DeviceCgroup::attach(pid_t pid) {
  const std::string value = std::to_string(pid);
  if (usesV1()) writeControl(v1Fd_.get(), v1Dir_, "cgroup.procs", value);
  if (usesBpf()) writeControl(v2Fd_.get(), v2Dir_, "cgroup.procs", value);
}

std::string DeviceCgroup::path() const {
  std::string s;
  if (usesV1()) s = v1Display_;
  if (usesBpf()) s += (s.empty() ? "" : " + ") + v2Dir_ + " (bpf)";
  return s;
}

std::vector<std::string> DeviceCgroup::directories() const {
  std::vector<std::string> dirs;
  if (usesV1()) dirs.push_back(v1Dir_);
  if (usesBpf()) dirs.push_back(v2Dir_);
  return dirs;
}

}  // namespace gpubox::cgroup
