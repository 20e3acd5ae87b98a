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
  return j.dump(2);
}

}  // namespace gpubox
