// Applying a CDC backlog to another PostgreSQL: edgeflow (postgres_cdc → postgres) against
// PostgreSQL's own logical replication (CREATE SUBSCRIPTION), on one backlog in one run:
//   1. two private PostgreSQL servers (tests/support/postgres_server.hpp): the source, with a
//      table, a publication and one pgoutput slot per measured run, all made before the backlog so
//      every slot decodes the same WAL; and the target, with one database per run holding the
//      same table (empty);
//   2. the backlog: 500k inserts, then 250k updates, in transactions of 100k rows; its end LSN;
//   3. native: a subscription on the target (copy_data = false, on its slot) is enabled, and the
//      run lasts until the slot's confirmed_flush_lsn reaches the end LSN (the subscriber confirms
//      what it applied and flushed); edgeflow: the daemon runs postgres_cdc (end_lsn) → postgres
//      (mode cdc) to its end, which is after its last COMMIT. Alternating which goes first.
// Both targets must equal the source (EXCEPT both ways), or the benchmark fails. The ratio is of
// the median apply rates. edgeflow's client CPU and peak RSS come from wait4 rusage; the
// subscriber's apply worker is inside the target server and is not separated out here.
//   4. the lag: a writer commits 50 rows every 10 ms (5 000 changes/s) for 20 s, each row stamped
//      with the source's clock_timestamp(); the target's copy of the table stamps each row again
//      as it is written (a column default). Lag = target stamp - source stamp, p50 and p99, for
//      a subscription and for edgeflow (flush_interval 5ms), one after the other.
//   5. Kafka → postgres upsert: 1M JSON records of 100 B on 250k keys in a development broker
//      (`edgeflow dev kafka`), read to the end by the kafka source and upserted; no peer runs
//      (Kafka Connect's JDBC sink is not in Debian).
#include "bench.hpp"
#include "kafka_broker.hpp"
#include "postgres_server.hpp"

#include <libpq-fe.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <thread>

