// The cgroup worker's removals, on plain directories (rmdir(2) is the same
// call on cgroupfs; the cgroup side is in unit_cgroup and the integration
// tests, which check that an ended sandbox's cgroups go).
#include "cgroup_worker.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <kj/async-io.h>
#include <cerrno>
#include <cstdlib>
#include <fstream>
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

// Joins: the worker opens each cgroup.procs itself and writes the pid; a
// file it cannot open is named in the rejection, and nothing after it is
// written.
TEST(CgroupWorker, JoinOpensEachFileAndNamesTheOneThatFailed) {
  char base[] = "/tmp/gpubox-worker-XXXXXX";
  ASSERT_NE(::mkdtemp(base), nullptr);
  const std::string first = std::string(base) + "/a.procs";
  const std::string last = std::string(base) + "/c.procs";
  for (const std::string& f : {first, last}) std::ofstream(f).flush();
  auto io = kj::setupAsyncIo();
  CgroupWorker worker(io.unixEventPort);
  worker.attach(1234, {first, last}).wait(io.waitScope);
  auto read = [](const std::string& f) {
    std::ifstream in(f);
    std::string s;
    std::getline(in, s);
    return s;
  };
  EXPECT_EQ(read(first), "1234");
  EXPECT_EQ(read(last), "1234");
  const std::string missing = std::string(base) + "/gone/cgroup.procs";
  std::ofstream(last, std::ios::trunc).flush();
  try {
    worker.attach(99, {missing, last}).wait(io.waitScope);
    ADD_FAILURE() << "a join with a missing file succeeded";
  } catch (const kj::Exception& e) {
    EXPECT_NE(std::string(e.getDescription().cStr()).find(missing), std::string::npos)
        << e.getDescription().cStr();
  }
  EXPECT_EQ(read(last), "") << "written after a failure";
  ::unlink(first.c_str());
  ::unlink(last.c_str());
  ::rmdir(base);
}

