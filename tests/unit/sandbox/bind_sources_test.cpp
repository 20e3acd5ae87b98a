#include "bind_sources.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include "error.hpp"
#include "unique_fd.hpp"

namespace gpubox {
namespace {

TEST(BindSources, PrefixMeansDirectoryBoundary) {
  EXPECT_TRUE(underPrefix("/home", "/home"));
  EXPECT_TRUE(underPrefix("/home/a/b", "/home"));
  EXPECT_FALSE(underPrefix("/homer", "/home"));
  EXPECT_FALSE(underPrefix("/", "/home"));
  EXPECT_TRUE(underPrefix("/", "/"));
  EXPECT_TRUE(underPrefix("/etc", "/"));
}

// The check reads where the open fd really is: a path through a symlink is
// judged by its target.
TEST(BindSources, JudgedByWhereTheSourceReallyIs) {
  char dir[] = "/tmp/gpubox-bind-src-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  const std::string link = std::string(dir) + "/etc-link";
  ASSERT_EQ(::symlink("/etc", link.c_str()), 0);
  BindSourceRule rule{{"/"}, {"/tmp"}, "p.toml:3"};

  MountOp op{.kind = MountKind::Bind, .source = link, .dest = "/mnt"};
  UniqueFd fd(::open(link.c_str(), O_PATH | O_CLOEXEC));
  ASSERT_TRUE(fd);
  try {
    checkBindSource(op, fd.get(), rule);
    ADD_FAILURE() << "a writable bind of /etc through a link under /tmp was allowed";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("writable_bind_sources"), std::string::npos) << m;
    EXPECT_NE(m.find("p.toml:3"), std::string::npos) << m;
    EXPECT_NE(m.find("is /etc"), std::string::npos) << m;
  }
  op.kind = MountKind::RoBind;  // read-only from anywhere: allowed
  EXPECT_NO_THROW(checkBindSource(op, fd.get(), rule));

  UniqueFd own(::open(dir, O_PATH | O_CLOEXEC));
  op.kind = MountKind::Bind;
  EXPECT_NO_THROW(checkBindSource(op, own.get(), rule));
  ::unlink(link.c_str());
  ::rmdir(dir);
}

}  // namespace
}  // namespace gpubox
