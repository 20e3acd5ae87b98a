// The directory descriptors a cgroup work (LimitWork, DeviceWork) shares
// with its sandbox's cgroup, noted while both exist: whatever ends first,
// they must stay open on the same directories until the last owner goes,
// and then be closed.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <string>
#include <utility>
#include <vector>

#include "sandbox_cgroup.hpp"

namespace gpubox::cgroup {

class HeldDescriptors {
 public:
  void note(const SharedFd& fd, const std::string& path) {
    ASSERT_TRUE(fd && *fd) << path;
    struct stat st;
    ASSERT_EQ(::fstat(fd->get(), &st), 0) << path;
    held_.emplace_back(fd->get(), st.st_ino);
  }
  bool empty() const { return held_.empty(); }

  // After the cgroup is gone and before the work is.
  void expectOpenOnTheSameDirectories() const {
    for (const auto& [fd, inode] : held_) {
      struct stat st;
      ASSERT_EQ(::fstat(fd, &st), 0) << "the work's descriptor was closed with its cgroup";
      EXPECT_EQ(st.st_ino, inode);
    }
  }
  // After both are gone.
  void expectClosed() const {
    for (const auto& [fd, inode] : held_)
      EXPECT_EQ(::fcntl(fd, F_GETFD), -1) << "descriptor " << fd << " outlived its last owner";
  }

 private:
  std::vector<std::pair<int, ino_t>> held_;
};

}  // namespace gpubox::cgroup