// A warm init's empty cgroup, made on the worker's thread and adopted on
// the loop, over a fake hierarchy (plain directories: mkdir(2) is the same
// call). A name in use is refused and nothing of the attempt is left.
TEST(CgroupWorker, MakesAnEmptyCgroupAndRefusesANameInUse) {
  char base[] = "/tmp/gpubox-worker-XXXXXX";
  ASSERT_NE(::mkdtemp(base), nullptr);
  cgroup::Layout layout;
  layout.v2Parent = std::string(base) + "/unified/gpubox";  // made by the worker
  layout.v1Parents["memory"] = std::string(base) + "/memory";
  ASSERT_EQ(::mkdir(layout.v1Parents["memory"].c_str(), 0755), 0);

  auto io = kj::setupAsyncIo();
  CgroupWorker worker(io.unixEventPort);
  ASSERT_EQ(::mkdir((std::string(base) + "/unified").c_str(), 0755), 0);
  auto plan = cgroup::SandboxCgroup::planEmpty(layout, "sb-1", false);
  ASSERT_EQ(plan.size(), 2u);
  auto cg = worker.makeEmpty(layout, plan).wait(io.waitScope);
  EXPECT_GE(cg->v2Fd(), 0);
  EXPECT_EQ(cg->directories(), (std::vector<std::string>{layout.v2Parent + "/sb-1",
                                                         layout.v1Parents["memory"] + "/sb-1"}));

  // The v1 directory of the name exists already: refused, and the v2 one
  // the attempt made is gone again.
  ASSERT_EQ(::mkdir((layout.v1Parents["memory"] + "/sb-2").c_str(), 0755), 0);
  try {
    worker.makeEmpty(layout, cgroup::SandboxCgroup::planEmpty(layout, "sb-2", false))
        .wait(io.waitScope);
    ADD_FAILURE() << "a name in use was adopted";
  } catch (const kj::Exception& e) {
    EXPECT_NE(std::string(e.getDescription().cStr()).find("already exists"), std::string::npos)
        << e.getDescription().cStr();
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("already exists"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(exists(layout.v2Parent + "/sb-2"));
  EXPECT_TRUE(exists(layout.v1Parents["memory"] + "/sb-2")) << "not ours: left alone";

  EXPECT_TRUE(cg->tryRemove());
  ::rmdir((layout.v1Parents["memory"] + "/sb-2").c_str());
  ::rmdir(layout.v1Parents["memory"].c_str());
  ::rmdir(layout.v2Parent.c_str());
  ::rmdir((std::string(base) + "/unified").c_str());
  ::rmdir(base);
}

// Many jobs in flight settle, each with its own result, however many the
// worker finishes between two of the loop's wake-ups.
TEST(CgroupWorker, SettlesEveryJobOfABurst) {
  char base[] = "/tmp/gpubox-worker-XXXXXX";
  ASSERT_NE(::mkdtemp(base), nullptr);
  auto io = kj::setupAsyncIo();
  CgroupWorker worker(io.unixEventPort);
  constexpr int kJobs = 500;
  std::vector<kj::Promise<std::vector<int>>> removals;
  for (int i = 0; i < kJobs; ++i) {
    const std::string dir = std::string(base) + "/" + std::to_string(i);
    // Odd ones do not exist: their answer must be theirs, not a neighbour's.
    if (i % 2 == 0) {
      ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
    }
    removals.push_back(worker.remove({dir}));
  }
  for (int i = 0; i < kJobs; ++i)
    EXPECT_EQ(removals[i].wait(io.waitScope), std::vector<int>{i % 2 == 0 ? 0 : ENOENT}) << i;
  EXPECT_EQ(::rmdir(base), 0) << "a directory was left";
}

// A wedged worker (here: a join's open(2) of a FIFO with no reader, which
// waits for one) holds at most a bounded queue: past it a job is refused at
// once, naming the queue, and the loop goes on. Once unwedged, every job
// queued before is carried out.
TEST(CgroupWorker, AWedgedWorkerRefusesJobsPastItsQueueAndRecovers) {
  char base[] = "/tmp/gpubox-worker-XXXXXX";
  ASSERT_NE(::mkdtemp(base), nullptr);
  const std::string fifo = std::string(base) + "/cgroup.procs";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  auto io = kj::setupAsyncIo();
  CgroupWorker worker(io.unixEventPort);
  auto wedged = worker.attach(4321, {fifo});
  std::vector<kj::Promise<std::vector<int>>> queued;
  bool full = false;
  for (int i = 0; i < 20000 && !full; ++i) {
    auto removal = worker.remove({std::string(base) + "/dir-" + std::to_string(i)});
    // A queued removal waits for the worker; a refused one settles at once.
    if (removal.poll(io.waitScope)) {
      EXPECT_EQ(removal.wait(io.waitScope), std::vector<int>{EAGAIN});
      full = true;
    } else {
      queued.push_back(kj::mv(removal));
    }
  }
  // EXPECT, not ASSERT: the worker must be unwedged below, or its stop hangs.
  EXPECT_TRUE(full) << "the queue never filled";
  EXPECT_GT(queued.size(), 1000u);
  // A request's job is refused with a message, not queued.
  std::string refusal;
  try {
    worker.attach(1, {std::string(base) + "/other.procs"}).wait(io.waitScope);
  } catch (const kj::Exception& e) {
    refusal = e.getDescription().cStr();
  }
  EXPECT_NE(refusal.find("cannot queue a cgroup v1 attach"), std::string::npos) << refusal;
  // Unwedge: a reader for the FIFO lets the join's open(2) and write(2) go.
  UniqueFd reader(::open(fifo.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  ASSERT_TRUE(reader);
  wedged.wait(io.waitScope);
  char pid[16] = {};
  EXPECT_GT(::read(reader.get(), pid, sizeof pid - 1), 0);
  EXPECT_STREQ(pid, "4321");
  for (auto& removal : queued) EXPECT_EQ(removal.wait(io.waitScope), std::vector<int>{ENOENT});
  ::unlink(fifo.c_str());
  ::rmdir(base);
}

// At shutdown the worker carries out what is queued before it stops (an
// ended sandbox's cgroup directories are not left behind), though no
// promise settles any more.
TEST(CgroupWorker, CarriesOutQueuedJobsWhenStopped) {
  char base[] = "/tmp/gpubox-worker-XXXXXX";
  ASSERT_NE(::mkdtemp(base), nullptr);
  auto io = kj::setupAsyncIo();
  std::vector<kj::Promise<std::vector<int>>> removals;
  {
    CgroupWorker worker(io.unixEventPort);
    for (int i = 0; i < 100; ++i) {
      const std::string dir = std::string(base) + "/" + std::to_string(i);
      ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
      removals.push_back(worker.remove({dir}));
    }
  }
  removals.clear();
  EXPECT_EQ(::rmdir(base), 0) << "a queued removal was dropped";
}

}  // namespace
}  // namespace gpubox
