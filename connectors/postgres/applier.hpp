// The postgres sink's worker: applies sealed batches on its own connection and thread, so the
// flow thread prepares the next batch while the server writes this one (measured: the apply is
// most of the work, docs/architecture.md). Batches apply one at a time, in order.
//
// A batch is one transaction. First without savepoints (each is a subtransaction the server pays
// for), new rows by COPY; if a statement fails, the batch runs again with a savepoint per
// statement and, in a statement that failed on a row, per row: the rows at fault are set aside
// for the dead letter with the server's error, and the rest commits. Acks go out after COMMIT.
// A lost connection, or conflicts (serialization failures, deadlocks) that keep coming, make the
// worker try the batch again after a capped backoff, keeping the batches behind it waiting.
#pragma once

#include "pg_client.hpp"

#include <edgeflow/sdk/host.hpp>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace edgeflow::pg {

// create: a row new to the table (a cdc insert or snapshot read): COPY first, an upsert if the
// key turns out to be there (a redelivery). update: a cdc update: COPY into a staging table and
// one UPDATE ... FROM it, then an upsert of the run if a key was not there.
enum class OpKind { upsert, create, update, insert, remove, truncate };

// One statement's worth of one message, as the worker needs it.
struct Row {
  std::string json;  // a JSON object of the segment's columns
  std::string copy;  // create, update, insert: a COPY text line; empty: not copyable
  size_t held;       // its message in Work::held
};

// The statements of one kind, table and set of columns: built once, shared by every run of it.
struct Statements {
  OpKind kind;
  std::string table;       // for reasons: as the flow names it
  std::string sql;         // the statement over json_to_recordset($1) (create, update: the upsert)
  std::string copy_sql;    // create, insert: COPY into the table; update: into the staging table
  std::string stage_sql;   // update: CREATE TEMP TABLE IF NOT EXISTS for the staging table
  std::string update_sql;  // update: UPDATE ... FROM the staging table
  std::string clear_sql;   // update: empties the staging table for the next run
  std::vector<std::pair<std::string, std::string>> probes;  // column, a SELECT reading it alone
};

// A run of rows that share kind, table and columns: one statement.
struct Segment {
  std::shared_ptr<const Statements> st;
  size_t begin, end;  // into Work::rows
};

struct Held {
  sdk::Message msg;
  std::string reason;  // set when one of its rows failed: it goes to the dead letter
};

struct Work {
  std::vector<Held> held;
  std::vector<Row> rows;
  std::vector<Segment> segments;
};

class Applier {
 public:
  using Ack = std::function<void(sdk::Message, ef_ack_status, std::string_view)>;
  using Counter = std::function<void(std::string_view, double)>;
  Applier(const std::string& dsn, Ack ack, Counter counter)
      : client_(dsn), ack_(std::move(ack)), counter_(std::move(counter)) {}
  ~Applier() { stop(); }
  Applier(const Applier&) = delete;
  Applier& operator=(const Applier&) = delete;

  void start();
  // Waits, at most `limit`, until fewer than two batches wait: the flow keeps the worker's pace
  // while it keeps up, and is never held longer than that when it does not.
  void wait_room(std::chrono::milliseconds limit);
  // Queues a batch; never waits. With the server gone the worker may hold its batch for an hour,
  // and the flow thread must stay free for the runtime's drain and stop. What queues up is
  // bounded by the flow's max_in_flight, which stops the source.
  void submit(Work w);
  // Applies what is queued, acks it, and ends the worker.
  void stop();
  // What the worker had to say; the sink logs it from a hook (the host's log is not for other
  // threads).
  std::vector<std::string> notes();

 private:
  void main();
  // false: the sink stopped before the batch committed.
  bool apply(Work& w);
  void run_all(Work& w, bool careful);
  void run_segment(Work& w, const Segment& s, bool careful);
  void reject(Work& w, const Statements& s, const Row& r, const SqlError& e);
  std::string column_of(const Statements& s, const Row& r);
  void note(std::string text);

  Client client_;
  Ack ack_;
  Counter counter_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Work> queue_;
  bool busy_ = false;
  bool stopping_ = false;
  std::vector<std::string> notes_;
  std::thread thread_;
  double written_ = 0, rejected_ = 0, transactions_ = 0, isolated_ = 0, failures_ = 0;
};

}  // namespace edgeflow::pg
