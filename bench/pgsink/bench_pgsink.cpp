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
#include "bench.hpp"
#include "postgres_server.hpp"

#include <algorithm>
#include <chrono>
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
  std::filesystem::remove_all(dir);
}
