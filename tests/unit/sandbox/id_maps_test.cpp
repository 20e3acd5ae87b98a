// The id maps a sandbox's user namespace gets: the sandbox's ids onto the
// caller's, every supplementary group kept, and never two lines the kernel
// would refuse (the same id twice on either side).
#include "sandbox/id_maps.hpp"

#include <gtest/gtest.h>

#include <set>

#include "error.hpp"

namespace gpubox {
namespace {

// Each side's ids are distinct, as the kernel requires.
void expectNoOverlap(const std::vector<IdMapping>& lines) {
  std::set<unsigned> inside, outside;
  for (const IdMapping& l : lines) {
    EXPECT_TRUE(inside.insert(l.inside).second) << "inside " << l.inside << " twice";
    EXPECT_TRUE(outside.insert(l.outside).second) << "outside " << l.outside << " twice";
  }
}

TEST(IdMaps, OwnGidMapsEveryGroupOntoItself) {
  const auto lines = gidMappings(1000, {27, 1000, 100}, 1000);
  EXPECT_EQ(lines, (std::vector<IdMapping>{{27, 27}, {100, 100}, {1000, 1000}}));
  EXPECT_EQ(idMapText(lines), "27 27 1\n100 100 1\n1000 1000 1\n");
}

TEST(IdMaps, SandboxGidTakesTheCallersGid) {
  const auto lines = gidMappings(1000, {27, 1000}, 5678);
  EXPECT_EQ(lines, (std::vector<IdMapping>{{27, 27}, {5678, 1000}}));
  expectNoOverlap(lines);
  EXPECT_EQ(insideGid(1000, 1000, 5678), 5678u);
  EXPECT_EQ(insideGid(27, 1000, 5678), 27u);
}

TEST(IdMaps, ASupplementaryGroupEqualToTheSandboxGidSwapsPlaces) {
  // The caller (gid 1000) is also in group 27 and asks for gid 27 inside:
  // 27 inside is the caller's gid, and host group 27 shows as 1000.
  const auto lines = gidMappings(1000, {27, 100}, 27);
  EXPECT_EQ(lines, (std::vector<IdMapping>{{1000, 27}, {100, 100}, {27, 1000}}));
  expectNoOverlap(lines);
  EXPECT_EQ(insideGid(27, 1000, 27), 1000u);
  EXPECT_EQ(insideGid(1000, 1000, 27), 27u);
}

TEST(IdMaps, RootCallerAskingForGidZeroIsTheIdentity) {
  EXPECT_EQ(gidMappings(0, {0}, 0), (std::vector<IdMapping>{{0, 0}}));
}

TEST(IdMaps, TooManyGroupsAreRefused) {
  std::vector<gid_t> groups;
  for (gid_t g = 1; g <= kMaxIdMapLines; ++g) groups.push_back(g);
  EXPECT_THROW(gidMappings(0, groups, 0), Error);
  groups.pop_back();
  EXPECT_EQ(gidMappings(0, groups, 5).size(), kMaxIdMapLines);
}

}  // namespace
}  // namespace gpubox
