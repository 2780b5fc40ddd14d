// PostgreSQL change data capture with the built-in pgoutput plugin: an optional consistent
// snapshot, then every committed change of the publication's tables, as canonical JSON events.
//
// Delivery: the slot's confirmed-flush LSN is the store of progress. It advances only to commits
// whose every event was acknowledged end to end (TxnTracker), so a crash or a restart re-reads
// at most the transactions not fully delivered. A lost connection fails the run; the runtime
// restarts the flow with capped, jittered backoff and the stream resumes at the confirmed LSN.
#include "pg_types.hpp"
#include "pgoutput.hpp"
#include "publication.hpp"
#include "incremental.hpp"
#include "redact.hpp"
#include "replication.hpp"
#include "snapshot.hpp"
#include "spool.hpp"
#include "txn_tracker.hpp"

#include <edgeflow/sdk/plugin.hpp>
#include <edgeflow/sdk/state_file.hpp>

#include <libpq-fe.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <variant>
#include <vector>

using namespace edgeflow::sdk;
namespace pg = edgeflow::pg;
using edgeflow::sdk::expr::append_json_string;
using Clock = std::chrono::steady_clock;
using Lsn = pg::Lsn;

namespace {

// A flow name made into a PostgreSQL slot/publication name: [a-z0-9_], at most 63 bytes.
std::string object_name(const std::string& instance) {
  std::string flow = instance.substr(0, instance.find('/'));
  std::string out = "edgeflow_";
  for (char c : flow) {
    if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
    out += (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ? c : '_';
  }
  return out.substr(0, 63);
}

int64_t unix_ms(pg::PgTimestamp ts) { return pg::pg_timestamp_to_unix_ms(ts); }

class PostgresCdcSource : public Source {
 public:
  struct Config {
    std::string dsn;
    std::string slot;
    std::string publication;
    bool create_slot = true;
    bool create_publication = true;
    bool temporary_slot = false;
    std::vector<std::string> tables;
    std::vector<std::string> exclude_tables;
    std::string snapshot = "initial";
    int64_t snapshot_chunk_rows = 10000;
    int64_t incremental_chunk_rows = 1024;
    bool transaction_events = false;
    bool messages = true;
    bool streaming = true;
    int64_t batch_size = 1024;
    std::chrono::milliseconds status_interval{10000};
    std::chrono::milliseconds heartbeat_interval{0};
    std::string heartbeat_query;
    std::string end_lsn;
  };
  static constexpr const char* type = "postgres_cdc";
  static constexpr const char* description =
      "Streams committed changes of PostgreSQL tables (logical replication with the built-in pgoutput "
      "plugin), after an optional consistent snapshot; the slot's confirmed LSN advances only past "
      "changes delivered end to end.";
  static void describe(Spec<Config>& s) {
    s.option("dsn", &Config::dsn)
        .required()
        .secret()
        .doc("libpq connection string (keyword/value or URI) of the database to capture. The role needs "
             "the REPLICATION attribute (or rds_replication and the like on managed services).")
        .example("host=db.local port=5432 dbname=shop user=edgeflow password=${env:PGPASSWORD}");
    s.option("slot", &Config::slot)
        .doc("Logical replication slot; default edgeflow_<flow>. One slot per flow: a slot in use by "
             "another process is waited for, never shared.")
        .example("edgeflow_orders");
    s.option("publication", &Config::publication)
        .doc("Publication naming the captured tables; default edgeflow_<flow>.")
        .example("orders_pub");
    s.option("create_slot", &Config::create_slot).doc("Create the slot when it does not exist.").example("false");
    s.option("create_publication", &Config::create_publication)
        .doc("Create the publication when it does not exist: FOR TABLE <tables>, or FOR ALL TABLES "
             "(superuser only) when `tables` is empty.")
        .example("false");
    s.option("temporary_slot", &Config::temporary_slot)
        .doc("Use a temporary slot, dropped when the connection ends: no WAL is kept for a stopped "
             "flow, and nothing resumes either (with snapshot: initial each start reads the tables again).")
        .example("true");
    s.option("tables", &Config::tables)
        .doc("Tables to capture (\"schema.table\", or \"table\" for schema public); empty: every "
             "table of the publication.")
        .example("[public.orders, public.order_lines]");
    s.option("exclude_tables", &Config::exclude_tables)
        .doc("Tables of the publication to leave out.")
        .example("[public.audit_log]");
    s.option("snapshot", &Config::snapshot)
        .one_of("initial|never|initial_only|when_needed")
        .doc("initial: read the tables once, when the slot is created, then stream; never: stream only; "
             "initial_only: read the tables and end; when_needed: like initial, and also when the slot "
             "lost its WAL (it is then dropped and created again instead of failing).")
        .example("never");
    s.option("snapshot_chunk_rows", &Config::snapshot_chunk_rows)
        .range(1, 1000000)
        .doc("Rows fetched per round trip while reading the snapshot; bounds its memory.")
        .example("10000");
    s.option("incremental_chunk_rows", &Config::incremental_chunk_rows)
        .range(1, 100000)
        .doc("Rows per chunk of an incremental snapshot (a table added to `tables`, or `edgeflow cdc "
             "snapshot FLOW TABLE`), read while the stream goes on; each chunk is read between two "
             "watermarks in the WAL (PostgreSQL 14+).")
        .example("1024");
    s.option("transaction_events", &Config::transaction_events)
        .doc("Also emit an event at each transaction's begin (op \"begin\") and commit (op \"commit\").")
        .example("true");
    s.option("messages", &Config::messages)
        .doc("Emit pg_logical_emit_message() messages (op \"m\"), e.g. for the outbox pattern.")
        .example("false");
    s.option("streaming", &Config::streaming)
        .doc("Have the server send large transactions while they still run (PostgreSQL 14+): they are "
             "spooled to the state directory and emitted at their commit, instead of piling up on the "
             "server's disk until then. Off, or on older servers: the server sends them at commit.")
        .example("false");
    s.option("batch_size", &Config::batch_size).range(1, 65536).doc("Events per emitted batch.").example("1024");
    s.option("status_interval", &Config::status_interval)
        .min(100)
        .doc("How often the position is reported to the server; keep it well below the server's "
             "wal_sender_timeout (60s by default).")
        .example("10s");
    s.option("heartbeat_interval", &Config::heartbeat_interval)
        .doc("With heartbeat_query: how often to run it (0: never).")
        .example("1m");
    s.option("heartbeat_query", &Config::heartbeat_query)
        .doc("A write run on a separate connection every heartbeat_interval, for databases whose "
             "captured tables are quiet while others are busy.")
        .example("INSERT INTO edgeflow_heartbeat (id, at) VALUES (1, now()) ON CONFLICT (id) DO UPDATE SET at = now()");
    s.option("end_lsn", &Config::end_lsn)
        .doc("Stop once everything up to this LSN was read and acknowledged (like pg_recvlogical "
             "--endpos); empty: stream forever.")
        .example("0/1A2B3C4D");
  }

  PostgresCdcSource(Context c, Config cfg) : Source(c), cfg_(std::move(cfg)) {
    if (cfg_.slot.empty()) cfg_.slot = object_name(context().name());
    own_publication_ = cfg_.publication.empty() && cfg_.create_publication;
    if (cfg_.publication.empty()) cfg_.publication = object_name(context().name());
    if (!cfg_.end_lsn.empty()) {
      auto lsn = pg::parse_lsn(cfg_.end_lsn);
      if (!lsn)
        throw Error(context().where("end_lsn") + ": end_lsn \"" + cfg_.end_lsn +
                    "\" is not an LSN: write it as PostgreSQL prints it, e.g. \"0/1A2B3C4D\"");
      end_lsn_ = *lsn;
    }
    if (auto bad = pg::Redactor(cfg_.dsn).parse_error(); !bad.empty())
      throw Error(context().where("dsn") + ": the connection string does not parse: " + bad);
    if (cfg_.heartbeat_interval.count() > 0 && cfg_.heartbeat_query.empty())
      throw Error(context().where("heartbeat_interval") +
                  ": heartbeat_interval needs heartbeat_query, the write to run");
    if (cfg_.temporary_slot && !cfg_.create_slot)
      throw Error(context().where("temporary_slot") +
                  ": a temporary slot is always created: drop create_slot: false or temporary_slot");
    for (auto& t : cfg_.tables) include_.push_back(pg::parse_table_name(t).qualified());
    for (auto& t : cfg_.exclude_tables) exclude_.push_back(pg::parse_table_name(t).qualified());
  }

  void start() override {
    conn_ = std::make_unique<pg::ReplicationConnection>(cfg_.dsn);
    db_ = conn_->database();
    check_wal_level();
    pg::Publication::Settings ps;
    ps.publication = cfg_.publication;
    ps.tables = cfg_.tables;
    ps.exclude_tables = cfg_.exclude_tables;
    ps.create = cfg_.create_publication;
    ps.own = own_publication_;
    ps.where = [this](const std::string& key) { return context().where(key); };
    ps.info = [this](const std::string& m) { context().info(m); };
    ps.warn = [this](const std::string& m) { context().warn(m); };
    pg::Publication publication(*conn_, std::move(ps));
    publication.ensure();
    include_oids_ = publication.listed();
    exclude_oids_ = publication.excluded();
    if (cfg_.snapshot == "initial_only") {
      snapshot_pending_ = true;
      return;
    }
    ensure_slot();
    start_incremental();
  }

  // `edgeflow cdc snapshot FLOW TABLE...` (POST /flows/FLOW/signal): an incremental snapshot of
  // the tables, queued for run(). Runs on the admin API's thread.
  void on_signal(Value command) {
    std::string action(command["action"].is_string() ? command["action"].as_string() : "");
    if (action != "snapshot")
      throw Error("unknown action '" + action + "'; postgres_cdc takes {\"action\":\"snapshot\",\"tables\":[...]}");
    Value list = command["tables"];
    if (!list.is_array() || list.size() == 0 || list.size() > 1000)
      throw Error("tables: give the tables to snapshot, like [\"public.orders\"] (at most 1000)");
    std::vector<std::string> tables;
    for (size_t i = 0; i < list.size(); ++i) {
      if (!list.at(i).is_string() || list.at(i).as_string().empty()) throw Error("tables[" + std::to_string(i) + "]: expected a table name");
      tables.push_back(pg::parse_table_name(std::string(list.at(i).as_string())).qualified());
    }
    if (!inc_)
      throw Error("incremental snapshots need PostgreSQL 14 or later (logical decoding messages) and a slot; "
                  "this flow has neither");
    for (auto& t : tables)
      if (!include_.empty() && std::find(include_.begin(), include_.end(), t) == include_.end())
        throw Error("table " + t + " is not in this flow's tables (" + std::to_string(cfg_.tables.size()) + " listed); add it to "
                    "tables and reload: a table added there is snapshotted by itself");
    try {
      inc_->request(tables);
    } catch (const std::exception& e) {
      throw Error(pg::Redactor(cfg_.dsn)(e.what()));
    }
  }

  void stop() override {
    publish_metrics();
    if (conn_ && streaming_) {
      try {
        conn_->send_status(received_, tracker_.confirmed());
      } catch (const std::exception& e) {
        context().warn(std::string("could not report the final position: ") + e.what());
      }
    }
    conn_.reset();
    if (side_) PQfinish(side_);
    side_ = nullptr;
  }

  void run() override {
    if (snapshot_pending_ && !read_snapshot()) return;
    if (cfg_.snapshot == "initial_only") {
      if (!wait_snapshot_acked()) return;
      context().info("snapshot complete; snapshot: initial_only ends the flow here");
      return;
    }
    stream();
    stream_ended_ = true;
  }

  void on_ack(std::span<const ef_ack> acks) override {
    for (auto& a : acks) tracker_.resolve(a.token, ef_ack_status(a.status));
    if (inc_) inc_->delivered([&](uint64_t token) { return tracker_.done(token); });
    if (stream_ended_) report_while_draining();
    if (snapshot_token_ && tracker_.done(*snapshot_token_)) {
      snapshot_token_.reset();
      mark_snapshot("done");
      context().info("snapshot delivered: " + std::to_string(snapshot_rows_) + " rows acknowledged");
    }
  }

 private:
  // events: a counter (its rate is events/s); replication_lag_bytes: WAL the server has that is
  // not confirmed yet; replication_lag_seconds: the age of the newest transaction read while
  // anything read is unconfirmed or more WAL waits, 0 once caught up.
  void publish_metrics() {
    context().counter("events", double(events_));
    if (inc_) {
      context().gauge("incremental_snapshot_tables_pending", double(inc_->tables_pending()));
      context().counter("incremental_snapshot_rows", double(inc_->rows()));
      context().counter("incremental_snapshot_chunks", double(inc_->chunks()));
      context().counter("incremental_snapshot_rows_superseded", double(inc_->superseded()));
    }
    if (!streaming_) return;
    Lsn confirmed = tracker_.confirmed();
    context().gauge("replication_lag_bytes", server_end_ > confirmed ? double(server_end_ - confirmed) : 0.0);
    bool behind = !tracker_.idle() || received_ < server_end_;
    int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch()).count();
    context().gauge("replication_lag_seconds", behind && commit_ms_ ? std::max<int64_t>(0, now_ms - commit_ms_) / 1000.0 : 0.0);
  }

  // After run() the runtime drains the flow, and acks still arrive: report them as they come, which
  // also keeps the idle connection from the server's wal_sender_timeout until stop().
  void report_while_draining() {
    auto now = Clock::now();
    if (!conn_ || !streaming_ || now - last_drain_report_ < std::chrono::milliseconds(100)) return;
    last_drain_report_ = now;
    try {
      conn_->send_status(received_, tracker_.confirmed());
    } catch (const std::exception& e) {
      context().warn(std::string("could not report the position while draining: ") + e.what());
      streaming_ = false;
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Checks and setup, at start

  void check_wal_level() {
    auto rows = conn_->query("SHOW wal_level");
    std::string level = rows.empty() || rows[0].empty() ? "" : rows[0][0].value_or("");
    if (level != "logical")
      throw Error("the server runs with wal_level = " + level +
                  "; change data capture needs wal_level = logical: run ALTER SYSTEM SET wal_level = "
                  "logical; and restart PostgreSQL (managed services: set it in the parameter group)");
  }

  void ensure_slot() {
    const std::string create_sql = "SELECT pg_create_logical_replication_slot(" + conn_->literal(cfg_.slot) + ", 'pgoutput');";
    bool want_snapshot = cfg_.snapshot == "initial" || cfg_.snapshot == "when_needed";
    snapshot_file_ = state_file(context(), ".snapshot");
    if (cfg_.temporary_slot) {
      create_slot(want_snapshot);
      return;
    }
    auto rows = conn_->query(
        "SELECT plugin, database, wal_status, active_pid, confirmed_flush_lsn FROM pg_replication_slots "
        "WHERE slot_name = " +
        conn_->literal(cfg_.slot));
    if (rows.empty()) {
      if (!cfg_.create_slot)
        throw Error(context().where("slot") + ": replication slot " + cfg_.slot +
                    " does not exist and create_slot is false: run " + create_sql);
      create_slot(want_snapshot);
      return;
    }
    auto& r = rows[0];
    if (r[0].value_or("") != "pgoutput")
      throw Error("replication slot " + cfg_.slot + " uses the output plugin " + r[0].value_or("(none: a physical slot)") +
                  ", not pgoutput: name another slot, or drop this one if nothing else uses it");
    if (r[1].value_or("") != db_)
      throw Error("replication slot " + cfg_.slot + " belongs to database " + r[1].value_or("?") +
                  ", not " + db_ + ": a logical slot captures one database; use another slot name");
    if (r[3])
      throw Error("replication slot " + cfg_.slot + " is active for PID " + *r[3] +
                  ": another consumer is using it (a slot is never shared); waiting for it to disconnect");
    if (r[2].value_or("") == "lost") {
      if (cfg_.snapshot != "when_needed")
        throw Error("replication slot " + cfg_.slot +
                    " has lost the WAL it needs (wal_status = lost, max_slot_wal_keep_size exceeded): changes "
                    "were removed before they were read and cannot be recovered. Drop it (SELECT "
                    "pg_drop_replication_slot(" + conn_->literal(cfg_.slot) + ");) and start again with "
                    "snapshot: initial, or use snapshot: when_needed to do this automatically");
      context().warn("replication slot " + cfg_.slot + " lost its WAL; dropping it and taking a new snapshot");
      conn_->drop_slot(cfg_.slot);
      create_slot(true);
      return;
    }
    if (want_snapshot && snapshot_state() == "pending") {
      context().warn("the snapshot taken with slot " + cfg_.slot +
                     " was interrupted before every row was delivered; dropping the slot and starting it again");
      conn_->drop_slot(cfg_.slot);
      create_slot(true);
      return;
    }
    consistent_point_ = pg::parse_lsn(r[4].value_or("")).value_or(0);
    context().info("resuming from replication slot " + cfg_.slot + " at " + pg::format_lsn(consistent_point_));
  }

  void create_slot(bool with_snapshot) {
    if (with_snapshot) mark_snapshot("pending");
    auto slot = conn_->create_slot(cfg_.slot, cfg_.temporary_slot, with_snapshot);
    context().info("created " + std::string(cfg_.temporary_slot ? "temporary " : "") + "replication slot " +
                   cfg_.slot + " at " + pg::format_lsn(slot.consistent_point));
    consistent_point_ = slot.consistent_point;
    slot_created_ = true;
    snapshot_name_ = slot.snapshot;
    snapshot_pending_ = with_snapshot;
  }

  // Incremental snapshots ride on logical decoding messages (PostgreSQL 14+) and need a slot that
  // outlives the connection. A table listed now that the last run did not list is read so.
  void start_incremental() {
    if (cfg_.temporary_slot || conn_->server_version() < 140000) return;
    pg::IncrementalSnapshots::Options o;
    o.dsn = cfg_.dsn;
    o.publication = cfg_.publication;
    o.slot = cfg_.slot;
    o.exclude = exclude_;
    o.chunk_rows = size_t(cfg_.incremental_chunk_rows);
    o.state_file = state_file(context(), ".incremental");
    o.info = [this](const std::string& m) { context().info(m); };
    o.warn = [this](const std::string& m) { context().warn(m); };
    if (o.state_file.empty() && !include_.empty())
      context().warn("no state directory: a table added to tables later is not snapshotted by itself");
    inc_ = std::make_unique<pg::IncrementalSnapshots>(std::move(o));
    for (auto& t : inc_->start(include_, slot_created_))
      context().info("table " + t + " was added to tables: its rows are read by an incremental snapshot while the stream goes on");
  }

  std::string snapshot_state() const {
    if (snapshot_file_.empty()) return "";
    std::ifstream in(snapshot_file_);
    std::string state, slot;
    in >> state >> slot;
    return slot == cfg_.slot ? state : "";
  }

  void mark_snapshot(const std::string& state) {
    if (cfg_.temporary_slot || cfg_.snapshot == "initial_only") return;
    if (snapshot_file_.empty()) {
      if (state == "pending")
        context().warn("no state directory: a snapshot interrupted by a crash cannot be detected and redone");
      return;
    }
    store_atomically(snapshot_file_, state + " " + cfg_.slot + "\n");
  }

  // ---------------------------------------------------------------------------------------------
  // Snapshot

  bool read_snapshot() {
    pg::SnapshotReader reader(cfg_.dsn, snapshot_name_);
    auto tables = reader.tables(cfg_.publication, cfg_.tables, cfg_.exclude_tables);
    uint64_t token = tracker_.open();
    std::string lsn = pg::format_lsn(snapshot_name_.empty() ? reader.position() : consistent_point_);
    std::vector<ef_message*> batch;
    auto last_log = Clock::now();
    uint64_t estimated = 0;
    for (auto& t : tables) estimated += t.estimated_rows;
    context().gauge("snapshot_rows_estimated", double(estimated));
    context().gauge("snapshot_rows", 0);
    for (auto& t : tables) {
      context().info("snapshot of " + t.table.qualified() + ": about " + std::to_string(t.estimated_rows) + " rows");
      std::string source_tail = R"(,"source":)";
      append_source(source_tail, t.table.schema, t.table.name, lsn, "null", "null");
      uint64_t table_rows = 0;
      bool more = true;
      reader.read(t, size_t(cfg_.snapshot_chunk_rows), [&](std::vector<pg::SnapshotRow>& rows) {
        for (auto& row : rows) batch.push_back(read_event(row, source_tail, token));
        tracker_.add(token, rows.size());
        table_rows += rows.size();
        snapshot_rows_ += rows.size();
        context().gauge("snapshot_rows", double(snapshot_rows_));
        publish_metrics();
        more = emit_all(batch);
        if (more && Clock::now() - last_log > std::chrono::seconds(10)) {
          last_log = Clock::now();
          context().info("snapshot of " + t.table.qualified() + ": " + std::to_string(table_rows) + " of about " +
                         std::to_string(t.estimated_rows) + " rows read");
        }
        return more;
      });
      if (!more) return false;
      context().info("snapshot of " + t.table.qualified() + " read: " + std::to_string(table_rows) + " rows");
    }
    reader.finish();
    snapshot_token_ = token;
    tracker_.commit(token, consistent_point_);
    snapshot_pending_ = false;
    on_ack({});
    return true;
  }

  bool wait_snapshot_acked() {
    while (snapshot_token_)
      if (!poll(1000)) return false;
    return true;
  }

  // ---------------------------------------------------------------------------------------------
  // Streaming

  void stream() {
    bool streaming = cfg_.streaming && conn_->server_version() >= 140000;
    if (streaming) {
      std::string dir = state_file(context(), ".spool");
      if (dir.empty()) dir = (std::filesystem::temp_directory_path() / ("edgeflow-spool-" + std::to_string(::getpid()) + "-" + cfg_.slot)).string();
      spool_ = std::make_unique<pg::Spool>(dir);
    }
    // Messages are asked for whenever the server has them (14+): the watermarks of incremental
    // snapshots are messages; other messages are dropped without `messages: true`.
    conn_->start({cfg_.slot, 0, cfg_.publication, streaming ? 2 : 1, conn_->server_version() >= 140000, streaming});
    streaming_ = true;
    tracker_.start_at(consistent_point_);
    context().info("streaming changes of publication " + cfg_.publication + " from slot " + cfg_.slot);
    std::vector<ef_message*> batch;
    batch.reserve(size_t(cfg_.batch_size));
    auto last_status = Clock::now();
    Lsn reported = 0;
    auto heartbeat_due = Clock::now() + cfg_.heartbeat_interval;
    for (;;) {
      bool got = false;
      while (batch.size() < size_t(cfg_.batch_size) && !reached_end_) {
        std::string_view raw;
        auto r = conn_->read(raw);
        if (r == pg::ReplicationConnection::Read::none) break;
        if (r == pg::ReplicationConnection::Read::ended)
          throw Error("the server ended the replication stream");
        got = true;
        handle(raw, batch);
        if (reply_now_ || stopping_) break;
      }
      if (stopping_) return;
      if (!batch.empty()) {
        if (!emit_all(batch)) return;
      } else if (!poll(0)) {
        return;
      }
      if (inc_) inc_->step();
      auto now = Clock::now();
      bool due = now - last_status >= cfg_.status_interval;
      bool moved = tracker_.confirmed() != reported && now - last_status >= std::chrono::milliseconds(100);
      if (reply_now_ || due || moved) {
        publish_metrics();
        // Idle, ask for a keepalive: its end of WAL lets the slot advance past unread WAL.
        conn_->send_status(received_, tracker_.confirmed(), due && tracker_.idle());
        reported = tracker_.confirmed();
        last_status = now;
        reply_now_ = false;
      }
      if (reached_end_ && tracker_.idle()) {
        conn_->send_status(received_, tracker_.confirmed());
        context().info("reached end_lsn " + cfg_.end_lsn + "; confirmed " + pg::format_lsn(tracker_.confirmed()));
        return;
      }
      if (cfg_.heartbeat_interval.count() > 0 && now >= heartbeat_due) {
        heartbeat();
        heartbeat_due = now + cfg_.heartbeat_interval;
      }
      if (!got) {
        auto until_status = cfg_.status_interval - (Clock::now() - last_status);
        auto wait = std::clamp(std::chrono::duration_cast<std::chrono::milliseconds>(until_status),
                               std::chrono::milliseconds(1), std::chrono::milliseconds(100));
        if (!tracker_.idle() || reached_end_) wait = std::min(wait, std::chrono::milliseconds(20));
        conn_->wait(wait);
      }
    }
  }

  void handle(std::string_view raw, std::vector<ef_message*>& batch) {
    auto sm = pg::parse_stream_message(raw);
    if (!sm) throw Error("malformed replication stream message (type '" + std::string(raw.substr(0, 1)) + "')");
    server_end_ = std::max(server_end_, sm->wal_end);
    if (sm->type == 'k') {
      received_ = std::max(received_, sm->wal_end);
      if (!in_txn_) tracker_.caught_up(sm->wal_end);
      if (end_lsn_ && !in_txn_ && sm->wal_end >= end_lsn_) reached_end_ = true;
      if (sm->reply_requested) reply_now_ = true;
      return;
    }
    received_ = std::max(received_, sm->wal_start);
    if (in_stream_ && !sm->data.empty() && !is_stream_control(sm->data[0])) {
      // A chunk of a transaction still running: kept as it came until it commits or aborts.
      if (sm->data.size() < 5) throw Error("streamed pgoutput message too short for its transaction id");
      pg::Xid sub = 0;
      for (int i = 1; i < 5; ++i) sub = (sub << 8) | uint8_t(sm->data[size_t(i)]);
      spool_->append(stream_xid_, sub, sm->wal_start, sm->data);
      return;
    }
    pg::Message m = pg::decode(sm->data, relations_);
    std::visit([&](auto& msg) { on_message(msg, sm->wal_start, batch); }, m);
  }

  void on_message(pg::Begin& b, Lsn, std::vector<ef_message*>& batch) {
    in_txn_ = true;
    txn_ = tracker_.open();
    txid_ = std::to_string(b.xid);
    commit_ts_.clear();
    append_json_string(commit_ts_, pg::pg_timestamp_to_iso8601(b.commit_ts));
    commit_ms_ = unix_ms(b.commit_ts);
    txn_events_ = 0;
    if (cfg_.transaction_events) {
      out_.assign(R"({"op":"begin","source":)");
      append_source(out_, pg::format_lsn(b.final_lsn), txid_, commit_ts_);
      out_ += '}';
      batch.push_back(make_event(txn_, {}, commit_ms_));
      tracker_.add(txn_);
    }
  }

  void on_message(pg::Commit& c, Lsn, std::vector<ef_message*>& batch) {
    if (cfg_.transaction_events) {
      out_.assign(R"({"op":"commit","events":)");
      out_ += std::to_string(txn_events_);
      out_ += R"(,"source":)";
      append_source(out_, pg::format_lsn(c.commit_lsn), txid_, commit_ts_);
      out_ += '}';
      batch.push_back(make_event(txn_, {}, commit_ms_));
      tracker_.add(txn_);
    }
    in_txn_ = false;
    tracker_.commit(txn_, c.end_lsn);
    if (end_lsn_ && c.end_lsn >= end_lsn_) reached_end_ = true;
  }

  void on_message(pg::Insert& m, Lsn lsn, std::vector<ef_message*>& batch) {
    if (!captured(*m.relation)) return;
    row_event('c', *m.relation, nullptr, &m.new_tuple, m.new_tuple, lsn, batch);
  }

  void on_message(pg::Update& m, Lsn lsn, std::vector<ef_message*>& batch) {
    if (!captured(*m.relation)) return;
    const pg::Tuple* before = m.old_tuple ? &*m.old_tuple : nullptr;
    // The key is the new row's: an update that changed the key carries the old one in `before`.
    row_event('u', *m.relation, before, &m.new_tuple, m.new_tuple, lsn, batch, m.old_kind == pg::OldTupleKind::Key);
  }

  void on_message(pg::Delete& m, Lsn lsn, std::vector<ef_message*>& batch) {
    if (!captured(*m.relation)) return;
    row_event('d', *m.relation, &m.old_tuple, nullptr, m.old_tuple, lsn, batch, m.old_kind == pg::OldTupleKind::Key);
  }

  void on_message(pg::Truncate& m, Lsn lsn, std::vector<ef_message*>& batch) {
    for (auto oid : m.relation_oids) {
      auto rel = relations_.find(oid);
      if (!rel || !captured(*rel)) continue;
      if (auto* w = open_window(*rel)) w->supersede_all();
      out_.assign(R"({"op":"t","before":null,"after":null,"source":)");
      append_source(out_, rel->namespace_name, rel->name, pg::format_lsn(lsn), txid_, commit_ts_);
      out_ += R"(,"key":null})";
      push_txn_event(batch);
    }
  }

  void on_message(pg::LogicalMessage& m, Lsn, std::vector<ef_message*>& batch) {
    if (m.prefix == pg::kWatermarkPrefix) return watermark(m, batch);
    if (!cfg_.messages) return;
    bool own = !m.transactional() || !in_txn_;
    uint64_t token = own ? tracker_.open() : txn_;
    out_.assign(R"({"op":"m","message":{"prefix":)");
    append_json_string(out_, m.prefix);
    // pg_logical_emit_message takes bytea: content that is not UTF-8 is kept exactly, in base64.
    if (edgeflow::sdk::expr::is_utf8(m.content)) {
      out_ += R"(,"content":)";
      append_json_string(out_, m.content);
    } else {
      out_ += R"(,"content_base64":")";
      pg::append_base64(out_, m.content);
      out_ += '"';
    }
    out_ += R"(,"transactional":)";
    out_ += m.transactional() ? "true" : "false";
    out_ += R"(},"source":)";
    append_source(out_, pg::format_lsn(m.lsn), own ? "null" : txid_, own ? "null" : commit_ts_);
    out_ += '}';
    batch.push_back(make_event(token, m.prefix, own ? 0 : commit_ms_));
    tracker_.add(token);
    if (own) tracker_.commit(token, m.lsn);
    ++txn_events_;
  }

  // A chunk's HIGH watermark: its rows no change superseded go out as read events, acknowledged
  // like a transaction committed at the watermark.
  void watermark(const pg::LogicalMessage& m, std::vector<ef_message*>& batch) {
    if (!inc_ || inc_->watermark(m.content) != pg::IncrementalSnapshots::Mark::high) return;
    const pg::ChunkWindow& w = *inc_->window();
    if (w.stale()) return inc_->chunk_discarded();
    uint64_t token = tracker_.open();
    auto table = pg::parse_table_name(w.table());
    std::string source_tail = R"(,"source":)";
    append_source(source_tail, table.schema, table.name, pg::format_lsn(m.lsn), "null", "null");
    uint64_t n = 0;
    w.each_remaining([&](const pg::SnapshotRow& row) {
      batch.push_back(read_event(row, source_tail, token));
      ++n;
    });
    tracker_.add(token, n);
    tracker_.commit(token, m.lsn);
    inc_->chunk_emitted(token);
    inc_->delivered([&](uint64_t t) { return tracker_.done(t); });  // a chunk with no rows left is done now
  }

  // A row as a snapshot read it: op "r", `source_tail` the `,"source":{...}` part.
  ef_message* read_event(const pg::SnapshotRow& row, const std::string& source_tail, uint64_t token) {
    out_.assign(R"({"op":"r","before":null,"after":)");
    out_ += row.after;
    out_ += source_tail;
    out_ += R"(,"key":)";
    out_ += row.key;
    out_ += '}';
    return make_event(token, row.key, 0);
  }

  // The chunk being read, when this change falls between its watermarks.
  pg::ChunkWindow* open_window(const pg::Relation& rel) {
    pg::ChunkWindow* w = inc_ ? inc_->window() : nullptr;
    return w && w->is_open() && w->is_table(rel.namespace_name, rel.name) ? w : nullptr;
  }

  // A changed table (columns added or dropped, renamed) is looked at afresh.
  void on_message(pg::RelationMessage& m, Lsn, std::vector<ef_message*>&) {
    const pg::Relation& rel = *m.relation;
    if (auto* w = inc_ ? inc_->window() : nullptr; w && w->is_table(rel.namespace_name, rel.name)) {
      std::vector<std::string> columns;
      for (auto& c : rel.columns) columns.push_back(c.name);
      w->relation(columns);
    }
    captured_.erase(rel.oid);
    key_masks_.erase(rel.oid);
    if (rel.replica_identity == pg::ReplicaIdentity::Full && captured(rel)) key_by_primary_key(rel);
  }

  // Under REPLICA IDENTITY FULL the server marks every column as key; the event key stays the
  // primary key when there is one, as in the snapshot, so a row keeps one Kafka partition.
  void key_by_primary_key(const pg::Relation& rel) {
    const std::string oid = std::to_string(rel.oid);
    const char* params[] = {oid.c_str()};
    PGconn* c = side_connection();
    PGresult* r = PQexecParams(
        c,
        "SELECT a.attname::text FROM pg_catalog.pg_index i "
        "CROSS JOIN LATERAL generate_series(0, i.indnkeyatts - 1) AS k(n) "
        "JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[k.n] "
        "WHERE i.indrelid = $1::oid AND i.indisprimary ORDER BY k.n",
        1, nullptr, params, nullptr, nullptr, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
      std::string msg = pg::Redactor(cfg_.dsn)(PQerrorMessage(c));
      PQclear(r);
      throw Error("cannot look up the primary key of " + rel.namespace_name + "." + rel.name +
                  " (REPLICA IDENTITY FULL) on a second connection: " + msg);
    }
    std::vector<std::string> pk;
    for (int i = 0; i < PQntuples(r); ++i) pk.emplace_back(PQgetvalue(r, i, 0));
    PQclear(r);
    if (pk.empty()) return;
    std::vector<bool> mask;
    for (auto& col : rel.columns) mask.push_back(std::find(pk.begin(), pk.end(), col.name) != pk.end());
    key_masks_[rel.oid] = std::move(mask);
  }
  void on_message(pg::TypeMessage&, Lsn, std::vector<ef_message*>&) {}
  void on_message(pg::Origin&, Lsn, std::vector<ef_message*>&) {}
  static bool is_stream_control(char type) { return type == 'S' || type == 'E' || type == 'c' || type == 'A'; }

  void on_message(pg::StreamStart& m, Lsn, std::vector<ef_message*>&) {
    if (!spool_) throw Error("the server streams a transaction, but streaming was not requested");
    in_stream_ = true;
    stream_xid_ = m.xid;
  }
  void on_message(pg::StreamStop&, Lsn, std::vector<ef_message*>&) { in_stream_ = false; }
  void on_message(pg::StreamAbort& m, Lsn, std::vector<ef_message*>&) {
    if (spool_) spool_->abort(m.xid, m.subtransaction_xid);
  }

  // The streamed transaction committed: its spooled messages become events now, like a
  // transaction sent whole.
  void on_message(pg::StreamCommit& c, Lsn, std::vector<ef_message*>& batch) {
    if (!spool_) throw Error("the server streams a transaction, but streaming was not requested");
    pg::Begin begin{c.commit_lsn, c.commit_ts, c.xid};
    on_message(begin, 0, batch);
    bool go = spool_->replay(c.xid, [&](Lsn lsn, std::string_view msg) {
      pg::Message m = pg::decode(msg, relations_, /*in_stream=*/true);
      std::visit([&](auto& inner) { on_message(inner, lsn, batch); }, m);
      if (batch.size() >= size_t(cfg_.batch_size) && !emit_all(batch)) return false;
      return true;
    });
    if (!go) {
      stopping_ = true;
      return;
    }
    pg::Commit commit{c.flags, c.commit_lsn, c.end_lsn, c.commit_ts};
    on_message(commit, 0, batch);
  }

  // Listed tables are matched by OID as well as by name: a table renamed while streaming is still
  // the table listed, and so are its changes from before a rename replayed after a restart.
  bool captured(const pg::Relation& rel) {
    auto it = captured_.find(rel.oid);
    if (it != captured_.end()) return it->second;
    std::string name = rel.namespace_name + "." + rel.name;
    auto named = [&](const std::vector<std::string>& v) { return std::find(v.begin(), v.end(), name) != v.end(); };
    auto listed = include_oids_.find(rel.oid);
    bool yes = (include_.empty() || listed != include_oids_.end() || named(include_)) &&
               !exclude_oids_.count(rel.oid) && !named(exclude_);
    if (yes && listed != include_oids_.end() && listed->second != name)
      context().warn("table " + listed->second + " is named " + name +
                     " at this point of the stream (it was renamed): its events carry that name; "
                     "after a rename, change tables to the new name before the flow restarts");
    captured_[rel.oid] = yes;
    return yes;
  }

  void row_event(char op, const pg::Relation& rel, const pg::Tuple* before, const pg::Tuple* after,
                 const pg::Tuple& key_from, Lsn lsn, std::vector<ef_message*>& batch, bool before_is_key = false) {
    unchanged_.clear();
    out_.assign(R"({"op":")");
    out_ += op;
    out_ += R"(","before":)";
    if (before) append_tuple(rel, *before, before_is_key, false);
    else out_ += "null";
    out_ += R"(,"after":)";
    if (after) append_tuple(rel, *after, false, true);
    else out_ += "null";
    out_ += R"(,"source":)";
    append_source(out_, rel.namespace_name, rel.name, pg::format_lsn(lsn), txid_, commit_ts_);
    out_ += R"(,"key":)";
    size_t key_at = out_.size();
    append_tuple(rel, key_from, true, false);
    key_.assign(out_, key_at);
    if (!unchanged_.empty()) {
      out_ += R"(,"unchanged":[)";
      out_ += unchanged_;
      out_ += ']';
    }
    out_ += '}';
    batch.push_back(make_event(txn_, key_, commit_ms_));
    tracker_.add(txn_);
    ++txn_events_;
    if (auto* w = open_window(rel)) {
      w->supersede(key_);
      if (before && after) {  // an update: under its old key too, when that changed
        out_.clear();
        append_tuple(rel, *before, true, false);
        w->supersede(out_);
      }
    }
  }

  // Unchanged TOAST values are left out of the row and named in "unchanged" instead.
  void append_tuple(const pg::Relation& rel, const pg::Tuple& t, bool keys_only, bool note_unchanged) {
    const std::vector<bool>* mask = nullptr;
    if (keys_only && !key_masks_.empty()) {
      auto it = key_masks_.find(rel.oid);
      if (it != key_masks_.end() && it->second.size() == t.values.size()) mask = &it->second;
    }
    out_ += '{';
    bool first = true;
    for (size_t i = 0; i < t.values.size(); ++i) {
      const auto& col = rel.columns[i];
      if (keys_only && !(mask ? (*mask)[i] : col.is_key())) continue;
      const auto& v = t.values[i];
      if (v.is_unchanged_toast()) {
        if (note_unchanged) {
          if (!unchanged_.empty()) unchanged_ += ',';
          append_json_string(unchanged_, col.name);
        }
        continue;
      }
      if (!first) out_ += ',';
      first = false;
      append_json_string(out_, col.name);
      out_ += ':';
      if (v.is_null()) {
        out_ += "null";
      } else if (v.kind == pg::Value::Kind::Binary) {
        out_ += '"';
        pg::append_base64(out_, v.data);
        out_ += '"';
      } else {
        append_value(col, v.data);
      }
    }
    out_ += '}';
  }

  // A value the conversion refuses is kept as its text, never dropped.
  void append_value(const pg::Column& col, std::string_view text) {
    size_t at = out_.size();
    try {
      pg::append_json(out_, col.type_oid, text);
    } catch (const pg::ValueError& e) {
      out_.resize(at);
      append_json_string(out_, text);
      if (warned_types_.insert(col.type_oid).second)
        context().warn(std::string("column ") + col.name + ": " + e.what() + "; passed on as text");
    }
  }

  // The envelope's "source" object, for a table's event and for one of no table.
  void append_source(std::string& out, std::string_view schema, std::string_view table, std::string_view lsn,
                     std::string_view txid, std::string_view commit_ts) const {
    out += R"({"db":)";
    append_json_string(out, db_);
    out += R"(,"schema":)";
    append_json_string(out, schema);
    out += R"(,"table":)";
    append_json_string(out, table);
    append_source_tail(out, lsn, txid, commit_ts);
  }
  void append_source(std::string& out, std::string_view lsn, std::string_view txid, std::string_view commit_ts) const {
    out += R"({"db":)";
    append_json_string(out, db_);
    append_source_tail(out, lsn, txid, commit_ts);
  }
  static void append_source_tail(std::string& out, std::string_view lsn, std::string_view txid,
                                 std::string_view commit_ts) {
    out += R"(,"lsn":")";
    out += lsn;
    out += R"(","txid":)";
    out += txid;
    out += R"(,"commit_ts":)";
    out += commit_ts;
    out += '}';
  }

  void push_txn_event(std::vector<ef_message*>& batch) {
    batch.push_back(make_event(txn_, {}, commit_ms_));
    tracker_.add(txn_);
    ++txn_events_;
  }

  ef_message* make_event(uint64_t token, std::string_view key, int64_t ts_ms) {
    ++events_;
    Message m = new_message();
    m.set_payload(out_);
    m.set_content_type("application/json");
    if (!key.empty()) m.set_key(key);
    if (ts_ms) m.set_timestamp_ms(ts_ms);
    m.set_token(token);
    return m.raw();
  }

  // Emits the batch; while the flow is full, keeps the server from timing the connection out.
  bool emit_all(std::vector<ef_message*>& batch) {
    for (;;) {
      ef_status st = emit(batch, streaming_ ? 250 : -1);
      if (st == EF_OK) break;
      if (st == EF_STOPPING) {
        for (auto* m : batch) free_message(Message(m));
        batch.clear();
        return false;
      }
      conn_->send_status(received_, tracker_.confirmed());
    }
    batch.clear();
    return true;
  }

  // An ordinary connection beside the replication one, for heartbeats and catalog lookups while
  // streaming; opened when first needed and again after it broke.
  PGconn* side_connection() {
    if (side_ && PQstatus(side_) == CONNECTION_OK) return side_;
    if (side_) PQfinish(side_);
    side_ = PQconnectdb(cfg_.dsn.c_str());
    return side_;
  }

  void heartbeat() {
    PGconn* c = side_connection();
    PGresult* r = PQexec(c, cfg_.heartbeat_query.c_str());
    auto st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
      context().warn("heartbeat_query failed: " + pg::Redactor(cfg_.dsn)(PQerrorMessage(c)));
    PQclear(r);
  }

  Config cfg_;
  std::vector<std::string> include_, exclude_;
  std::unordered_map<pg::Oid, std::string> include_oids_;  // listed tables by OID, as listed
  std::unordered_set<pg::Oid> exclude_oids_;
  Lsn end_lsn_ = 0;
  std::unique_ptr<pg::ReplicationConnection> conn_;
  PGconn* side_ = nullptr;
  std::string db_;
  std::string snapshot_file_;
  std::string snapshot_name_;
  Lsn consistent_point_ = 0;
  bool snapshot_pending_ = false;
  std::optional<uint64_t> snapshot_token_;
  bool slot_created_ = false;
  bool own_publication_ = false;  // the default one, created and kept up by the flow
  std::unique_ptr<pg::IncrementalSnapshots> inc_;  // PostgreSQL 14+, a lasting slot
  uint64_t snapshot_rows_ = 0;

  pg::RelationCache relations_;
  std::unordered_map<pg::Oid, bool> captured_;
  std::unordered_map<pg::Oid, std::vector<bool>> key_masks_;  // key columns where not the server's
  std::unordered_set<pg::Oid> warned_types_;
  pg::TxnTracker tracker_;
  bool streaming_ = false;
  bool in_txn_ = false;
  bool reached_end_ = false;
  bool reply_now_ = false;
  bool stopping_ = false;
  bool stream_ended_ = false;
  Clock::time_point last_drain_report_{};
  bool in_stream_ = false;
  pg::Xid stream_xid_ = 0;
  std::unique_ptr<pg::Spool> spool_;
  Lsn received_ = 0;
  Lsn server_end_ = 0;
  uint64_t events_ = 0;
  uint64_t txn_ = 0;
  uint64_t txn_events_ = 0;
  std::string txid_ = "null";
  std::string commit_ts_ = "null";
  int64_t commit_ms_ = 0;
  std::string out_, key_, unchanged_;
};

}  // namespace

EDGEFLOW_PLUGIN("postgres_cdc", "0.1.0", PostgresCdcSource)
