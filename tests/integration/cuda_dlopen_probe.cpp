// Runs inside a sandbox whose root is another tree: finds libcuda.so.1 the
// way CUDA programs do (dlopen by soname, so through the root's loader and
// its cache), calls cuInit(0) and prints "cuInit <result>". Linked against
// libc only, so the foreign root's own libc and loader run it.
//
// `cuda-probe --which NAME` prints where a shell would find the program
// NAME through $PATH ("which NAME: /dir/NAME", or "which NAME: not found"):
// the foreign tree has no shell of its own to ask.
#include <dlfcn.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

int which(const char* name) {
  const char* path = std::getenv("PATH");
  std::string rest = path ? path : "";
  while (!rest.empty() || path) {
    const size_t colon = rest.find(':');
    const std::string dir = rest.substr(0, colon);
    const std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) {
      std::printf("which %s: %s\n", name, candidate.c_str());
      return 0;
    }
    if (colon == std::string::npos) break;
    rest = rest.substr(colon + 1);
  }
  std::printf("which %s: not found\n", name);
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::strcmp(argv[1], "--which") == 0) return which(argv[2]);
  void* lib = dlopen("libcuda.so.1", RTLD_NOW);
  if (!lib) {
    std::printf("dlopen failed: %s\n", dlerror());
    return 1;
  }
  using CuInit = int (*)(unsigned int);
  auto init = reinterpret_cast<CuInit>(dlsym(lib, "cuInit"));
  if (!init) {
    std::printf("no cuInit: %s\n", dlerror());
    return 1;
  }
  int rc = init(0);
  std::printf("cuInit %d\n", rc);
  return rc == 0 ? 0 : 1;
}
