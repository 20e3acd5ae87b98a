#include "policy.hpp"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <toml++/toml.h>
#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <optional>

#include "error.hpp"
#include "unique_fd.hpp"

namespace gpubox::policy {

namespace {

// A policy file larger than this is refused rather than parsed: nobody writes
// a megabyte of rules, and the helper should not spend memory on a mistake.
constexpr size_t kMaxPolicyBytes = 1 << 20;
// GPU indices and max_gpus above this are certainly typos.
constexpr int64_t kMaxGpuNumber = 4096;
// uid_t/gid_t -1 means "no id" to the kernel; never accept it as a real id.
constexpr int64_t kMaxId = int64_t{std::numeric_limits<uint32_t>::max()} - 1;

constexpr std::array<std::string_view, 12> kRuleKeys = {"users",        "groups",
                                                        "gpus",         "default_gpus",
                                                        "max_gpus",     "exclusive",
                                                        "host_network", "dev_bind",
                                                        "seccomp_none", "nested_user_namespaces",
                                                        "bind_sources", "writable_bind_sources"};
constexpr std::array<std::string_view, 2> kBindKeys = {"bind_sources", "writable_bind_sources"};
constexpr std::array<std::string_view, 4> kTopKeys = {"allow", "defaults", "user_namespace",
                                                      "hide"};

// "a, b, c" for "known keys" messages.
template <typename Keys>
std::string joinKeys(const Keys& keys) {
  std::string out;
  for (std::string_view k : keys) out += (out.empty() ? "" : ", ") + std::string(k);
  return out;
}

// Builds "FILE:LINE: " prefixes from toml++ source positions.
class Where {
 public:
  explicit Where(const std::string& fileName) : file_(fileName) {}

  std::string at(const toml::source_region& src) const {
    if (src.begin.line == 0) return file_;
    return file_ + ":" + std::to_string(src.begin.line);
  }
  [[noreturn]] void fail(const toml::source_region& src, const std::string& message) const {
    throw Error(at(src) + ": " + message);
  }

 private:
  const std::string& file_;
};

std::string typeName(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::table:
      return "a table";
    case toml::node_type::date:
    case toml::node_type::time:
    case toml::node_type::date_time:
      return "a date/time";
    case toml::node_type::none:
      break;
  }
  return "nothing";
}

bool parseBool(const Where& where, const std::string& key, const toml::node& node) {
  const auto* value = node.as_boolean();
  if (!value) where.fail(node.source(), key + " must be true or false, not " + typeName(node));
  return value->get();
}

// An integer in [0, max]; negative numbers are errors, not wrapped.
uint32_t parseNumber(const Where& where, const std::string& what, const toml::node& node,
                     int64_t max) {
  const auto* value = node.as_integer();
  if (!value) where.fail(node.source(), what + " must be an integer, not " + typeName(node));
  const int64_t n = value->get();
  if (n < 0)
    where.fail(node.source(), what + " must not be negative (got " + std::to_string(n) + ")");
  if (n > max)
    where.fail(node.source(), what + " is out of range (got " + std::to_string(n) + ", at most " +
                                  std::to_string(max) + ")");
  return static_cast<uint32_t>(n);
}

const toml::array& parseArray(const Where& where, const std::string& key, const toml::node& node) {
  const auto* array = node.as_array();
  if (!array) where.fail(node.source(), key + " must be an array, not " + typeName(node));
  return *array;
}

// A limit key's value as text, the way the helper's flags take it. Sizes and
// durations must be strings ("8G", "30m"): a bare 8 would mean 8 bytes.
std::string limitText(const Where& where, const std::string& key, const toml::node& node) {
  if (const auto* str = node.as_string()) return str->get();
  const bool countKey = key == "pids" || key == "max_pids" || key == "max_sandboxes" ||
                        key == "max_sessions" || key == "cpus" || key == "max_cpus";
  if (const auto* integer = node.as_integer(); integer && countKey) {
    if (integer->get() < 0)
      where.fail(node.source(),
                 key + " must not be negative (got " + std::to_string(integer->get()) + ")");
    return std::to_string(integer->get());
  }
  if (const auto* fp = node.as_floating_point(); fp && (key == "cpus" || key == "max_cpus")) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.3f", fp->get());
    return buf;
  }
  const bool sizeKey = key == "memory" || key == "max_memory";
  where.fail(node.source(), key + " must be " +
                                (countKey  ? std::string("a number or a string")
                                 : sizeKey ? std::string("a string like \"8G\"")
                                           : std::string("a string like \"30m\"")) +
                                ", not " + typeName(node));
}

