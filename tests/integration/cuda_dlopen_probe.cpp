// Runs inside a sandbox whose root is another tree: finds libcuda.so.1 the
// way CUDA programs do (dlopen by soname, so through the root's loader and
// its cache), calls cuInit(0) and prints "cuInit <result>". Linked against
// libc only, so the foreign root's own libc and loader run it.
#include <dlfcn.h>

#include <cstdio>

int main() {
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
