#include "error.hpp"

#include <cerrno>
#include <cstring>

namespace gpubox {

std::string errnoMessage(const std::string& what, int err) {
  return what + ": " + std::strerror(err);
}

void throwErrno(const std::string& what, int err) {
  throw Error(errnoMessage(what, err));
}

void throwErrno(const std::string& what) {
  throwErrno(what, errno);
}

}  // namespace gpubox
