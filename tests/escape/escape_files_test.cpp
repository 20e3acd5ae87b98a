// Escape attempts at files the caller may not read: another user's 0700
// directory named in a bind, directly or through a symlink, read through the
// default plan's host root, and a symlink swapped during setup while many
// sandboxes start.
//
// Which layer stops them, in both user-namespace modes: every bind source is
// opened by the sandbox's init *as the caller* (open_tree, after
// setresuid/setgroups; its only capabilities are CAP_SYS_ADMIN,
// CAP_NET_ADMIN and CAP_SETPCAP, never CAP_DAC_*), and the detached tree is
// attached by descriptor, so nothing is resolved twice. Inside, the command
// has the caller's uid and no capability at all, so the mode bits hold for a
// root caller too (root without CAP_DAC_OVERRIDE cannot read uid 4242's
// 0700 files).
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <thread>

#include "escape_check.hpp"
#include "harness.hpp"

namespace gpubox::escape {
namespace {

using itest::kNobodyUid;

// Another user: neither root nor the unprivileged caller.
constexpr uid_t kOtherUid = 4242;
constexpr const char* kSecret = "gpubox-escape-SECRET-7031";

class FileEscape : public ProbeEscapeTest {
 protected:
  void SetUp() override {
    ProbeEscapeTest::SetUp();
    if (IsSkipped()) return;
    base_ = std::make_unique<itest::TempDir>(0755, 0, 0, "gpubox-escape-files");
    secretDir_ = *base_ / "other-0700";
    itest::makeDir(secretDir_, 0700, kOtherUid, kOtherUid);
    itest::writeFile(secretDir_ + "/f", std::string(kSecret) + "\n", 0600, kOtherUid, kOtherUid);
    mine_ = *base_ / "mine";
    itest::makeDir(mine_, 0755, caller(), caller());
  }
  void TearDown() override {
    base_.reset();
    CallerTest::TearDown();
  }

  // What a run that tried to show `inside` came to: the setup refused, or
  // the probe's answer. Either way the secret must not appear.
  std::string outcomeOf(const std::vector<std::string>& plan, const std::string& attempt) {
    std::vector<std::string> args{"run"};
    args.insert(args.end(), plan.begin(), plan.end());
    args.insert(args.end(), {"--", probe_, attempt});
    auto r = helper().cli(args, as());
    if (r.exitCode == 125 && r.out.empty()) return "setup refused";
    auto results = parseProbeOutput(r.out);
    return results.count(attempt) ? results[attempt] : "no result (" + endedAs(r) + ")";
  }

  static Expect secretNotShown() {
    return matching("setup refused or EACCES; never the secret", [](const std::string& got) {
      return got.find(kSecret) == std::string::npos && (got == "setup refused" || got == "EACCES");
    });
  }

