// An exception whose description is exactly `message`: what the client will
// print after "gpubox: ". (KJ_EXCEPTION would prepend the source expression.)
// And guarded(), which turns a gpubox::Error into one.
#pragma once

#include <kj/exception.h>
#include <kj/string.h>

#include <string>

#include "error.hpp"

namespace gpubox {

inline kj::Exception callerError(const std::string& message) {
  return kj::Exception(kj::Exception::Type::FAILED, "gpubox-helper", 0,
                       kj::heapString(message.c_str()));
}

// Runs F (which returns a kj::Promise) and turns a gpubox::Error it throws
// into a rejected promise whose text reaches the client as is.
template <typename F>
auto guarded(F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const Error& e) {
    return callerError(e.what());
  }
}

}  // namespace gpubox
