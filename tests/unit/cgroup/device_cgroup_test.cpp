// Real enforcement tests of device rules: a child process is put into a
// SandboxCgroup with DeviceRules and tries to open (and mknod) device nodes.
// Needs root.
#include <fcntl.h>

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "error.hpp"
#include "held_descriptors.hpp"
#include "sandbox_cgroup.hpp"
#include "unique_fd.hpp"

namespace gpubox::cgroup {
namespace {

// Majors no driver registers (the "local/experimental" range), so opening
// such a node fails with ENXIO unless the cgroup denies it first (EPERM).
constexpr int kFreeMajor = 240;
constexpr int kExtraDenyMajor = 241;

// Not "sb-<pid>-<n>": a helper's cleanLeftovers() must never take a running
// test's cgroups for a dead helper's.
std::string uniqueName() {
  static int counter = 0;
  return "test-" + std::to_string(::getpid()) + "-" + std::to_string(++counter);
}

const Layout& layout() {
  static const Layout l = prepareLayout();
  return l;
}

std::unique_ptr<SandboxCgroup> createDevices(const std::string& name, DevicePolicy policy,
                                             const std::vector<DeviceRule>& allow,
                                             const std::vector<int>& extraDeny,
                                             DeviceBackend backend = DeviceBackend::Auto) {
  const DeviceRules rules{policy, allow, extraDeny, backend};
  return SandboxCgroup::create(layout(), name, {}, &rules);
}

struct Node {
  std::string name;
  int major;
  int minor;
};

const std::vector<Node> kNodes = {
    {"null", 1, 3},          {"nvidia0", 195, 0},     {"nvidia1", 195, 1},
    {"nvidiactl", 195, 255}, {"free", kFreeMajor, 0}, {"extra", kExtraDenyMajor, 0},
};

class DeviceCgroupTest : public ::testing::TestWithParam<DeviceBackend> {
 protected:
  void SetUp() override {
    if (::geteuid() != 0)
      GTEST_SKIP() << "needs root (creates cgroups and device nodes); CI runs these as root";
    if (GetParam() == DeviceBackend::V1Only && !layout().v1Parents.contains("devices"))
      GTEST_SKIP() << "this host has no cgroup v1 devices controller";
    if (GetParam() == DeviceBackend::BpfOnly && layout().v2Parent.empty())
      GTEST_SKIP() << "this host has no cgroup2 hierarchy";

    char tmpl[] = "/tmp/gpubox-devcg.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr) << std::strerror(errno);
    dir_ = tmpl;
    for (const Node& node : kNodes) {
      const std::string path = dir_ + "/" + node.name;
      if (::mknod(path.c_str(), S_IFCHR | 0666, makedev(node.major, node.minor)) != 0)
        GTEST_SKIP() << "cannot mknod " << path << ": " << std::strerror(errno);
    }
    // Device nodes on a nodev mount cannot be opened at all: that would make
    // every "not EPERM" below pass for the wrong reason.
    UniqueFd probe(::open((dir_ + "/null").c_str(), O_RDONLY | O_CLOEXEC));
    if (!probe) GTEST_SKIP() << dir_ << " does not allow device nodes: " << std::strerror(errno);
  }

  void TearDown() override {
    if (dir_.empty()) return;
    for (const Node& node : kNodes) ::unlink((dir_ + "/" + node.name).c_str());
    ::unlink((dir_ + "/made").c_str());
    ::rmdir(dir_.c_str());
  }

  std::string node(const std::string& name) const { return dir_ + "/" + name; }

  std::unique_ptr<SandboxCgroup> make(DevicePolicy policy, const std::vector<DeviceRule>& allow,
                                      const std::vector<int>& extraDeny) {
    auto cg = createDevices(uniqueName(), policy, allow, extraDeny, GetParam());
    std::printf("device cgroup: %s%s%s\n", cg->path().c_str(), cg->skipped().empty() ? "" : "; ",
                cg->skipped().c_str());
    return cg;
  }

