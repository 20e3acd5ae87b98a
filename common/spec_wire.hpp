// Conversion between the plain C++ request types (spec.hpp) and the Cap'n
// Proto wire form. Reading never trusts the wire: the result still has to
// pass validateSpec()/validateCommand().
#pragma once

#include "gpubox.capnp.h"
#include "spec.hpp"

namespace gpubox {

SandboxSpec specFromWire(wire::SandboxSpec::Reader reader);
void specToWire(const SandboxSpec& spec, wire::SandboxSpec::Builder builder);

Command commandFromWire(wire::Command::Reader reader);
void commandToWire(const Command& cmd, wire::Command::Builder builder);

}  // namespace gpubox
