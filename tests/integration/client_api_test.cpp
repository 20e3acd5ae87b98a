// libgpubox-client's session API driven directly (the CLI tests cover the
// same helper paths as uid 65534): exec with the caller's own fds, wait,
// signal, list, remove, and a Process dropped before its end.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <optional>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "error.hpp"
#include "gpubox/client.hpp"
#include "harness.hpp"

namespace gpubox::itest {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

struct Pipe {
  int fds[2] = {-1, -1};
  Pipe() { EXPECT_EQ(::pipe2(fds, O_CLOEXEC), 0); }
  ~Pipe() {
    closeRead();
    closeWrite();
  }
  int read() const { return fds[0]; }
  int write() const { return fds[1]; }
  void closeRead() {
    if (fds[0] >= 0) ::close(fds[0]);
    fds[0] = -1;
  }
  void closeWrite() {
    if (fds[1] >= 0) ::close(fds[1]);
    fds[1] = -1;
  }
  std::string drain() {
    closeWrite();
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(fds[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
    return out;
  }
};

class ClientApi : public HelperTest {
 protected:
  client::SessionInfo create(client::Connection& conn, const std::string& name) {
    client::SessionRequest req;
    req.spec.cwd = helper().workDir();
    req.name = name;
    req.ttlMs = 60000;
    return conn.createSession(req);
  }
  client::ExecRequest execOf(const std::string& session, std::vector<std::string> argv, int in,
                             int out, int err) {
    client::ExecRequest r;
    r.session = session;
    r.command.argv = std::move(argv);
    r.command.env = {"PATH=/usr/bin:/bin"};
    r.stdinFd = in;
    r.stdoutFd = out;
    r.stderrFd = err;
    return r;
  }
};

TEST_F(ClientApi, ExecWithOwnFdsWaitSignalListRemove) {
  client::Connection conn(helper().socketPath());
  client::SessionInfo info = create(conn, "api");
  EXPECT_EQ(info.name, "api");
  EXPECT_EQ(info.ttlMs, 60000u);
  EXPECT_GT(info.initPid, 0);
  EXPECT_FALSE(info.cgroup.empty());

  // The command reads our pipe and writes into our other pipe, directly.
  Pipe in, out, err;
  client::Process p =
      conn.exec(execOf("api", {"sh", "-c", "read x; echo got $x; echo oops >&2; exit 4"}, in.read(),
                       out.write(), err.write()));
  ASSERT_EQ(::write(in.write(), "hi\n", 3), 3);
  in.closeWrite();
  client::RunResult r = p.wait();
  EXPECT_EQ(r.exitCode, 4);
  EXPECT_EQ(r.reason, "exited");
  EXPECT_EQ(r.message, "exited with status 4");
  EXPECT_EQ(r.session, "api");
  EXPECT_EQ(out.drain(), "got hi\n");
  EXPECT_EQ(err.drain(), "oops\n");

  // signal() reaches the command.
  Pipe none;
  client::Process sleeper =
      conn.exec(execOf("api", {"sleep", "60"}, none.read(), none.write(), none.write()));
  ASSERT_TRUE(pollUntil([] { return !findProcesses({"sleep", "60"}).empty(); }, 20s));
  sleeper.signal(SIGTERM);
  client::RunResult s = sleeper.wait();
  EXPECT_EQ(s.signal, SIGTERM);
  EXPECT_EQ(s.reason, "signaled");

  // list() shows it with its ttl; remove() ends it; then it is gone.
  bool listed = false;
  for (const auto& l : conn.list())
    if (l.name == "api") {
      listed = true;
      EXPECT_TRUE(l.session);
      EXPECT_GT(l.ttlLeftMs, 0u);
      EXPECT_LE(l.ttlLeftMs, 60000u);
    }
  EXPECT_TRUE(listed);
  conn.removeSession("api");
  for (const auto& l : conn.list()) EXPECT_NE(l.name, "api");
  try {
    conn.exec(execOf("api", {"true"}, none.read(), none.write(), none.write())).wait();
    ADD_FAILURE() << "exec into a removed session worked";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("no session named 'api'"));
  }
}

TEST_F(ClientApi, DroppingAProcessKillsItsCommandButNotTheSession) {
  client::Connection conn(helper().socketPath());
  create(conn, "drop");
  Pipe none;
  {
    client::Process p = conn.exec(execOf("drop", {"sh", "-c", "sleep 7171 & sleep 7172; wait"},
                                         none.read(), none.write(), none.write()));
    ASSERT_TRUE(pollUntil(
        [] {
          return !findProcesses({"sleep", "7171"}).empty() &&
                 !findProcesses({"sleep", "7172"}).empty();
        },
        20s));
  }  // dropped without wait()
  // Let the release reach the helper (it travels with the next call).
  EXPECT_TRUE(pollUntil(
      [&] {
        conn.list();
        return findProcesses({"sleep", "7171"}).empty() && findProcesses({"sleep", "7172"}).empty();
      },
      20s))
      << "the command's process group outlived its dropped Process";
  Pipe out;
  client::RunResult r =
      conn.exec(execOf("drop", {"echo", "alive"}, none.read(), out.write(), none.write())).wait();
  EXPECT_EQ(r.exitCode, 0);
  EXPECT_EQ(out.drain(), "alive\n");
  conn.removeSession("drop");
}

TEST_F(ClientApi, RunReportsATimeout) {
  client::Connection conn(helper().socketPath());
  client::RunRequest req;
  req.spec.cwd = helper().workDir();
  req.command.argv = {"sleep", "60"};
  req.command.env = {"PATH=/usr/bin:/bin"};
  req.command.timeoutMs = 300;
  Pipe none;
  req.stdinFd = none.read();
  req.stdoutFd = none.write();
  req.stderrFd = none.write();
  client::RunResult r = conn.run(req);
  EXPECT_EQ(r.reason, "timed_out");
  EXPECT_EQ(r.timeoutMs, 300u);
  EXPECT_FALSE(r.sigkillNeeded) << "sleep ends on SIGTERM";
  EXPECT_EQ(r.signal, SIGTERM);
  EXPECT_THAT(r.message, HasSubstr("--timeout 300ms"));
}

// RunRequest::sandboxFacts: asked for (the default), the result has the
// sandbox's facts; not asked for (the CLI without --json-status), it has
// the command's end only, and the helper is spared the call.
TEST_F(ClientApi, SandboxFactsOnlyWhenAskedFor) {
  client::Connection conn(helper().socketPath());
  for (bool facts : {true, false}) {
    client::RunRequest req;
    req.spec.cwd = helper().workDir();
    req.command.argv = {"sh", "-c", "exit 3"};
    req.command.env = {"PATH=/usr/bin:/bin"};
    req.sandboxFacts = facts;
    Pipe none;
    req.stdinFd = none.read();
    req.stdoutFd = none.write();
    req.stderrFd = none.write();
    client::RunResult r = conn.run(req);
    EXPECT_EQ(r.exitCode, 3) << "facts " << facts;
    EXPECT_EQ(r.reason, "exited") << "facts " << facts;
    EXPECT_GT(r.commandPid, 0) << "facts " << facts;
    EXPECT_EQ(r.sandboxPid > 0, facts);
    EXPECT_EQ(r.mounts.empty(), !facts);
    EXPECT_EQ(r.namespaces.empty(), !facts);
    EXPECT_EQ(r.limits.empty(), !facts);
  }
}

// A bind whose source must be one inode (gpubox-bwrap's --bind-fd) is
// refused when another file is at the path; the right inode is bound. And
// the hook that bwrap's --info-fd needs runs before the command, with the
// sandbox's namespaces.
TEST_F(ClientApi, PinnedBindSourceAndTheBeforeExecHook) {
  TempDir dir(0755);
  struct stat st;
  ASSERT_EQ(::stat(dir.path().c_str(), &st), 0);
  client::Connection conn(helper().socketPath());
  client::RunRequest req;
  req.spec.useDefaultPlan = false;
  req.spec.mounts = {{.kind = MountKind::RoBind, .source = "/usr", .dest = "/usr"},
                     {.kind = MountKind::Symlink, .source = "usr/bin", .dest = "/bin"},
                     {.kind = MountKind::Symlink, .source = "usr/lib", .dest = "/lib"},
                     {.kind = MountKind::Symlink, .source = "usr/lib64", .dest = "/lib64"},
                     {.kind = MountKind::RoBind,
                      .source = dir.path(),
                      .dest = "/held",
                      .sourceInode = InodeId{st.st_dev, st.st_ino}}};
  req.command.argv = {"/bin/true"};
  Pipe none;
  req.stdinFd = none.read();
  req.stdoutFd = none.write();
  req.stderrFd = none.write();
  std::optional<client::SandboxStarted> started;
  req.beforeExec = [&](const client::SandboxStarted& s) { started = s; };
  client::RunResult ok = conn.run(req);
  EXPECT_EQ(ok.exitCode, 0) << ok.message;
  ASSERT_TRUE(started.has_value());
  EXPECT_EQ(started->sandboxPid, ok.sandboxPid);
  EXPECT_EQ(started->namespaceIds, ok.namespaceIds);
  EXPECT_TRUE(std::any_of(ok.namespaceIds.begin(), ok.namespaceIds.end(),
                          [](const client::NamespaceId& id) { return id.name == "mnt"; }));

  req.spec.mounts.back().sourceInode->ino += 1;
  req.beforeExec = nullptr;
  try {
    conn.run(req);
    ADD_FAILURE() << "a bind of another inode than named was not refused";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("was replaced")) << e.what();
  }
}

// Cgroup directories under /sys/fs/cgroup whose name starts with PREFIX.
std::vector<std::string> cgroupsNamed(const std::string& prefix) {
  namespace fs = std::filesystem;
  std::vector<std::string> found;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator("/sys/fs/cgroup", ec);
       it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) break;
    if (it.depth() > 6) {
      it.disable_recursion_pending();
      continue;
    }
    if (it->is_directory(ec) && it->path().filename().string().rfind(prefix, 0) == 0)
      found.push_back(it->path().string());
  }
  return found;
}

