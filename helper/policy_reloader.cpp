#include "policy_reloader.hpp"

#include <memory>
#include <optional>

#include "caller_policy.hpp"
#include "error.hpp"
#include "log.hpp"

namespace gpubox {

namespace {

struct Loaded {
  std::optional<policy::Policy> policy;
  std::string error;
};

}  // namespace

PolicyReloader::~PolicyReloader() {
  if (loader_.joinable()) loader_.join();
}

kj::Promise<void> PolicyReloader::reload() {
  if (loading_) {
    logInfo("SIGHUP: the policy is still being reloaded; this signal adds nothing");
    return kj::READY_NOW;
  }
  if (loader_.joinable()) loader_.join();  // the previous one has finished: it fulfilled
  loading_ = true;
  // The loader writes its result here before it fulfills; the loop reads it
  // after (the fulfiller's handoff orders the two). A void promise: GCC 12
  // warns falsely about kj's cross-thread value slot.
  auto loaded = std::make_shared<Loaded>();
  auto paf = kj::newPromiseAndCrossThreadFulfiller<void>();
  // kj::Own's destructor may throw, which std::thread's state may not.
  auto fulfiller =
      std::make_unique<kj::Own<kj::CrossThreadPromiseFulfiller<void>>>(kj::mv(paf.fulfiller));
  loader_ = std::thread(
      [path = path_, mustExist = mustExist_, loaded, fulfiller = std::move(fulfiller)]() mutable {
        try {
          loaded->policy = policy::Policy::load(path, mustExist);
        } catch (const std::exception& e) {
          loaded->error = e.what();
        }
        (*fulfiller)->fulfill();
      });
  return paf.promise.then([this, loaded]() {
    loading_ = false;
    if (!loaded->policy) {
      logError("SIGHUP: policy not reloaded, the previous one stays in force: " + loaded->error);
      return;
    }
    apply(std::move(*loaded->policy));
  });
}

void PolicyReloader::apply(policy::Policy next) {
  if (next.userNamespace() != ctx_.policy.userNamespace())
    logError("SIGHUP: user_namespace changed in " + path_ +
             "; it takes effect when the helper restarts (the rest of the policy is reloaded)");
  SandboxDefaults defaults = helperWideDefaults(next, ctx_.flagLimits);
  ctx_.policy = std::move(next);
  ctx_.defaults = defaults;
  logInfo("SIGHUP: policy reloaded from " + path_ + " (" +
          std::to_string(ctx_.policy.rules().size()) + " rules)");
}

}  // namespace gpubox
