#include "spec_wire.hpp"

#include "error.hpp"

namespace gpubox {

namespace {

// SandboxSpec.sandboxUid/sandboxGid's default on the wire: no id asked.
constexpr uint32_t kUnsetId = 0xffffffff;

MountKind kindFromWire(wire::MountOp::Kind kind) {
  using K = wire::MountOp::Kind;
  switch (kind) {
    case K::BIND:
      return MountKind::Bind;
    case K::RO_BIND:
      return MountKind::RoBind;
    case K::DEV_BIND:
      return MountKind::DevBind;
    case K::TMPFS:
      return MountKind::Tmpfs;
    case K::PROC:
      return MountKind::Proc;
    case K::DEV:
      return MountKind::Dev;
    case K::DIR:
      return MountKind::Dir;
    case K::SYMLINK:
      return MountKind::Symlink;
    case K::REMOUNT_RO:
      return MountKind::RemountRo;
    case K::FILE:
      return MountKind::File;
    case K::BIND_DATA:
      return MountKind::BindData;
    case K::RO_BIND_DATA:
      return MountKind::RoBindData;
    case K::CHMOD:
      return MountKind::Chmod;
    case K::MQUEUE:
      return MountKind::Mqueue;
  }
  // An enumerant from a newer client: refuse rather than guess.
  throw Error("unknown mount kind " + std::to_string(static_cast<unsigned>(kind)) +
              " (client is newer than this helper)");
}

wire::MountOp::Kind kindToWire(MountKind kind) {
  using K = wire::MountOp::Kind;
  switch (kind) {
    case MountKind::Bind:
      return K::BIND;
    case MountKind::RoBind:
      return K::RO_BIND;
    case MountKind::DevBind:
      return K::DEV_BIND;
    case MountKind::Tmpfs:
      return K::TMPFS;
    case MountKind::Proc:
      return K::PROC;
    case MountKind::Dev:
      return K::DEV;
    case MountKind::Dir:
      return K::DIR;
    case MountKind::Symlink:
      return K::SYMLINK;
    case MountKind::RemountRo:
      return K::REMOUNT_RO;
    case MountKind::File:
      return K::FILE;
    case MountKind::BindData:
      return K::BIND_DATA;
    case MountKind::RoBindData:
      return K::RO_BIND_DATA;
    case MountKind::Chmod:
      return K::CHMOD;
    case MountKind::Mqueue:
      return K::MQUEUE;
    case MountKind::DriverDir:
    case MountKind::LoaderCache:
      break;  // the helper's own steps, never sent
  }
  throw Error("mount kind cannot be sent over the wire");
}

std::string text(capnp::Text::Reader t) {
  return std::string(t.cStr(), t.size());
}

std::vector<std::string> textList(capnp::List<capnp::Text>::Reader list) {
  std::vector<std::string> out;
  out.reserve(list.size());
  for (auto t : list) out.push_back(text(t));
  return out;
}

void fillTextList(capnp::List<capnp::Text>::Builder builder, const std::vector<std::string>& v) {
  for (size_t i = 0; i < v.size(); ++i) builder.set(i, v[i]);
}

// The wire's "no mode": the kind's default.
constexpr uint32_t kNoMode = 0xffffffff;

MountOp mountFromWire(wire::MountOp::Reader m) {
  MountOp op{.kind = kindFromWire(m.getKind()), .dest = text(m.getDest())};
  if (carriesData(op.kind)) {
    // The contents travel as Data; the plain form keeps them in `source`.
    if (m.getSource().size() != 0) throw Error(describeMount(op) + " has a source");
    auto data = m.getData();
    op.source.assign(reinterpret_cast<const char*>(data.begin()), data.size());
  } else {
    if (m.getData().size() != 0) throw Error(describeMount(op) + " carries file contents");
    op.source = text(m.getSource());
  }
  if (m.getMode() != kNoMode) op.mode = m.getMode();
  op.sizeBytes = m.getSizeBytes();
  op.ifSourceExists = m.getIfSourceExists();
  if (m.hasSourceInode())
    op.sourceInode = InodeId{m.getSourceInode().getDev(), m.getSourceInode().getIno()};
  return op;
}

void mountToWire(const MountOp& op, wire::MountOp::Builder m) {
  m.setKind(kindToWire(op.kind));
  if (carriesData(op.kind)) {
    m.setData(kj::arrayPtr(reinterpret_cast<const kj::byte*>(op.source.data()), op.source.size()));
  } else {
    m.setSource(op.source);
  }
  m.setDest(op.dest);
  m.setMode(op.mode.value_or(kNoMode));
  m.setSizeBytes(op.sizeBytes);
  m.setIfSourceExists(op.ifSourceExists);
  if (op.sourceInode) {
    auto id = m.initSourceInode();
    id.setDev(op.sourceInode->dev);
    id.setIno(op.sourceInode->ino);
  }
}

}  // namespace

SandboxSpec specFromWire(wire::SandboxSpec::Reader reader) {
  SandboxSpec spec;
  spec.useDefaultPlan = reader.getUseDefaultPlan();
  if (reader.getMounts().size() > SpecLimits::kMaxMounts) throw Error("too many mount steps");
  for (auto m : reader.getMounts()) spec.mounts.push_back(mountFromWire(m));
  spec.cwd = text(reader.getCwd());
  spec.hostname = text(reader.getHostname());
  spec.network = reader.getNetwork() == wire::Network::HOST ? Network::Host : Network::None;
  if (reader.getGpus().size() > SpecLimits::kMaxGpuSelectors)
    throw Error("too many --gpu selectors");
  spec.gpus = textList(reader.getGpus());
  auto limits = reader.getLimits();
  if (limits.getMemoryBytes()) spec.limits.memoryBytes = limits.getMemoryBytes();
  if (limits.getCpuMillis()) spec.limits.cpuMillis = limits.getCpuMillis();
  if (limits.getPids()) spec.limits.pids = limits.getPids();
  if (limits.getRlimits().size() > 64) throw Error("too many --rlimit settings");
  for (auto r : limits.getRlimits())
    spec.limits.rlimits.push_back({text(r.getName()), r.getSoft(), r.getHard()});
  spec.seccomp = text(reader.getSeccomp());
  spec.home = text(reader.getHome());
  if (reader.getHide().size() > SpecLimits::kMaxHide) throw Error("too many --hide paths");
  for (auto h : reader.getHide()) spec.hide.push_back(text(h));
  if (reader.getSeccompPrograms().size() > SpecLimits::kMaxSeccompPrograms)
    throw Error("too many seccomp programs");
  for (auto p : reader.getSeccompPrograms())
    spec.seccompPrograms.emplace_back(reinterpret_cast<const char*>(p.begin()), p.size());
  if (reader.getLockFiles().size() > SpecLimits::kMaxLockFiles)
    throw Error("too many --lock-file paths");
  spec.lockFiles = textList(reader.getLockFiles());
  // 0xffffffff, the schema's default, is "unset": the caller's own id.
  if (reader.getSandboxUid() != kUnsetId) spec.sandboxUid = reader.getSandboxUid();
  if (reader.getSandboxGid() != kUnsetId) spec.sandboxGid = reader.getSandboxGid();
  spec.asPid1 = reader.getAsPid1();
  return spec;
}

void specToWire(const SandboxSpec& spec, wire::SandboxSpec::Builder builder) {
  builder.setUseDefaultPlan(spec.useDefaultPlan);
  auto mounts = builder.initMounts(spec.mounts.size());
  for (size_t i = 0; i < spec.mounts.size(); ++i) mountToWire(spec.mounts[i], mounts[i]);
  builder.setCwd(spec.cwd);
  builder.setHostname(spec.hostname);
  builder.setNetwork(spec.network == Network::Host ? wire::Network::HOST : wire::Network::NONE);
  fillTextList(builder.initGpus(spec.gpus.size()), spec.gpus);
  auto limits = builder.initLimits();
  limits.setMemoryBytes(spec.limits.memoryBytes.value_or(0));
  limits.setCpuMillis(spec.limits.cpuMillis.value_or(0));
  limits.setPids(spec.limits.pids.value_or(0));
  auto rl = limits.initRlimits(spec.limits.rlimits.size());
  for (size_t i = 0; i < spec.limits.rlimits.size(); ++i) {
    rl[i].setName(spec.limits.rlimits[i].name);
    rl[i].setSoft(spec.limits.rlimits[i].soft);
    rl[i].setHard(spec.limits.rlimits[i].hard);
  }
  builder.setSeccomp(spec.seccomp);
  builder.setHome(spec.home);
  fillTextList(builder.initHide(spec.hide.size()), spec.hide);
  auto programs = builder.initSeccompPrograms(spec.seccompPrograms.size());
  for (size_t i = 0; i < spec.seccompPrograms.size(); ++i) {
    const std::string& p = spec.seccompPrograms[i];
    programs.set(i, kj::arrayPtr(reinterpret_cast<const kj::byte*>(p.data()), p.size()));
  }
  fillTextList(builder.initLockFiles(spec.lockFiles.size()), spec.lockFiles);
  builder.setSandboxUid(spec.sandboxUid.value_or(kUnsetId));
  builder.setSandboxGid(spec.sandboxGid.value_or(kUnsetId));
  builder.setAsPid1(spec.asPid1);
}

Command commandFromWire(wire::Command::Reader reader) {
  if (reader.getArgv().size() > SpecLimits::kMaxArgs) throw Error("too many arguments");
  if (reader.getEnv().size() > SpecLimits::kMaxEnv) throw Error("too many environment variables");
  Command cmd;
  cmd.argv = textList(reader.getArgv());
  cmd.env = textList(reader.getEnv());
  cmd.cwd = text(reader.getCwd());
  cmd.timeoutMs = reader.getTimeoutMs();
  cmd.killAfterMs = reader.getKillAfterMs();
  cmd.argv0 = text(reader.getArgv0());
  if (reader.getCwdFallbacks().size() > SpecLimits::kMaxCwdFallbacks)
    throw Error("too many fallback working directories");
  cmd.cwdFallbacks = textList(reader.getCwdFallbacks());
  cmd.setPwd = reader.getSetPwd();
  return cmd;
}

void commandToWire(const Command& cmd, wire::Command::Builder builder) {
  fillTextList(builder.initArgv(cmd.argv.size()), cmd.argv);
  fillTextList(builder.initEnv(cmd.env.size()), cmd.env);
  builder.setCwd(cmd.cwd);
  builder.setTimeoutMs(cmd.timeoutMs);
  builder.setKillAfterMs(cmd.killAfterMs);
  builder.setArgv0(cmd.argv0);
  fillTextList(builder.initCwdFallbacks(cmd.cwdFallbacks.size()), cmd.cwdFallbacks);
  builder.setSetPwd(cmd.setPwd);
}

}  // namespace gpubox