// --as-pid-1's pid namespace dies with its one command: a session, which
// runs more, refuses it rather than running its commands as pid 2.
TEST_F(ClientApi, SessionRefusesAsPid1) {
  client::Connection conn(helper().socketPath());
  client::SessionRequest req;
  req.spec.cwd = helper().workDir();
  req.spec.asPid1 = true;
  req.name = "pid1";
  try {
    conn.createSession(req);
    ADD_FAILURE() << "a session with asPid1 was created";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("--as-pid-1"));
  }
  EXPECT_TRUE(conn.list().empty());
}

// A session whose setup fails holds nothing afterwards: not its name, not a
// place under --max-sessions-per-uid, not a line in the list.
class FailedSessionSetup : public ClientApi {
 protected:
  HelperOptions helperOptions() override { return {.extraArgs = {"--max-sessions-per-uid", "1"}}; }
};

TEST_F(FailedSessionSetup, ReleasesEverything) {
  client::Connection conn(helper().socketPath());
  client::SessionRequest bad;
  bad.spec.cwd = helper().workDir();
  bad.spec.mounts = {{.kind = MountKind::RoBind, .source = "/nonexistent-gpubox", .dest = "/x"}};
  bad.name = "bad";
  try {
    conn.createSession(bad);
    ADD_FAILURE() << "a session with a missing bind source was created";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("/nonexistent-gpubox"));
  }
  EXPECT_TRUE(pollUntil([&] { return conn.list().empty(); }, 10s));
  // Its cgroups are gone at once, not when its TTL would have passed (what
  // is left are the warm inits', which belong to no sandbox yet).
  const std::string prefix = "sb-" + std::to_string(helper().pid()) + "-";
  auto sandboxCgroups = [&] {
    std::vector<std::string> left;
    for (const std::string& d : cgroupsNamed(prefix))
      if (!holdsOnlyAWarmInit(d, helper().pid())) left.push_back(d);
    return left;
  };
  EXPECT_TRUE(pollUntil([&] { return sandboxCgroups().empty(); }, 10s)) << sandboxCgroups()[0];
  // The cap of one session is free again, and so is the name.
  client::SessionInfo good = create(conn, "bad");
  EXPECT_EQ(good.name, "bad");
  conn.removeSession("bad");
}

}  // namespace
}  // namespace gpubox::itest
