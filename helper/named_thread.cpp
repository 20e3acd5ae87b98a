#include "named_thread.hpp"

#include <sys/prctl.h>

#include <future>
#include <string>

#include "error.hpp"
#include "privileges.hpp"
#include "signal_free_thread.hpp"

namespace gpubox {

std::thread startNamedThread(const char* name, std::vector<cap_value_t> keep,
                             std::function<void()> body) {
  std::promise<std::string> started;
  std::future<std::string> startError = started.get_future();
  std::thread thread = startSignalFreeThread([name, keep = std::move(keep), body = std::move(body),
                                              started = std::move(started)]() mutable {
    ::prctl(PR_SET_NAME, name, 0, 0, 0);
    try {
      keepThreadCapabilities(keep);
    } catch (const Error& e) {
      started.set_value(e.what());
      return;
    }
    started.set_value("");
    body();
  });
  if (std::string why = startError.get(); !why.empty()) {
    thread.join();
    throw Error(std::string("the ") + name + " thread did not start: " + why);
  }
  return thread;
}

}  // namespace gpubox
