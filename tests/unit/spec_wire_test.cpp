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
                 {.kind = MountKind::RemountRo, .dest = "/"},
                 {.kind = MountKind::Bind, .source = "/f", .dest = "/g", .ifSourceExists = true},
                 {.kind = MountKind::RoBind,
                  .source = "/held",
                  .dest = "/h",
                  .sourceInode = InodeId{64769, 1234567}},
                 {.kind = MountKind::Tmpfs, .dest = "/t", .mode = 01777, .sizeBytes = 1 << 20},
                 {.kind = MountKind::Dir, .dest = "/none", .mode = 0},
                 {.kind = MountKind::File, .source = std::string("a\0b\xff", 4), .dest = "/f1"},
                 {.kind = MountKind::BindData, .source = "x", .dest = "/f2", .mode = 0640},
                 {.kind = MountKind::RoBindData, .source = "", .dest = "/f3"},
                 {.kind = MountKind::Chmod, .dest = "/t", .mode = 0700},
                 {.kind = MountKind::Mqueue, .dest = "/dev/mqueue"}};
  spec.seccompPrograms = {std::string(16, '\0'), std::string("\x06\0\0\0\0\0\xff\x7f", 8)};
  spec.lockFiles = {"/run/lock"};
  spec.sandboxUid = 0;
  spec.sandboxGid = 4294967294u;
  spec.asPid1 = true;
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
  EXPECT_EQ(back.seccompPrograms, spec.seccompPrograms);
  EXPECT_EQ(back.lockFiles, spec.lockFiles);
  EXPECT_EQ(back.sandboxUid, 0u) << "uid 0 is an id, not the default";
  EXPECT_EQ(back.sandboxGid, 4294967294u);
  EXPECT_TRUE(back.asPid1);
  EXPECT_FALSE(back.mounts[6].mode.has_value()) << "no mode on the wire stays no mode";
  EXPECT_EQ(back.mounts[12].mode, 0u) << "mode 0 is a mode, not the default";
  EXPECT_EQ(back, spec);
}

TEST(SpecWire, FileContentsTravelAsDataNotText) {
  capnp::MallocMessageBuilder message;
  auto mounts = message.initRoot<wire::SandboxSpec>().initMounts(1);
  mounts[0].setKind(wire::MountOp::Kind::FILE);
  mounts[0].setSource("contents in the wrong field");
  mounts[0].setDest("/x");
  EXPECT_THROW(specFromWire(message.getRoot<wire::SandboxSpec>().asReader()), Error);
}

TEST(SpecWire, UnsetLimitsStayUnsetAndCommandsCarryTimeouts) {
  capnp::MallocMessageBuilder message;
  specToWire(SandboxSpec{}, message.initRoot<wire::SandboxSpec>());
  SandboxSpec back = specFromWire(message.getRoot<wire::SandboxSpec>().asReader());
  EXPECT_FALSE(back.limits.memoryBytes.has_value()) << "0 on the wire means the helper's default";
  EXPECT_FALSE(back.limits.cpuMillis.has_value());
  EXPECT_FALSE(back.limits.pids.has_value());
  EXPECT_FALSE(back.sandboxUid.has_value());
  EXPECT_FALSE(back.sandboxGid.has_value());
  // A message that never set the 1.4 ids (an older client's) asks for the
  // caller's own.
  capnp::MallocMessageBuilder old;
  old.initRoot<wire::SandboxSpec>();
  SandboxSpec fromOld = specFromWire(old.getRoot<wire::SandboxSpec>().asReader());
  EXPECT_FALSE(fromOld.sandboxUid.has_value());
  EXPECT_FALSE(fromOld.sandboxGid.has_value());

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

  cmd.argv0 = "shown";
  cmd.cwdFallbacks = {"/home/me/src", "/home/me"};
  cmd.setPwd = true;
  capnp::MallocMessageBuilder m2;
  commandToWire(cmd, m2.initRoot<wire::Command>());
  EXPECT_EQ(commandFromWire(m2.getRoot<wire::Command>().asReader()), cmd);
}

TEST(SpecWire, UnknownMountKindFromNewerClientIsRefused) {
  capnp::MallocMessageBuilder message;
  auto spec = message.initRoot<wire::SandboxSpec>();
  auto mounts = spec.initMounts(1);
  mounts[0].setKind(static_cast<wire::MountOp::Kind>(42));
  mounts[0].setDest("/x");
  EXPECT_THROW(specFromWire(spec.asReader()), Error);
}
