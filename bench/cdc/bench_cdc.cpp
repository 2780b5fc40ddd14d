// PostgreSQL change data capture against pg_recvlogical, on one backlog in one run:
//   1. a private PostgreSQL server (tests/support/postgres_server.hpp), a table, a publication and
//      one pgoutput slot per measured run, all created before the backlog, so every slot decodes
//      the same WAL;
//   2. the backlog: 500k inserts, then 250k updates, in transactions of 100k rows; its end LSN;
//   3. pg_recvlogical (pgoutput, protocol 1, written to /dev/null, --endpos) and the edgeflow
//      daemon (postgres_cdc -> drop, end_lsn) each drain that backlog from their own slot, three
//      rounds by default, alternating which goes first; the ratio is of the median events/s.
// Client CPU and peak RSS come from wait4 rusage. The server's side (the walsender decoding the
// WAL for that client) is read from the postmaster's reaped-children CPU once the walsender has
// exited. edgeflow must report every row change delivered and leave its slot confirmed at or past
// the end LSN, or the benchmark fails.
#include "bench.hpp"
#include "postgres_server.hpp"

#include <algorithm>
#include <chrono>
#include <thread>

namespace {

using namespace bench;

constexpr long kTxnRows = 100000;  // rows per backlog transaction: below logical_decoding_work_mem

// Destroyed on std::exit too (bench::die), so a failed run still stops its server.
std::optional<edgeflow::test::PostgresServer> server;

std::string sql(const std::string& q) {
  try {
    return server->psql(q);
  } catch (const std::exception& e) {
    die(e.what());
  }
}

// /proc/<pid>/stat from field 3 (state) on; empty when the process is gone.
std::vector<std::string> stat_fields(const std::string& pid) {
  std::string s = slurp("/proc/" + pid + "/stat");
  auto paren = s.rfind(')');
  if (paren == std::string::npos) return {};
  std::istringstream in(s.substr(paren + 1));
  std::vector<std::string> f;
  for (std::string w; in >> w;) f.push_back(w);
  return f;
}

pid_t postmaster() {
  std::ifstream in(server->data_dir() / "postmaster.pid");
  long pid = 0;
  if (!(in >> pid) || pid <= 1) die("cannot read the postmaster's pid");
  return pid_t(pid);
}

// CPU seconds of the postmaster's children it has waited for (cutime + cstime).
double reaped_children_cpu(pid_t pm) {
  auto f = stat_fields(std::to_string(pm));
  if (f.size() < 15) die("cannot read /proc/" + std::to_string(pm) + "/stat");
  return (std::stod(f[13]) + std::stod(f[14])) / double(sysconf(_SC_CLK_TCK));
}

// A walsender, or a child exiting or not yet reaped (its cmdline is empty from then on): only
// walsenders exit while a client runs, autovacuum being off.
bool walsender_alive(pid_t pm) {
  for (auto& e : std::filesystem::directory_iterator("/proc")) {
    std::string pid = e.path().filename().string();
    if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
    auto f = stat_fields(pid);
    if (f.size() < 2 || f[1] != std::to_string(pm)) continue;
    std::string cmdline = slurp("/proc/" + pid + "/cmdline");
    if (cmdline.empty() || cmdline.find("walsender") != std::string::npos) return true;
  }
  return false;
}

// The server CPU a client caused: run it, wait until its walsender has exited and been reaped.
template <class F>
Result with_server_cpu(F client, double& server_cpu) {
  pid_t pm = postmaster();
  double before = reaped_children_cpu(pm);
  Result r = client();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (walsender_alive(pm)) {
    if (std::chrono::steady_clock::now() > deadline) die("the walsender did not exit within 30 s");
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  server_cpu = reaped_children_cpu(pm) - before;
  return r;
}

struct Run {
  std::string tool;
  Result r;
  double server_cpu = 0;
};

void print_run(const Run& x, long events) {
  std::printf("%-16s %10ld %9.3f %9.3f %12.0f %12.3f %13ld %12.3f %14.3f\n", x.tool.c_str(), events, x.r.wall,
              x.r.cpu, double(events) / x.r.wall, x.r.cpu / double(events) * 1e6, x.r.max_rss_kib, x.server_cpu,
              x.server_cpu / double(events) * 1e6);
}

double median_rate(const std::vector<Run>& runs, long events) {
  std::vector<double> v;
  for (auto& x : runs) v.push_back(double(events) / x.r.wall);
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

}  // namespace

int main(int argc, char** argv) {
  long scale = argc > 1 ? std::atol(argv[1]) : 1;   // multiply the backlog for longer runs
  long rounds = argc > 2 ? std::atol(argv[2]) : 3;  // runs of each tool, each on its own slot
  if (scale < 1 || rounds < 1 || rounds > 4) die("usage: bench_cdc [scale >= 1] [rounds 1..4]");
  long inserts = 500000 * scale, updates = 250000 * scale, events = inserts + updates;
  std::string dir = temp_dir();
  setvbuf(stdout, nullptr, _IOLBF, 0);  // rows in order with a failure's message on stderr

  try {
    server.emplace();
  } catch (const std::exception& e) {
    die(e.what());
  }
  std::string port = std::to_string(server->port());
  std::printf("edgeflow CDC benchmark (%s), PostgreSQL %s, %ld CPU(s)\n", EDGEFLOW_BIN,
              sql("SHOW server_version").c_str(), sysconf(_SC_NPROCESSORS_ONLN));

  // No autovacuum worker may run (and be reaped) while the walsenders are measured.
  sql("ALTER SYSTEM SET autovacuum = off; SELECT pg_reload_conf();");
  sql("CREATE TABLE bench (id bigint PRIMARY KEY, name text, amount numeric, created timestamptz, payload jsonb)"
      " WITH (autovacuum_enabled = off);"
      "CREATE PUBLICATION bench_pub FOR TABLE bench;");
  for (long i = 0; i < rounds; ++i)
    sql("SELECT pg_create_logical_replication_slot('s_recv" + std::to_string(i) + "', 'pgoutput');"
        "SELECT pg_create_logical_replication_slot('s_edge" + std::to_string(i) + "', 'pgoutput');");

  double t0 = now();
  std::string start_lsn = sql("SELECT pg_current_wal_lsn()");
  long txns = 0;
  for (long lo = 1; lo <= inserts; lo += kTxnRows, ++txns)
    sql("INSERT INTO bench SELECT g, 'customer ' || g, round(g * 1.37 % 10000, 2), "
        "timestamptz '2026-01-01 00:00:00+00' + g * interval '1 second', "
        "jsonb_build_object('sku', 'SKU-' || g % 1000, 'qty', 1 + g % 9, 'tags', jsonb_build_array('edge', 'cdc')) "
        "FROM generate_series(" + std::to_string(lo) + ", " + std::to_string(std::min(lo + kTxnRows - 1, inserts)) +
        ") g");
  for (long lo = 1; lo <= updates; lo += kTxnRows, ++txns)
    sql("UPDATE bench SET amount = amount + 1, name = name || ' (updated)' WHERE id BETWEEN " + std::to_string(lo) +
        " AND " + std::to_string(std::min(lo + kTxnRows - 1, updates)));
  std::string end_lsn = sql("SELECT pg_current_wal_lsn()");
  double wal_mib = std::stod(sql("SELECT pg_wal_lsn_diff('" + end_lsn + "', '" + start_lsn + "')")) / 1048576.0;
  sql("CHECKPOINT");
  std::printf("backlog: %ld inserts + %ld updates in %ld transactions, %.0f MiB of WAL, built in %.1f s; end LSN %s\n\n",
              inserts, updates, txns, wal_mib, now() - t0, end_lsn.c_str());

  auto recvlogical = [&](long i) {
    Run x{"pg_recvlogical", {}, 0};
    x.r = with_server_cpu(
        [&] {
          return run({server->bin("pg_recvlogical"), "-h", "127.0.0.1", "-p", port, "-U", "postgres", "-d", "postgres",
                      "--slot", "s_recv" + std::to_string(i), "--start", "-o", "proto_version=1", "-o",
                      "publication_names=bench_pub", "--endpos=" + end_lsn, "-f", "/dev/null", "--no-loop"},
                     "", "", dir + "/pg_recvlogical.log");
        },
        x.server_cpu);
    return x;
  };
  auto edgeflow = [&](long i) {
    std::string slot = "s_edge" + std::to_string(i);
    Run x{"edgeflow", {}, 0};
    x.r = with_server_cpu(
        [&] {
          return run_flow(dir,
                          "flow: cdc\nsource:\n  type: postgres_cdc\n  dsn: \"host=127.0.0.1 port=" + port +
                              " user=postgres dbname=postgres\"\n  slot: " + slot +
                              "\n  publication: bench_pub\n  snapshot: never\n  end_lsn: \"" + end_lsn +
                              "\"\nsinks:\n  out: { type: drop }\n",
                          events);
        },
        x.server_cpu);
    std::string confirmed = sql("SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = '" + slot + "'");
    if (sql("SELECT '" + confirmed + "'::pg_lsn >= '" + end_lsn + "'::pg_lsn") != "t")
      die("slot " + slot + " confirmed " + confirmed + ", short of the end LSN " + end_lsn);
    return x;
  };

  std::printf("%-16s %10s %9s %9s %12s %12s %13s %12s %14s\n", "tool", "events", "wall s", "cpu s", "events/s",
              "cpu s/M ev", "peak RSS KiB", "server cpu s", "server s/M ev");
  std::vector<Run> recv, edge;
  for (long i = 0; i < rounds; ++i) {  // alternate which tool goes first
    if (i % 2 == 0) recv.push_back(recvlogical(i)), print_run(recv.back(), events);
    edge.push_back(edgeflow(i)), print_run(edge.back(), events);
    if (i % 2 == 1) recv.push_back(recvlogical(i)), print_run(recv.back(), events);
  }
  double ratio = median_rate(edge, events) / median_rate(recv, events);
  std::printf("\nedgeflow / pg_recvlogical events/s%s: %.2fx (goal >= 0.9x): %s\n", rounds > 1 ? " (medians)" : "",
              ratio, ratio >= 0.9 ? "met" : "missed");
  std::printf("events: row changes (pg_recvlogical also writes each transaction's begin, commit and relation "
              "messages).\ncpu s: the client process; server cpu s: the walsender decoding the WAL for it (the "
              "postmaster's reaped-children CPU over the run).\n");
  std::filesystem::remove_all(dir);
}