void parseLimit(const Where& where, LimitSettings& settings, const std::string& key,
                const toml::node& node) {
  // assignLimit's messages start with this: "FILE:LINE: key '8X' is not ...".
  assignLimit(settings, key, limitText(where, key, node), where.at(node.source()) + ": " + key);
}

bool isLimitKey(std::string_view key) {
  const auto& keys = limitKeys();
  return std::find(keys.begin(), keys.end(), key) != keys.end();
}

// An absolute path with no "." or ".." components and no trailing slash
// (except "/" itself), so that prefix checks mean what they say.
bool isCleanAbsolutePath(std::string_view p) {
  if (p.empty() || p[0] != '/') return false;
  if (p == "/") return true;
  if (p.back() == '/') return false;
  size_t start = 1;
  while (start <= p.size()) {
    size_t end = p.find('/', start);
    if (end == std::string_view::npos) end = p.size();
    std::string_view part = p.substr(start, end - start);
    if (part.empty() || part == "." || part == "..") return false;
    start = end + 1;
  }
  return true;
}

std::vector<std::string> parsePaths(const Where& where, const std::string& key,
                                    const toml::node& node, bool allowHome) {
  std::vector<std::string> out;
  for (const toml::node& element : parseArray(where, key, node)) {
    const auto* str = element.as_string();
    if (!str) where.fail(element.source(), key + " entries must be paths (strings)");
    const std::string& s = str->get();
    const bool home = allowHome && s.starts_with("~/");
    const std::string path = home ? s.substr(1) : s;
    if (!isCleanAbsolutePath(path) || (home && path == "/"))
      where.fail(element.source(), key + ": '" + s + "' must be an absolute path" +
                                       (allowHome ? " or ~/path" : "") +
                                       " without '.', '..', '//' or a trailing '/'");
    out.push_back(s);
  }
  return out;
}

void parseBindKey(const Where& where, BindSettings& binds, const std::string& key,
                  const toml::node& node) {
  Setting<std::vector<std::string>>& s = key == "bind_sources" ? binds.readable : binds.writable;
  s.assign(parsePaths(where, key, node, false), where.at(node.source()));
}

bool isBindKey(std::string_view key) {
  return std::find(kBindKeys.begin(), kBindKeys.end(), key) != kBindKeys.end();
}

// getpwnam_r/getgrnam_r with a growing buffer: names served by NSS modules
// (LDAP, sssd) can have entries larger than any fixed guess.
std::optional<uid_t> lookupUser(const std::string& name) {
  std::vector<char> buf(4096);
  for (;;) {
    passwd pw{};
    passwd* result = nullptr;
    const int err = getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &result);
    if (err == ERANGE && buf.size() < (1u << 20)) {
      buf.resize(buf.size() * 2);
      continue;
    }
    if (err != 0) throwErrno("looking up user '" + name + "'", err);
    if (!result) return std::nullopt;
    return result->pw_uid;
  }
}

std::optional<gid_t> lookupGroup(const std::string& name) {
  std::vector<char> buf(4096);
  for (;;) {
    group gr{};
    group* result = nullptr;
    const int err = getgrnam_r(name.c_str(), &gr, buf.data(), buf.size(), &result);
    if (err == ERANGE && buf.size() < (1u << 20)) {
      buf.resize(buf.size() * 2);
      continue;
    }
    if (err != 0) throwErrno("looking up group '" + name + "'", err);
    if (!result) return std::nullopt;
    return result->gr_gid;
  }
}