  // Forks a child, attaches it to CG, and has it open each path and mknod
  // each (major, minor). Returns errno per attempt (0 = success), keyed by
  // path or by "mknod M:N".
  std::map<std::string, int> probe(SandboxCgroup& cg, const std::vector<std::string>& paths,
                                   const std::vector<std::pair<int, int>>& mknods = {}) {
    int go[2], result[2];
    EXPECT_EQ(::pipe2(go, O_CLOEXEC), 0);
    EXPECT_EQ(::pipe2(result, O_CLOEXEC), 0);
    UniqueFd goRead(go[0]), goWrite(go[1]), resultRead(result[0]), resultWrite(result[1]);
    const std::string made = node("made");
    const pid_t pid = ::fork();
    if (pid == 0) {
      // Child: only async-signal-safe calls from here on.
      char byte;
      if (::read(goRead.get(), &byte, 1) != 1) ::_exit(2);
      for (const std::string& path : paths) {
        const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        const int err = fd >= 0 ? 0 : errno;
        if (fd >= 0) ::close(fd);
        if (::write(resultWrite.get(), &err, sizeof err) != sizeof err) ::_exit(3);
      }
      for (const auto& [major, minor] : mknods) {
        const int rc = ::mknod(made.c_str(), S_IFCHR | 0600, makedev(major, minor));
        const int err = rc == 0 ? 0 : errno;
        if (rc == 0) ::unlink(made.c_str());
        if (::write(resultWrite.get(), &err, sizeof err) != sizeof err) ::_exit(3);
      }
      ::_exit(0);
    }
    std::map<std::string, int> errors;
    if (pid < 0) {
      ADD_FAILURE() << "fork: " << std::strerror(errno);
      return errors;
    }
    resultWrite.reset();
    try {
      cg.attach(pid);
    } catch (const Error& e) {
      ADD_FAILURE() << e.what();
    }
    EXPECT_EQ(::write(goWrite.get(), "x", 1), 1);
    for (const std::string& path : paths) {
      int err = -1;
      EXPECT_EQ(::read(resultRead.get(), &err, sizeof err), static_cast<ssize_t>(sizeof err));
      errors[path] = err;
    }
    for (const auto& [major, minor] : mknods) {
      int err = -1;
      EXPECT_EQ(::read(resultRead.get(), &err, sizeof err), static_cast<ssize_t>(sizeof err));
      errors["mknod " + std::to_string(major) + ":" + std::to_string(minor)] = err;
    }
    int status = 0;
    EXPECT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
    return errors;
  }

  std::vector<std::string> allNodes() const {
    std::vector<std::string> paths = {"/dev/null"};
    for (const Node& n : kNodes) paths.push_back(node(n.name));
    return paths;
  }

