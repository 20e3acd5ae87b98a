// What the policy lets one caller have, in GPU terms. Shared by the policy
// module (which fills it) and the GPU module (which enforces it).
#pragma once

#include <string>
#include <vector>

namespace gpubox::gpu {

// maxGpus 0 means no per-sandbox limit beyond the granted set.
struct GpuGrant {
  bool allowed = false;                 // false: no GPU at all (the fail-closed default)
  bool all = false;                     // every GPU the helper discovers
  std::vector<unsigned> indices = {};   // else: these GPU indices ...
  std::vector<std::string> uuids = {};  // ... and these UUIDs ("GPU-..." / "MIG-...")
  unsigned maxGpus = 0;                 // at most this many GPUs per sandbox
  bool exclusive = false;               // a granted GPU is held by one sandbox at a time
};

}  // namespace gpubox::gpu
