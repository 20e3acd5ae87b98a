// InitConfig as bytes, so the helper can hand a sandbox's whole setup to an
// init that already exists (a warm one from the pool, helper/init_pool.hpp)
// instead of relying on what the clone copied. The helper writes it into a
// memfd sent with ToInit::Go; the init decodes it before doing anything.
//
// The format is private to one helper binary and its own inits (both sides
// are the same executable image): little-endian fixed-width integers and
// length-prefixed strings, no versioning. Decoding still checks every length
// against what is left, so a short or corrupt buffer is an error, never a
// read past the end.
#pragma once

#include <string>

#include "sandbox_init.hpp"

namespace gpubox {

std::string encodeInitConfig(const InitConfig& config);
// Throws gpubox::Error("malformed sandbox configuration: ...").
InitConfig decodeInitConfig(std::string_view bytes);

}  // namespace gpubox
