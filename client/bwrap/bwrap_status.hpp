// The JSON bwrap writes to --info-fd and --json-status-fd, from what the
// helper reports: the sandbox's pid 1 as the host sees it ("child-pid", as
// bwrap's own pid 1 with --unshare-pid) and the inodes of the namespaces
// made for it ("ipc-namespace", ...). Field names and layout are bwrap's.
#pragma once

#include <string>

#include "gpubox/client.hpp"

namespace gpubox::bwrap {

// --info-fd's one document (written, then the fd is closed).
std::string infoJson(const client::SandboxStarted& started);
// --json-status-fd's first document, when the sandbox exists.
std::string statusStartJson(const client::SandboxStarted& started);
// --json-status-fd's last document, only when the command ran.
std::string statusExitJson(int exitCode);

// Writes all of TEXT to FD; false when it could not.
bool writeText(int fd, const std::string& text);

}  // namespace gpubox::bwrap
