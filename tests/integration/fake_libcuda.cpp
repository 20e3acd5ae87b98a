// A stand-in for the driver's libcuda.so.<version> in tests without a GPU:
// built with SONAME libcuda.so.1 and no libraries at all (not even libc), so
// it loads in any root, and its cuInit succeeds. The fake driver tree
// (tests/support/fake_driver.hpp, libcudaFile) carries a copy of it.
extern "C" __attribute__((visibility("default"))) int cuInit(unsigned int flags) {
  (void)flags;
  return 0;  // CUDA_SUCCESS
}