namespace {

using namespace bench;

constexpr long kTxnRows = 100000;

std::optional<edgeflow::test::PostgresServer> source, target;

std::string sql(edgeflow::test::PostgresServer& pg, const std::string& q, const std::string& db = "postgres") {
  try {
    return pg.psql(q, db);
  } catch (const std::exception& e) {
    die(e.what());
  }
}

const char* kTable =
    "CREATE TABLE bench (id bigint PRIMARY KEY, name text, amount numeric, created timestamptz, payload jsonb)";

struct Run {
  std::string tool;
  double wall = 0;
  Result r;  // edgeflow's process
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

void same_as_source(const std::string& db) {
  // The target's rows, exported and compared on the source: EXCEPT both ways must be empty.
  std::string path = std::filesystem::temp_directory_path() / ("pgsink-" + db + ".copy");
  sql(*target, "COPY bench TO '" + path + "'", db);
  sql(*source, "CREATE TEMP TABLE x (LIKE bench); COPY x FROM '" + path +
                   "'; DO $$ BEGIN IF (SELECT count(*) FROM ((TABLE bench EXCEPT TABLE x) UNION ALL "
                   "(TABLE x EXCEPT TABLE bench)) d) > 0 THEN RAISE EXCEPTION 'target differs'; END IF; END $$");
  std::filesystem::remove(path);
}

// Commits `rows_per_txn` rows into lag every `every` for `seconds`, from id `first` on.
void steady_writer(const std::string& dsn, long first, long rows_per_txn, std::chrono::milliseconds every, int seconds) {
  PGconn* c = PQconnectdb(dsn.c_str());
  if (PQstatus(c) != CONNECTION_OK) die(std::string("writer: ") + PQerrorMessage(c));
  auto next = std::chrono::steady_clock::now();
  auto end = next + std::chrono::seconds(seconds);
  for (long id = first; next < end; id += rows_per_txn) {
    std::this_thread::sleep_until(next);
    next += every;
    std::string q = "INSERT INTO lag SELECT g, clock_timestamp() FROM generate_series(" + std::to_string(id) + ", " +
                    std::to_string(id + rows_per_txn - 1) + ") g";
    PGresult* r = PQexec(c, q.c_str());
    if (PQresultStatus(r) != PGRES_COMMAND_OK) die(std::string("writer: ") + PQerrorMessage(c));
    PQclear(r);
  }
  PQfinish(c);
}

// p50 and p99 of the lag of the rows in `db`, in ms.
std::string lag_percentiles(const std::string& db) {
  return sql(*target, "SELECT round(1000 * extract(epoch FROM percentile_cont(0.5) WITHIN GROUP (ORDER BY dst_ts - src_ts)))"
                      " || ' ' || round(1000 * extract(epoch FROM percentile_cont(0.99) WITHIN GROUP (ORDER BY dst_ts - src_ts)))"
                      " || ' ' || count(*) FROM lag", db);
}

}  // namespace

int main(int argc, char** argv) {
  long scale = argc > 1 ? std::atol(argv[1]) : 1;
  long rounds = argc > 2 ? std::atol(argv[2]) : 3;
  if (scale < 1 || rounds < 1 || rounds > 4) die("usage: bench_pgsink [scale >= 1] [rounds 1..4]");
  long inserts = 500000 * scale, updates = 250000 * scale, events = inserts + updates;
  std::string dir = temp_dir();
  setvbuf(stdout, nullptr, _IOLBF, 0);
  try {
    source.emplace();
    target.emplace();
  } catch (const std::exception& e) {
    die(e.what());
  }
  std::string src_dsn = "host=127.0.0.1 port=" + std::to_string(source->port()) + " user=postgres dbname=postgres";
  std::printf("edgeflow PostgreSQL sink benchmark (%s), PostgreSQL %s, %ld CPU(s)\n", EDGEFLOW_BIN,
              sql(*source, "SHOW server_version").c_str(), sysconf(_SC_NPROCESSORS_ONLN));

  sql(*source, std::string(kTable) + "; CREATE PUBLICATION bench_pub FOR TABLE bench;");
  for (long i = 0; i < rounds; ++i) {
    std::string n = std::to_string(i);
    sql(*source, "SELECT pg_create_logical_replication_slot('s_native" + n + "', 'pgoutput');"
                 "SELECT pg_create_logical_replication_slot('s_edge" + n + "', 'pgoutput');");
    for (std::string db : {"native" + n, "edge" + n}) {
      sql(*target, "CREATE DATABASE " + db);
      sql(*target, kTable, db);
    }
  }

  double t0 = now();
  for (long lo = 1; lo <= inserts; lo += kTxnRows)
    sql(*source, "INSERT INTO bench SELECT g, 'customer ' || g, round(g * 1.37 % 10000, 2), "
                 "timestamptz '2026-01-01 00:00:00+00' + g * interval '1 second', "
                 "jsonb_build_object('sku', 'SKU-' || g % 1000, 'qty', 1 + g % 9, 'tags', jsonb_build_array('edge', 'cdc')) "
                 "FROM generate_series(" + std::to_string(lo) + ", " +
                     std::to_string(std::min(lo + kTxnRows - 1, inserts)) + ") g");
  for (long lo = 1; lo <= updates; lo += kTxnRows)
    sql(*source, "UPDATE bench SET amount = amount + 1, name = name || ' (updated)' WHERE id BETWEEN " +
                     std::to_string(lo) + " AND " + std::to_string(std::min(lo + kTxnRows - 1, updates)));
  std::string end_lsn = sql(*source, "SELECT pg_current_wal_lsn()");
  sql(*source, "CHECKPOINT");
  std::printf("backlog: %ld inserts + %ld updates in transactions of %ld rows, built in %.1f s; end LSN %s\n\n",
              inserts, updates, kTxnRows, now() - t0, end_lsn.c_str());

  auto native = [&](long i) {
    std::string n = std::to_string(i), db = "native" + n, slot = "s_native" + n;
    sql(*target, "CREATE SUBSCRIPTION sub" + n + " CONNECTION '" + src_dsn + "' PUBLICATION bench_pub WITH "
                 "(create_slot = false, slot_name = '" + slot + "', copy_data = false, enabled = false)", db);
    Run x{"native", 0, {}};
    double start = now();
    sql(*target, "ALTER SUBSCRIPTION sub" + n + " ENABLE", db);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(10);
    while (sql(*source, "SELECT confirmed_flush_lsn >= '" + end_lsn + "' FROM pg_replication_slots WHERE slot_name = '" +
                            slot + "'") != "t") {
      if (std::chrono::steady_clock::now() > deadline) die("the subscription did not catch up within 10 minutes");
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    x.wall = now() - start;
    sql(*target, "ALTER SUBSCRIPTION sub" + n + " DISABLE; ALTER SUBSCRIPTION sub" + n + " SET (slot_name = NONE);"
                 "DROP SUBSCRIPTION sub" + n, db);
    same_as_source(db);
    return x;
  };
  auto edgeflow = [&](long i) {
    std::string n = std::to_string(i);
    Run x{"edgeflow", 0, {}};
    x.r = run_flow(dir,
                   "flow: apply\nsource:\n  type: postgres_cdc\n  dsn: \"" + src_dsn + "\"\n  slot: s_edge" + n +
                       "\n  publication: bench_pub\n  snapshot: never\n  end_lsn: \"" + end_lsn +
                       "\"\nsinks:\n  db:\n    type: postgres\n    dsn: \"host=127.0.0.1 port=" +
                       std::to_string(target->port()) + " user=postgres dbname=edge" + n +
                       "\"\n    mode: cdc\n    batch_rows: 5000\nmax_in_flight: 40000\n",
                   events);
    x.wall = x.r.wall;
    same_as_source("edge" + n);
    return x;
  };

  std::printf("%-10s %10s %9s %12s %9s %12s %13s\n", "tool", "changes", "wall s", "changes/s", "cpu s", "cpu s/M ch",
              "peak RSS KiB");
  auto print = [&](const Run& x) {
    std::printf("%-10s %10ld %9.3f %12.0f", x.tool.c_str(), events, x.wall, double(events) / x.wall);
    if (x.tool == "edgeflow")
      std::printf(" %9.3f %12.3f %13ld", x.r.cpu, x.r.cpu / double(events) * 1e6, x.r.max_rss_kib);
    std::printf("\n");
  };
  std::vector<double> nat, edge;
  for (long i = 0; i < rounds; ++i) {
    if (i % 2 == 0) {
      Run a = native(i);
      print(a);
      nat.push_back(double(events) / a.wall);
    }
    Run b = edgeflow(i);
    print(b);
    edge.push_back(double(events) / b.wall);
    if (i % 2 == 1) {
      Run a = native(i);
      print(a);
      nat.push_back(double(events) / a.wall);
    }
  }
  double ratio = median(edge) / median(nat);

  std::printf("\nedgeflow / native logical replication, changes applied per second%s: %.2fx (goal >= 1.0x): %s\n",
              rounds > 1 ? " (medians)" : "", ratio, ratio >= 1.0 ? "met" : "missed");
  std::printf("wall s: edgeflow from daemon start to exit (after its last COMMIT); native from ENABLE until the\n"
              "slot confirms the end LSN. cpu s and RSS: the edgeflow process (the native apply worker runs in\n"
              "the target server). Both targets are checked equal to the source.\n");

  // 4. The lag at a steady 5 000 changes/s.
  const int seconds = 20;
  const long per_txn = 50, expected = seconds * 100 * per_txn;
  sql(*source, "CREATE TABLE lag (id bigint PRIMARY KEY, src_ts timestamptz); CREATE PUBLICATION lag_pub FOR TABLE lag;"
               "SELECT pg_create_logical_replication_slot('s_lag_native', 'pgoutput');");
  for (std::string db : {"lagnative", "lagedge"}) {
    sql(*target, "CREATE DATABASE " + db);
    sql(*target, "CREATE TABLE lag (id bigint PRIMARY KEY, src_ts timestamptz, dst_ts timestamptz DEFAULT clock_timestamp())", db);
  }
  auto caught_up = [&](const std::string& db, long rows) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(2);
    while (sql(*target, "SELECT count(*) FROM lag", db) != std::to_string(rows)) {
      if (std::chrono::steady_clock::now() > deadline) die(db + " did not catch up within 2 minutes");
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  };
  sql(*target, "CREATE SUBSCRIPTION lag_sub CONNECTION '" + src_dsn + "' PUBLICATION lag_pub WITH "
               "(create_slot = false, slot_name = 's_lag_native', copy_data = false)", "lagnative");
  // Each client streams from its slot's start: rows written before it runs would count as lag.
  auto active = [&](const std::string& slot, const std::string& log_file) {
    auto up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (sql(*source, "SELECT active FROM pg_replication_slots WHERE slot_name = '" + slot + "'") != "t") {
      if (std::chrono::steady_clock::now() > up)
        die(slot + " was not taken up within 30 s" + (log_file.empty() ? "" : ":\n" + slurp(log_file)));
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  };
  active("s_lag_native", "");
  steady_writer(src_dsn, 1, per_txn, std::chrono::milliseconds(10), seconds);
  caught_up("lagnative", expected);
  sql(*target, "ALTER SUBSCRIPTION lag_sub DISABLE; ALTER SUBSCRIPTION lag_sub SET (slot_name = NONE); DROP SUBSCRIPTION lag_sub",
      "lagnative");
  sql(*source, "SELECT pg_drop_replication_slot('s_lag_native'); SELECT pg_create_logical_replication_slot('s_lag_edge', 'pgoutput')");
  std::ofstream(dir + "/lag.yaml")
      << "flow: lag\nsource:\n  type: postgres_cdc\n  dsn: \"" << src_dsn
      << "\"\n  slot: s_lag_edge\n  publication: lag_pub\n  snapshot: never\nsinks:\n  db:\n    type: postgres\n"
      << "    dsn: \"host=127.0.0.1 port=" << target->port() << " user=postgres dbname=lagedge\"\n"
      << "    mode: cdc\n    flush_interval: 5ms\n";
  pid_t daemon = spawn({EDGEFLOW_BIN, "run", "--admin", "off", "--state-dir", dir + "/lag-state", dir + "/lag.yaml"}, "", "",
                       dir + "/lag.log");
  active("s_lag_edge", dir + "/lag.log");
  steady_writer(src_dsn, expected + 1, per_txn, std::chrono::milliseconds(10), seconds);
  caught_up("lagedge", expected);
  kill(daemon, SIGTERM);
  int status = 0;
  waitpid(daemon, &status, 0);
  std::string native_lag = lag_percentiles("lagnative"), edge_lag = lag_percentiles("lagedge");
  std::printf("\nlag, source commit to target row, at 5000 changes/s for %d s (ms):\n%-10s %8s %8s %8s\n", seconds, "tool",
              "p50", "p99", "rows");
  for (auto [tool, text] : {std::pair{"native", native_lag}, std::pair{"edgeflow", edge_lag}}) {
    std::istringstream in(text);
    std::string p50, p99, rows;
    in >> p50 >> p99 >> rows;
    std::printf("%-10s %8s %8s %8s\n", tool, p50.c_str(), p99.c_str(), rows.c_str());
    if (std::string(tool) == "edgeflow")
      std::printf("edgeflow p99 %s ms (goal < 50 ms): %s\n", p99.c_str(), std::stod(p99) < 50 ? "met" : "missed");
  }

  // 5. Kafka → postgres upsert.
  {
    const long n = 1000000 * scale, keys = 250000 * scale;
    const int parts = int(32 * scale);  // at most about 4 MB per partition: the mock keeps 5 MiB
    Broker kafka(dir, parts, {"readings"});
    {
      KafkaClient c(kafka.bootstrap);
      c.fill("readings", n, 100, parts, keys);
      if (c.count("readings", true) != n) die("the input topic does not hold every record");
    }
    sql(*target, "CREATE DATABASE kafka");
    sql(*target, "CREATE TABLE readings (id bigint PRIMARY KEY, device text, temp double precision, ok boolean, ts bigint, "
                 "note text)", "kafka");
    Result r = run_flow(dir,
                        "flow: upsert\nsource:\n  type: kafka\n  brokers: \"" + kafka.bootstrap +
                            "\"\n  group_id: bench-pg\n  mode: standalone\n  topics: [readings]\n  start_from: earliest\n"
                            "  end_at_eof: true\nmax_in_flight: 40000\nsinks:\n  db:\n    type: postgres\n    dsn: \"host=127.0.0.1 port=" +
                            std::to_string(target->port()) + " user=postgres dbname=kafka\"\n    table: readings\n"
                            "    batch_rows: 5000\n",
                        n);
    if (sql(*target, "SELECT count(*) FROM readings", "kafka") != std::to_string(keys)) die("the table does not hold every key");
    std::printf("\nkafka -> postgres upsert, %ld records of 100 B on %ld keys:\n%-10s %10s %9s %12s %9s %12s %13s\n", n, keys,
                "tool", "records", "wall s", "records/s", "cpu s", "cpu s/M rec", "peak RSS KiB");
    std::printf("%-10s %10ld %9.3f %12.0f %9.3f %12.3f %13ld\n", "edgeflow", n, r.wall, double(n) / r.wall, r.cpu,
                r.cpu / double(n) * 1e6, r.max_rss_kib);
  }
  std::filesystem::remove_all(dir);
}
