// The real daemon streaming a real PostgreSQL to stdout, killed with SIGKILL in the middle of a
// large transaction and started again: every row of the source is accounted for.
#include "daemon.hpp"
#include "postgres_server.hpp"
#include "test_support.hpp"

#include <gtest/gtest.h>

#include <rapidjson/document.h>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

using edgeflow::test::Daemon;
using edgeflow::test::PostgresServer;
using edgeflow::test::TempDir;

namespace {

long id_of(const std::string& line) {
  size_t at = line.find("\"after\":{\"id\":");
  return at == std::string::npos ? -1 : std::stol(line.substr(at + 14));
}

// The daemon's stdout, read on a thread of its own (so the daemon never blocks on the pipe).
class Lines {
 public:
  explicit Lines(Daemon& d) : daemon_(d), reader_([this, &d] {
    std::string line;
    while (d.line(line)) {
      std::lock_guard lock(mutex_);
      lines_.push_back(line);
    }
  }) {}
  ~Lines() {
    if (daemon_.pid() > 0) daemon_.signal(SIGKILL);  // a failed assertion left it running
    reader_.join();
  }
  std::vector<std::string> all() {
    std::lock_guard lock(mutex_);
    return lines_;
  }
  bool wait_for(const std::string& text) {
    return edgeflow::test::poll_until([&] {
      std::lock_guard lock(mutex_);
      for (auto& l : lines_)
        if (l.find(text) != std::string::npos) return true;
      return false;
    }, std::chrono::seconds(60));
  }

