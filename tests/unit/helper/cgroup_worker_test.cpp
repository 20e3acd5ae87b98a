// The cgroup worker's removals, on plain directories (rmdir(2) is the same
// call on cgroupfs; the cgroup side is in unit_cgroup and the integration
// tests, which check that an ended sandbox's cgroups go).
#include "cgroup_worker.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <kj/async-io.h>
#include <cerrno>
#include <cstdlib>
#include <string>
#include <vector>

namespace gpubox {
namespace {

bool exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

TEST(CgroupWorker, RemovesOnItsThreadAndReportsEachDirectorysErrno) {
  char base[] = "/tmp/gpubox-worker-XXXXXX";
  ASSERT_NE(::mkdtemp(base), nullptr);
  const std::string empty = std::string(base) + "/empty";
  const std::string full = std::string(base) + "/full";
  const std::string missing = std::string(base) + "/missing";
  ASSERT_EQ(::mkdir(empty.c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(full.c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((full + "/child").c_str(), 0755), 0);

  auto io = kj::setupAsyncIo();
  CgroupWorker worker(io.unixEventPort);
  std::vector<int> errors = worker.remove({empty, full, missing}).wait(io.waitScope);
  ASSERT_EQ(errors.size(), 3u);
  EXPECT_EQ(errors[0], 0);
  EXPECT_EQ(errors[1], ENOTEMPTY);
  EXPECT_EQ(errors[2], ENOENT);
  EXPECT_FALSE(exists(empty));
  EXPECT_TRUE(exists(full));
  // Nothing to remove: settled at once, without the thread.
  EXPECT_TRUE(worker.remove({}).wait(io.waitScope).empty());
  // Jobs keep their order and results with several in flight.
  auto first = worker.remove({full + "/child"});
  auto second = worker.remove({full});
  EXPECT_EQ(first.wait(io.waitScope), std::vector<int>{0});
  EXPECT_EQ(second.wait(io.waitScope), std::vector<int>{0});
  EXPECT_FALSE(exists(full));
  ::rmdir(base);
}

}  // namespace
}  // namespace gpubox
