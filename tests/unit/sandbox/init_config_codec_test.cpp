// The InitConfig a warm init receives must be exactly the one the helper
// decided on: every field survives the trip, and a damaged buffer is refused
// with an error instead of becoming a different sandbox.
#include "sandbox/init_config_codec.hpp"

#include <gtest/gtest.h>

#include "error.hpp"

namespace gpubox {
namespace {

InitConfig everyFieldSet() {
  InitConfig c;
  c.uid = 65534;
  c.gid = 65533;
  c.groups = {4, 27, 4294967294u};
  c.sandboxUid = 1234;
  c.sandboxGid = 4294967294u;
  c.hostname = "box";
  c.newNetwork = false;
  c.newUserNamespace = true;
  c.plan = {{.kind = MountKind::RoBind, .source = "/", .dest = "/", .checkSource = true},
            {.kind = MountKind::Tmpfs, .dest = "/tmp", .mode = 01777, .sizeBytes = 1 << 20},
            {.kind = MountKind::Bind,
             .source = "/srv",
             .dest = "/srv",
             .ifSourceExists = true,
             .sourceInode = InodeId{2049, 77}},
            {.kind = MountKind::Chmod, .dest = "/srv", .mode = 0},
            {.kind = MountKind::Mqueue, .dest = "/dev/mqueue"},
            {.kind = MountKind::Symlink, .source = "usr/bin", .dest = "/bin"},
            {.kind = MountKind::File, .source = std::string("a\0b", 3), .dest = "/f", .mode = 0600},
            {.kind = MountKind::DevBind,
             .source = "/dev/nvidia0",
             .dest = "/dev/nvidia0",
             .optional = true,
             .skipIfVisible = true,
             .hardened = true},
            // The GPU layout of a root that is not the host's (helper-only kinds).
            {.kind = MountKind::DriverDir,
             .source = "/usr/lib/libcuda.so.550.1\tlibcuda.so.1\n/usr/bin/nvidia-smi\t",
             .dest = "/run/gpubox-driver",
             .optional = true},
            {.kind = MountKind::LoaderCache,
             .source = "/run/gpubox-driver",
             .dest = "/etc/ld.so.cache",
             .optional = true}};
  c.masks = {{"/run/gpubox/gpubox.sock", 2049, 123456789012ull}};
  c.defaultCwd = "/work";
  c.rlimits = {{"NOFILE", 1024, 4096}, {"CORE", 0, kRlimUnlimited}};
  c.awaitPlacement = true;
  c.seccomp = {{0x20, 0, 0, 4}, {0x15, 1, 0, 0xc000003e}, {0x06, 0, 0, 0x7fff0000}};
  c.callerSeccomp = {{{0x06, 0, 0, 0x7fff0000}}, {{0x20, 0, 0, 0}, {0x06, 0, 0, 0x50001}}};
  c.lockFiles = {"/run/lock/a", "/tmp/b"};
  c.hide = {"/root/.ssh", "/home/u/.aws"};
  c.bindSources = BindSourceRule{{"/usr", "/home/u"}, {"/home/u"}, "/etc/gpubox/helper.toml:3"};
  c.asPid1 = true;
  return c;
}

void expectSame(const InitConfig& a, const InitConfig& b) {
  EXPECT_EQ(a.uid, b.uid);
  EXPECT_EQ(a.gid, b.gid);
  EXPECT_EQ(a.groups, b.groups);
  EXPECT_EQ(a.sandboxUid, b.sandboxUid);
  EXPECT_EQ(a.sandboxGid, b.sandboxGid);
  EXPECT_EQ(a.hostname, b.hostname);
  EXPECT_EQ(a.newNetwork, b.newNetwork);
  EXPECT_EQ(a.newUserNamespace, b.newUserNamespace);
  EXPECT_EQ(a.plan, b.plan);
  ASSERT_EQ(a.masks.size(), b.masks.size());
  for (size_t i = 0; i < a.masks.size(); ++i) {
    EXPECT_EQ(a.masks[i].path, b.masks[i].path);
    EXPECT_EQ(a.masks[i].dev, b.masks[i].dev);
    EXPECT_EQ(a.masks[i].ino, b.masks[i].ino);
  }
  EXPECT_EQ(a.defaultCwd, b.defaultCwd);
  EXPECT_EQ(a.rlimits, b.rlimits);
  EXPECT_EQ(a.awaitPlacement, b.awaitPlacement);
  ASSERT_EQ(a.seccomp.size(), b.seccomp.size());
  for (size_t i = 0; i < a.seccomp.size(); ++i) {
    EXPECT_EQ(a.seccomp[i].code, b.seccomp[i].code);
    EXPECT_EQ(a.seccomp[i].jt, b.seccomp[i].jt);
    EXPECT_EQ(a.seccomp[i].jf, b.seccomp[i].jf);
    EXPECT_EQ(a.seccomp[i].k, b.seccomp[i].k);
  }
  ASSERT_EQ(a.callerSeccomp.size(), b.callerSeccomp.size());
  for (size_t p = 0; p < a.callerSeccomp.size(); ++p) {
    ASSERT_EQ(a.callerSeccomp[p].size(), b.callerSeccomp[p].size());
    for (size_t i = 0; i < a.callerSeccomp[p].size(); ++i) {
      EXPECT_EQ(a.callerSeccomp[p][i].code, b.callerSeccomp[p][i].code);
      EXPECT_EQ(a.callerSeccomp[p][i].k, b.callerSeccomp[p][i].k);
    }
  }
  EXPECT_EQ(a.lockFiles, b.lockFiles);
  EXPECT_EQ(a.hide, b.hide);
  ASSERT_EQ(a.bindSources.has_value(), b.bindSources.has_value());
  if (a.bindSources) {
    EXPECT_EQ(a.bindSources->readable, b.bindSources->readable);
    EXPECT_EQ(a.bindSources->writable, b.bindSources->writable);
    EXPECT_EQ(a.bindSources->where, b.bindSources->where);
  }
  EXPECT_EQ(a.asPid1, b.asPid1);
}

TEST(InitConfigCodec, EveryFieldSurvives) {
  const InitConfig c = everyFieldSet();
  expectSame(c, decodeInitConfig(encodeInitConfig(c)));
}

TEST(InitConfigCodec, DefaultsSurvive) {
  const InitConfig c;
  expectSame(c, decodeInitConfig(encodeInitConfig(c)));
}

TEST(InitConfigCodec, EveryTruncationIsRefused) {
  const std::string bytes = encodeInitConfig(everyFieldSet());
  for (size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_THROW(decodeInitConfig(std::string_view(bytes).substr(0, n)), Error) << "length " << n;
  }
}

TEST(InitConfigCodec, TrailingBytesAreRefused) {
  const std::string bytes = encodeInitConfig(everyFieldSet()) + '\0';
  EXPECT_THROW(decodeInitConfig(bytes), Error);
}

TEST(InitConfigCodec, AHugeCountIsRefusedBeforeAllocating) {
  std::string bytes = encodeInitConfig(InitConfig{});
  // The groups count follows uid and gid (8 bytes each).
  for (size_t i = 0; i < 8; ++i) bytes[16 + i] = '\xff';
  EXPECT_THROW(decodeInitConfig(bytes), Error);
}

TEST(InitConfigCodec, AFlagOtherThanZeroOrOneIsRefused) {
  InitConfig c;
  std::string bytes = encodeInitConfig(c);
  // uid, gid, groups count (0), sandboxUid, sandboxGid, hostname length
  // (0): then newNetwork.
  bytes[48] = 2;
  EXPECT_THROW(decodeInitConfig(bytes), Error);
}

}  // namespace
}  // namespace gpubox
