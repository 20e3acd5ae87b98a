#include "cdi.hpp"

#include <sys/stat.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>

#include "device_nodes.hpp"
#include "error.hpp"
#include "spec.hpp"
#include "text_file.hpp"

namespace gpubox::gpu {

namespace {

using json = nlohmann::json;

// YAML -> JSON, bounded: a spec nests a few levels and has at most a few
// thousand nodes; aliases could otherwise expand exponentially.
struct YamlBudget {
  size_t nodes = 0;
  static constexpr size_t kMaxNodes = 100000;
  static constexpr int kMaxDepth = 32;
};

json yamlToJson(const YAML::Node& node, YamlBudget& budget, int depth) {
  if (++budget.nodes > YamlBudget::kMaxNodes) throw Error("too many YAML nodes");
  if (depth > YamlBudget::kMaxDepth) throw Error("YAML nested too deeply");
  switch (node.Type()) {
    case YAML::NodeType::Map: {
      json obj = json::object();
      for (const auto& kv : node)
        obj[kv.first.as<std::string>()] = yamlToJson(kv.second, budget, depth + 1);
      return obj;
    }
    case YAML::NodeType::Sequence: {
      json arr = json::array();
      for (const auto& item : node) arr.push_back(yamlToJson(item, budget, depth + 1));
      return arr;
    }
    case YAML::NodeType::Scalar:
      return node.Scalar();
    default:
      return nullptr;
  }
}

std::string str(const json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_string()) return {};
  return it->get<std::string>();
}

// A number given as JSON number or (from YAML) as a decimal string.
std::optional<unsigned> num(const json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end()) return std::nullopt;
  if (it->is_number_unsigned()) {
    auto v = it->get<unsigned long long>();
    if (v <= 0xfffff) return static_cast<unsigned>(v);
    return std::nullopt;
  }
  if (it->is_string()) return parseUnsigned(it->get<std::string>(), 0xfffff);
  return std::nullopt;
}

const json& arrayAt(const json& obj, const char* key) {
  static const json empty = json::array();
  auto it = obj.find(key);
  return it != obj.end() && it->is_array() ? *it : empty;
}

bool validDeviceName(const std::string& name) {
  if (name.empty() || name.size() > 128) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!alnum && (i == 0 || (c != '_' && c != '.' && c != '-' && c != ':'))) return false;
  }
  return true;
}

bool validEnv(const std::string& kv) {
  size_t eq = kv.find('=');
  if (eq == 0 || eq == std::string::npos || kv.find('\0') != std::string::npos) return false;
  for (size_t i = 0; i < eq; ++i) {
    char c = kv[i];
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' ||
          (i > 0 && c >= '0' && c <= '9')))
      return false;
  }
  return true;
}

bool absPathOk(const std::string& p) {
  try {
    validateAbsolutePath(p, "path");
    return true;
  } catch (const Error&) {
    return false;
  }
}

struct Edits {
  std::vector<DeviceNode> nodes;
  std::vector<MountOp> mounts;
  std::vector<std::string> env;
  unsigned hooks = 0;
};

Edits parseEdits(const json& edits, const std::string& where, const std::string& root,
                 std::vector<std::string>& warnings) {
  Edits out;
  if (!edits.is_object()) return out;
  for (const json& e : arrayAt(edits, "env")) {
    std::string kv = e.is_string() ? e.get<std::string>() : "";
    if (validEnv(kv))
      out.env.push_back(kv);
    else
      warnings.push_back(where + ": env entry is not KEY=VALUE; ignored");
  }
  for (const json& d : arrayAt(edits, "deviceNodes")) {
    if (!d.is_object()) continue;
    std::string path = str(d, "path"), host = str(d, "hostPath");
    if (host.empty()) host = path;
    std::string type = str(d, "type");
    if (!absPathOk(path) || !absPathOk(host) || (!type.empty() && type != "c")) {
      warnings.push_back(where + ": device node '" + path +
                         "' is not an absolute character-device path; ignored");
      continue;
    }
    std::string hostPath = underRoot(root, host.substr(1));
    auto rdev = charDeviceNumber(hostPath);
    if (!rdev) {
      warnings.push_back(where + ": device node " + hostPath +
                         " is missing or not a character device; ignored");
      continue;
    }
    auto major = num(d, "major"), minor = num(d, "minor");
    if ((major && *major != rdev->first) || (minor && *minor != rdev->second)) {
      warnings.push_back(where + ": device node " + hostPath + " is " +
                         std::to_string(rdev->first) + ":" + std::to_string(rdev->second) +
                         " but the spec says otherwise; ignored");
      continue;
    }
    out.nodes.push_back(DeviceNode{hostPath, path, rdev->first, rdev->second});
  }
  for (const json& m : arrayAt(edits, "mounts")) {
    if (!m.is_object()) continue;
    std::string host = str(m, "hostPath"), dest = str(m, "containerPath"), type = str(m, "type");
    if (!absPathOk(host) || !absPathOk(dest) || (!type.empty() && type != "bind")) {
      warnings.push_back(where + ": mount '" + host + "' -> '" + dest +
                         "' is not a bind of absolute paths; ignored");
      continue;
    }
    std::string source = underRoot(root, host.substr(1));
    struct stat st {};
    if (::stat(source.c_str(), &st) != 0) {
      warnings.push_back(where + ": mount source " + source + " does not exist; ignored");
      continue;
    }
    MountOp op;
    op.kind = MountKind::RoBind;  // whatever the spec's options say: never writable
    op.source = source;
    op.dest = dest;
    op.skipIfVisible = true;  // the sandbox may already show it (host / as its root)
    out.mounts.push_back(std::move(op));
  }
  out.hooks = static_cast<unsigned>(arrayAt(edits, "hooks").size());
  return out;
}

