#include "process_title.hpp"

#include <cstring>

extern char** environ;

namespace gpubox {

namespace {

// The kernel's arg area is argv[0] .. the end of the last argument; the
// environment strings follow it. Both are recorded as they were at start.
char* areaStart = nullptr;
char* areaEnd = nullptr;

}  // namespace

void rememberProcessArgs(int argc, char** argv) {
  if (argc <= 0 || !argv[0]) return;
  areaStart = argv[0];
  char* end = argv[argc - 1] + std::strlen(argv[argc - 1]) + 1;
  // Environment strings normally follow the arguments contiguously.
  for (char** e = environ; e && *e; ++e)
    if (*e == end) end = *e + std::strlen(*e) + 1;
  areaEnd = end;
}

void setInitProcessTitle(const char* title) {
  if (!areaStart || areaEnd <= areaStart) return;
  const size_t size = static_cast<size_t>(areaEnd - areaStart);
  std::memset(areaStart, 0, size);
  const size_t len = std::strlen(title);
  std::memcpy(areaStart, title, len < size - 1 ? len : size - 1);
}

}  // namespace gpubox
