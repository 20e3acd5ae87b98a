#include "spec_wire.hpp"

#include "error.hpp"

namespace gpubox {

namespace {

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
      break;
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

}  // namespace

SandboxSpec specFromWire(wire::SandboxSpec::Reader reader) {
  SandboxSpec spec;
  spec.useDefaultPlan = reader.getUseDefaultPlan();
  if (reader.getMounts().size() > SpecLimits::kMaxMounts) throw Error("too many mount steps");
  for (auto m : reader.getMounts()) {
    spec.mounts.push_back({.kind = kindFromWire(m.getKind()),
                           .source = text(m.getSource()),
                           .dest = text(m.getDest())});
  }
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
  return spec;
}

void specToWire(const SandboxSpec& spec, wire::SandboxSpec::Builder builder) {
  builder.setUseDefaultPlan(spec.useDefaultPlan);
  auto mounts = builder.initMounts(spec.mounts.size());
  for (size_t i = 0; i < spec.mounts.size(); ++i) {
    mounts[i].setKind(kindToWire(spec.mounts[i].kind));
    mounts[i].setSource(spec.mounts[i].source);
    mounts[i].setDest(spec.mounts[i].dest);
  }
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
  return cmd;
}

void commandToWire(const Command& cmd, wire::Command::Builder builder) {
  fillTextList(builder.initArgv(cmd.argv.size()), cmd.argv);
  fillTextList(builder.initEnv(cmd.env.size()), cmd.env);
  builder.setCwd(cmd.cwd);
  builder.setTimeoutMs(cmd.timeoutMs);
  builder.setKillAfterMs(cmd.killAfterMs);
}

}  // namespace gpubox
