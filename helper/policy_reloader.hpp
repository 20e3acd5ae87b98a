// SIGHUP: read the policy file again, off the event loop (a file read, and
// user and group names that may be looked up over LDAP or sssd), then put it
// in place on the loop in one step. A file that does not load leaves the old
// policy in force and logs why; requests never see half a policy. Running
// sandboxes keep what they were given; the new policy applies to new
// requests.
#pragma once

#include <kj/async.h>

#include <string>
#include <thread>

#include "daemon_context.hpp"

namespace gpubox {

class PolicyReloader {
 public:
  PolicyReloader(DaemonContext& ctx, std::string path, bool mustExist)
      : ctx_(ctx), path_(std::move(path)), mustExist_(mustExist) {}
  ~PolicyReloader();
  PolicyReloader(const PolicyReloader&) = delete;
  PolicyReloader& operator=(const PolicyReloader&) = delete;

  // Resolves once the new policy is in place or refused (and logged).
  kj::Promise<void> reload();

 private:
  void apply(policy::Policy next);

  DaemonContext& ctx_;
  std::string path_;
  bool mustExist_;
  bool loading_ = false;
  std::thread loader_;
};

}  // namespace gpubox
