#include "check_config.hpp"

#include <grp.h>
#include <pwd.h>

#include <cstdio>
#include <vector>

#include "caller_policy.hpp"
#include "error.hpp"
#include "policy.hpp"

namespace gpubox {

namespace {

std::string gpuWords(const gpu::GpuGrant& g) {
  if (!g.allowed) return "none";
  std::string which;
  if (g.all) which = "all";
  for (unsigned i : g.indices) which += (which.empty() ? "" : ",") + std::to_string(i);
  for (const std::string& u : g.uuids) which += (which.empty() ? "" : ",") + u;
  return which + ", at most " + std::to_string(g.maxGpus) + " per sandbox, " +
         (g.exclusive ? "exclusive" : "shared");
}

std::string idList(const std::vector<uint32_t>& ids) {
  std::string out;
  for (uint32_t id : ids) out += (out.empty() ? "" : ",") + std::to_string(id);
  return out.empty() ? "-" : out;
}

const char* userNamespaceWords(policy::UserNamespaceSetting s) {
  switch (s) {
    case policy::UserNamespaceSetting::Auto:
      return "auto";
    case policy::UserNamespaceSetting::Required:
      return "required";
    case policy::UserNamespaceSetting::Never:
      return "never";
    case policy::UserNamespaceSetting::Unset:
      break;
  }
  return "auto (not set)";
}

// NAME or a uid, with the primary group and every supplementary group, as
// SO_PEERCRED and SO_PEERGROUPS would give them for that user's processes.
policy::Caller lookUpCaller(const std::string& who) {
  std::vector<char> buf(1 << 16);
  passwd pw{};
  passwd* found = nullptr;
  const bool numeric = !who.empty() && who.find_first_not_of("0123456789") == std::string::npos;
  const int err =
      numeric ? getpwuid_r(static_cast<uid_t>(std::stoul(who)), &pw, buf.data(), buf.size(), &found)
              : getpwnam_r(who.c_str(), &pw, buf.data(), buf.size(), &found);
  if (err != 0) throwErrno("--for-user " + who, err);
  if (!found) {
    if (numeric) return {static_cast<uid_t>(std::stoul(who)), static_cast<gid_t>(-1), {}};
    throw Error("--for-user " + who + ": no such user");
  }
  policy::Caller caller{pw.pw_uid, pw.pw_gid, {}};
  int count = 64;
  std::vector<gid_t> groups(static_cast<size_t>(count));
  while (getgrouplist(pw.pw_name, pw.pw_gid, groups.data(), &count) < 0)
    groups.resize(static_cast<size_t>(count));
  groups.resize(static_cast<size_t>(count));
  caller.groups = groups;
  return caller;
}

void printLines(const std::vector<std::string>& lines) {
  for (const std::string& line : lines) std::printf("  %s\n", line.c_str());
}

}  // namespace

int checkConfig(const std::string& file, const std::string& forUser,
                const policy::LimitSettings& flags) {
  policy::Policy p;
  try {
    p = policy::Policy::load(file, true);
  } catch (const Error& e) {
    std::fprintf(stderr, "gpubox-helper: %s\n", e.what());
    return 1;
  }
  std::printf("%s: valid, %zu rule%s\n", file.c_str(), p.rules().size(),
              p.rules().size() == 1 ? "" : "s");
  std::printf("user_namespace: %s\n", userNamespaceWords(p.userNamespace()));
  std::string hide;
  for (const std::string& h : p.hide()) hide += " " + h;
  std::printf("hide (besides ~/.ssh, ~/.gnupg, ~/.aws, ... built in):%s\n",
              hide.empty() ? " nothing more" : hide.c_str());
  const SandboxDefaults wide = helperWideDefaults(p, flags);
  std::printf("every caller (built-ins, [defaults], flags):\n");
  printLines(wide.describe());
  for (const policy::Rule& rule : p.rules()) {
    std::printf("rule %s: users %s, groups %s\n", rule.grant.rule.c_str(),
                idList(rule.uids).c_str(), idList(rule.gids).c_str());
    std::printf("  gpus: %s\n", gpuWords(rule.grant.gpu).c_str());
  }
  if (forUser.empty()) return 0;
  const policy::Caller caller = lookUpCaller(forUser);
  std::string groups;
  for (gid_t g : caller.groups) groups += (groups.empty() ? "" : ",") + std::to_string(g);
  std::printf("user %s (uid %u, gid %d, groups %s):\n", forUser.c_str(), caller.uid,
              static_cast<int>(caller.gid), groups.empty() ? "-" : groups.c_str());
  const CallerPolicy mine = callerPolicy(p, wide, caller);
  std::vector<std::string> lines = describeGrant(mine.grant, caller.uid == 0);
  lines.insert(lines.begin() + 1, "gpus: " + gpuWords(mine.grant.gpu));
  for (const std::string& l : mine.defaults.describe()) lines.push_back(l);
  printLines(lines);
  return 0;
}

}  // namespace gpubox
