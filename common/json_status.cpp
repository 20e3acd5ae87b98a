#include "json_status.hpp"

#include <nlohmann/json.hpp>

namespace gpubox {

std::string runReportJson(const RunReport& r) {
  nlohmann::json j;
  j["exit_code"] = r.exitCode ? nlohmann::json(*r.exitCode) : nlohmann::json(nullptr);
  j["signal"] = r.signal ? nlohmann::json(*r.signal) : nlohmann::json(nullptr);
  j["command_pid"] = r.commandPid;
  j["sandbox_pid"] = r.sandboxPid;
  j["wall_seconds"] = static_cast<double>(r.wallNanos) / 1e9;
  j["namespaces"] = r.namespaces;
  j["mounts"] = r.mounts;
  j["gpus"] = r.gpus;
  j["cgroup"] = r.cgroup;
  if (!r.error.empty()) j["error"] = r.error;
  j["reason"] = r.reason.empty() ? (r.error.empty() ? "exited" : "helper_error") : r.reason;
  j["message"] = r.message.empty() ? r.error : r.message;
  if (r.reason == "timed_out")
    j["timeout"] = {{"limit_seconds", static_cast<double>(r.timeoutMs) / 1000},
                    {"sigkill", r.sigkillNeeded}};
  else
    j["timeout"] = nullptr;
  j["limits"] = r.limits;
  j["seccomp"] = r.seccomp.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.seccomp);
  j["user_namespace"] =
      r.userNamespace.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.userNamespace);
  j["session"] = r.session.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.session);
  return j.dump();
}

std::string infoReportJson(const InfoReport& i) {
  nlohmann::json j;
  j["helper_version"] = i.helperVersion;
  j["client_version"] = i.clientVersion;
  j["protocol"] = std::to_string(i.protocolMajor) + "." + std::to_string(i.protocolMinor);
  j["kernel"] = i.kernel;
  j["features"] = i.features;
  j["cgroup_mode"] = i.cgroupMode;
  j["caller_uid"] = i.callerUid;
  j["caller_gid"] = i.callerGid;
  j["limits"] = i.limits;
  j["cgroups"] = i.cgroups;
  auto textOrNull = [](const std::string& t) {
    return t.empty() ? nlohmann::json(nullptr) : nlohmann::json(t);
  };
  j["user_namespace"] = textOrNull(i.userNamespace);
  j["user_namespace_setting"] = textOrNull(i.userNamespaceSetting);
  j["user_namespace_reason"] = textOrNull(i.userNamespaceReason);
  auto poolOrNull = [](const std::optional<WarmPoolCounts>& p) {
    if (!p) return nlohmann::json(nullptr);
    return nlohmann::json{{"size", p->size},   {"floor", p->floor}, {"ceiling", p->ceiling},
                          {"ready", p->ready}, {"taken", p->taken}, {"missed", p->missed}};
  };
  j["warm_pool"] = poolOrNull(i.warmPool);
  j["warm_pool_host_net"] = poolOrNull(i.warmPoolHostNet);
  return j.dump(2);
}

}  // namespace gpubox