 private:
  Daemon& daemon_;
  std::mutex mutex_;
  std::vector<std::string> lines_;
  std::thread reader_;
};

// A consumer's view of a table: the events applied in order, by key; "id:v:n" per row.
struct Replica {
  std::map<long, std::string> rows;
  size_t reads = 0, changes = 0, changes_between_reads = 0;
  void apply(const std::vector<std::string>& lines, const std::string& table) {
    size_t first_read = SIZE_MAX, last_read = 0;
    std::vector<bool> is_change(lines.size(), false);
    for (size_t i = 0; i < lines.size(); ++i) {
      rapidjson::Document e;
      e.Parse(lines[i].c_str());
      if (!e.IsObject() || !e.HasMember("source") || !e["source"].HasMember("table") ||
          e["source"]["table"].GetString() != table)
        continue;
      std::string op = e["op"].GetString();
      if (op == "d") {
        rows.erase(e["before"]["id"].GetInt64());
      } else {
        const auto& a = e["after"];
        rows[a["id"].GetInt64()] = std::to_string(a["id"].GetInt64()) + ":" + a["v"].GetString() + ":" +
                                   std::to_string(a["n"].GetInt64());
      }
      if (op == "r") {
        ++reads;
        first_read = std::min(first_read, i);
        last_read = i;
      } else {
        ++changes;
        is_change[i] = true;
      }
    }
    for (size_t i = first_read; i < last_read; ++i) changes_between_reads += is_change[i];
  }
  std::string text() const {
    std::string s;
    for (auto& [id, row] : rows) s += (s.empty() ? "" : ",") + row;
    return s;
  }
};

std::string plugin_metric(const std::string& admin, const std::string& flow, const std::string& name) {
  auto r = edgeflow::test::run_command({"curl", "-s", "http://" + admin + "/flows/" + flow});
  rapidjson::Document d;
  d.Parse(r.out.c_str());
  if (!d.IsObject() || !d.HasMember("plugin_metrics")) return "";
  for (auto& m : d["plugin_metrics"].GetArray())
    if (m["name"].GetString() == name) return std::to_string(int64_t(m["value"].GetDouble()));
  return "";
}

TEST(PostgresCdcDaemon, SigkillInTheMiddleOfALargeTransactionLosesNothing) {
  PostgresServer pg;
  TempDir dir;
  // Slot and publication first: every change after this point is kept for the flow, however
  // late the daemon starts.
  pg.psql("CREATE TABLE big (id int PRIMARY KEY, pad text); CREATE PUBLICATION p1 FOR TABLE big;"
          "SELECT pg_create_logical_replication_slot('s1', 'pgoutput')");
  std::string flow = dir.write("cdc.yaml", "flow: cdc\nsource:\n  type: postgres_cdc\n  dsn: \"" + pg.dsn() +
                                               "\"\n  slot: s1\n  publication: p1\n  snapshot: never\n"
                                               "  batch_size: 256\nsinks:\n  out: { type: stdout }\n");
  std::vector<std::string> args{"run", "--state-dir", dir.file("state"), flow};
  const long rows = 100000;
  pg.psql("INSERT INTO big SELECT g, repeat('p', 50) FROM generate_series(1, " + std::to_string(rows) + ") g");

  std::set<long> seen;
  size_t first_run = 0;
  {
    Daemon d(args, dir.file("err1.log"));
    std::string line;
    while (first_run < 20000 && d.line(line)) {
      seen.insert(id_of(line));
      ++first_run;
    }
    d.signal(SIGKILL);
    while (d.line(line)) {  // what was already in the pipe
      seen.insert(id_of(line));
      ++first_run;
    }
    EXPECT_EQ(d.wait(), 128 + SIGKILL);
  }
  ASSERT_GE(first_run, 20000u) << edgeflow::test::join(edgeflow::test::read_lines(dir.file("err1.log")));
  ASSERT_LT(seen.size(), size_t(rows)) << "the kill came after the whole transaction";

  Daemon d(args, dir.file("err2.log"));
  pg.psql("INSERT INTO big VALUES (0, 'marker')");
  std::string line;
  size_t second_run = 0;
  while (!seen.count(0) && d.line(line)) {
    seen.insert(id_of(line));
    ++second_run;
  }
  d.signal(SIGTERM);
  EXPECT_EQ(d.wait(), 0) << edgeflow::test::join(edgeflow::test::read_lines(dir.file("err2.log")));
  seen.erase(-1);
  EXPECT_EQ(seen.size(), size_t(rows) + 1);  // 1..rows and the marker
  EXPECT_EQ(*seen.rbegin(), rows);
  // The unconfirmed transaction came again whole: the restart re-read it from its start.
  EXPECT_EQ(second_run, size_t(rows) + 1);
}

// A CDC flow changed while it runs (a step added): SIGHUP drains it and starts the new
// definition on the same slot, from its confirmed position: every row once, the snapshot not
// taken again, and the rows after the reload through the new step.
TEST(PostgresCdcDaemon, AChangedFlowResumesFromItsSlotWithoutANewSnapshot) {
  PostgresServer pg;
  TempDir dir;
  pg.psql("CREATE TABLE t (id int PRIMARY KEY); CREATE PUBLICATION p1 FOR TABLE t;"
          "INSERT INTO t SELECT generate_series(1, 100)");
  auto flow = [&](const std::string& steps) {
    std::string tmp = dir.write("cdc.tmp", "flow: cdc\nsource:\n  type: postgres_cdc\n  dsn: \"" + pg.dsn() +
                                               "\"\n  slot: s1\n  publication: p1\n  snapshot: initial\n" + steps +
                                               "sinks:\n  out: { type: stdout }\n");
    std::filesystem::rename(tmp, dir.file("flows/cdc.yaml"));
  };
  std::filesystem::create_directories(dir.file("flows"));
  flow("");
  std::string admin = "127.0.0.1:" + std::to_string(edgeflow::test::free_loopback_port());
  Daemon d({"run", "--state-dir", dir.file("state"), "--admin", admin, dir.file("flows")}, dir.file("err.log"));
  std::map<long, int> seen;  // id -> times
  std::vector<std::string> after_reload;
  std::string line;
  while (seen.size() < 100 && d.line(line)) seen[id_of(line)]++;
  pg.psql("INSERT INTO t SELECT generate_series(101, 150)");
  while (!seen.count(150) && d.line(line)) seen[id_of(line)]++;

  flow("steps:\n  - type: map\n    set: { reloaded: 'true' }\n");
  d.signal(SIGHUP);
  // The rows after this go through the new definition once the reload says it is applied.
  ASSERT_TRUE(edgeflow::test::poll_until([&] {
    return edgeflow::test::run_command({"curl", "-s", "http://" + admin + "/reload"}).out.find("\"restarted\":[\"cdc\"]") !=
           std::string::npos;
  }));
  pg.psql("INSERT INTO t SELECT generate_series(151, 200)");
  while (!seen.count(200) && d.line(line)) {
    seen[id_of(line)]++;
    if (id_of(line) > 150) after_reload.push_back(line);
  }
  d.signal(SIGTERM);
  EXPECT_EQ(d.wait(), 0);
  std::string log = edgeflow::test::join(edgeflow::test::read_lines(dir.file("err.log")));
  EXPECT_NE(log.find("reloaded: 0 started, 1 restarted"), std::string::npos) << log;
  for (long id = 1; id <= 200; ++id) EXPECT_EQ(seen[id], 1) << "row " << id << "\n" << log;
  ASSERT_EQ(after_reload.size(), 50u);
  for (auto& l : after_reload) EXPECT_NE(l.find("\"reloaded\":true"), std::string::npos) << l;
  EXPECT_EQ(pg.psql("SELECT count(*) FROM pg_replication_slots"), "1");
}

TEST(PostgresCdcDaemon, ALostConnectionIsReestablishedAndTheStreamGoesOn) {
  PostgresServer pg;
  TempDir dir;
  pg.psql("CREATE TABLE t (id int PRIMARY KEY); CREATE PUBLICATION p1 FOR TABLE t;"
          "SELECT pg_create_logical_replication_slot('s1', 'pgoutput')");
  std::string flow = dir.write("cdc.yaml", "flow: cdc\nsource:\n  type: postgres_cdc\n  dsn: \"" + pg.dsn() +
                                               "\"\n  slot: s1\n  publication: p1\n  snapshot: never\n"
                                               "restart: { initial_backoff: 50ms, max_backoff: 200ms }\n"
                                               "sinks:\n  out: { type: stdout }\n");
  Daemon d({"run", "--state-dir", dir.file("state"), flow}, dir.file("err.log"));
  pg.psql("INSERT INTO t VALUES (1)");
  std::string line;
  ASSERT_TRUE(d.line(line));
  EXPECT_EQ(id_of(line), 1);
  EXPECT_EQ(pg.psql("SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = 's1'"), "t");
  pg.psql("INSERT INTO t VALUES (2)");
  std::set<long> seen;
  while (!seen.count(2) && d.line(line)) seen.insert(id_of(line));
  EXPECT_TRUE(seen.count(2));
  d.signal(SIGTERM);
  EXPECT_EQ(d.wait(), 0);
  std::string log = edgeflow::test::join(edgeflow::test::read_lines(dir.file("err.log")));
  EXPECT_NE(log.find("flow failed"), std::string::npos) << log;
  EXPECT_NE(log.find("terminat"), std::string::npos) << log;  // the server's reason is in the log
}

TEST(PostgresCdcDaemon, AFlowHeldBackByItsSinkKeepsItsReplicationConnection) {
  PostgresServer pg("wal_sender_timeout = 1s");
  TempDir dir;
  pg.psql("CREATE TABLE t (id int PRIMARY KEY); CREATE PUBLICATION p1 FOR TABLE t;"
          "SELECT pg_create_logical_replication_slot('s1', 'pgoutput')");
  // A sink that never delivers: the flow fills to max_in_flight and the source cannot emit.
  std::string flow = dir.write("cdc.yaml", "flow: cdc\nsource:\n  type: postgres_cdc\n  dsn: \"" + pg.dsn() +
                                               "\"\n  slot: s1\n  publication: p1\n  snapshot: never\n"
                                               "  batch_size: 2\nmax_in_flight: 4\nretry: { initial_backoff: 10ms, max_backoff: 20ms }\n"
                                               "sinks:\n  out: { type: flaky, retry_always: true }\n");
  Daemon d({"run", "--plugin-dir", EDGEFLOW_TEST_PLUGIN_DIR, "--state-dir", dir.file("state"), flow},
           dir.file("err.log"));
  pg.psql("INSERT INTO t SELECT generate_series(1, 100)");
  auto walsender = [&] { return pg.psql("SELECT active_pid FROM pg_replication_slots WHERE slot_name = 's1'"); };
  edgeflow::test::poll_until([&] { return !walsender().empty(); });
  std::string pid = walsender();
  ASSERT_FALSE(pid.empty());
  // The same walsender hears from the source three server timeouts after it started, with the
  // flow stuck all along: polled on the server, which notifies nothing.
  auto replying_after = [&](const char* interval) {
    return pg.psql("SELECT count(*) FROM pg_stat_replication WHERE pid = " + pid + " AND reply_time > backend_start + interval '" +
                   interval + "'") == "1";
  };
  edgeflow::test::poll_until([&] { return replying_after("3 seconds") || walsender() != pid; });
  EXPECT_TRUE(replying_after("3 seconds")) << pg.log_tail(20);
  EXPECT_EQ(walsender(), pid);
  EXPECT_EQ(pg.log_tail(200).find("replication timeout"), std::string::npos) << pg.log_tail(50);
  d.signal(SIGKILL);  // a SIGTERM would wait out the drain of messages that never deliver
  d.wait();
  std::string log = edgeflow::test::join(edgeflow::test::read_lines(dir.file("err.log")));
  EXPECT_EQ(log.find("flow failed"), std::string::npos) << log;
}


// `edgeflow cdc snapshot` while updates, deletes and inserts run: the chunks interleave with the
// live changes (watermarks in the WAL), and the consumer's final state per key is the table's.
TEST(PostgresCdcDaemon, AnIncrementalSnapshotWithConcurrentChangesEndsEqualToTheTable) {
  PostgresServer pg;
  TempDir dir;
  pg.psql("CREATE TABLE items (id int PRIMARY KEY, v text NOT NULL, n int NOT NULL);"
          "INSERT INTO items SELECT g, 'v' || g, 0 FROM generate_series(1, 5000) g");
  std::string flow = dir.write("cdc.yaml", "flow: cdc\nsource:\n  type: postgres_cdc\n  dsn: \"" + pg.dsn() +
                                               "\"\n  tables: [items]\n  snapshot: never\n"
                                               "  incremental_chunk_rows: 50\nsinks:\n  out: { type: stdout }\n");
  std::string admin = "127.0.0.1:" + std::to_string(edgeflow::test::free_loopback_port());
  Daemon d({"run", "--state-dir", dir.file("state"), "--admin", admin, flow}, dir.file("err.log"));
  auto log = [&] { return edgeflow::test::join(edgeflow::test::read_lines(dir.file("err.log"))); };
  {
    Lines lines(d);
    // Once the flow's slot exists, every change is kept for it.
    ASSERT_TRUE(edgeflow::test::poll_until([&] { return pg.psql("SELECT count(*) FROM pg_replication_slots") == "1"; }));
    pg.psql("INSERT INTO items VALUES (100000, 'streaming', 0)");
    ASSERT_TRUE(lines.wait_for("\"v\":\"streaming\"")) << edgeflow::test::join(edgeflow::test::read_lines(dir.file("err.log")));

    // Deterministic overlap: a transaction holds the table while it updates and deletes the first
    // chunk's rows, and commits only once the chunk's SELECT waits for it (the test sees the wait,
    // then sends the COMMIT), so its changes land between that chunk's watermarks and must take
    // those rows out of the chunk.
    std::unique_ptr<FILE, int (*)(FILE*)> locker(
        popen((pg.bin("psql") + " -X -q -v ON_ERROR_STOP=1 -d '" + pg.dsn() + "' >/dev/null").c_str(), "w"), &pclose);
    ASSERT_TRUE(locker);
    std::fputs("BEGIN; LOCK TABLE items IN ACCESS EXCLUSIVE MODE;\n"
               "UPDATE items SET v = 'locked', n = n + 100 WHERE id <= 50 AND id <> 25; DELETE FROM items WHERE id = 25;\n",
               locker.get());
    std::fflush(locker.get());
    ASSERT_TRUE(edgeflow::test::poll_until([&] {
      return pg.psql("SELECT count(*) FROM pg_locks WHERE relation = 'items'::regclass AND granted "
                     "AND mode = 'AccessExclusiveLock'") == "1";
    }));
    std::thread writer([&] {
      pg.psql("DO $$ BEGIN FOR i IN 1..600 LOOP "
              "UPDATE items SET n = n + 1, v = 'u' || i WHERE id = 1 + (i * 37) % 5000; "
              "DELETE FROM items WHERE id = 1 + (i * 101) % 5000; "
              "INSERT INTO items VALUES (5000 + i % 300, 'new', i) ON CONFLICT (id) DO UPDATE SET n = excluded.n; "
              "COMMIT; END LOOP; END $$");
    });
    auto r = edgeflow::test::run_command({EDGEFLOW_BIN, "cdc", "snapshot", "--admin", admin, "cdc", "items"});
    EXPECT_EQ(r.status, 0) << r.out << r.err;
    EXPECT_NE(r.out.find("\"accepted\":true"), std::string::npos) << r.out;
    // Refused with the reason: a table the flow does not capture, an unknown action.
    auto other = edgeflow::test::run_command({EDGEFLOW_BIN, "cdc", "snapshot", "--admin", admin, "cdc", "nope"});
    EXPECT_EQ(other.status, 1);
    EXPECT_NE(other.out.find("table public.nope is not in this flow's tables"), std::string::npos) << other.out;
    auto bad = edgeflow::test::run_command({"curl", "-s", "-X", "POST", "-H", "Content-Type: application/json", "-d",
                                            R"({"action":"shred"})", "http://" + admin + "/flows/cdc/signal"});
    EXPECT_NE(bad.out.find("unknown action 'shred'"), std::string::npos) << bad.out;
    ASSERT_TRUE(edgeflow::test::poll_until([&] {
      return pg.psql("SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE "
                     "l.relation = 'items'::regclass AND NOT l.granted AND a.query LIKE '%edgeflow\\_key\\_0%'") == "1";
    })) << log();
    std::fputs("COMMIT;\n", locker.get());
    EXPECT_EQ(pclose(locker.release()), 0);
    writer.join();
    // Its last chunk delivered end to end (metrics are published at intervals: they may lag).
    ASSERT_TRUE(edgeflow::test::poll_until([&] { return log().find("incremental snapshot of public.items delivered") != std::string::npos; },
                                           std::chrono::seconds(120))) << log();
    pg.psql("INSERT INTO items VALUES (200000, 'last', 0)");
    ASSERT_TRUE(lines.wait_for("\"v\":\"last\""));
    // 50-row chunks of what the table held (the writer deletes and inserts meanwhile); every row read went out as "r".
    ASSERT_TRUE(edgeflow::test::poll_until([&] { return plugin_metric(admin, "cdc", "incremental_snapshot_tables_pending") == "0"; }));
    long chunks = std::stol("0" + plugin_metric(admin, "cdc", "incremental_snapshot_chunks"));
    std::string rows = plugin_metric(admin, "cdc", "incremental_snapshot_rows");
    long superseded = std::stol("0" + plugin_metric(admin, "cdc", "incremental_snapshot_rows_superseded"));
    std::cout << "chunks " << chunks << ", rows " << rows << ", superseded by live changes " << superseded << "\n";
    EXPECT_GE(chunks * 50, std::stol("0" + rows));  // what the table held when read, 50 rows a chunk at most
    EXPECT_GE(superseded, 50);  // the first chunk's rows, changed by the locker inside its window
    d.signal(SIGTERM);
    EXPECT_EQ(d.wait(), 0);

    Replica replica;
    replica.apply(lines.all(), "items");
    std::string table = pg.psql("SELECT string_agg(id || ':' || v || ':' || n, ',' ORDER BY id) FROM items");
    EXPECT_EQ(replica.text(), table);
    EXPECT_GE(replica.reads, 4000u);
    EXPECT_EQ(rows, std::to_string(replica.reads));
    std::cout << "live changes between the first and the last read: " << replica.changes_between_reads << "\n";
  }
  EXPECT_NE(log().find("incremental snapshot of public.items delivered"), std::string::npos) << log();
}

// A table added to `tables` of a running flow: the reload restarts the flow on its slot, the flow
// adds the table to its publication and reads it with an incremental snapshot, while the tables
// it had are neither read again nor missed.
TEST(PostgresCdcDaemon, ATableAddedInAReloadIsReadIncrementally) {
  PostgresServer pg;
  TempDir dir;
  pg.psql("CREATE TABLE items (id int PRIMARY KEY, v text NOT NULL, n int NOT NULL);"
          "CREATE TABLE extra (id int PRIMARY KEY, v text NOT NULL, n int NOT NULL);"
          "INSERT INTO items SELECT g, 'i', 0 FROM generate_series(1, 100) g;"
          "INSERT INTO extra SELECT g, 'e', 0 FROM generate_series(1, 700) g");
  std::filesystem::create_directories(dir.file("flows"));
  auto flow = [&](const std::string& tables) {
    std::string tmp = dir.write("cdc.tmp", "flow: cdc\nsource:\n  type: postgres_cdc\n  dsn: \"" + pg.dsn() +
                                               "\"\n  tables: " + tables + "\n  incremental_chunk_rows: 64\n"
                                               "sinks:\n  out: { type: stdout }\n");
    std::filesystem::rename(tmp, dir.file("flows/cdc.yaml"));
  };
  flow("[items]");
  std::string admin = "127.0.0.1:" + std::to_string(edgeflow::test::free_loopback_port());
  Daemon d({"run", "--state-dir", dir.file("state"), "--admin", admin, dir.file("flows")}, dir.file("err.log"));
  auto log = [&] { return edgeflow::test::join(edgeflow::test::read_lines(dir.file("err.log"))); };
  {
    Lines lines(d);
    ASSERT_TRUE(edgeflow::test::poll_until([&] { return pg.psql("SELECT count(*) FROM pg_replication_slots") == "1"; }));
    pg.psql("INSERT INTO items VALUES (1000, 'snapshot taken', 0)");
    ASSERT_TRUE(lines.wait_for("snapshot taken")) << edgeflow::test::join(edgeflow::test::read_lines(dir.file("err.log")));
    size_t before_reload = lines.all().size();

    flow("[items, extra]");
    auto r = edgeflow::test::run_command({EDGEFLOW_BIN, "reload", "--admin", admin});
    EXPECT_EQ(r.status, 0) << r.out << r.err;
    EXPECT_NE(r.out.find("\"restarted\":[\"cdc\"]"), std::string::npos) << r.out;
    pg.psql("UPDATE extra SET n = 1 WHERE id % 10 = 0; DELETE FROM extra WHERE id % 7 = 0;"
            "UPDATE items SET n = 1 WHERE id = 1");
    ASSERT_TRUE(edgeflow::test::poll_until([&] { return log().find("incremental snapshot of public.extra delivered") != std::string::npos; },
                                           std::chrono::seconds(120))) << log();
    pg.psql("INSERT INTO extra VALUES (5000, 'last', 0)");
    ASSERT_TRUE(lines.wait_for("\"v\":\"last\""));
    d.signal(SIGTERM);
    EXPECT_EQ(d.wait(), 0);

    auto all = lines.all();
    std::vector<std::string> after(all.begin() + long(before_reload), all.end());
    for (auto& l : after) EXPECT_EQ(l.find("\"op\":\"r\",\"before\":null,\"after\":{\"id\":1,\"v\":\"i\""), std::string::npos)
        << "items was read again: " << l;
    Replica extra, items;
    extra.apply(all, "extra");
    items.apply(all, "items");
    EXPECT_EQ(extra.text(), pg.psql("SELECT string_agg(id || ':' || v || ':' || n, ',' ORDER BY id) FROM extra"));
    EXPECT_EQ(items.text(), pg.psql("SELECT string_agg(id || ':' || v || ':' || n, ',' ORDER BY id) FROM items"));
  }
  std::string text = log();
  EXPECT_NE(text.find("added table public.extra to publication"), std::string::npos) << text;
  EXPECT_NE(text.find("table public.extra was added to tables"), std::string::npos) << text;
  EXPECT_EQ(text.find("incremental snapshot of public.items"), std::string::npos) << text;
}

// A role with REPLICATION and SELECT on one table only: an incremental snapshot of that table runs
// (watermarks need no grant), one of a table it may not read is refused with the GRANT to run.
TEST(PostgresCdcDaemon, AnIncrementalSnapshotNeedsOnlySelectOnTheTable) {
  PostgresServer pg;
  TempDir dir;
  pg.psql("CREATE TABLE items (id int PRIMARY KEY, v text NOT NULL, n int NOT NULL);"
          "CREATE TABLE secret (id int PRIMARY KEY);"
          "INSERT INTO items SELECT g, 'v', 0 FROM generate_series(1, 300) g;"
          "CREATE ROLE cdc LOGIN REPLICATION; GRANT SELECT ON items TO cdc;"
          "CREATE PUBLICATION pub FOR TABLE items, secret");
  std::string dsn = pg.dsn();
  dsn.replace(dsn.find("user=postgres"), 13, "user=cdc");
  std::string flow = dir.write("cdc.yaml", "flow: cdc\nsource:\n  type: postgres_cdc\n  dsn: \"" + dsn +
                                               "\"\n  publication: pub\n  tables: [items, secret]\n  snapshot: never\n"
                                               "sinks:\n  out: { type: stdout }\n");
  std::string admin = "127.0.0.1:" + std::to_string(edgeflow::test::free_loopback_port());
  Daemon d({"run", "--state-dir", dir.file("state"), "--admin", admin, flow}, dir.file("err.log"));
  auto log = [&] { return edgeflow::test::join(edgeflow::test::read_lines(dir.file("err.log"))); };
  {
    Lines lines(d);
    ASSERT_TRUE(edgeflow::test::poll_until([&] { return log().find("streaming changes") != std::string::npos; })) << log();
    auto refused = edgeflow::test::run_command({EDGEFLOW_BIN, "cdc", "snapshot", "--admin", admin, "cdc", "secret"});
    EXPECT_EQ(refused.status, 1);
    EXPECT_NE(refused.out.find("the flow's role may not SELECT from public.secret: GRANT SELECT ON public.secret TO it"),
              std::string::npos) << refused.out;
    // Commands that are not what the source takes: 422 with the reason, nothing queued.
    std::string many = R"({"action":"snapshot","tables":[)";
    for (int i = 0; i < 1001; ++i) many += std::string(i ? "," : "") + "\"items\"";
    many += "]}";
    for (auto [body, says] : std::vector<std::pair<std::string, std::string>>{
             {R"({"action":7})", "unknown action ''"},
             {R"({"action":"snapshot"})", "tables: give the tables to snapshot"},
             {R"({"action":"snapshot","tables":"items"})", "tables: give the tables to snapshot"},
             {R"({"action":"snapshot","tables":[]})", "tables: give the tables to snapshot"},
             {many, "(at most 1000)"},
             {R"({"action":"snapshot","tables":[1]})", "tables[0]: expected a table name"},
             {R"({"action":"snapshot","tables":["items",""]})", "tables[1]: expected a table name"},
             {R"({"action":"snapshot","tables":["public.items; DROP TABLE items"]})", "is not in this flow's tables"}}) {
      auto c = edgeflow::test::run_command({"curl", "-s", "-w", " %{http_code}", "-X", "POST", "-H", "Content-Type: application/json",
                                            "--data-binary", body, "http://" + admin + "/flows/cdc/signal"});
      EXPECT_NE(c.out.find(says), std::string::npos) << body << ": " << c.out;
      EXPECT_NE(c.out.find(" 422"), std::string::npos) << body << ": " << c.out;
    }
    auto r = edgeflow::test::run_command({EDGEFLOW_BIN, "cdc", "snapshot", "--admin", admin, "cdc", "items"});
    EXPECT_EQ(r.status, 0) << r.out << r.err;
    ASSERT_TRUE(edgeflow::test::poll_until([&] { return log().find("incremental snapshot of public.items delivered") != std::string::npos; },
                                           std::chrono::seconds(120))) << log();
    d.signal(SIGTERM);
    EXPECT_EQ(d.wait(), 0);
    Replica replica;
    replica.apply(lines.all(), "items");
    EXPECT_EQ(replica.reads, 300u);
    EXPECT_EQ(replica.text(), pg.psql("SELECT string_agg(id || ':' || v || ':' || n, ',' ORDER BY id) FROM items"));
  }
}

}  // namespace
