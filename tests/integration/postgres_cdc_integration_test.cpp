// The postgres_cdc source against a real PostgreSQL 15: events, types, TOAST, replica identity,
// schema changes, snapshots, restarts and every misconfiguration the operator can make.
// The source runs in the SDK harness on its own thread; the test acknowledges what it emitted.
#include "postgres_cdc.cpp"

#include "postgres_server.hpp"
#include "test_support.hpp"

#include <edgeflow/host/message.hpp>
#include <edgeflow/testing/harness.hpp>

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <atomic>
#include <map>
#include <set>
#include <thread>

using edgeflow::test::PostgresServer;
using edgeflow::test::TempDir;
using edgeflow::testing::Harness;

namespace {

rapidjson::Document parse(const std::string& s) {
  rapidjson::Document d;
  d.Parse(s.c_str(), s.size());
  EXPECT_FALSE(d.HasParseError()) << s;
  return d;
}

// The source on its own thread, and the events it emitted handed out in order.
class Cdc {
 public:
  Cdc(const std::string& yaml, const std::string& state_dir)
      : r_(yaml, edgeflow::testing::Options{.state_dir = state_dir}) {}

  // Waits for n more events than handed out so far and returns them (parsed), acknowledging them
  // unless told otherwise.
  std::vector<rapidjson::Document> take(size_t n, bool ack = true) {
    auto& h = r_.harness();
    EXPECT_TRUE(h.wait_emitted(taken_ + n, std::chrono::seconds(60)))
        << "got " << h.emitted_count() - taken_ << " of " << n << " events; error: " << r_.error();
    auto all = h.emitted();
    std::vector<rapidjson::Document> out;
    for (size_t i = taken_; i < std::min(all.size(), taken_ + n); ++i) {
      out.push_back(parse(all[i].payload));
      if (ack) h.ack(all[i].token);
    }
    taken_ = std::min(all.size(), taken_ + n);
    return out;
  }
  std::vector<edgeflow::testing::Output> raw() { return r_.harness().emitted(); }
  void ack(uint64_t token) { r_.harness().ack(token); }
  size_t emitted() { return r_.harness().emitted_count(); }
  void stop() { r_.stop(); }
  std::string error() { return r_.error(); }
  std::optional<double> metric(const std::string& name) { return r_.harness().metric(name); }

 private:
  edgeflow::testing::RunningSource<PostgresCdcSource> r_;
  size_t taken_ = 0;
};

std::string str(const rapidjson::Value& v) {
  if (v.IsString()) return v.GetString();
  if (v.IsNull()) return "null";
  if (v.IsBool()) return v.GetBool() ? "true" : "false";
  if (v.IsInt64()) return std::to_string(v.GetInt64());
  return "?";
}

class PostgresCdc : public ::testing::Test {
 protected:
  PostgresServer pg;
  TempDir dir;
  std::string state = dir.file("state");

  void SetUp() override {
    std::filesystem::create_directories(state);
    pg.psql("CREATE TABLE items (id int PRIMARY KEY, name text, qty int)");
  }

  std::string config(const std::string& extra = "") const {
    return "dsn: \"" + pg.dsn() + "\"\nslot: s1\npublication: p1\ntables: [items]\nsnapshot: never\n" +
           "status_interval: 100ms\n" + extra;
  }

  std::string confirmed(const std::string& slot = "s1") const {
    return pg.psql("SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = '" + slot + "'");
  }

