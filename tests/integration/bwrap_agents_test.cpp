// The command lines real agent tools hand bubblewrap, run through
// gpubox-bwrap: Codex's workspace-write sandbox and Anthropic's
// sandbox-runtime (as their sources build them), checked by what the
// command saw and what reached the host. docs/agents.md shows how to point
// each tool at gpubox-bwrap.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "agent_command_lines.hpp"
#include "fake_driver.hpp"
#include "harness.hpp"

namespace gpubox::itest {
namespace {

using ::testing::HasSubstr;

// A workspace as agents get one: a git checkout owned by the caller.
struct Workspace {
  Workspace(const TempDir& base, uid_t owner) : dir(base / "ws") {
    makeDir(dir, 0755, owner, owner);
    makeDir(dir + "/.git", 0755, owner, owner);
    makeDir(dir + "/.git/hooks", 0755, owner, owner);
    writeFile(dir + "/.git/config", "[core]\n", 0644, owner, owner);
    writeFile(dir + "/.env", "SECRET=1\n", 0600, owner, owner);
    writeFile(dir + "/main.py", "print('hi')\n", 0644, owner, owner);
  }
  std::string dir;
};

// Codex's workspace-write sandbox (agent_command_lines.hpp) running SCRIPT.
std::vector<std::string> codexArgs(const std::string& ws, const std::string& script) {
  return gpubox::testing::codexWorkspaceWrite(ws, {"bash", "-c", script});
}

const char* const kCodexScript = R"(
  pwd
  echo ok > out.txt && echo wrote-workspace
  echo x >> .git/config 2>/dev/null || echo git-read-only
  mkdir .codex/x 2>/dev/null || echo codex-blocked
  touch /etc/gpubox-agent-test 2>/dev/null || echo host-read-only
  tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '
  grep CapEff /proc/self/status
)";

class AgentClients : public CallerTest {
 protected:
  void SetUp() override {
    CallerTest::SetUp();
    if (IsSkipped()) return;
    base_ = std::make_unique<TempDir>(0755);
    ws_ = std::make_unique<Workspace>(*base_, caller());
  }
  void TearDown() override {
    ws_.reset();
    base_.reset();
    CallerTest::TearDown();
  }
  std::unique_ptr<TempDir> base_;
  std::unique_ptr<Workspace> ws_;
};

TEST_P(AgentClients, CodexWorkspaceWrite) {
  const std::string ws = ws_->dir;
  auto r = helper().bwrap(codexArgs(ws, kCodexScript), as({.cwd = ws}));
  ASSERT_EQ(r.exitCode, 0) << r.describe();
  EXPECT_EQ(r.out, ws + "\nwrote-workspace\ngit-read-only\ncodex-blocked\nhost-read-only\nlo\n"
                        "CapEff:\t0000000000000000\n");
  EXPECT_EQ(readFile(ws + "/out.txt"), "ok\n");
  EXPECT_EQ(readFile(ws + "/.git/config"), "[core]\n");
}

// sandbox-runtime (src/sandbox/linux-sandbox-utils.ts): environment edits
// first, then the host read-only with the allowed write paths bound back, a
// denied directory under a tmpfs, a denied file under /dev/null (which, on
// a nodev bind as with bwrap, cannot even be opened), a write-denied path
// re-bound read-only, /dev, its namespaces, --cap-drop ALL and /proc, then
// the user's shell.
TEST_P(AgentClients, SandboxRuntimeAllowAndDenyBinds) {
  const std::string ws = ws_->dir;
  const std::string home = *base_ / "home";
  makeDir(home, 0755, caller(), caller());
  makeDir(home + "/.ssh", 0700, caller(), caller());
  writeFile(home + "/.ssh/id_ed25519", "KEY\n", 0600, caller(), caller());
  const std::string script = R"(
    cat .env 2>/dev/null || echo env-unreadable
    ls -A "$SANDBOX_HOME/.ssh" | wc -l
    touch .git/hooks/pre-commit 2>/dev/null || echo hooks-read-only
    echo "${SECRET_TOKEN:-unset} $HTTP_PROXY"
    echo data > new.txt && echo wrote-workspace
    grep CapEff /proc/self/status
  )";
  auto r = helper().bwrap({"--new-session",
                           "--die-with-parent",
                           "--unsetenv",
                           "SECRET_TOKEN",
                           "--setenv",
                           "HTTP_PROXY",
                           "http://localhost:3128",
                           "--setenv",
                           "SANDBOX_HOME",
                           home,
                           "--unshare-net",
                           "--ro-bind",
                           "/",
                           "/",
                           "--bind",
                           ws,
                           ws,
                           "--tmpfs",
                           home + "/.ssh",
                           "--ro-bind",
                           "/dev/null",
                           ws + "/.env",
                           "--ro-bind",
                           ws + "/.git/hooks",
                           ws + "/.git/hooks",
                           "--dev",
                           "/dev",
                           "--unshare-pid",
                           "--unshare-user",
                           "--cap-drop",
                           "ALL",
                           "--proc",
                           "/proc",
                           "--",
                           "/bin/bash",
                           "-c",
                           script},
                          as({.env = {"SECRET_TOKEN=s3cret"}, .cwd = ws}));
  ASSERT_EQ(r.exitCode, 0) << r.describe();
  EXPECT_EQ(r.out,
            "env-unreadable\n0\nhooks-read-only\nunset http://localhost:3128\nwrote-workspace\n"
            "CapEff:\t0000000000000000\n");
  EXPECT_EQ(readFile(ws + "/new.txt"), "data\n");
  EXPECT_EQ(readFile(home + "/.ssh/id_ed25519"), "KEY\n");
  EXPECT_FALSE(pathExists(ws + "/.git/hooks/pre-commit"));
}

GPUBOX_INSTANTIATE_CALLERS(AgentClients);

// Codex's command line, unchanged, gets a GPU from $GPUBOX_GPU (fake driver
// tree: mknod, root only; the command runs as uid 65534).
TEST(AgentClientsGpu, CodexCommandLineWithGpuboxGpu) {
  GPUBOX_REQUIRE_ROOT();
  if (!testing::FakeDriverRoot::canMknod()) GTEST_SKIP() << "cannot mknod fake NVIDIA nodes";
  testing::FakeDriverRoot fake({.gpus = 2});
  TempDir config(0755);
  writeFile(config / "helper.toml", "[[allow]]\nusers = [65534]\ngpus = [\"all\"]\n", 0644);
  HelperProcess helper(
      {.extraArgs = {"--config", config / "helper.toml", "--driver-root", fake.root()}});
  TempDir base(0755);
  Workspace ws(base, kNobodyUid);
  auto r = helper.bwrap(codexArgs(ws.dir, "ls /dev | grep nvidia; echo $CUDA_VISIBLE_DEVICES"),
                        {.asUid = kNobodyUid, .env = {"GPUBOX_GPU=1"}, .cwd = ws.dir});
  ASSERT_EQ(r.exitCode, 0) << r.describe();
  EXPECT_THAT(r.out, HasSubstr("nvidia1\n"));
  EXPECT_THAT(r.out, ::testing::Not(HasSubstr("nvidia0\n")));
  EXPECT_THAT(r.out, HasSubstr("nvidiactl\n"));
}

}  // namespace
}  // namespace gpubox::itest
