// An exception whose description is exactly `message`: what the client will
// print after "gpubox: ". (KJ_EXCEPTION would prepend the source expression.)
#pragma once

#include <kj/exception.h>
#include <kj/string.h>

#include <string>

namespace gpubox {

inline kj::Exception callerError(const std::string& message) {
  return kj::Exception(kj::Exception::Type::FAILED, "gpubox-helper", 0,
                       kj::heapString(message.c_str()));
}

}  // namespace gpubox
