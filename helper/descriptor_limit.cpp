#include "descriptor_limit.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>

#include "error.hpp"

namespace gpubox {

DescriptorLimit raiseDescriptorLimit() {
  struct rlimit limit = {};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) throwErrno("getrlimit(RLIMIT_NOFILE)");
  DescriptorLimit out{limit.rlim_cur, limit.rlim_max};
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) throwErrno("setrlimit(RLIMIT_NOFILE)");
  }
  // The table grows to hold the highest descriptor number asked for; one
  // dup2 to the top of the range and its close leave it that size.
  const rlim_t entries = std::min(out.soft, kDescriptorTableAtStart);
  const int top = static_cast<int>(entries) - 1;
  // Only onto a number nothing holds (dup2 would close what is there). A
  // table left small only costs that wait later, so a failure is let pass.
  if (top > STDERR_FILENO && ::fcntl(top, F_GETFD) < 0 && errno == EBADF &&
      ::dup2(STDERR_FILENO, top) == top)
    ::close(top);
  return out;
}

}  // namespace gpubox
