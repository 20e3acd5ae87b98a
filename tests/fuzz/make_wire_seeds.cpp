// Writes seed messages for fuzz_spec_wire: real requests encoded by the
// client's own encoder (specToWire/commandToWire) and flattened the way the
// stream carries them, so the seeds follow the schema as it grows.
//   make_wire_seeds DIR
#include <capnp/message.h>
#include <capnp/serialize.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "limits.hpp"
#include "spec.hpp"
#include "spec_wire.hpp"

namespace {

using namespace gpubox;

template <typename Wire, typename T, typename Encode>
void write(const std::string& path, const T& value, Encode encode) {
  capnp::MallocMessageBuilder builder;
  encode(value, builder.initRoot<Wire>());
  kj::Array<capnp::word> flat = capnp::messageToFlatArray(builder);
  auto bytes = flat.asBytes();
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.begin()),
            static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_wire_seeds DIR\n");
    return 2;
  }
  std::string dir = argv[1];

  // `gpubox run --gpu all --memory 512M --cpus 1.5 --pids 64 --rlimit NOFILE=1024:4096`
  SandboxSpec typical;
  typical.cwd = "/home/alice/project";
  typical.home = "/home/alice";
  typical.gpus = {"all"};
  typical.limits.memoryBytes = parseSize("--memory", "512M");
  typical.limits.cpuMillis = parseCpus("--cpus", "1.5");
  typical.limits.pids = 64;
  typical.limits.rlimits = {parseRlimit("NOFILE=1024:4096"), parseRlimit("CORE=unlimited")};
  typical.seccomp = "default";
  typical.hide = {"/home/alice/.config/secret-tool", "/run/user/1000/ssh-agent.sock"};
  write<wire::SandboxSpec>(dir + "/spec-typical", typical, specToWire);

  // Every client mount kind, no default plan, host network, a hostname.
  SandboxSpec explicitPlan;
  explicitPlan.useDefaultPlan = false;
  explicitPlan.mounts = {
      {.kind = MountKind::RoBind, .source = "/usr", .dest = "/usr"},
      {.kind = MountKind::Bind, .source = "/srv/data", .dest = "/data"},
      {.kind = MountKind::DevBind, .source = "/dev/null", .dest = "/dev/null"},
      {.kind = MountKind::Tmpfs, .dest = "/tmp"},
      {.kind = MountKind::Proc, .dest = "/proc"},
      {.kind = MountKind::Dev, .dest = "/dev"},
      {.kind = MountKind::Dir, .dest = "/work"},
      {.kind = MountKind::Symlink, .source = "usr/bin", .dest = "/bin"},
      {.kind = MountKind::RemountRo, .dest = "/usr"},
  };
  explicitPlan.hostname = "sandbox";
  explicitPlan.network = Network::Host;
  explicitPlan.gpus = {"0,2", "GPU-5f2e3c1a-0000-1111-2222-333344445555", "count:1",
                       "nvidia.com/gpu=0"};
  explicitPlan.seccomp = "none";
  write<wire::SandboxSpec>(dir + "/spec-explicit", explicitPlan, specToWire);

  // What gpubox-bwrap sends (protocol 1.3): -try binds, --bind-fd's pinned
  // inode, --perms/--size, file contents, --chmod, --mqueue, a caller
  // seccomp program (one ALLOW) and a lock file.
  SandboxSpec bwrapFront;
  bwrapFront.useDefaultPlan = false;
  bwrapFront.mounts = {
      {.kind = MountKind::RoBind, .source = "/", .dest = "/", .ifSourceExists = true},
      {.kind = MountKind::Bind,
       .source = "/home/alice/project",
       .dest = "/work",
       .sourceInode = InodeId{64769, 4211}},
      {.kind = MountKind::Tmpfs, .dest = "/tmp", .mode = 01777, .sizeBytes = 1 << 20},
      {.kind = MountKind::Dir, .dest = "/tmp/a/b", .mode = 0700},
      {.kind = MountKind::File, .source = std::string("root:x:0:0\n\0", 12), .dest = "/etc/x"},
      {.kind = MountKind::BindData, .source = "data", .dest = "/etc/y", .mode = 0640},
      {.kind = MountKind::RoBindData, .source = "ro", .dest = "/etc/z"},
      {.kind = MountKind::Chmod, .dest = "/tmp/a", .mode = 0755},
      {.kind = MountKind::Mqueue, .dest = "/dev/mqueue"},
  };
  bwrapFront.seccompPrograms = {std::string("\x06\0\0\0\0\0\xff\x7f", 8)};
  bwrapFront.lockFiles = {"/tmp/lock"};
  write<wire::SandboxSpec>(dir + "/spec-bwrap-front", bwrapFront, specToWire);

  // `gpubox exec --timeout 30s --kill-after 2s -C /work -- sh -c 'echo hi'`
  Command command;
  command.argv = {"sh", "-c", "echo hi"};
  command.env = {"PATH=/usr/bin:/bin", "HOME=/home/alice", "LANG=C.UTF-8"};
  command.cwd = "/work";
  command.timeoutMs = parseDurationMs("--timeout", "30s");
  command.killAfterMs = parseDurationMs("--kill-after", "2s");
  write<wire::Command>(dir + "/command-typical", command, commandToWire);

  // gpubox-bwrap's command: --argv0 and bwrap's working-directory rule.
  Command bwrapCommand;
  bwrapCommand.argv = {"bash", "-c", "pwd"};
  bwrapCommand.argv0 = "shown-name";
  bwrapCommand.cwdFallbacks = {"/home/alice/project", "/home/alice"};
  bwrapCommand.setPwd = true;
  write<wire::Command>(dir + "/command-bwrap-front", bwrapCommand, commandToWire);
  return 0;
}
