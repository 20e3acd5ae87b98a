// The helper's policy file (TOML via toml++), through Policy::parse, the
// function Policy::load calls with the file's text.
//
// Invariants beyond "no crash":
//  - parse throws nothing but gpubox::Error, and its message names the file;
//  - every rule records where it came from ("FILE:LINE");
//  - fail-closed: uid/gid -1 (never a real id, refused by the parser) with
//    no groups gets nothing, whatever the policy says;
//  - the grant for a caller a rule names is the first matching rule's.
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "error.hpp"
#include "fuzz_check.hpp"
#include "policy.hpp"

namespace {

constexpr const char* kFile = "fuzz.toml";

bool startsWith(const std::string& s, std::string_view prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

// The first rule naming CALLER, by the rules' own matching, or -1.
long firstMatch(const gpubox::policy::Policy& policy, const gpubox::policy::Caller& caller) {
  const auto& rules = policy.rules();
  for (size_t i = 0; i < rules.size(); ++i)
    if (rules[i].matches(caller)) return static_cast<long>(i);
  return -1;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  gpubox::policy::Policy policy = gpubox::policy::Policy::empty();
  try {
    policy = gpubox::policy::Policy::parse(text, kFile);
  } catch (const gpubox::Error& e) {
    FUZZ_CHECK(startsWith(e.what(), kFile));
    return 0;
  }
  FUZZ_CHECK(policy.source() == kFile);
  for (const auto& rule : policy.rules())
    FUZZ_CHECK(startsWith(rule.grant.rule, std::string(kFile) + ":"));

  gpubox::policy::Caller nobody{.uid = static_cast<uid_t>(-1), .gid = static_cast<gid_t>(-1)};
  FUZZ_CHECK(policy.grantFor(nobody).rule.empty());

  // Callers the policy itself names: each rule's first uid and first gid.
  for (const auto& rule : policy.rules()) {
    for (bool byGroup : {false, true}) {
      if (byGroup ? rule.gids.empty() : rule.uids.empty()) continue;
      gpubox::policy::Caller caller{.uid = static_cast<uid_t>(-1), .gid = static_cast<gid_t>(-1)};
      if (byGroup)
        caller.groups.push_back(rule.gids.front());
      else
        caller.uid = rule.uids.front();
      long first = firstMatch(policy, caller);
      FUZZ_CHECK(first >= 0);
      FUZZ_CHECK(policy.grantFor(caller).rule ==
                 policy.rules()[static_cast<size_t>(first)].grant.rule);
    }
  }
  return 0;
}
