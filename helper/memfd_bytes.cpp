#include "memfd_bytes.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "error.hpp"

namespace gpubox {

UniqueFd memfdHolding(const char* name, std::string_view bytes, const char* what) {
  UniqueFd memfd(::memfd_create(name, MFD_CLOEXEC));
  if (!memfd) throwErrno(std::string("memfd_create for ") + what);
  for (size_t done = 0; done < bytes.size();) {
    ssize_t n = ::write(memfd.get(), bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throwErrno(std::string("write ") + what);
    // A memfd never writes 0 bytes of a non-empty buffer; if it did, going
    // round again would spin.
    if (n == 0) throwErrno(std::string("write ") + what, EIO);
    done += static_cast<size_t>(n);
  }
  return memfd;
}

}  // namespace gpubox
