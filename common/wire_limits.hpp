// What reading one client message may cost the helper. The RPC listener
// reads every connection with these options, and the request-decoding
// fuzzer (tests/fuzz/fuzz_spec_wire.cpp) decodes with the same ones.
#pragma once

#include <capnp/message.h>

namespace gpubox {

// What one message from a client may be (docs/protocol.md, "Limits"). The
// largest legitimate one is a create with 512 mount steps whose paths are
// 4096 bytes each, 8 MiB of --file/--bind-data contents and 16 seccomp
// programs of 32 KiB: about 12.7 MiB (an exec's argv+env are at most 2 MiB
// by validation, 2.3 MiB on the wire). The traversal limit is four times that,
// and it also caps what the helper reads: a segment table announcing more is
// refused before anything is allocated for it. The deepest legitimate
// message nests 9 levels (Message > Call > Payload > params > spec > limits >
// rlimits > Rlimit > name).
inline capnp::ReaderOptions clientReaderOptions() {
  capnp::ReaderOptions o;
  o.traversalLimitInWords = 2 * 1024 * 1024;  // 16 MiB
  o.nestingLimit = 16;
  return o;
}

}  // namespace gpubox
