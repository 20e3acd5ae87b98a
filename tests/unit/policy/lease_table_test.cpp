#include "lease_table.hpp"

#include <gtest/gtest.h>

#include <optional>
#include <string>

#include "error.hpp"

namespace gpubox::leases {
namespace {

TEST(LeaseTable, SharedLeasesCountHolders) {
  LeaseTable table;
  EXPECT_EQ(table.holders(0), 0u);
  {
    Lease a = table.acquire({0, 1}, false);
    Lease b = table.acquire({1}, false);
    EXPECT_EQ(table.holders(0), 1u);
    EXPECT_EQ(table.holders(1), 2u);
    EXPECT_FALSE(table.heldExclusively(1));
  }
  EXPECT_EQ(table.holders(0), 0u);
  EXPECT_EQ(table.holders(1), 0u);
}

TEST(LeaseTable, ExclusiveBlocksEveryoneElse) {
  LeaseTable table;
  std::optional<Lease> excl = table.acquire({2}, true);
  EXPECT_EQ(table.holders(2), 1u);
  EXPECT_TRUE(table.heldExclusively(2));
  try {
    (void)table.acquire({2}, false);
    ADD_FAILURE() << "shared lease on an exclusively held GPU";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "GPU minor 2 is held by another sandbox (exclusive lease)");
  }
  EXPECT_THROW((void)table.acquire({2}, true), Error);
  EXPECT_EQ(table.holders(2), 1u) << "failed acquires must not change counts";
  excl.reset();
  EXPECT_EQ(table.holders(2), 0u);
  Lease again = table.acquire({2}, true);
  EXPECT_TRUE(again.held());
}

TEST(LeaseTable, ExclusiveNeedsIdleGpu) {
  LeaseTable table;
  Lease shared = table.acquire({3}, false);
  try {
    (void)table.acquire({3}, true);
    ADD_FAILURE() << "exclusive lease on a shared GPU";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "GPU minor 3 is held by another sandbox (exclusive lease)");
  }
  shared.release();
  EXPECT_EQ(table.holders(3), 0u);
  EXPECT_NO_THROW((void)table.acquire({3}, true));
}

TEST(LeaseTable, AllOrNothing) {
  LeaseTable table;
  Lease held = table.acquire({1}, true);
  EXPECT_THROW((void)table.acquire({0, 1, 2}, false), Error);
  EXPECT_EQ(table.holders(0), 0u) << "no partial lease on 0";
  EXPECT_EQ(table.holders(2), 0u) << "no partial lease on 2";
}

TEST(LeaseTable, DuplicatesCountOnce) {
  LeaseTable table;
  Lease lease = table.acquire({4, 4, 4}, true);
  EXPECT_EQ(lease.minors(), (std::vector<unsigned>{4}));
  EXPECT_EQ(table.holders(4), 1u);
}

TEST(LeaseTable, MoveTransfersOwnership) {
  LeaseTable table;
  Lease a = table.acquire({5}, true);
  Lease b = std::move(a);
  EXPECT_FALSE(a.held());  // NOLINT(bugprone-use-after-move): checking the moved-from state
  EXPECT_TRUE(b.held());
  EXPECT_EQ(table.holders(5), 1u);
  a.release();  // releasing an empty lease does nothing
  EXPECT_EQ(table.holders(5), 1u);

  Lease c = table.acquire({6}, false);
  c = std::move(b);  // drops 6, takes over 5
  EXPECT_EQ(table.holders(6), 0u);
  EXPECT_EQ(table.holders(5), 1u);
  c.release();
  c.release();
  EXPECT_EQ(table.holders(5), 0u);
}

TEST(LeaseTable, LeaseMayOutliveTable) {
  Lease lease;
  {
    LeaseTable table;
    lease = table.acquire({7}, true);
  }
  lease.release();  // must not touch freed memory (ASan would tell)
  SUCCEED();
}

TEST(LeaseTable, EmptyLeaseIsValid) {
  LeaseTable table;
  Lease lease = table.acquire({}, true);
  EXPECT_TRUE(lease.minors().empty());
  EXPECT_NO_THROW((void)table.acquire({0}, true));
}

}  // namespace
}  // namespace gpubox::leases
