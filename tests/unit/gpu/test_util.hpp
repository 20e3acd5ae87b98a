// Shared bits of the GPU unit tests.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <vector>

#include "fake_driver.hpp"
#include "gpu.hpp"

// Device nodes in the fake tree are made with mknod, which needs root. CI
// runs as root; elsewhere say why the test did not run.
#define GPUBOX_REQUIRE_ROOT()                                                                     \
  do {                                                                                            \
    if (!gpubox::testing::FakeDriverRoot::canMknod())                                             \
      GTEST_SKIP() << "needs root to mknod fake /dev/nvidia* nodes (euid " << ::geteuid() << ")"; \
  } while (0)

namespace gpubox::gpu::test {

inline gpubox::gpu::Inventory discoverFake(const gpubox::testing::FakeDriverRoot& fake) {
  return gpubox::gpu::discover(fake.root(), gpubox::gpu::DiscoverOptions{.useNvml = false});
}

inline bool anyContains(const std::vector<std::string>& v, const std::string& needle) {
  return std::any_of(v.begin(), v.end(),
                     [&](const std::string& s) { return s.find(needle) != std::string::npos; });
}

inline std::string joined(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += s + "\n";
  return out;
}

}  // namespace gpubox::gpu::test
