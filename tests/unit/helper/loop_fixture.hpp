// A test fixture base with what the helper's loop-side pieces run on: kj's
// event loop and a DaemonContext on it, as gpubox-helper sets them up.
#pragma once

#include <gtest/gtest.h>

#include <kj/async-io.h>

#include <memory>

#include "daemon_context.hpp"

namespace gpubox {

class LoopFixture : public ::testing::Test {
 protected:
  // (Held by pointer: their destructors may throw, a fixture's may not.)
  std::unique_ptr<kj::AsyncIoContext> ioOwner =
      std::make_unique<kj::AsyncIoContext>(kj::setupAsyncIo());
  kj::AsyncIoContext& io = *ioOwner;
  std::unique_ptr<DaemonContext> ctxOwner =
      std::make_unique<DaemonContext>(io.unixEventPort, io.provider->getTimer());
  DaemonContext& ctx = *ctxOwner;
};

}  // namespace gpubox
