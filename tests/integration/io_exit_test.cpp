// Standard streams pass through byte-exact; exit codes, signals and gpubox's
// own errors map to the documented exit statuses; --json-status reports the run.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>

#include "harness.hpp"

namespace gpubox::itest {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

class StdioAndExit : public CallerTest {};

// Deterministic bytes that cover every value, NULs included.
std::string binaryData(size_t size, uint32_t seed) {
  std::string s(size, '\0');
  uint32_t x = seed;
  for (size_t i = 0; i < size; ++i) {
    x = x * 1664525u + 1013904223u;
    s[i] = static_cast<char>((i % 7 == 0) ? 0 : (x >> 24));
  }
  return s;
}

TEST_P(StdioAndExit, BinaryStdinToStdoutAndStderr) {
  std::string data = binaryData(256 * 1024, 7);
  for (int b = 0; b < 256; ++b) data.push_back(static_cast<char>(b));
  RunOptions o;
  o.stdinData = data;
  // (Not `tee /dev/stderr`: reopening a root-owned pipe fails for 65534.)
  auto r = runAs({"--", "sh", "-c", "cat > /tmp/in && cat /tmp/in && cat /tmp/in >&2"}, o);
  ASSERT_EQ(r.exitCode, 0) << r.describe();
  EXPECT_EQ(r.out.size(), data.size());
  EXPECT_TRUE(r.out == data) << "stdout differs from stdin";
  EXPECT_TRUE(r.err == data) << "stderr differs from stdin";
}

TEST_P(StdioAndExit, TenMiBThroughStdinAndStdout) {
  std::string data = binaryData(10 * 1024 * 1024, 42);
  RunOptions o;
  o.stdinData = data;
  o.timeout = std::chrono::seconds(120);
  auto r = runAs({"--", "cat"}, o);
  ASSERT_EQ(r.exitCode, 0) << "exit=" << r.exitCode << " stderr=" << r.err;
  EXPECT_EQ(r.out.size(), data.size());
  EXPECT_TRUE(r.out == data) << "10 MiB did not come back byte-exact";
}

TEST_P(StdioAndExit, TenMiBGeneratedInsideMatchesItsHash) {
  // The data is made inside; its sha256 is printed on stderr; the test
  // hashes what arrived on stdout with the host's sha256sum.
  RunOptions o;
  o.timeout = std::chrono::seconds(120);
  auto r = runAs({"--", "sh", "-c",
                  "head -c 10485760 /dev/urandom > /tmp/d && sha256sum < /tmp/d >&2 && cat /tmp/d"},
                 o);
  ASSERT_EQ(r.exitCode, 0) << "exit=" << r.exitCode << " stderr=" << r.err;
  ASSERT_EQ(r.out.size(), 10485760u);
  TempDir t;
  writeFile(t / "out", r.out);
  auto h = runProcess({"/usr/bin/sha256sum", t / "out"});
  ASSERT_EQ(h.exitCode, 0) << h.describe();
  EXPECT_EQ(h.out.substr(0, 64), r.err.substr(0, 64));
}

TEST_P(StdioAndExit, ExitCodesPropagate) {
  for (int code : {0, 1, 42, 124, 125, 126, 127, 255}) {
    auto r = runAs({"--", "sh", "-c", "exit " + std::to_string(code)});
    EXPECT_EQ(r.exitCode, code) << r.describe();
    EXPECT_EQ(r.err, "") << "gpubox must not add output for a normal exit";
  }
}

TEST_P(StdioAndExit, SignalsBecome128PlusN) {
  auto k = runAs({"--", "sh", "-c", "kill -9 $$"});
  EXPECT_EQ(k.exitCode, 137) << k.describe();
  auto t = runAs({"--", "sh", "-c", "kill -TERM $$"});
  EXPECT_EQ(t.exitCode, 143) << t.describe();
  auto s = runAs({"--", "sh", "-c", "kill -SEGV $$"});
  EXPECT_EQ(s.exitCode, 139) << s.describe();
}

TEST_P(StdioAndExit, MissingCommandIs127) {
  auto r = runAs({"--", "gpubox-it-no-such-command"});
  EXPECT_EQ(r.exitCode, 127) << r.describe();
  EXPECT_THAT(r.err, StartsWith("gpubox: ")) << r.describe();
  EXPECT_THAT(r.err, HasSubstr("gpubox-it-no-such-command")) << r.describe();
  EXPECT_THAT(r.err, HasSubstr("command not found")) << r.describe();
  auto abs = runAs({"--", "/nonexistent/gpubox-it"});
  EXPECT_EQ(abs.exitCode, 127) << abs.describe();
  EXPECT_THAT(abs.err, HasSubstr("/nonexistent/gpubox-it")) << abs.describe();
}

TEST_P(StdioAndExit, NotExecutableIs126) {
  // In the cwd, which the default plan binds at the same path.
  std::string file = helper().workDir() + "/not-exec";
  writeFile(file, "#!/bin/sh\necho should not run\n", 0644, caller(), caller());
  auto r = runAs({"--", file});
  EXPECT_EQ(r.exitCode, 126) << r.describe();
  EXPECT_THAT(r.err, StartsWith("gpubox: ")) << r.describe();
  EXPECT_THAT(r.err, HasSubstr(file)) << r.describe();
  EXPECT_EQ(r.out, "");
  auto dir = runAs({"--", "/usr"});
  EXPECT_EQ(dir.exitCode, 126) << dir.describe();
}

TEST_P(StdioAndExit, BadOptionIs125WithUsage) {
  auto r = runAs({"--gpubox-it-bogus", "--", "true"});
  EXPECT_EQ(r.exitCode, 125) << r.describe();
  EXPECT_THAT(r.err, StartsWith("gpubox: ")) << r.describe();
  EXPECT_THAT(r.err, HasSubstr("--gpubox-it-bogus")) << r.describe();
  EXPECT_THAT(r.err, HasSubstr("usage: gpubox run")) << r.describe();

  auto missingArg = runAs({"--bind", "/usr"});
  EXPECT_EQ(missingArg.exitCode, 125) << missingArg.describe();
  EXPECT_THAT(missingArg.err, HasSubstr("usage:")) << missingArg.describe();

  auto noCommand = runAs({});
  EXPECT_EQ(noCommand.exitCode, 125) << noCommand.describe();
  EXPECT_THAT(noCommand.err, HasSubstr("usage:")) << noCommand.describe();

  auto badNet = runAs({"--net", "sideways", "--", "true"});
  EXPECT_EQ(badNet.exitCode, 125) << badNet.describe();

  auto top = helper().cli({"frobnicate"}, as());
  EXPECT_EQ(top.exitCode, 125) << top.describe();
  EXPECT_THAT(top.err, StartsWith("gpubox: ")) << top.describe();
  EXPECT_THAT(top.err, HasSubstr("usage:")) << top.describe();
}

TEST_P(StdioAndExit, HelpExitsZero) {
  auto r = runAs({"--help"});
  EXPECT_EQ(r.exitCode, 0) << r.describe();
  EXPECT_THAT(r.out, HasSubstr("usage: gpubox run"));
  EXPECT_THAT(r.out, HasSubstr("--ro-bind"));
}

TEST_P(StdioAndExit, JsonStatusNamesNamespacesAndMounts) {
  RunOptions o;
  o.extraFd = 3;
  auto r = runAs({"--json-status", "3", "--ro-bind", "/", "/", "--tmpfs", "/tmp", "--proc", "/proc",
                  "--", "sh", "-c", "exit 3"},
                 o);
  EXPECT_EQ(r.exitCode, 3) << r.describe();
  nlohmann::json j = nlohmann::json::parse(r.extra, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << "not JSON: " << r.extra;
  EXPECT_EQ(j["exit_code"], 3) << j.dump();
  EXPECT_TRUE(j["signal"].is_null()) << j.dump();
  EXPECT_EQ(j["command_pid"], 2) << j.dump();
  EXPECT_TRUE(j["sandbox_pid"].is_number_integer() && j["sandbox_pid"].get<long>() > 0) << j.dump();
  EXPECT_TRUE(j["wall_seconds"].is_number() && j["wall_seconds"].get<double>() > 0) << j.dump();
  ASSERT_TRUE(j["namespaces"].is_array()) << j.dump();
  for (const char* ns : {"mnt", "pid", "ipc", "uts", "cgroup", "net"})
    EXPECT_THAT(j["namespaces"].get<std::vector<std::string>>(), ::testing::Contains(ns))
        << j.dump();
  // A user namespace of its own unless the helper runs without (never mode).
  const std::string userNs = expectedUserNamespace();
  EXPECT_EQ(j["user_namespace"], userNs) << j.dump();
  if (userNs == "new")
    EXPECT_THAT(j["namespaces"].get<std::vector<std::string>>(), ::testing::Contains("user"))
        << j.dump();
  else
    EXPECT_THAT(j["namespaces"].get<std::vector<std::string>>(),
                ::testing::Not(::testing::Contains("user")))
        << j.dump();
  ASSERT_TRUE(j["mounts"].is_array()) << j.dump();
  auto mounts = j["mounts"].get<std::vector<std::string>>();
  EXPECT_THAT(mounts, ::testing::Contains("--ro-bind / /")) << j.dump();
  EXPECT_THAT(mounts, ::testing::Contains("--tmpfs /tmp")) << j.dump();
  EXPECT_THAT(mounts, ::testing::Contains("--proc /proc")) << j.dump();
  EXPECT_FALSE(j.contains("error")) << j.dump();
}

TEST_P(StdioAndExit, JsonStatusReportsSignalAndHostNet) {
  RunOptions o;
  o.extraFd = 3;
  auto r = runAs({"--json-status", "3", "--", "sh", "-c", "kill -TERM $$"}, o);
  EXPECT_EQ(r.exitCode, 143) << r.describe();
  nlohmann::json j = nlohmann::json::parse(r.extra, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << "not JSON: " << r.extra;
  EXPECT_EQ(j["signal"], 15) << j.dump();
  EXPECT_TRUE(j["exit_code"].is_null()) << j.dump();
  // The default plan is reported as what it is.
  EXPECT_FALSE(j["mounts"].empty()) << j.dump();

  if (caller() == 0) {
    auto h = runAs({"--json-status", "3", "--net", "host", "--", "true"}, o);
    ASSERT_EQ(h.exitCode, 0) << h.describe();
    nlohmann::json hj = nlohmann::json::parse(h.extra, nullptr, false);
    ASSERT_FALSE(hj.is_discarded()) << h.extra;
    EXPECT_THAT(hj["namespaces"].get<std::vector<std::string>>(),
                ::testing::Not(::testing::Contains("net")))
        << "--net host must not claim a new net namespace: " << hj.dump();
  }
}

TEST_P(StdioAndExit, JsonStatusOnFailureHasError) {
  RunOptions o;
  o.extraFd = 3;
  auto r = runAs({"--json-status", "3", "--", "gpubox-it-no-such-command"}, o);
  EXPECT_EQ(r.exitCode, 127) << r.describe();
  nlohmann::json j = nlohmann::json::parse(r.extra, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << "not JSON: " << r.extra;
  ASSERT_TRUE(j.contains("error")) << j.dump();
  EXPECT_THAT(j["error"].get<std::string>(), HasSubstr("command not found"));
}

GPUBOX_INSTANTIATE_CALLERS(StdioAndExit);

}  // namespace
}  // namespace gpubox::itest