  std::string dir_;
};

TEST_P(DeviceCgroupTest, AllowListedDeniesAllButStandardAndGranted) {
  auto cg = make(DevicePolicy::AllowListed, {{'c', 195, 0, "rwm"}, {'c', 195, 255, "rw"}}, {});
  auto e = probe(*cg, allNodes(), {{195, 7}, {195, 0}, {195, 255}, {kFreeMajor, 1}});
  EXPECT_EQ(e["/dev/null"], 0) << std::strerror(e["/dev/null"]);
  EXPECT_EQ(e[node("null")], 0) << "a standard node (1:3) anywhere";
  EXPECT_NE(e[node("nvidia0")], EPERM) << "granted GPU 195:0 must not be denied";
  EXPECT_NE(e[node("nvidiactl")], EPERM) << "granted nvidiactl 195:255 must not be denied";
  EXPECT_EQ(e[node("nvidia1")], EPERM) << "non-granted GPU 195:1 must be EPERM";
  EXPECT_EQ(e[node("free")], EPERM) << "unlisted device must be EPERM";
  EXPECT_EQ(e[node("extra")], EPERM) << "unlisted device must be EPERM";
  EXPECT_EQ(e["mknod 195:7"], EPERM);
  EXPECT_EQ(e["mknod 195:0"], 0) << "rwm includes mknod: " << std::strerror(e["mknod 195:0"]);
  EXPECT_EQ(e["mknod 195:255"], EPERM) << "rw excludes mknod";
  EXPECT_EQ(e["mknod 240:1"], EPERM);
}

// The BPF program is loaded once per distinct rule set and shared
// (loadDeviceProgramShared): sandboxes alive at once with different grants
// must each keep their own rules, and a later sandbox with the first grant
// gets the first rules back.
TEST_P(DeviceCgroupTest, SharedProgramsKeepEachGrantApart) {
  auto first = make(DevicePolicy::AllowListed, {{'c', 195, 0, "rw"}}, {});
  auto second = make(DevicePolicy::AllowListed, {{'c', 195, 1, "rw"}}, {});
  auto again = make(DevicePolicy::AllowListed, {{'c', 195, 0, "rw"}}, {});
  auto a = probe(*first, allNodes(), {});
  auto b = probe(*second, allNodes(), {});
  auto c = probe(*again, allNodes(), {});
  EXPECT_NE(a[node("nvidia0")], EPERM);
  EXPECT_EQ(a[node("nvidia1")], EPERM);
  EXPECT_EQ(b[node("nvidia0")], EPERM);
  EXPECT_NE(b[node("nvidia1")], EPERM);
  EXPECT_NE(c[node("nvidia0")], EPERM);
  EXPECT_EQ(c[node("nvidia1")], EPERM);
}

TEST_P(DeviceCgroupTest, DenyNvidiaAllowsAllButNvidiaAndExtraMajors) {
  auto cg = make(DevicePolicy::DenyNvidia, {}, {kExtraDenyMajor});
  auto e = probe(*cg, allNodes(), {{195, 7}, {kFreeMajor, 1}});
  EXPECT_EQ(e["/dev/null"], 0);
  EXPECT_EQ(e[node("null")], 0);
  EXPECT_EQ(e[node("nvidia0")], EPERM);
  EXPECT_EQ(e[node("nvidia1")], EPERM);
  EXPECT_EQ(e[node("nvidiactl")], EPERM);
  EXPECT_EQ(e[node("extra")], EPERM) << "extra deny major";
  EXPECT_NE(e[node("free")], EPERM) << "other devices stay allowed";
  EXPECT_EQ(e["mknod 195:7"], EPERM);
  EXPECT_EQ(e["mknod 240:1"], 0) << std::strerror(e["mknod 240:1"]);
}

TEST_P(DeviceCgroupTest, DenyNvidiaWithGrantedExceptions) {
  auto cg = make(DevicePolicy::DenyNvidia, {{'c', 195, 0, "rwm"}, {'c', 195, 255, "rw"}},
                 {kExtraDenyMajor});
  auto e = probe(*cg, allNodes(), {{195, 0}, {195, 255}, {195, 7}});
  EXPECT_NE(e[node("nvidia0")], EPERM);
  EXPECT_NE(e[node("nvidiactl")], EPERM);
  EXPECT_EQ(e[node("nvidia1")], EPERM);
  EXPECT_EQ(e[node("extra")], EPERM);
  EXPECT_NE(e[node("free")], EPERM);
  EXPECT_EQ(e["mknod 195:0"], 0) << std::strerror(e["mknod 195:0"]);
  EXPECT_EQ(e["mknod 195:255"], EPERM) << "rw excludes mknod";
  EXPECT_EQ(e["mknod 195:7"], EPERM);
}

TEST_P(DeviceCgroupTest, DestructorRemovesDirectories) {
  auto cg = make(DevicePolicy::AllowListed, {}, {});
  const std::vector<std::string> dirs = cg->directories();
  ASSERT_FALSE(dirs.empty());
  for (const std::string& d : dirs) {
    struct stat st {};
    EXPECT_EQ(::stat(d.c_str(), &st), 0) << d;
  }
  // A process that lived in it and is gone must not keep it busy for
  // longer than the moment the kernel needs to finish tearing it down (the
  // helper retries from its event loop; the destructor tries once).
  probe(*cg, {"/dev/null"});
  for (int i = 0; i < 200 && !cg->tryRemove(); ++i) ::usleep(5000);
  EXPECT_TRUE(cg->directories().empty());
  cg.reset();
  for (const std::string& d : dirs) {
    struct stat st {};
    EXPECT_NE(::stat(d.c_str(), &st), 0) << d << " still exists";
    EXPECT_EQ(errno, ENOENT);
  }
}

// The helper removes an ended sandbox's directories on its cgroup worker's
// thread and tells the cgroup what came of each rmdir.
TEST_P(DeviceCgroupTest, RemovalMadeElsewhereIsNoted) {
  auto cg = make(DevicePolicy::AllowListed, {}, {});
  const std::vector<std::string> dirs = cg->directories();
  ASSERT_FALSE(dirs.empty());
  // The first could not go (busy), the others did.
  std::vector<int> errors;
  for (size_t i = 0; i < dirs.size(); ++i)
    errors.push_back(i == 0 ? EBUSY : (::rmdir(dirs[i].c_str()) == 0 ? 0 : errno));
  EXPECT_FALSE(cg->noteRemoval(dirs, errors));
  EXPECT_EQ(cg->directories(), std::vector<std::string>{dirs[0]});
  // Then it did; ENOENT counts as gone.
  ASSERT_EQ(::rmdir(dirs[0].c_str()), 0) << dirs[0];
  EXPECT_TRUE(cg->noteRemoval({dirs[0]}, {ENOENT}));
  EXPECT_TRUE(cg->directories().empty());
  EXPECT_TRUE(cg->tryRemove());
}

// The helper's way (sandbox_factory.cpp): planned on one thread, the system
// calls made on another (the cgroup worker's), then noted. The rules are in
// force, the status line says so, and the sandbox's dirs hold no extra fd.
TEST_P(DeviceCgroupTest, DeviceWorkCarriedOutOnAnotherThread) {
  const DeviceRules rules{DevicePolicy::AllowListed, {{'c', 195, 0, "rw"}}, {}, GetParam()};
  std::unique_ptr<SandboxCgroup::DeviceWork> work;
  auto cg = SandboxCgroup::create(layout(), uniqueName(), {}, &rules, &work);
  ASSERT_NE(work, nullptr);
  for (const std::string& line : cg->applied())
    EXPECT_EQ(line.find("devices:"), std::string::npos) << "noted before carried out: " << line;
  std::thread([&] { work->carryOut(); }).join();
  cg->finishDevices(*work);
  std::vector<std::string> applied = cg->applied();
  ASSERT_FALSE(applied.empty());
  EXPECT_EQ(applied.back().rfind("devices: allow-list (", 0), 0u) << applied.back();
  EXPECT_EQ(cg->usesBpf(), GetParam() != DeviceBackend::V1Only && cg->v2Fd() >= 0);
  auto e = probe(*cg, allNodes(), {});
  EXPECT_EQ(e["/dev/null"], 0);
  EXPECT_NE(e[node("nvidia0")], EPERM);
  EXPECT_EQ(e[node("nvidia1")], EPERM);
  EXPECT_EQ(e[node("free")], EPERM);
  EXPECT_THROW(cg->planDevices(rules), Error) << "device rules are set up once";
}

// When the work could not be done (here: done against a directory that was
// removed meanwhile, as a sandbox that ended while its work waited), no
// backend is claimed and finishDevices() refuses.
TEST_P(DeviceCgroupTest, DeviceWorkThatFailedIsRefusedInWords) {
  const DeviceRules rules{DevicePolicy::AllowListed, {{'c', 195, 0, "rw"}}, {}, GetParam()};
  std::unique_ptr<SandboxCgroup::DeviceWork> work;
  auto cg = SandboxCgroup::create(layout(), uniqueName(), {}, &rules, &work);
  ASSERT_NE(work, nullptr);
  for (const std::string& dir : cg->directories()) ASSERT_EQ(::rmdir(dir.c_str()), 0) << dir;
  work->carryOut();
  try {
    cg->finishDevices(*work);
    ADD_FAILURE() << "device rules that are not in force must be refused";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot set up the sandbox's device cgroup"),
              std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(cg->usesV1Devices());
  EXPECT_FALSE(cg->usesBpf());
}

// A work handed to a worker shares its directories' descriptors with the
// sandbox's cgroup: the sandbox may end (its cgroup destroyed) while the
// work waits, and the work's descriptor must still be the directory it was
// planned for, never a closed number another open could reuse. Once the
// work is dropped too, nothing of it stays open.
TEST_P(DeviceCgroupTest, DeviceWorkKeepsItsDirectoriesOpenPastItsCgroup) {
  const DeviceRules rules{DevicePolicy::AllowListed, {{'c', 195, 0, "rw"}}, {}, GetParam()};
  std::unique_ptr<SandboxCgroup::DeviceWork> work;
  auto cg = SandboxCgroup::create(layout(), uniqueName(), {}, &rules, &work);
  ASSERT_NE(work, nullptr);
  HeldDescriptors held;
  for (const auto& v1 : work->v1) held.note(v1.dir, v1.path);
  if (work->v2Dir) held.note(work->v2Dir, "the v2 directory");
  ASSERT_FALSE(held.empty());
  cg.reset();  // the sandbox ended: its directories are removed
  held.expectOpenOnTheSameDirectories();
  work->carryOut();  // against removed directories: fails, harmlessly
  work.reset();
  held.expectClosed();
}

TEST_P(DeviceCgroupTest, NameReuseIsRefused) {
  const std::string name = uniqueName();
  auto first = createDevices(name, DevicePolicy::AllowListed, {}, {}, GetParam());
  try {
    createDevices(name, DevicePolicy::AllowListed, {}, {}, GetParam());
    ADD_FAILURE() << "a second cgroup with the same name must be refused";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("already exists"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(first->directories().empty());
}

INSTANTIATE_TEST_SUITE_P(Backends, DeviceCgroupTest,
                         ::testing::Values(DeviceBackend::Auto, DeviceBackend::V1Only,
                                           DeviceBackend::BpfOnly),
                         [](const auto& info) {
                           switch (info.param) {
                             case DeviceBackend::Auto:
                               return std::string("Auto");
                             case DeviceBackend::V1Only:
                               return std::string("V1");
                             case DeviceBackend::BpfOnly:
                               return std::string("Bpf");
                           }
                           return std::string("?");
                         });

TEST(DeviceCgroup, DestructorRemovesUnusedDirectories) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root (creates cgroups)";
  auto cg = createDevices(uniqueName(), DevicePolicy::AllowListed, {}, {});
  const std::vector<std::string> dirs = cg->directories();
  ASSERT_FALSE(dirs.empty());
  cg.reset();
  for (const std::string& d : dirs) {
    struct stat st {};
    EXPECT_NE(::stat(d.c_str(), &st), 0) << d << " still exists";
  }
}

TEST(DeviceCgroup, AutoUsesEveryAvailableBackend) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root (creates cgroups)";
  const Mounts mounts = detectMounts();
  auto cg = createDevices(uniqueName(), DevicePolicy::AllowListed, {}, {});
  EXPECT_EQ(cg->usesV1Devices(), !mounts.v1DevicesMount.empty());
  EXPECT_EQ(cg->usesBpf(), !mounts.v2Mount.empty());
  EXPECT_EQ(cg->skipped(), "");
  EXPECT_EQ(cg->usesBpf(), cg->v2Fd() >= 0);
  if (mounts.mode == Mode::Hybrid) {
    EXPECT_NE(cg->path().find(" + "), std::string::npos) << cg->path();
    EXPECT_NE(cg->path().find("devices:/gpubox/"), std::string::npos) << cg->path();
  }
  const std::vector<std::string> applied = cg->applied();
  ASSERT_FALSE(applied.empty());
  EXPECT_EQ(applied.back().rfind("devices: allow-list (", 0), 0u) << applied.back();
}

TEST(DeviceCgroup, RejectsBadNamesAndRules) {
  for (const char* name : {"", ".", "..", "a/b", "x y", "../escape"})
    EXPECT_THROW(createDevices(name, DevicePolicy::AllowListed, {}, {}), Error) << name;
  const std::vector<DeviceRule> bad = {
      {'x', 1, 3, "rwm"}, {'c', 1, 3, ""},    {'c', 1, 3, "rwx"},
      {'c', -2, 3, "r"},  {'a', 1, 3, "rwm"}, {'c', 1 << 12, 0, "r"},
  };
  for (const DeviceRule& rule : bad)
    EXPECT_THROW(createDevices("bad-rule", DevicePolicy::AllowListed, {rule}, {}), Error)
        << toString(rule);
  // Under DenyNvidia an exception must name a major.
  EXPECT_THROW(createDevices("bad-exc", DevicePolicy::DenyNvidia, {{'c', -1, -1, "rwm"}}, {}),
               Error);
}

}  // namespace
}  // namespace gpubox::cgroup