void append(CdiDevice& dev, const Edits& e) {
  dev.nodes.insert(dev.nodes.end(), e.nodes.begin(), e.nodes.end());
  dev.mounts.insert(dev.mounts.end(), e.mounts.begin(), e.mounts.end());
  dev.env.insert(dev.env.end(), e.env.begin(), e.env.end());
  dev.hooksIgnored += e.hooks;
}

bool endsWith(const std::string& s, const std::string& suffix) {
  return s.size() > suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

std::vector<CdiDevice> parseCdiSpec(const std::string& text, bool yaml, const std::string& where,
                                    const std::string& root, std::vector<std::string>& warnings) {
  json spec;
  try {
    if (yaml) {
      YamlBudget budget;
      spec = yamlToJson(YAML::Load(text), budget, 0);
    } else {
      spec = json::parse(text);
    }
  } catch (const std::exception& e) {
    throw Error(where + ": not a valid CDI spec: " + e.what());
  }
  if (!spec.is_object()) throw Error(where + ": not a valid CDI spec: not an object");
  std::string kind = str(spec, "kind");
  if (kind != kCdiKind) return {};  // another vendor's or class's spec: not ours
  if (!spec.contains("devices") || !spec["devices"].is_array())
    throw Error(where + ": CDI spec has no devices list");

  Edits common;
  if (spec.contains("containerEdits"))
    common = parseEdits(spec["containerEdits"], where, root, warnings);
  std::vector<CdiDevice> out;
  unsigned hooks = common.hooks;
  for (const json& d : spec["devices"]) {
    if (!d.is_object()) continue;
    std::string name = str(d, "name");
    if (!validDeviceName(name)) {
      warnings.push_back(where + ": device name '" + name.substr(0, 64) + "' is invalid; ignored");
      continue;
    }
    CdiDevice dev;
    dev.name = std::string(kCdiKind) + "=" + name;
    dev.specFile = where;
    if (d.contains("containerEdits")) {
      Edits own = parseEdits(d["containerEdits"], where, root, warnings);
      hooks += own.hooks;
      append(dev, own);
    }
    append(dev, common);
    out.push_back(std::move(dev));
  }
  if (hooks > 0)
    warnings.push_back(where + ": " + std::to_string(hooks) +
                       " CDI hook(s) ignored: gpubox never runs hooks from CDI specs");
  return out;
}

std::vector<CdiDevice> discoverCdi(const std::string& root, std::vector<std::string>& warnings) {
  std::map<std::string, CdiDevice> byName;
  for (const char* dirRel : {"etc/cdi", "var/run/cdi"}) {
    std::string dir = underRoot(root, dirRel);
    for (const std::string& name : listDir(dir)) {
      bool yaml = endsWith(name, ".yaml");
      if (!yaml && !endsWith(name, ".json")) continue;
      std::string path = dir + "/" + name;
      try {
        auto text = readSmallFile(path, kMaxCdiFile);
        if (!text) continue;
        for (CdiDevice& dev : parseCdiSpec(*text, yaml, path, root, warnings))
          byName.insert_or_assign(dev.name, std::move(dev));
      } catch (const std::exception& e) {
        warnings.push_back(std::string(e.what()) + "; spec skipped");
      }
    }
  }
  std::vector<CdiDevice> out;
  for (auto& [name, dev] : byName) out.push_back(std::move(dev));
  return out;
}

}  // namespace gpubox::gpu
