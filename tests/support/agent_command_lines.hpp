// The bwrap command lines agents run (docs/agents.md), in one place for the
// integration tests that check what such a sandbox sees and the benchmark
// that times them against bwrap.
#pragma once

#include <string>
#include <vector>

namespace gpubox::testing {

// Codex's workspace-write sandbox (codex-rs/linux-sandbox, bubblewrap
// pipeline) for the workspace WS: the host read-only, a fresh /dev, the
// workspace writable with .git re-bound read-only and a missing .codex
// blocked by /dev/null, then its own namespaces and /proc, and COMMAND.
// UNSHARENET false: Codex with network access on, which leaves out
// --unshare-net.
inline std::vector<std::string> codexWorkspaceWrite(const std::string& ws,
                                                    const std::vector<std::string>& command,
                                                    bool unshareNet = true) {
  std::vector<std::string> line = {"--new-session",
                                   "--die-with-parent",
                                   "--ro-bind",
                                   "/",
                                   "/",
                                   "--dev",
                                   "/dev",
                                   "--bind",
                                   ws,
                                   ws,
                                   "--ro-bind",
                                   ws + "/.git",
                                   ws + "/.git",
                                   "--ro-bind",
                                   "/dev/null",
                                   ws + "/.codex",
                                   "--unshare-user",
                                   "--unshare-pid"};
  if (unshareNet) line.push_back("--unshare-net");
  line.insert(line.end(), {"--proc", "/proc", "--"});
  line.insert(line.end(), command.begin(), command.end());
  return line;
}

}  // namespace gpubox::testing
