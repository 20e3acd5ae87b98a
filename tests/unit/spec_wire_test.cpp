#include "spec_wire.hpp"

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <gtest/gtest.h>

#include "error.hpp"

using namespace gpubox;

TEST(SpecWire, RoundTripsEveryField) {
  SandboxSpec spec;
  spec.useDefaultPlan = false;
  spec.cwd = "/src";
  spec.hostname = "box";
  spec.network = Network::Host;
  spec.gpus = {"0,1", "count:2"};
  spec.mounts = {{.kind = MountKind::Bind, .source = "/a", .dest = "/b"},
                 {.kind = MountKind::RoBind, .source = "/c", .dest = "/d"},
                 {.kind = MountKind::DevBind, .source = "/dev/x", .dest = "/dev/x"},
                 {.kind = MountKind::Tmpfs, .dest = "/tmp"},
                 {.kind = MountKind::Proc, .dest = "/proc"},
                 {.kind = MountKind::Dev, .dest = "/dev"},
                 {.kind = MountKind::Dir, .dest = "/e"},
                 {.kind = MountKind::Symlink, .source = "usr/bin", .dest = "/bin"},
                 {.kind = MountKind::RemountRo, .dest = "/"}};
  spec.limits.memoryBytes = 64ull << 20;
  spec.limits.cpuMillis = 500;
  spec.limits.pids = 64;
  spec.limits.rlimits = {{"NOFILE", 100, 200}, {"CORE", kRlimUnlimited, kRlimUnlimited}};
  capnp::MallocMessageBuilder message;
  specToWire(spec, message.initRoot<wire::SandboxSpec>());
  SandboxSpec back = specFromWire(message.getRoot<wire::SandboxSpec>().asReader());
  EXPECT_EQ(back.useDefaultPlan, spec.useDefaultPlan);
  EXPECT_EQ(back.cwd, spec.cwd);
  EXPECT_EQ(back.hostname, spec.hostname);
  EXPECT_EQ(back.network, spec.network);
  EXPECT_EQ(back.gpus, spec.gpus);
  EXPECT_EQ(back.mounts, spec.mounts);
  EXPECT_EQ(back.limits, spec.limits);
}

TEST(SpecWire, UnsetLimitsStayUnsetAndCommandsCarryTimeouts) {
  capnp::MallocMessageBuilder message;
  specToWire(SandboxSpec{}, message.initRoot<wire::SandboxSpec>());
  SandboxSpec back = specFromWire(message.getRoot<wire::SandboxSpec>().asReader());
  EXPECT_FALSE(back.limits.memoryBytes.has_value()) << "0 on the wire means the helper's default";
  EXPECT_FALSE(back.limits.cpuMillis.has_value());
  EXPECT_FALSE(back.limits.pids.has_value());

  Command cmd{.argv = {"sleep", "9"}, .env = {}, .cwd = "", .timeoutMs = 1500, .killAfterMs = 250};
  capnp::MallocMessageBuilder m2;
  commandToWire(cmd, m2.initRoot<wire::Command>());
  Command c2 = commandFromWire(m2.getRoot<wire::Command>().asReader());
  EXPECT_EQ(c2.timeoutMs, 1500u);
  EXPECT_EQ(c2.killAfterMs, 250u);
}

TEST(SpecWire, HelperOnlyFlagsNeverTravel) {
  SandboxSpec spec;
  spec.mounts = {{.kind = MountKind::Bind,
                  .source = "/a",
                  .dest = "/b",
                  .optional = true,
                  .skipIfVisible = true,
                  .hardened = true}};
  capnp::MallocMessageBuilder message;
  specToWire(spec, message.initRoot<wire::SandboxSpec>());
  SandboxSpec back = specFromWire(message.getRoot<wire::SandboxSpec>().asReader());
  EXPECT_FALSE(back.mounts[0].optional);
  EXPECT_FALSE(back.mounts[0].skipIfVisible);
  EXPECT_FALSE(back.mounts[0].hardened);
}

TEST(SpecWire, CommandRoundTrip) {
  Command cmd{{"sh", "-c", "echo hi"}, {"A=1", "B=2"}, "/work"};
  capnp::MallocMessageBuilder message;
  commandToWire(cmd, message.initRoot<wire::Command>());
  Command back = commandFromWire(message.getRoot<wire::Command>().asReader());
  EXPECT_EQ(back.argv, cmd.argv);
  EXPECT_EQ(back.env, cmd.env);
  EXPECT_EQ(back.cwd, cmd.cwd);
}

TEST(SpecWire, UnknownMountKindFromNewerClientIsRefused) {
  capnp::MallocMessageBuilder message;
  auto spec = message.initRoot<wire::SandboxSpec>();
  auto mounts = spec.initMounts(1);
  mounts[0].setKind(static_cast<wire::MountOp::Kind>(42));
  mounts[0].setDest("/x");
  EXPECT_THROW(specFromWire(spec.asReader()), Error);
}