  std::unique_ptr<itest::TempDir> base_;
  std::string secretDir_, mine_;
};

TEST_P(FileEscape, AnotherUsersPrivateFilesThroughABind) {
  const std::vector<std::string> host = {"--ro-bind", "/", "/", "--tmpfs", "/mnt"};
  auto plan = [&](const char* opt, const std::string& src) {
    std::vector<std::string> p = host;
    p.insert(p.end(), {opt, src, "/mnt/s"});
    return p;
  };
  check(caller(), "--ro-bind another user's 0700 directory", secretNotShown(),
        outcomeOf(plan("--ro-bind", secretDir_), "read:/mnt/s/f"));
  check(caller(), "--bind another user's 0700 directory", secretNotShown(),
        outcomeOf(plan("--bind", secretDir_), "read:/mnt/s/f"));
  check(caller(), "--ro-bind a file inside another user's 0700 directory", secretNotShown(),
        outcomeOf(plan("--ro-bind", secretDir_ + "/f"), "read:/mnt/s"));
  std::string link = mine_ + "/link";
  ASSERT_EQ(::symlink(secretDir_.c_str(), link.c_str()), 0);
  check(caller(), "--ro-bind a symlink (in its own directory) to that directory", secretNotShown(),
        outcomeOf(plan("--ro-bind", link), "read:/mnt/s/f"));
  // (The default plan's /tmp is a fresh tmpfs: the host's, where these
  // live, is shown by a plan with the host's root.)
  const std::vector<std::string> hostRoot = {"--ro-bind", "/", "/", "--proc", "/proc"};
  check(caller(), "read it at its host path under the host's root", refused({"EACCES"}),
        outcomeOf(hostRoot, "read:" + secretDir_ + "/f"));
  check(caller(), "read it through its own symlink under the host's root", refused({"EACCES"}),
        outcomeOf(hostRoot, "read:" + link + "/f"));
}

TEST_P(FileEscape, RootOnly0700DirectoryThroughABind) {
  if (caller() == 0) GTEST_SKIP() << "root owns it";
  std::string rootDir = *base_ / "root-0700";
  itest::makeDir(rootDir, 0700);
  itest::writeFile(rootDir + "/f", std::string(kSecret) + "\n", 0600);
  check(caller(), "--ro-bind a root-owned 0700 directory", secretNotShown(),
        outcomeOf({"--ro-bind", "/", "/", "--tmpfs", "/mnt", "--ro-bind", rootDir, "/mnt/s"},
                  "read:/mnt/s/f"));
}

// A thread swaps the bind source between a directory of the caller's and a
// symlink to the other user's 0700 directory (renameat2 RENAME_EXCHANGE: the
// path is always one or the other) while batches of sandboxes start with
// that path as a bind source. Whatever the timing, no sandbox may see the
// secret: each sees the benign directory or its setup is refused.
TEST_P(FileEscape, SymlinkSwapDuringSetup) {
  std::string flip = mine_ + "/flip";
  std::string spare = mine_ + "/spare";
  itest::makeDir(flip, 0755, caller(), caller());
  itest::writeFile(flip + "/f", "benign\n", 0644, caller(), caller());
  ASSERT_EQ(::symlink(secretDir_.c_str(), spare.c_str()), 0);
  std::atomic<bool> stop{false};
  std::atomic<long> swaps{0};
  std::thread swapper([&] {
    while (!stop.load()) {
      if (::renameat2(AT_FDCWD, flip.c_str(), AT_FDCWD, spare.c_str(), RENAME_EXCHANGE) == 0)
        ++swaps;
    }
  });
  constexpr int kBatches = 3, kPerBatch = 8;
  int benign = 0, refusedRuns = 0, secret = 0, other = 0;
  std::string firstOther;
  for (int b = 0; b < kBatches; ++b) {
    std::vector<std::unique_ptr<itest::Process>> runs;
    for (int i = 0; i < kPerBatch; ++i)
      runs.push_back(helper().spawnCli({"run", "--ro-bind", "/", "/", "--tmpfs", "/mnt",
                                        "--ro-bind", flip, "/mnt/f", "--", probe_, "read:/mnt/f/f"},
                                       as()));
    for (auto& p : runs) {
      auto r = p->finish();
      std::string all = r.out + r.err;
      if (all.find(kSecret) != std::string::npos) {
        ++secret;
      } else if (r.exitCode == 0 && r.out.find("=> ok: benign") != std::string::npos) {
        ++benign;
      } else if (r.exitCode == 125 || r.out.find("=> EACCES") != std::string::npos ||
                 r.out.find("=> ENOENT") != std::string::npos) {
        ++refusedRuns;  // the path was the link, or mid-swap: refused or unreadable
      } else {
        if (firstOther.empty()) firstOther = r.describe();
        ++other;
      }
    }
  }
  stop = true;
  swapper.join();
  std::string got = std::to_string(kBatches * kPerBatch) + " sandboxes during " +
                    std::to_string(swaps.load()) + " swaps: " + std::to_string(secret) +
                    " saw the secret, " + std::to_string(benign) + " the benign directory, " +
                    std::to_string(refusedRuns) + " were refused, " + std::to_string(other) +
                    " ended otherwise";
  check(caller(), "win a symlink swap of a bind source during setup",
        matching("none saw the secret, none ended otherwise",
                 [&](const std::string&) { return secret == 0 && other == 0; }),
        got);
  if (other) std::cout << "first run that ended otherwise:\n" << firstOther << "\n";
}

GPUBOX_INSTANTIATE_CALLERS(FileEscape);

}  // namespace
}  // namespace gpubox::escape
