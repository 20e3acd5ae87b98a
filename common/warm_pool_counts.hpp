// What the helper's warm-init pool holds and what came of the requests for
// it (helper/init_pool.hpp): one shape for the helper's answer to Helper.info,
// libgpubox-client's HelperInfo and `gpubox info --json`.
#pragma once

#include <cstdint>

namespace gpubox {

struct WarmPoolCounts {
  unsigned size = 0;     // inits kept now (grows on misses, shrinks back)
  unsigned floor = 0;    // --warm-inits
  unsigned ceiling = 0;  // --warm-inits-max
  unsigned ready = 0;    // waiting now
  uint64_t taken = 0;    // requests served from it since start
  uint64_t missed = 0;   // requests that found it empty
};

}  // namespace gpubox
