// A kj::TaskSet error handler that logs each failed task under a heading
// ("connection error: ..."), for task sets whose failures end only that task.
#pragma once

#include <kj/async.h>

#include <string>

#include "log.hpp"

namespace gpubox {

class LogTaskErrors final : public kj::TaskSet::ErrorHandler {
 public:
  explicit LogTaskErrors(const char* heading) : heading_(heading) {}
  void taskFailed(kj::Exception&& e) override {
    logError(std::string(heading_) + ": " + e.getDescription().cStr());
  }

 private:
  const char* heading_;
};

}  // namespace gpubox
