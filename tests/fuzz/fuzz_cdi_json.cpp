// CDI specs in JSON (discoverCdi reads *.json files this way); the checks are
// in fuzz_cdi.cpp.
#include <cstddef>
#include <cstdint>

#include "fuzz_cdi.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  gpubox::fuzz::checkCdiSpec(data, size, /*yaml=*/false);
  return 0;
}
