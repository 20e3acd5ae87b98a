// A command made ready on an RPC thread: what the init will read from its
// memfd is the client's command with the sandbox's variables merged in, and
// the home loop gets the log's argv[0] and the command's timeouts.
#include "prepared_command.hpp"

#include <capnp/serialize.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <vector>

#include "error.hpp"
#include "spec_wire.hpp"

namespace gpubox {
namespace {

Command readBack(int memfd) {
  struct stat st;
  EXPECT_EQ(::fstat(memfd, &st), 0);
  kj::Array<capnp::word> words = kj::heapArray<capnp::word>(st.st_size / sizeof(capnp::word));
  EXPECT_EQ(::pread(memfd, words.begin(), st.st_size, 0), st.st_size);
  capnp::FlatArrayMessageReader reader(words);
  return commandFromWire(reader.getRoot<wire::Command>());
}

Command sample() {
  Command cmd;
  cmd.argv = {"/usr/bin/nvidia-smi", "-L"};
  cmd.env = {"PATH=/usr/bin:/bin", "CUDA_VISIBLE_DEVICES=7", "HOME=/home/me"};
  cmd.cwd = "/work";
  cmd.timeoutMs = 1500;
  cmd.killAfterMs = 250;
  return cmd;
}

TEST(PreparedCommand, MergesTheSandboxsVariablesOverTheClientsAndAppendsItsPath) {
  CommandEnvironment env;
  env.extraEnv = {"CUDA_VISIBLE_DEVICES=0", "NVIDIA_VISIBLE_DEVICES=GPU-1"};
  env.pathDir = "/gpubox/nvidia/bin";
  PreparedCommand prepared(sample(), env);
  const CommandToSend send = prepared.toSend();
  EXPECT_EQ(send.argv0, "/usr/bin/nvidia-smi");
  EXPECT_EQ(send.timeoutMs, 1500u);
  EXPECT_EQ(send.killAfterMs, 250u);
  Command seen = readBack(send.memfd);
  EXPECT_EQ(seen.argv, sample().argv);
  EXPECT_EQ(seen.cwd, "/work");
  std::sort(seen.env.begin(), seen.env.end());  // the order of variables means nothing
  EXPECT_EQ(seen.env, (std::vector<std::string>{"CUDA_VISIBLE_DEVICES=0", "HOME=/home/me",
                                                "NVIDIA_VISIBLE_DEVICES=GPU-1",
                                                "PATH=/usr/bin:/bin:/gpubox/nvidia/bin"}));
}

TEST(PreparedCommand, WithNothingOfTheSandboxsTheCommandIsTheClients) {
  PreparedCommand prepared(sample(), CommandEnvironment{});
  EXPECT_EQ(readBack(prepared.toSend().memfd), sample());
}

TEST(PreparedCommand, RefusesACommandTooLargeForTheInit) {
  Command cmd = sample();
  // 5 MiB of environment: over the 4 MiB an exec request may carry.
  cmd.env.assign(5, "BIG=" + std::string(1 << 20, 'x'));
  try {
    PreparedCommand prepared(std::move(cmd), CommandEnvironment{});
    ADD_FAILURE() << "a 5 MiB command was prepared";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("too large"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace gpubox
