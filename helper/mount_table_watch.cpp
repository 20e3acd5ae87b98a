#include "mount_table_watch.hpp"

#include <fcntl.h>
#include <poll.h>

#include "error.hpp"
#include "log.hpp"

namespace gpubox {

namespace {

UniqueFd openMountInfo() {
  UniqueFd fd(::open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (!fd) throwErrno("open /proc/self/mountinfo to watch the mount table");
  return fd;
}

}  // namespace

MountTableWatch::MountTableWatch(kj::UnixEventPort& port, std::function<void()> onChange)
    : fd_(openMountInfo()),
      onChange_(std::move(onChange)),
      observer_(port, fd_.get(), kj::UnixEventPort::FdObserver::OBSERVE_URGENT) {
  watching_ = watch().eagerlyEvaluate([](kj::Exception&& e) {
    logError(std::string("mount table watch stopped: ") + e.getDescription().cStr());
  });
}

bool MountTableWatch::checkNow() {
  struct pollfd p = {fd_.get(), POLLPRI, 0};
  if (::poll(&p, 1, 0) <= 0 || (p.revents & (POLLPRI | POLLERR)) == 0) return false;
  onChange_();
  return true;
}

kj::Promise<void> MountTableWatch::watch() {
  return observer_.whenUrgentDataAvailable().then([this]() {
    onChange_();
    return watch();
  });
}

}  // namespace gpubox
