// The PostgreSQL CDC source's confirmed-LSN bookkeeping, without a server.
#include "txn_tracker.hpp"

#include <gtest/gtest.h>

using edgeflow::pg::TxnTracker;

TEST(TxnTracker, ConfirmsACommitOnlyOnceEveryEventIsResolved) {
  TxnTracker t;
  auto a = t.open();
  t.add(a, 3);
  t.commit(a, 100);
  t.resolve(a, EF_ACK_DELIVERED);
  t.resolve(a, EF_ACK_REJECTED);  // dead-lettered counts as resolved
  EXPECT_EQ(t.confirmed(), 0u);
  t.resolve(a, EF_ACK_DELIVERED);
  EXPECT_EQ(t.confirmed(), 100u);
  EXPECT_TRUE(t.idle());
}

TEST(TxnTracker, AnUnresolvedTransactionHoldsBackLaterOnes) {
  TxnTracker t;
  auto a = t.open();
  t.add(a);
  t.commit(a, 100);
  auto b = t.open();
  t.add(b);
  t.commit(b, 200);
  t.resolve(b, EF_ACK_DELIVERED);  // acks arrive in any order
  EXPECT_EQ(t.confirmed(), 0u);
  t.resolve(a, EF_ACK_DELIVERED);
  EXPECT_EQ(t.confirmed(), 200u);
}

TEST(TxnTracker, AnEventStillBeingReadIsNotConfirmedEvenWhenAllSoFarAreAcked) {
  TxnTracker t;
  auto a = t.open();
  t.add(a, 2);
  t.resolve(a, EF_ACK_DELIVERED);
  t.resolve(a, EF_ACK_DELIVERED);
  EXPECT_EQ(t.confirmed(), 0u);  // its commit has not been read yet
  EXPECT_FALSE(t.idle());
  t.caught_up(500);  // a keepalive mid-transaction moves nothing
  EXPECT_EQ(t.confirmed(), 0u);
  t.commit(a, 300);
  EXPECT_EQ(t.confirmed(), 300u);
}

TEST(TxnTracker, ARetryStallsConfirmationAndEmptyTransactionsPassThrough) {
  TxnTracker t;
  auto empty = t.open();
  t.commit(empty, 50);  // every change filtered out
  EXPECT_EQ(t.confirmed(), 50u);
  t.caught_up(60);
  EXPECT_EQ(t.confirmed(), 60u);
  auto a = t.open();
  t.add(a);
  t.commit(a, 70);
  t.resolve(a, EF_ACK_RETRY);
  EXPECT_EQ(t.confirmed(), 60u);
  EXPECT_TRUE(t.done(empty));
  EXPECT_FALSE(t.done(a));
  EXPECT_THROW(t.resolve(a + 1, EF_ACK_DELIVERED), std::out_of_range);
}

TEST(TxnTracker, MoreAcksThanEventsIsABug) {
  TxnTracker t;
  auto a = t.open();
  t.add(a);
  t.resolve(a, EF_ACK_DELIVERED);
  EXPECT_THROW(t.resolve(a, EF_ACK_DELIVERED), std::logic_error);
}