// users = [...] / groups = [...]: names (resolved now, so a typo fails at
// load time instead of silently matching nobody) or numeric ids.
std::vector<uint32_t> parseIds(const Where& where, const std::string& key, const toml::node& node,
                               bool users) {
  std::vector<uint32_t> ids;
  for (const toml::node& element : parseArray(where, key, node)) {
    if (const auto* name = element.as_string()) {
      const std::string& s = name->get();
      const auto id = users ? lookupUser(s) : lookupGroup(s);
      if (!id)
        where.fail(element.source(),
                   std::string(users ? "unknown user '" : "unknown group '") + s + "' in " + key);
      ids.push_back(*id);
    } else if (element.is_integer()) {
      ids.push_back(
          parseNumber(where, std::string(users ? "uid" : "gid") + " in " + key, element, kMaxId));
    } else {
      where.fail(
          element.source(),
          key + " entries must be names (strings) or ids (integers), not " + typeName(element));
    }
  }
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

// "GPU-" or "MIG-" followed by hex digits and dashes: the form nvidia-smi
// prints and /proc/driver/nvidia/gpus/*/information reports.
bool looksLikeUuid(std::string_view s) {
  if (!s.starts_with("GPU-") && !s.starts_with("MIG-")) return false;
  const std::string_view rest = s.substr(4);
  if (rest.size() < 8 || rest.size() > 64) return false;
  return std::all_of(rest.begin(), rest.end(), [](char c) {
    return std::isxdigit(static_cast<unsigned char>(c)) || c == '-';
  });
}

void parseGpus(const Where& where, const toml::node& node, gpu::GpuGrant& grant) {
  const toml::array& array = parseArray(where, "gpus", node);
  grant.allowed = !array.empty();
  for (const toml::node& element : array) {
    if (element.is_integer()) {
      grant.indices.push_back(parseNumber(where, "GPU index in gpus", element, kMaxGpuNumber));
    } else if (const auto* str = element.as_string()) {
      const std::string& s = str->get();
      if (s == "all") {
        grant.all = true;
      } else if (looksLikeUuid(s)) {
        grant.uuids.push_back(s);
      } else {
        where.fail(element.source(),
                   "gpus entries are GPU indices (integers), UUIDs (\"GPU-...\") "
                   "or \"all\"; got \"" +
                       s + "\"");
      }
    } else {
      where.fail(element.source(),
                 "gpus entries are GPU indices, UUIDs or \"all\", not " + typeName(element));
    }
  }
  // "all" next to specific GPUs is either redundant or a mistake about which
  // one was meant; make the author say one thing.
  if (grant.all && (!grant.indices.empty() || !grant.uuids.empty() || array.size() > 1))
    where.fail(node.source(), "gpus: \"all\" cannot be combined with other entries");
  std::sort(grant.indices.begin(), grant.indices.end());
  grant.indices.erase(std::unique(grant.indices.begin(), grant.indices.end()), grant.indices.end());
  std::sort(grant.uuids.begin(), grant.uuids.end());
  grant.uuids.erase(std::unique(grant.uuids.begin(), grant.uuids.end()), grant.uuids.end());
}

// default_gpus: --gpu selectors ("count:1", "0", "GPU-...", "all"); an
// integer is an index. Whether they select anything is decided per request,
// against the rule's own gpus, as for a request that names them.
std::vector<std::string> parseDefaultGpus(const Where& where, const toml::node& node) {
  const toml::array& array = parseArray(where, "default_gpus", node);
  std::vector<std::string> selectors;
  for (const toml::node& element : array) {
    if (element.is_integer()) {
      selectors.push_back(
          std::to_string(parseNumber(where, "GPU index in default_gpus", element, kMaxGpuNumber)));
    } else if (const auto* str = element.as_string()) {
      const std::string& s = str->get();
      if (s.empty() || s.size() > 256)
        where.fail(element.source(), "default_gpus entries are 1 to 256 characters");
      if (s == "none")
        where.fail(element.source(),
                   "default_gpus = [\"none\"] is the default; leave default_gpus out");
      selectors.push_back(s);
    } else {
      where.fail(element.source(),
                 "default_gpus entries are --gpu selectors (\"count:1\", "
                 "\"0\", \"GPU-...\", \"all\") or GPU indices, not " +
                     typeName(element));
    }
  }
  return selectors;
}

Rule parseRule(const Where& where, const toml::table& table) {
  Rule rule;
  rule.grant.rule = where.at(table.source());
  bool haveUsers = false, haveGroups = false;
  const toml::node* maxGpus = nullptr;
  const toml::node* exclusive = nullptr;
  const toml::node* defaultGpus = nullptr;

  for (const auto& [key, node] : table) {
    const std::string name(key.str());
    if (name == "users") {
      rule.uids = parseIds(where, name, node, true);
      haveUsers = true;
    } else if (name == "groups") {
      rule.gids = parseIds(where, name, node, false);
      haveGroups = true;
    } else if (name == "gpus") {
      parseGpus(where, node, rule.grant.gpu);
    } else if (name == "default_gpus") {
      defaultGpus = &node;
    } else if (name == "max_gpus") {
      maxGpus = &node;
    } else if (name == "exclusive") {
      exclusive = &node;
    } else if (name == "host_network") {
      rule.grant.hostNetwork = parseBool(where, name, node);
    } else if (name == "dev_bind") {
      rule.grant.devBind = parseBool(where, name, node);
    } else if (name == "seccomp_none") {
      rule.grant.seccompNone = parseBool(where, name, node);
    } else if (name == "nested_user_namespaces") {
      rule.grant.nestedUserNamespaces = parseBool(where, name, node);
    } else if (isLimitKey(name)) {
      parseLimit(where, rule.grant.limits, name, node);
    } else if (isBindKey(name)) {
      parseBindKey(where, rule.binds, name, node);
    } else {
      where.fail(key.source(), "unknown key '" + name + "' in [[allow]] (known keys: " +
                                   joinKeys(kRuleKeys) + ", " + joinKeys(limitKeys()) + ")");
    }
  }

  if (rule.uids.empty() && rule.gids.empty())
    where.fail(table.source(),
               "[[allow]] rule must name at least one user or group" +
                   std::string(haveUsers || haveGroups ? " (lists are empty)" : ""));

  gpu::GpuGrant& gpu = rule.grant.gpu;
  // max_gpus and exclusive only mean something next to granted GPUs; alone
  // they suggest the author forgot the gpus line, so say so.
  if (maxGpus) {
    if (!gpu.allowed)
      where.fail(maxGpus->source(),
                 "max_gpus is set but the rule grants no GPUs (add gpus = [...])");
    gpu.maxGpus = parseNumber(where, "max_gpus", *maxGpus, kMaxGpuNumber);
    if (gpu.maxGpus == 0)
      where.fail(maxGpus->source(),
                 "max_gpus must be at least 1 (to grant no GPU, leave out gpus)");
  } else if (gpu.allowed) {
    gpu.maxGpus = 1;
  }
  if (exclusive) {
    if (!gpu.allowed)
      where.fail(exclusive->source(),
                 "exclusive is set but the rule grants no GPUs (add gpus = [...])");
    gpu.exclusive = parseBool(where, "exclusive", *exclusive);
  }
  if (defaultGpus) {
    if (!gpu.allowed)
      where.fail(defaultGpus->source(),
                 "default_gpus is set but the rule grants no GPUs (add gpus = [...])");
    rule.grant.defaultGpus = parseDefaultGpus(where, *defaultGpus);
  }
  return rule;
}

}  // namespace

