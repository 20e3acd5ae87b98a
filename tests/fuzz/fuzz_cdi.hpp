// The CDI spec fuzzers (JSON and YAML) share their checks: one spec's text
// through parseCdiSpec, the function discoverCdi calls for each file.
#pragma once

#include <cstddef>
#include <cstdint>

namespace gpubox::fuzz {

// Parses DATA as a CDI spec (`yaml`: YAML, else JSON) and checks what comes
// out; aborts on a broken invariant.
void checkCdiSpec(const uint8_t* data, size_t size, bool yaml);

}  // namespace gpubox::fuzz
