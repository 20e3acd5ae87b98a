// The set of live sandboxes' namespaces that the placement check reads
// (peer.hpp): written on the home loop, read on the acceptor thread.
#include <gtest/gtest.h>

#include <thread>

#include "peer.hpp"

namespace gpubox {
namespace {

TEST(SandboxNamespaces, KnowsWhatWasAddedUntilRemoved) {
  SandboxNamespaces set;
  set.add(101, 201);
  EXPECT_TRUE(set.containsPidNs(101));
  EXPECT_TRUE(set.containsUserNs(201));
  EXPECT_FALSE(set.containsPidNs(201));
  EXPECT_FALSE(set.containsUserNs(101));
  set.remove(101, 201);
  EXPECT_FALSE(set.containsPidNs(101));
  EXPECT_FALSE(set.containsUserNs(201));
}

// --user-namespace never: the sandbox's user namespace is the helper's, not
// a mark of it (0), and is never looked for.
TEST(SandboxNamespaces, AUserNamespaceOfZeroIsNotRecorded) {
  SandboxNamespaces set;
  set.add(101, 0);
  EXPECT_TRUE(set.containsPidNs(101));
  EXPECT_FALSE(set.containsUserNs(0));
  set.remove(101, 0);
  EXPECT_FALSE(set.containsPidNs(101));
}

// The kernel reuses a freed namespace's inode number at once: a new
// sandbox may be recorded under it before the ended one that held it is
// removed. Removing the ended one must not unrecord the new one.
TEST(SandboxNamespaces, ARemovalTakesOneRecordOfAReusedInode) {
  SandboxNamespaces set;
  set.add(101, 201);
  set.add(101, 201);
  set.remove(101, 201);
  EXPECT_TRUE(set.containsPidNs(101));
  EXPECT_TRUE(set.containsUserNs(201));
  set.remove(101, 201);
  EXPECT_FALSE(set.containsPidNs(101));
  EXPECT_FALSE(set.containsUserNs(201));
}

// Written and read from two threads at once (what ThreadSanitizer and
// ASan builds watch): every inode a reader is sure is there, it finds.
TEST(SandboxNamespaces, ReadsWhileAnotherThreadWrites) {
  SandboxNamespaces set;
  set.add(7, 8);
  std::thread writer([&] {
    for (ino_t i = 1000; i < 21000; ++i) {
      set.add(i, i + 1);
      set.remove(i, i + 1);
    }
  });
  for (int i = 0; i < 20000; ++i) {
    ASSERT_TRUE(set.containsPidNs(7));
    ASSERT_TRUE(set.containsUserNs(8));
  }
  writer.join();
  EXPECT_FALSE(set.containsPidNs(20999));
}

}  // namespace
}  // namespace gpubox
