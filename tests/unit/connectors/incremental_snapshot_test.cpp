// The watermark window of an incremental snapshot chunk, and its progress file.
#include "incremental.hpp"

#include <gtest/gtest.h>

using edgeflow::pg::ChunkWindow;
using edgeflow::pg::IncrementalState;
using edgeflow::pg::SnapshotRow;

namespace {

std::vector<SnapshotRow> rows(std::initializer_list<int> ids) {
  std::vector<SnapshotRow> out;
  for (int id : ids) out.push_back({"{\"id\":" + std::to_string(id) + ",\"v\":\"x\"}", "{\"id\":" + std::to_string(id) + "}"});
  return out;
}

std::vector<std::string> remaining(const ChunkWindow& w) {
  std::vector<std::string> keys;
  w.each_remaining([&](const SnapshotRow& r) { keys.push_back(r.key); });
  return keys;
}

TEST(ChunkWindow, ChangesBeforeLowDoNotTakeRowsOut) {
  ChunkWindow w("n-1", "public.t", rows({1, 2, 3}));
  w.supersede("{\"id\":2}");  // before LOW: older than the SELECT, the row read is newer
  EXPECT_EQ(remaining(w).size(), 3u);
  EXPECT_EQ(w.superseded(), 0u);
}

TEST(ChunkWindow, ChangesBetweenTheWatermarksTakeTheirRowsOutInKeyOrder) {
  ChunkWindow w("n-1", "public.t", rows({1, 2, 3, 4}));
  w.open();
  w.supersede("{\"id\":3}");
  w.supersede("{\"id\":3}");   // twice: counted once
  w.supersede("{\"id\":99}");  // not in the chunk
  EXPECT_EQ(remaining(w), (std::vector<std::string>{"{\"id\":1}", "{\"id\":2}", "{\"id\":4}"}));
  EXPECT_EQ(w.superseded(), 1u);
  w.supersede_all();  // a TRUNCATE
  EXPECT_TRUE(remaining(w).empty());
  EXPECT_EQ(w.superseded(), 4u);
}

TEST(ChunkWindow, KnowsItsTableWithoutBuildingItsName) {
  ChunkWindow w("n-1", "public.t", rows({1}));
  EXPECT_TRUE(w.is_table("public", "t"));
  EXPECT_FALSE(w.is_table("public", "tt"));
  EXPECT_FALSE(w.is_table("publi", "c.t"));
  EXPECT_FALSE(w.is_table("other", "t"));
}

TEST(ChunkWindow, OnlyChangedColumnsMakeAChunkStale) {
  ChunkWindow w("n-1", "public.t", rows({1}), {"id", "v"});
  w.relation({"id", "v"});  // described again, unchanged: pgoutput does so after any invalidation
  EXPECT_FALSE(w.stale());
  w.relation({"id", "v", "added"});
  EXPECT_TRUE(w.stale());
}

TEST(IncrementalState, RoundTripsAnyBytesAndRefusesGarbage) {
  IncrementalState s;
  s.slot = "edgeflow_orders";
  s.known = {"public.a", "odd schema.t,1 \n"};
  s.pending.push_back({"public.b", {}});
  s.pending.push_back({"public.c", {"42", "", "x y,\nz"}});
  auto back = IncrementalState::parse(s.text());
  ASSERT_TRUE(back);
  EXPECT_EQ(back->slot, s.slot);
  EXPECT_EQ(back->known, s.known);
  ASSERT_EQ(back->pending.size(), 2u);
  EXPECT_TRUE(back->pending[0].after_key.empty());
  EXPECT_EQ(back->pending[1].after_key, (std::vector<std::string>{"42", "", "x y,\nz"}));
  for (std::string bad : {"", "v2 00\n", "v1 0g\n", "v1 61\nknown 6\n", "v1 61\nwhat 61\n", "v1 61\npending 61\n"})
    EXPECT_FALSE(IncrementalState::parse(bad)) << bad;
}

TEST(IncrementalSnapshots, ConnectionsGetAConnectTimeoutUnlessTheDsnSetsOne) {
  using edgeflow::pg::with_connect_timeout;
  EXPECT_EQ(with_connect_timeout("host=db dbname=x", 10), "host=db dbname=x connect_timeout=10");
  EXPECT_EQ(with_connect_timeout("postgresql://u@db/x", 10), "postgresql://u@db/x?connect_timeout=10");
  EXPECT_EQ(with_connect_timeout("postgres://db/x?sslmode=require", 10), "postgres://db/x?sslmode=require&connect_timeout=10");
  EXPECT_EQ(with_connect_timeout("host=db connect_timeout=3", 10), "host=db connect_timeout=3");
}

}  // namespace
