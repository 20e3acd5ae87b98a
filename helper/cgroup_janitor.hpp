// Removing a sandbox's cgroup after its last process is gone. The kernel
// keeps a cgroup busy for a moment after its last task exited, so removal
// is retried from the event loop's timer instead of sleeping on it.
#pragma once

#include <memory>

#include "cgroup/sandbox_cgroup.hpp"
#include "daemon_context.hpp"

namespace gpubox {

// Tries now; if the cgroup is still busy, retries every 20 ms for up to 5 s,
// then gives up with one log line (a helper's next start removes it).
void removeCgroupLater(DaemonContext& ctx, std::shared_ptr<cgroup::SandboxCgroup> cgroup);

}  // namespace gpubox
