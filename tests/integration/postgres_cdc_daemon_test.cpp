// The real daemon streaming a real PostgreSQL to stdout, killed with SIGKILL in the middle of a
// large transaction and started again: every row of the source is accounted for.
#include "daemon.hpp"
#include "postgres_server.hpp"
#include "test_support.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <set>

using edgeflow::test::Daemon;
using edgeflow::test::PostgresServer;
using edgeflow::test::TempDir;

namespace {

long id_of(const std::string& line) {
  size_t at = line.find("\"after\":{\"id\":");
  return at == std::string::npos ? -1 : std::stol(line.substr(at + 14));
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

}  // namespace
