// memfdHolding: what a sandbox's init reads back from its configuration's
// and its commands' memfds is every byte given, and a write the kernel cuts
// short is carried on until it fails, with an error that says what.
#include "memfd_bytes.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <string>

#include "error.hpp"

namespace gpubox {
namespace {

std::string contents(int fd) {
  struct stat st;
  EXPECT_EQ(::fstat(fd, &st), 0);
  std::string back(static_cast<size_t>(st.st_size), '\0');
  EXPECT_EQ(::pread(fd, back.data(), back.size(), 0), st.st_size);
  return back;
}

TEST(MemfdHolding, HoldsEveryByteUnderItsNameAndClosesOnExec) {
  std::string bytes(5 * 1024 * 1024 + 3, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>(i * 7 + i / 4096);
  UniqueFd fd = memfdHolding("gpubox-test-bytes", bytes, "the test bytes");
  ASSERT_TRUE(fd);
  EXPECT_EQ(contents(fd.get()), bytes);
  EXPECT_EQ(::lseek(fd.get(), 0, SEEK_CUR), static_cast<off_t>(bytes.size()));
  EXPECT_TRUE(::fcntl(fd.get(), F_GETFD) & FD_CLOEXEC);
  char link[PATH_MAX] = {};
  const std::string self = "/proc/self/fd/" + std::to_string(fd.get());
  ASSERT_GT(::readlink(self.c_str(), link, sizeof(link) - 1), 0);
  EXPECT_EQ(std::string(link).rfind("/memfd:gpubox-test-bytes", 0), 0u) << link;
}

TEST(MemfdHolding, AnEmptyRunIsAnEmptyFile) {
  UniqueFd fd = memfdHolding("gpubox-test-empty", {}, "nothing");
  ASSERT_TRUE(fd);
  EXPECT_EQ(contents(fd.get()), "");
}

// RLIMIT_FSIZE makes the kernel write a short count up to the limit and
// refuse the next write with EFBIG: the first write is carried on, the
// second fails and names what was being written.
TEST(MemfdHolding, CarriesOnAShortWriteAndNamesWhatFailed) {
  struct rlimit saved;
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &saved), 0);
  struct sigaction ignore = {}, savedAction = {};
  ignore.sa_handler = SIG_IGN;
  ASSERT_EQ(::sigaction(SIGXFSZ, &ignore, &savedAction), 0);
  struct rlimit small = {4096, saved.rlim_max};
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  std::string what;
  try {
    memfdHolding("gpubox-test-limited", std::string(64 * 1024, 'x'), "the limited bytes");
  } catch (const Error& e) {
    what = e.what();
  }
  ::setrlimit(RLIMIT_FSIZE, &saved);
  ::sigaction(SIGXFSZ, &savedAction, nullptr);
  EXPECT_NE(what.find("write the limited bytes"), std::string::npos) << what;
  EXPECT_NE(what.find("too large"), std::string::npos) << what;
}

}  // namespace
}  // namespace gpubox
