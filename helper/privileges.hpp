// The helper's own capabilities: after start-up it keeps exactly the ones it
// needs (docs/security.md, "The helper's privileges", lists each and why).
#pragma once

#include <sys/capability.h>

#include <string>
#include <vector>

namespace gpubox {

// The capabilities the helper keeps, in the order docs/security.md lists them.
const std::vector<cap_value_t>& keptCapabilities();

// What dropToKeptCapabilities did, for the log.
struct CapabilityDrop {
  std::vector<std::string> kept;     // e.g. "cap_sys_admin"
  std::vector<std::string> missing;  // wanted but not held at start
};

// Reduces the calling thread's bounding, inheritable, ambient, permitted and
// effective sets to keptCapabilities() (those of them it holds). Capabilities
// are per thread and threads inherit them: call it before the helper starts
// any thread. Throws gpubox::Error when a set cannot be reduced.
CapabilityDrop dropToKeptCapabilities();

// Empties the calling thread's permitted and effective sets (the bounding
// set stays the helper's): for threads that read what clients send and need
// no privilege to do it. Other threads keep theirs. Throws gpubox::Error.
void dropThreadCapabilities();

// Reduces the calling thread's permitted and effective sets to KEEP, which it
// must hold (the acceptor thread keeps what identifying a client takes).
// Throws gpubox::Error.
void keepThreadCapabilities(const std::vector<cap_value_t>& keep);

}  // namespace gpubox