bool Rule::matches(const Caller& caller) const {
  if (std::binary_search(uids.begin(), uids.end(), caller.uid)) return true;
  if (std::binary_search(gids.begin(), gids.end(), caller.gid)) return true;
  return std::any_of(caller.groups.begin(), caller.groups.end(),
                     [this](gid_t g) { return std::binary_search(gids.begin(), gids.end(), g); });
}

void BindSettings::overlay(const BindSettings& over) {
  if (over.readable.set) readable = over.readable;
  if (over.writable.set) writable = over.writable;
}

BindSources BindSettings::resolve() const {
  BindSources out = BindSources::builtIn();
  if (readable.set) out.readable = *readable.value;
  if (writable.set) out.writable = *writable.value;
  std::string where = readable.where;
  if (writable.set && writable.where != where)
    where += (where.empty() ? "" : ", ") + writable.where;
  if (!where.empty()) out.where = where;
  return out;
}

BindSources BindSources::builtIn() {
  return {{"/"},
          {"/home", "/tmp", "/var/tmp", "/dev/shm", "/run/user", "/srv", "/mnt", "/media", "/opt",
           "/data", "/scratch", "/workspace"},
          "built-in"};
}

Policy Policy::empty() {
  return Policy{};
}

namespace {

void parseDefaults(const Where& where, const toml::node& node, LimitSettings& limits,
                   BindSettings& binds) {
  const auto* table = node.as_table();
  if (!table) where.fail(node.source(), "defaults must be a table ([defaults])");
  for (const auto& [key, value] : *table) {
    const std::string name(key.str());
    if (isLimitKey(name))
      parseLimit(where, limits, name, value);
    else if (isBindKey(name))
      parseBindKey(where, binds, name, value);
    else
      where.fail(key.source(), "unknown key '" + name + "' in [defaults] (known keys: " +
                                   joinKeys(limitKeys()) + ", " + joinKeys(kBindKeys) + ")");
  }
}

UserNamespaceSetting parseUserNamespace(const Where& where, const toml::node& node) {
  const auto* str = node.as_string();
  const std::string value = str ? str->get() : "";
  if (value == "auto") return UserNamespaceSetting::Auto;
  if (value == "required") return UserNamespaceSetting::Required;
  if (value == "never") return UserNamespaceSetting::Never;
  where.fail(node.source(), "user_namespace must be \"auto\", \"required\" or \"never\"" +
                                (str ? ", not \"" + value + "\"" : ", not " + typeName(node)));
}

}  // namespace