  // The slot's confirmed LSN as a number; the server is polled (there is no notification for it).
  uint64_t confirmed_lsn(const std::string& slot = "s1") const {
    return edgeflow::pg::parse_lsn(confirmed(slot)).value_or(0);
  }
  bool wait_confirmed_at_least(uint64_t lsn, const std::string& slot = "s1") const {
    return edgeflow::test::poll_until([&] { return confirmed_lsn(slot) >= lsn; });
  }
  uint64_t current_lsn() const { return edgeflow::pg::parse_lsn(pg.psql("SELECT pg_current_wal_lsn()")).value_or(0); }
};

TEST_F(PostgresCdc, InsertUpdateDeleteAndTruncateAsCanonicalEvents) {
  Cdc cdc(config(), state);
  pg.psql("INSERT INTO items VALUES (1, 'bolt', 10); UPDATE items SET qty = 11 WHERE id = 1; "
          "DELETE FROM items WHERE id = 1; TRUNCATE items");
  auto ev = cdc.take(4);
  ASSERT_EQ(ev.size(), 4u);
  EXPECT_EQ(str(ev[0]["op"]), "c");
  EXPECT_TRUE(ev[0]["before"].IsNull());
  EXPECT_EQ(ev[0]["after"]["id"].GetInt(), 1);
  EXPECT_EQ(str(ev[0]["after"]["name"]), "bolt");
  EXPECT_EQ(ev[0]["key"]["id"].GetInt(), 1);
  EXPECT_EQ(ev[0]["key"].MemberCount(), 1u);
  const auto& src = ev[0]["source"];
  EXPECT_EQ(str(src["db"]), "postgres");
  EXPECT_EQ(str(src["schema"]), "public");
  EXPECT_EQ(str(src["table"]), "items");
  EXPECT_TRUE(edgeflow::pg::parse_lsn(str(src["lsn"])).has_value()) << str(src["lsn"]);
  EXPECT_TRUE(src["txid"].IsInt64());
  EXPECT_EQ(str(src["commit_ts"]).size(), std::string("2026-11-24T16:00:00.123456Z").size()) << str(src["commit_ts"]);

  EXPECT_EQ(str(ev[1]["op"]), "u");
  EXPECT_TRUE(ev[1]["before"].IsNull());  // default replica identity: no before-image
  EXPECT_EQ(ev[1]["after"]["qty"].GetInt(), 11);
  EXPECT_NE(str(ev[1]["source"]["txid"]), str(ev[0]["source"]["txid"]));

  EXPECT_EQ(str(ev[2]["op"]), "d");
  EXPECT_TRUE(ev[2]["after"].IsNull());
  EXPECT_EQ(ev[2]["before"]["id"].GetInt(), 1);
  EXPECT_EQ(ev[2]["before"].MemberCount(), 1u);  // only the key columns are in the WAL
  EXPECT_EQ(ev[2]["key"]["id"].GetInt(), 1);

  EXPECT_EQ(str(ev[3]["op"]), "t");
  EXPECT_EQ(str(ev[3]["source"]["table"]), "items");
  EXPECT_EQ(cdc.raw()[0].key, "{\"id\":1}");
  EXPECT_EQ(cdc.error(), "");
}

TEST_F(PostgresCdc, EveryCommonTypeBecomesTheRightJson) {
  pg.psql("CREATE TYPE mood AS ENUM ('sad', 'happy');"
          "CREATE TABLE types (id bigint PRIMARY KEY, i2 smallint, i4 int, n numeric, f float8, fnan float8, "
          "finf float4, b bool, t text, v varchar(10), j json, jb jsonb, u uuid, d date, tm time, ts timestamp, "
          "tz timestamptz, iv interval, by bytea, arr int[], tarr text[], m mood, nul text)");
  Cdc cdc("dsn: \"" + pg.dsn() + "\"\nslot: s1\npublication: p1\ntables: [types]\nsnapshot: never\n", state);
  pg.psql("SET TimeZone = 'Europe/Paris'; INSERT INTO types VALUES (9007199254740993, -32768, 2147483647, "
          "12345678901234567890.000000001, 1.5, 'NaN', '-Infinity', true, 'quote \" back \\ é', 'abc', "
          "'{\"a\": [1, 2]}', '{\"z\": {\"y\": null}}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '2024-02-29', "
          "'13:45:01.5', '2024-02-29 13:45:01.123456', '2024-02-29 13:45:01.5+01', '1 year 2 mons 3 days 04:05:06', "
          "'\\x00ff10', '{{1,2},{3,NULL}}', '{\"a,b\",c}', 'happy', NULL)");
  auto ev = cdc.take(1);
  ASSERT_EQ(ev.size(), 1u);
  const auto& a = ev[0]["after"];
  EXPECT_EQ(a["id"].GetInt64(), 9007199254740993);
  EXPECT_EQ(a["i2"].GetInt(), -32768);
  EXPECT_EQ(a["i4"].GetInt(), 2147483647);
  EXPECT_EQ(str(a["n"]), "12345678901234567890.000000001");
  EXPECT_EQ(a["f"].GetDouble(), 1.5);
  EXPECT_EQ(str(a["fnan"]), "NaN");
  EXPECT_EQ(str(a["finf"]), "-Infinity");
  EXPECT_TRUE(a["b"].GetBool());
  EXPECT_EQ(str(a["t"]), "quote \" back \\ é");
  EXPECT_EQ(str(a["v"]), "abc");
  EXPECT_EQ(a["j"]["a"][1].GetInt(), 2);
  EXPECT_TRUE(a["jb"]["z"]["y"].IsNull());
  EXPECT_EQ(str(a["u"]), "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
  EXPECT_EQ(str(a["d"]), "2024-02-29");
  EXPECT_EQ(str(a["tm"]), "13:45:01.5");
  EXPECT_EQ(str(a["ts"]), "2024-02-29T13:45:01.123456");
  EXPECT_EQ(str(a["tz"]), "2024-02-29T12:45:01.5Z");
  EXPECT_EQ(str(a["iv"]), "1 year 2 mons 3 days 04:05:06");
  EXPECT_EQ(str(a["by"]), "AP8Q");
  EXPECT_EQ(a["arr"][1][0].GetInt(), 3);
  EXPECT_TRUE(a["arr"][1][1].IsNull());
  EXPECT_EQ(str(a["tarr"][0]), "a,b");
  EXPECT_EQ(str(a["m"]), "happy");
  EXPECT_TRUE(a["nul"].IsNull());
}

TEST_F(PostgresCdc, MultiRowInsertAndCopyDeliverEveryRowOnce) {
  Cdc cdc(config(), state);
  pg.psql("INSERT INTO items SELECT g, 'n' || g, g FROM generate_series(1, 500) g");
  std::ofstream(dir.file("rows.csv")) << "1001,a,1\n1002,b,2\n1003,c,3\n";
  pg.psql("\\copy items FROM '" + dir.file("rows.csv") + "' WITH (FORMAT csv)");
  auto ev = cdc.take(503);
  std::set<int> ids;
  for (auto& e : ev) ids.insert(e["after"]["id"].GetInt());
  EXPECT_EQ(ids.size(), 503u);
  EXPECT_EQ(*ids.rbegin(), 1003);
  EXPECT_EQ(str(ev[0]["source"]["txid"]), str(ev[499]["source"]["txid"]));
  uint64_t end = current_lsn();
  EXPECT_TRUE(wait_confirmed_at_least(end)) << confirmed() << " < " << edgeflow::pg::format_lsn(end);
  // Published with the status update that confirmed it.
  EXPECT_EQ(cdc.metric("events"), 503.0);
  EXPECT_EQ(cdc.metric("replication_lag_seconds"), 0.0);
}

TEST_F(PostgresCdc, TheConfirmedLsnWaitsForEveryEventOfATransaction) {
  {
    Cdc cdc(config(), state);
    pg.psql("INSERT INTO items VALUES (1, 'a', 1)");
    cdc.take(1);
    ASSERT_TRUE(wait_confirmed_at_least(current_lsn()));
    uint64_t before_a = current_lsn();
    pg.psql("INSERT INTO items SELECT g, 'x', g FROM generate_series(2, 4) g");  // transaction A
    pg.psql("INSERT INTO items VALUES (100, 'b', 0)");                          // transaction B
    cdc.take(4, /*ack=*/false);
    auto raw = cdc.raw();
    cdc.ack(raw[2].token);
    cdc.ack(raw[3].token);
    cdc.ack(raw[4].token);  // B whole, A but one: stopping reports the confirmed LSN
    cdc.stop();
    EXPECT_LE(confirmed_lsn(), before_a) << confirmed();
    EXPECT_GT(cdc.metric("replication_lag_bytes").value_or(0), 0.0);  // A and B are not confirmed
    EXPECT_GE(cdc.metric("replication_lag_seconds").value_or(-1), 0.0);
  }
  Cdc again(config(), state);
  auto ev = again.take(4);
  std::vector<int> ids;
  for (auto& e : ev) ids.push_back(e["after"]["id"].GetInt());
  EXPECT_EQ(ids, (std::vector<int>{2, 3, 4, 100}));
}

TEST_F(PostgresCdc, AHundredThousandRowTransaction) {
  Cdc cdc(config("batch_size: 4096\n"), state);
  pg.psql("INSERT INTO items SELECT g, 'n', g FROM generate_series(1, 100000) g");
  auto ev = cdc.take(100000);
  ASSERT_EQ(ev.size(), 100000u);
  int64_t sum = 0;
  for (auto& e : ev) sum += e["after"]["id"].GetInt();
  EXPECT_EQ(sum, int64_t(100000) * 100001 / 2);
  EXPECT_TRUE(wait_confirmed_at_least(current_lsn()));
}

TEST_F(PostgresCdc, UnchangedToastIsMarkedNeverNull) {
  pg.psql("CREATE TABLE docs (id int PRIMARY KEY, body text, n int); ALTER TABLE docs ALTER body SET STORAGE EXTERNAL");
  Cdc cdc("dsn: \"" + pg.dsn() + "\"\nslot: s1\npublication: p1\ntables: [docs]\nsnapshot: never\n", state);
  pg.psql("INSERT INTO docs VALUES (1, repeat('x', 10000), 1); UPDATE docs SET n = 2 WHERE id = 1");
  auto ev = cdc.take(2);
  EXPECT_EQ(str(ev[0]["after"]["body"]).size(), 10000u);
  EXPECT_FALSE(ev[1]["after"].HasMember("body"));
  EXPECT_EQ(ev[1]["after"]["n"].GetInt(), 2);
  ASSERT_TRUE(ev[1].HasMember("unchanged"));
  EXPECT_EQ(str(ev[1]["unchanged"][0]), "body");
}

TEST_F(PostgresCdc, ReplicaIdentityFullCarriesTheBeforeImage) {
  pg.psql("ALTER TABLE items REPLICA IDENTITY FULL; INSERT INTO items VALUES (1, 'old', 1)");
  Cdc cdc(config(), state);
  pg.psql("UPDATE items SET name = 'new' WHERE id = 1; DELETE FROM items WHERE id = 1");
  auto ev = cdc.take(2);
  EXPECT_EQ(str(ev[0]["before"]["name"]), "old");
  EXPECT_EQ(str(ev[0]["after"]["name"]), "new");
  EXPECT_EQ(str(ev[1]["before"]["name"]), "new");
  EXPECT_EQ(ev[1]["before"]["qty"].GetInt(), 1);
}

TEST_F(PostgresCdc, UnderReplicaIdentityFullTheKeyIsThePrimaryKeyInSnapshotAndStream) {
  pg.psql("CREATE TABLE pairs (a int, b int, note text, PRIMARY KEY (b, a)); ALTER TABLE pairs REPLICA IDENTITY FULL;"
          "INSERT INTO pairs VALUES (1, 2, 'snap')");
  Cdc cdc("dsn: \"" + pg.dsn() + "\"\nslot: s1\npublication: p1\ntables: [pairs]\nsnapshot: initial\n", state);
  pg.psql("UPDATE pairs SET note = 'new' WHERE a = 1; DELETE FROM pairs WHERE a = 1");
  auto ev = cdc.take(3);
  ASSERT_EQ(ev.size(), 3u);
  EXPECT_EQ(str(ev[0]["op"]), "r");
  for (auto& e : ev) {
    EXPECT_EQ(e["key"].MemberCount(), 2u) << str(e["op"]);
    EXPECT_EQ(e["key"]["a"].GetInt(), 1);
    EXPECT_EQ(e["key"]["b"].GetInt(), 2);
  }
  EXPECT_EQ(str(ev[2]["before"]["note"]), "new");  // the whole old row is still the before-image
  auto raw = cdc.raw();
  EXPECT_EQ(raw[0].key, "{\"a\":1,\"b\":2}");  // in table order, as pgoutput flags key columns
  EXPECT_EQ(raw[1].key, raw[0].key);
  EXPECT_EQ(raw[2].key, raw[0].key);
}

TEST_F(PostgresCdc, ColumnsAddedAndDroppedMidStreamArePickedUp) {
  Cdc cdc(config(), state);
  pg.psql("INSERT INTO items VALUES (1, 'a', 1)");
  cdc.take(1);
  pg.psql("ALTER TABLE items ADD COLUMN color text DEFAULT 'red'; INSERT INTO items VALUES (2, 'b', 2, 'blue')");
  pg.psql("ALTER TABLE items DROP COLUMN qty; INSERT INTO items VALUES (3, 'c', 'green')");
  auto ev = cdc.take(2);
  EXPECT_EQ(str(ev[0]["after"]["color"]), "blue");
  EXPECT_EQ(ev[0]["after"]["qty"].GetInt(), 2);
  EXPECT_EQ(str(ev[1]["after"]["color"]), "green");
  EXPECT_FALSE(ev[1]["after"].HasMember("qty"));
}

TEST_F(PostgresCdc, TransactionEventsAndLogicalMessages) {
  Cdc cdc(config("transaction_events: true\n"), state);
  pg.psql("BEGIN; INSERT INTO items VALUES (1, 'a', 1); SELECT pg_logical_emit_message(true, 'outbox', '{\"order\":1}'); COMMIT;"
          "SELECT pg_logical_emit_message(false, 'ping', 'x');"
          // bytea content that is not UTF-8: kept exactly, in base64, and the event is still JSON.
          "SELECT pg_logical_emit_message(false, 'bin', '\\xff00fe'::bytea)");
  auto ev = cdc.take(6);
  EXPECT_EQ(str(ev[0]["op"]), "begin");
  EXPECT_EQ(str(ev[1]["op"]), "c");
  EXPECT_EQ(str(ev[2]["op"]), "m");
  EXPECT_EQ(str(ev[2]["message"]["prefix"]), "outbox");
  EXPECT_EQ(str(ev[2]["message"]["content"]), "{\"order\":1}");
  EXPECT_EQ(str(ev[2]["source"]["txid"]), str(ev[1]["source"]["txid"]));
  EXPECT_EQ(str(ev[3]["op"]), "commit");
  EXPECT_EQ(ev[3]["events"].GetInt(), 2);
  EXPECT_EQ(str(ev[4]["op"]), "m");
  EXPECT_FALSE(ev[4]["message"]["transactional"].GetBool());
  EXPECT_EQ(str(ev[5]["message"]["prefix"]), "bin");
  EXPECT_FALSE(ev[5]["message"].HasMember("content"));
  EXPECT_EQ(str(ev[5]["message"]["content_base64"]), "/wD+");
  EXPECT_TRUE(wait_confirmed_at_least(current_lsn()));
}

TEST_F(PostgresCdc, TheHeartbeatQueryRunsOnItsOwnConnection) {
  pg.psql("CREATE TABLE hb (id int PRIMARY KEY, at timestamptz)");
  Cdc cdc("dsn: \"" + pg.dsn() + "\"\nslot: s1\npublication: p1\ntables: [hb]\nsnapshot: never\n"
          "heartbeat_interval: 50ms\nheartbeat_query: INSERT INTO hb VALUES (1, now()) "
          "ON CONFLICT (id) DO UPDATE SET at = now()\n", state);
  auto ev = cdc.take(2);  // the heartbeat's own writes come back through the stream
  EXPECT_EQ(str(ev[0]["op"]), "c");
  EXPECT_EQ(str(ev[1]["op"]), "u");
  EXPECT_EQ(str(ev[1]["source"]["table"]), "hb");
}

TEST_F(PostgresCdc, ARestartResumesAfterTheLastFullyAcknowledgedTransaction) {
  {
    Cdc cdc(config(), state);
    pg.psql("INSERT INTO items VALUES (1, 'a', 1)");
    cdc.take(1);
    ASSERT_TRUE(wait_confirmed_at_least(current_lsn()));
    pg.psql("INSERT INTO items VALUES (2, 'b', 2), (3, 'c', 3)");
    auto ev = cdc.take(2, false);
    cdc.ack(cdc.raw()[1].token);  // one of the two: the transaction stays unconfirmed
    cdc.stop();
  }
  Cdc again(config(), state);
  auto ev = again.take(2);
  EXPECT_EQ(ev[0]["after"]["id"].GetInt(), 2);
  EXPECT_EQ(ev[1]["after"]["id"].GetInt(), 3);
  pg.psql("INSERT INTO items VALUES (4, 'd', 4)");
  auto next = again.take(1);
  EXPECT_EQ(next[0]["after"]["id"].GetInt(), 4);  // and nothing from before it again
  EXPECT_EQ(again.emitted(), 3u);
}

TEST_F(PostgresCdc, AnIdleSlotKeepsUpWithWalItDoesNotCapture) {
  pg.psql("CREATE TABLE other (id int)");
  Cdc cdc(config(), state);
  pg.psql("INSERT INTO items VALUES (1, 'a', 1)");
  cdc.take(1);
  for (int i = 0; i < 20; ++i) pg.psql("INSERT INTO other SELECT generate_series(1, 1000)");
  uint64_t end = current_lsn();
  EXPECT_TRUE(wait_confirmed_at_least(end)) << confirmed() << " < " << edgeflow::pg::format_lsn(end);
  EXPECT_EQ(cdc.emitted(), 1u);
}

TEST_F(PostgresCdc, ExcludedTablesEmitNothingAndDoNotHoldTheSlotBack) {
  pg.psql("CREATE TABLE noisy (id int PRIMARY KEY)");
  Cdc cdc("dsn: \"" + pg.dsn() + "\"\nslot: s1\npublication: everything\nexclude_tables: [noisy]\n"
          "snapshot: never\nstatus_interval: 100ms\n", state);
  pg.psql("INSERT INTO noisy SELECT generate_series(1, 100); INSERT INTO items VALUES (1, 'a', 1)");
  auto ev = cdc.take(1);
  EXPECT_EQ(str(ev[0]["source"]["table"]), "items");
  EXPECT_EQ(pg.psql("SELECT puballtables FROM pg_publication WHERE pubname = 'everything'"), "t");
  pg.psql("INSERT INTO noisy SELECT generate_series(101, 200)");
  EXPECT_TRUE(wait_confirmed_at_least(current_lsn()));
  EXPECT_EQ(cdc.emitted(), 1u);
}

TEST_F(PostgresCdc, ATemporarySlotLeavesNothingBehind) {
  Cdc cdc(config("temporary_slot: true\n"), state);
  pg.psql("INSERT INTO items VALUES (1, 'a', 1)");
  cdc.take(1);
  EXPECT_EQ(pg.psql("SELECT temporary FROM pg_replication_slots WHERE slot_name = 's1'"), "t");
  cdc.stop();
  // The walsender ends with the connection; its slot goes with it.
  EXPECT_TRUE(edgeflow::test::poll_until([&] { return pg.psql("SELECT count(*) FROM pg_replication_slots") == "0"; }));
}

TEST_F(PostgresCdc, SnapshotThenStreamWithNoGapAndNoOverlap) {
  pg.psql("INSERT INTO items SELECT g, 'snap', g FROM generate_series(1, 3000) g");
  std::atomic<bool> writing{true};
  std::thread writer([&] {
    for (int i = 3001; i <= 3200; ++i) pg.psql("INSERT INTO items VALUES (" + std::to_string(i) + ", 'live', 0)");
    writing = false;
  });
  Cdc cdc("dsn: \"" + pg.dsn() + "\"\nslot: s1\npublication: p1\ntables: [items]\nsnapshot: initial\n"
          "snapshot_chunk_rows: 500\n", state);
  writer.join();
  pg.psql("INSERT INTO items VALUES (5000, 'last', 0)");
  std::map<int, int> seen;
  size_t snapshot_rows = 0;
  while (!seen.count(5000)) {
    auto ev = cdc.take(1);
    ASSERT_EQ(ev.size(), 1u);
    if (str(ev[0]["op"]) == "r") ++snapshot_rows;
    seen[ev[0]["after"]["id"].GetInt()]++;
  }
  EXPECT_GE(snapshot_rows, 3000u);
  EXPECT_EQ(cdc.metric("snapshot_rows"), double(snapshot_rows));  // some concurrent rows may predate it
  EXPECT_EQ(seen.size(), 3201u);
  for (auto& [id, n] : seen) EXPECT_EQ(n, 1) << "row " << id << " seen " << n << " times";
}

TEST_F(PostgresCdc, SnapshotRowsCarryTheSlotsConsistentPoint) {
  pg.psql("INSERT INTO items SELECT g, 'snap', g FROM generate_series(1, 5) g");
  Cdc cdc("dsn: \"" + pg.dsn() + "\"\nslot: s1\npublication: p1\ntables: [items]\nsnapshot: initial\n", state);
  auto snap = cdc.take(5);
  // The slot's first confirmed position is its consistent point until anything is confirmed past it.
  std::string point = pg.psql("SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 's1'");
  for (auto& e : snap) EXPECT_EQ(str(e["source"]["lsn"]), point);
  pg.psql("INSERT INTO items VALUES (6, 'live', 6)");
  auto live = cdc.take(1);
  EXPECT_GE(edgeflow::pg::parse_lsn(str(live[0]["source"]["lsn"])).value_or(0), edgeflow::pg::parse_lsn(point).value_or(0));
}

TEST_F(PostgresCdc, AnInterruptedSnapshotIsTakenAgain) {
  pg.psql("INSERT INTO items SELECT g, 'snap', g FROM generate_series(1, 100) g");
  std::string yaml = "dsn: \"" + pg.dsn() + "\"\nslot: s1\npublication: p1\nsnapshot: initial\n";
  {
    Cdc cdc(yaml, state);
    cdc.take(10);  // 90 rows never acknowledged
  }
  Cdc again(yaml, state);
  auto ev = again.take(100);
  std::set<int> ids;
  for (auto& e : ev) ids.insert(e["after"]["id"].GetInt());
  EXPECT_EQ(ids.size(), 100u);
}

TEST_F(PostgresCdc, InitialOnlyReadsTheTablesAndEnds) {
  pg.psql("INSERT INTO items SELECT g, 'snap', g FROM generate_series(1, 10) g");
  Harness<PostgresCdcSource> h("dsn: \"" + pg.dsn() + "\"\npublication: p1\nsnapshot: initial_only\n");
  std::thread acker([&] {
    h.wait_emitted(10);
    h.ack_all_emitted();
  });
  h.run();
  acker.join();
  EXPECT_EQ(h.emitted().size(), 10u);
  EXPECT_EQ(pg.psql("SELECT count(*) FROM pg_replication_slots"), "0");
  // Without a slot the rows carry the WAL position at which the snapshot was taken.
  uint64_t before = current_lsn();
  auto row = parse(h.emitted()[0].payload);
  uint64_t at = edgeflow::pg::parse_lsn(str(row["source"]["lsn"])).value_or(0);
  EXPECT_GT(at, 0u);
  EXPECT_LE(at, before);
}

// A server that streams any transaction over 64kB of changes while it runs.
class PostgresCdcStreaming : public ::testing::Test {
 protected:
  PostgresServer pg{"logical_decoding_work_mem = 64kB"};
  TempDir dir;
  std::string state = dir.file("state");
  void SetUp() override {
    std::filesystem::create_directories(state);
    pg.psql("CREATE TABLE items (id int PRIMARY KEY, pad text)");
  }
  std::string config() const {
    return "dsn: \"" + pg.dsn() + "\"\nslot: s1\npublication: p1\ntables: [items]\nsnapshot: never\n";
  }
  std::string streamed_txns() const {
    return pg.psql("SELECT stream_txns FROM pg_stat_replication_slots WHERE slot_name = 's1'");
  }
};

TEST_F(PostgresCdcStreaming, ALargeTransactionIsStreamedAndEmittedWholeAtItsCommit) {
  Cdc cdc(config(), state);
  pg.psql("INSERT INTO items SELECT g, repeat('x', 100) FROM generate_series(1, 5000) g");
  auto ev = cdc.take(5000);
  std::set<int> ids;
  for (auto& e : ev) {
    ids.insert(e["after"]["id"].GetInt());
    EXPECT_EQ(str(e["source"]["txid"]), str(ev[0]["source"]["txid"]));
    EXPECT_EQ(str(e["source"]["commit_ts"]), str(ev[0]["source"]["commit_ts"]));
  }
  EXPECT_EQ(ids.size(), 5000u);
  // The server's statistics say it really streamed (they are published asynchronously: poll).
  edgeflow::test::poll_until([&] { return streamed_txns() != "0"; });
  EXPECT_EQ(streamed_txns(), "1");
}

TEST_F(PostgresCdcStreaming, AbortedTransactionsAndRolledBackSavepointsEmitNothing) {
  Cdc cdc(config(), state);
  pg.psql("BEGIN; INSERT INTO items SELECT g, repeat('x', 100) FROM generate_series(1, 5000) g; ROLLBACK;"
          "BEGIN; INSERT INTO items SELECT g, repeat('x', 100) FROM generate_series(10001, 13000) g;"
          "SAVEPOINT s; INSERT INTO items SELECT g, repeat('x', 100) FROM generate_series(20001, 23000) g;"
          "ROLLBACK TO s; INSERT INTO items VALUES (30001, 'after'); COMMIT;"
          "INSERT INTO items VALUES (40001, 'marker')");
  auto ev = cdc.take(3002);
  std::set<int> ids;
  for (auto& e : ev) ids.insert(e["after"]["id"].GetInt());
  EXPECT_EQ(ids.size(), 3002u);
  EXPECT_EQ(*ids.begin(), 10001);
  EXPECT_TRUE(ids.count(30001));
  EXPECT_EQ(*ids.rbegin(), 40001);
  EXPECT_EQ(ids.lower_bound(20001), ids.find(30001));  // nothing of the rolled-back savepoint
}

// ---------------------------------------------------------------------------------------------
// Misconfiguration: each a clear error at start

std::string start_error(const std::string& yaml) {
  try {
    Harness<PostgresCdcSource> h(yaml);
    h.start();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(PostgresCdcErrors, WalLevelNotLogical) {
  PostgresServer pg("wal_level = replica");
  auto e = start_error("dsn: \"" + pg.dsn() + "\"\n");
  EXPECT_NE(e.find("wal_level = replica"), std::string::npos) << e;
  EXPECT_NE(e.find("ALTER SYSTEM SET wal_level = logical"), std::string::npos) << e;
}

TEST(PostgresCdcErrors, MissingReplicationPrivilegeBadPasswordAndBadDsn) {
  PostgresServer pg("password_encryption = 'scram-sha-256'", "host all alice 127.0.0.1/32 scram-sha-256");
  pg.psql("CREATE ROLE bob LOGIN; CREATE ROLE alice LOGIN REPLICATION PASSWORD 'right-one'");
  std::string base = "host=127.0.0.1 port=" + std::to_string(pg.port()) + " dbname=postgres ";
  auto e = start_error("dsn: \"" + base + "user=bob\"\n");
  EXPECT_NE(e.find("REPLICATION"), std::string::npos) << e;
  EXPECT_NE(e.find("ALTER ROLE"), std::string::npos) << e;
  e = start_error("dsn: \"" + base + "user=alice password=wrong-secret\"\n");
  EXPECT_NE(e.find("password authentication failed"), std::string::npos) << e;
  EXPECT_EQ(e.find("wrong-secret"), std::string::npos) << e;
  e = start_error("dsn: \"host=127.0.0.1 port=1 user=x password=hunter2 connect_timeout=5\"\n");
  EXPECT_NE(e.find("cannot connect"), std::string::npos) << e;
  EXPECT_EQ(e.find("hunter2"), std::string::npos) << e;
  e = start_error("dsn: \"no-equals-sign password=hunter2\"\n");
  EXPECT_NE(e.find("<harness>:1:"), std::string::npos) << e;
  EXPECT_NE(e.find("does not parse"), std::string::npos) << e;
  EXPECT_EQ(e.find("hunter2"), std::string::npos) << e;
  // A misspelt keyword is named, with the keyword meant.
  e = start_error("dsn: \"hostt=127.0.0.1 password=hunter2\"\n");
  EXPECT_NE(e.find("invalid connection option \"hostt\"; did you mean \"host\"?"), std::string::npos) << e;
  EXPECT_EQ(e.find("hunter2"), std::string::npos) << e;
  e = start_error("dsn: \"postgresql://x:hunter2@127.0.0.1/db?sslmod=require\"\n");
  EXPECT_NE(e.find("\"sslmod\"; did you mean \"sslmode\"?"), std::string::npos) << e;
  EXPECT_EQ(e.find("hunter2"), std::string::npos) << e;
}

TEST_F(PostgresCdc, UnknownTableMissingPublicationAndMissingSlotAreExplained) {
  auto e = start_error("dsn: \"" + pg.dsn() + "\"\ntables: [public.nope]\n");
  EXPECT_NE(e.find("<harness>:2:"), std::string::npos) << e;
  EXPECT_NE(e.find("table public.nope does not exist"), std::string::npos) << e;
  e = start_error("dsn: \"" + pg.dsn() + "\"\npublication: nopub\ncreate_publication: false\n");
  EXPECT_NE(e.find("publication nopub does not exist"), std::string::npos) << e;
  EXPECT_NE(e.find("CREATE PUBLICATION nopub FOR ALL TABLES"), std::string::npos) << e;
  pg.psql("CREATE TABLE lonely (id int PRIMARY KEY); CREATE PUBLICATION justitems FOR TABLE items");
  e = start_error("dsn: \"" + pg.dsn() + "\"\npublication: justitems\ntables: [lonely]\n");
  EXPECT_NE(e.find("table public.lonely is not in publication justitems"), std::string::npos) << e;
  EXPECT_NE(e.find("ALTER PUBLICATION justitems ADD TABLE public.lonely"), std::string::npos) << e;
  e = start_error("dsn: \"" + pg.dsn() + "\"\npublication: justitems\nslot: noslot\ncreate_slot: false\n");
  EXPECT_NE(e.find("replication slot noslot does not exist"), std::string::npos) << e;
  EXPECT_NE(e.find("pg_create_logical_replication_slot('noslot', 'pgoutput')"), std::string::npos) << e;
  EXPECT_NE(start_error("dsn: x\nend_lsn: nope\n").find("end_lsn \"nope\" is not an LSN"), std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// Partitioned tables and renames: never zero rows in silence

class PostgresCdcPartitions : public PostgresCdc {
 protected:
  void SetUp() override {
    PostgresCdc::SetUp();
    pg.psql("CREATE TABLE readings (id int, at date, v int, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);"
            "CREATE TABLE readings_2025 PARTITION OF readings FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');"
            "CREATE TABLE readings_2026 PARTITION OF readings FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');"
            "INSERT INTO readings VALUES (1, '2025-06-01', 10), (2, '2026-06-01', 20)");
  }
  std::string yaml(const std::string& extra) const { return "dsn: \"" + pg.dsn() + "\"\nslot: s1\n" + extra; }
};

TEST_F(PostgresCdcPartitions, APartitionedTableIsCapturedInSnapshotAndStream) {
  Cdc cdc(yaml("publication: p1\ntables: [readings]\nsnapshot: initial\n"), state);
  auto snap = cdc.take(2);
  ASSERT_EQ(snap.size(), 2u);
  std::set<int> ids;
  for (auto& e : snap) {
    EXPECT_EQ(str(e["op"]), "r");
    EXPECT_EQ(str(e["source"]["table"]), "readings");
    ids.insert(e["after"]["id"].GetInt());
  }
  EXPECT_EQ(ids, (std::set<int>{1, 2}));
  EXPECT_EQ(pg.psql("SELECT pubviaroot FROM pg_publication WHERE pubname = 'p1'"), "t");
  pg.psql("INSERT INTO readings VALUES (3, '2025-07-01', 30), (4, '2026-07-01', 40);"
          "UPDATE readings SET v = 21 WHERE id = 2; DELETE FROM readings WHERE id = 1");
  auto ev = cdc.take(4);
  ASSERT_EQ(ev.size(), 4u);
  for (auto& e : ev) EXPECT_EQ(str(e["source"]["table"]), "readings");
  EXPECT_EQ(str(ev[0]["op"]), "c");
  EXPECT_EQ(str(ev[1]["op"]), "c");
  EXPECT_EQ(str(ev[2]["op"]), "u");
  EXPECT_EQ(ev[2]["after"]["v"].GetInt(), 21);
  EXPECT_EQ(str(ev[3]["op"]), "d");
  EXPECT_EQ(ev[3]["key"]["id"].GetInt(), 1);
  EXPECT_EQ(str(ev[3]["key"]["at"]), "2025-06-01");
}

TEST_F(PostgresCdcPartitions, AListedTableThePublicationDoesNotSendIsAnErrorWithAdviceThatWorks) {
  // Published leaf by leaf: nothing would arrive under the partitioned table's name.
  pg.psql("CREATE PUBLICATION leaves FOR TABLE readings");
  auto e = start_error(yaml("publication: leaves\ntables: [readings]\n"));
  EXPECT_NE(e.find("<harness>:4:"), std::string::npos) << e;
  EXPECT_NE(e.find("table public.readings is partitioned"), std::string::npos) << e;
  EXPECT_NE(e.find("ALTER PUBLICATION leaves SET (publish_via_partition_root = true);"), std::string::npos) << e;
  pg.psql("ALTER PUBLICATION leaves SET (publish_via_partition_root = true)");
  EXPECT_EQ(start_error(yaml("publication: leaves\ntables: [readings]\nsnapshot: never\n")), "(no error)");

  // Published under the root: a partition listed alone would receive nothing.
  e = start_error(yaml("publication: leaves\ntables: [readings_2026]\n"));
  EXPECT_NE(e.find("table public.readings_2026 is a partition of readings"), std::string::npos) << e;
  EXPECT_NE(e.find("list readings in tables instead"), std::string::npos) << e;

  // FOR ALL TABLES never sends an unlogged table.
  pg.psql("CREATE UNLOGGED TABLE scratch (id int PRIMARY KEY); CREATE PUBLICATION everything FOR ALL TABLES");
  e = start_error(yaml("publication: everything\ntables: [scratch]\n"));
  EXPECT_NE(e.find("table public.scratch is unlogged"), std::string::npos) << e;
  EXPECT_NE(e.find("ALTER TABLE public.scratch SET LOGGED;"), std::string::npos) << e;
}

TEST_F(PostgresCdc, ARenamedTableIsFollowedAndItsChangesSurviveARestartUnderTheNewName) {
  {
    Cdc cdc(config(), state);
    pg.psql("INSERT INTO items VALUES (1, 'before', 1); ALTER TABLE items RENAME TO goods;"
            "INSERT INTO goods VALUES (2, 'after', 2)");
    auto ev = cdc.take(2, /*ack=*/false);
    ASSERT_EQ(ev.size(), 2u);
    EXPECT_EQ(str(ev[0]["source"]["table"]), "items");
    EXPECT_EQ(str(ev[1]["source"]["table"]), "goods");
  }
  // Nothing was acknowledged: after a restart the old name is gone, the new one gets both rows.
  auto e = start_error(config());
  EXPECT_NE(e.find("table public.items does not exist"), std::string::npos) << e;
  std::string renamed = config();
  renamed.replace(renamed.find("tables: [items]"), 15, "tables: [goods]");
  Cdc again(renamed, state);
  auto ev = again.take(2);
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0]["after"]["id"].GetInt(), 1);
  EXPECT_EQ(ev[1]["after"]["id"].GetInt(), 2);
}

TEST_F(PostgresCdc, ASlotInUseIsNeverShared) {
  Cdc first(config(), state);
  pg.psql("INSERT INTO items VALUES (1, 'a', 1)");
  first.take(1);
  auto e = start_error(config());
  EXPECT_NE(e.find("replication slot s1 is active for PID"), std::string::npos) << e;
}

TEST_F(PostgresCdc, ALostSlotIsAFatalClearErrorUnlessWhenNeeded) {
  PostgresServer small("max_slot_wal_keep_size = 1MB\nwal_keep_size = 0\nmax_wal_size = 32MB\nmin_wal_size = 32MB");
  small.psql("CREATE TABLE items (id int PRIMARY KEY, name text, qty int);"
             "CREATE PUBLICATION p1 FOR TABLE items;"
             "SELECT pg_create_logical_replication_slot('s1', 'pgoutput')");
  for (int i = 0; i < 6 && small.psql("SELECT wal_status FROM pg_replication_slots") != "lost"; ++i)
    small.psql("INSERT INTO items SELECT g, repeat('x', 200), g FROM generate_series(" + std::to_string(i * 20000 + 1) +
               ", " + std::to_string((i + 1) * 20000) + ") g; SELECT pg_switch_wal(); CHECKPOINT");
  ASSERT_EQ(small.psql("SELECT wal_status FROM pg_replication_slots"), "lost");
  std::string yaml = "dsn: \"" + small.dsn() + "\"\nslot: s1\npublication: p1\n";
  auto e = start_error(yaml + "snapshot: never\n");
  EXPECT_NE(e.find("wal_status = lost"), std::string::npos) << e;
  EXPECT_NE(e.find("snapshot: when_needed"), std::string::npos) << e;
  Cdc cdc(yaml + "snapshot: when_needed\n", state);
  auto ev = cdc.take(1);
  EXPECT_EQ(str(ev[0]["op"]), "r");
}

}  // namespace
