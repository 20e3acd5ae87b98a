// The helper's rule for --uid / --gid: any id is a label when the sandbox
// gets a user namespace of its own; without one only the caller's own ids
// are honoured, and any other is refused, never replaced.
#include "sandbox_ids.hpp"

#include <gtest/gtest.h>

#include "error.hpp"

namespace gpubox {
namespace {

UserNamespaceChoice withUserNamespace() {
  return {UserNamespaceMode::Auto, true, "auto: each sandbox gets a new user namespace"};
}

UserNamespaceChoice withoutUserNamespace() {
  return {UserNamespaceMode::Never, false,
          "never: sandboxes are built in the helper's own user namespace"};
}

TEST(SandboxIds, UnsetMeansTheCallersOwn) {
  const SandboxIds ids = resolveSandboxIds({}, 1000, 100, withoutUserNamespace());
  EXPECT_EQ(ids.uid, 1000u);
  EXPECT_EQ(ids.gid, 100u);
}

TEST(SandboxIds, AnyIdWithAUserNamespace) {
  SandboxSpec spec;
  spec.sandboxUid = 0;
  spec.sandboxGid = 4294967294u;
  const SandboxIds ids = resolveSandboxIds(spec, 1000, 100, withUserNamespace());
  EXPECT_EQ(ids.uid, 0u);
  EXPECT_EQ(ids.gid, 4294967294u);
}

TEST(SandboxIds, OwnIdsWithoutAUserNamespace) {
  SandboxSpec spec;
  spec.sandboxUid = 1000;
  spec.sandboxGid = 100;
  const SandboxIds ids = resolveSandboxIds(spec, 1000, 100, withoutUserNamespace());
  EXPECT_EQ(ids.uid, 1000u);
  EXPECT_EQ(ids.gid, 100u);
}

std::string refusal(const SandboxSpec& spec) {
  try {
    resolveSandboxIds(spec, 1000, 100, withoutUserNamespace());
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(SandboxIds, OtherIdsWithoutAUserNamespaceAreRefused) {
  SandboxSpec spec;
  spec.sandboxUid = 1234;
  const std::string uid = refusal(spec);
  EXPECT_NE(uid.find("--uid 1234: refused"), std::string::npos) << uid;
  EXPECT_NE(uid.find("no user namespace"), std::string::npos) << uid;
  EXPECT_NE(uid.find("never"), std::string::npos) << uid;
  EXPECT_NE(uid.find("1000"), std::string::npos) << uid;

  SandboxSpec gidOnly;
  gidOnly.sandboxGid = 0;
  EXPECT_NE(refusal(gidOnly).find("--gid 0: refused"), std::string::npos) << refusal(gidOnly);
}

TEST(SandboxIds, TheUnsetMarkerIsNotAnId) {
  SandboxSpec spec;
  spec.sandboxUid = 4294967295u;
  EXPECT_THROW(resolveSandboxIds(spec, 1000, 100, withUserNamespace()), Error);
  EXPECT_THROW(validateSpec(spec), Error);
}

}  // namespace
}  // namespace gpubox
