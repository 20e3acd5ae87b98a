// Request decoding: the bytes of a Cap'n Proto message, read with the
// helper's own ReaderOptions (clientReaderOptions) and converted the way the
// helper converts Helper.create/createSession's spec and Sandbox.exec's
// command, then validated like the helper validates them.
//
// Invariants beyond "no crash":
//  - decoding and validation throw nothing but gpubox::Error (the helper
//    answers those as caller errors) or kj::Exception (capnp's malformed-
//    message errors, which the RPC layer answers);
//  - a request that validates survives encode -> decode unchanged, and
//    still validates (the client and the helper agree on every field).
#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/exception.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "error.hpp"
#include "fuzz_check.hpp"
#include "spec.hpp"
#include "spec_wire.hpp"
#include "wire_limits.hpp"

namespace {

using gpubox::Command;
using gpubox::SandboxSpec;

// Encodes with the client's encoder into a flat message and decodes it
// again through the same reader the helper uses.
template <typename Wire, typename T, typename Encode, typename Decode>
T roundTrip(const T& value, Encode encode, Decode decode) {
  capnp::MallocMessageBuilder builder;
  encode(value, builder.initRoot<Wire>());
  kj::Array<capnp::word> flat = capnp::messageToFlatArray(builder);
  capnp::FlatArrayMessageReader reader(flat.asPtr(), gpubox::clientReaderOptions());
  return decode(reader.getRoot<Wire>());
}

void checkSpec(capnp::MessageReader& reader) {
  SandboxSpec spec;
  try {
    spec = gpubox::specFromWire(reader.getRoot<gpubox::wire::SandboxSpec>());
    gpubox::validateSpec(spec);
  } catch (const gpubox::Error&) {
    return;
  } catch (const kj::Exception&) {
    return;
  }
  SandboxSpec again =
      roundTrip<gpubox::wire::SandboxSpec>(spec, gpubox::specToWire, gpubox::specFromWire);
  FUZZ_CHECK(spec == again);
  gpubox::validateSpec(again);  // throws (uncaught: a finding) if the copy differs in kind
}

void checkCommand(capnp::MessageReader& reader) {
  Command cmd;
  try {
    cmd = gpubox::commandFromWire(reader.getRoot<gpubox::wire::Command>());
    gpubox::validateCommand(cmd);
  } catch (const gpubox::Error&) {
    return;
  } catch (const kj::Exception&) {
    return;
  }
  Command again =
      roundTrip<gpubox::wire::Command>(cmd, gpubox::commandToWire, gpubox::commandFromWire);
  FUZZ_CHECK(cmd == again);
  gpubox::validateCommand(again);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // A flat message is whole words; copy into aligned storage as the
  // helper's stream reader does (any tail shorter than a word is dropped).
  std::vector<capnp::word> words(size / sizeof(capnp::word));
  if (!words.empty()) std::memcpy(words.data(), data, words.size() * sizeof(capnp::word));
  try {
    // Each reader gets its own traversal budget, like each RPC message does.
    capnp::FlatArrayMessageReader specReader(kj::arrayPtr(words.data(), words.size()),
                                             gpubox::clientReaderOptions());
    checkSpec(specReader);
    capnp::FlatArrayMessageReader commandReader(kj::arrayPtr(words.data(), words.size()),
                                                gpubox::clientReaderOptions());
    checkCommand(commandReader);
  } catch (const kj::Exception&) {
    // A malformed segment table: the reader's constructor refuses it.
  }
  return 0;
}