Policy Policy::parse(std::string_view text, const std::string& fileName) {
  const Where where(fileName);
  toml::table root;
  try {
    root = toml::parse(text, fileName);
  } catch (const toml::parse_error& e) {
    throw Error(where.at(e.source()) + ": " + std::string(e.description()));
  }

  Policy policy;
  policy.source_ = fileName;
  for (const auto& [key, node] : root) {
    if (key.str() == "defaults") {
      parseDefaults(where, node, policy.defaults_, policy.binds_);
      continue;
    }
    if (key.str() == "user_namespace") {
      policy.userNamespace_ = parseUserNamespace(where, node);
      continue;
    }
    if (key.str() == "hide") {
      policy.hide_ = parsePaths(where, "hide", node, true);
      continue;
    }
    if (key.str() != "allow")
      where.fail(key.source(), "unknown key '" + std::string(key.str()) +
                                   "' (known top-level keys: " + joinKeys(kTopKeys) + ")");
    const auto* rules = node.as_array();
    if (!rules || !rules->is_array_of_tables())
      where.fail(node.source(), "allow must be written as [[allow]] tables");
    for (const toml::node& element : *rules)
      policy.rules_.push_back(parseRule(where, *element.as_table()));
  }
  return policy;
}

Policy Policy::load(const std::string& path, bool mustExist) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
  if (!fd) {
    if (errno == ENOENT && !mustExist) return empty();
    throwErrno("policy file " + path);
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) throwErrno("policy file " + path);
  if (!S_ISREG(st.st_mode)) throw Error("policy file " + path + ": not a regular file");
  // The policy decides who gets GPUs and host network. If anyone but root
  // (or the helper's own user) can change it, anyone can grant themselves.
  if (st.st_uid != 0 && st.st_uid != ::geteuid())
    throw Error("policy file " + path + ": owned by uid " + std::to_string(st.st_uid) +
                "; it must be owned by root");
  if ((st.st_mode & S_IWOTH) || ((st.st_mode & S_IWGRP) && st.st_gid != 0))
    throw Error("policy file " + path + ": writable by group or others; chmod go-w it");
  if (static_cast<size_t>(st.st_size) > kMaxPolicyBytes)
    throw Error("policy file " + path + ": larger than " + std::to_string(kMaxPolicyBytes) +
                " bytes");

  std::string text;
  text.resize(static_cast<size_t>(st.st_size) + 1);
  size_t used = 0;
  for (;;) {
    if (used == text.size()) {
      if (text.size() > kMaxPolicyBytes)
        throw Error("policy file " + path + ": larger than " + std::to_string(kMaxPolicyBytes) +
                    " bytes");
      text.resize(text.size() * 2);
    }
    const ssize_t n = ::read(fd.get(), text.data() + used, text.size() - used);
    if (n < 0) {
      if (errno == EINTR) continue;
      throwErrno("reading policy file " + path);
    }
    if (n == 0) break;
    used += static_cast<size_t>(n);
  }
  text.resize(used);
  return parse(text, path);
}

Grant Policy::grantFor(const Caller& caller) const {
  Grant grant;
  const Rule* match = nullptr;
  for (const Rule& rule : rules_) {
    if (rule.matches(caller)) {
      match = &rule;
      break;
    }
  }
  if (match) grant = match->grant;  // its limits are the rule's own keys
  BindSettings binds = binds_;
  if (match) binds.overlay(match->binds);
  grant.binds = binds.resolve();
  return grant;
}

}  // namespace gpubox::policy
