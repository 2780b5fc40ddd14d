#include "applier.hpp"

#include <edgeflow/sdk/backoff.hpp>

#include <algorithm>
#include <chrono>

namespace edgeflow::pg {

void Applier::start() {
  std::lock_guard lock(mutex_);
  if (thread_.joinable()) return;
  stopping_ = false;
  thread_ = std::thread([this] { main(); });
}

void Applier::wait_room(std::chrono::milliseconds limit) {
  std::unique_lock lock(mutex_);
  cv_.wait_for(lock, limit, [&] { return queue_.size() < 2; });
}

void Applier::submit(Work w) {
  {
    std::lock_guard lock(mutex_);
    queue_.push_back(std::move(w));
  }
  cv_.notify_all();
}

void Applier::stop() {
  {
    std::lock_guard lock(mutex_);
    if (!thread_.joinable()) return;
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
  client_.close();
}

std::vector<std::string> Applier::notes() {
  std::lock_guard lock(mutex_);
  return std::exchange(notes_, {});
}

void Applier::note(std::string text) {
  std::lock_guard lock(mutex_);
  if (notes_.size() < 100) notes_.push_back(std::move(text));
}

void Applier::main() {
  for (;;) {
    Work w;
    {
      std::unique_lock lock(mutex_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and all applied
      w = std::move(queue_.front());
      queue_.pop_front();
    }
    cv_.notify_all();  // room for wait_room()
    if (!apply(w)) {
      // Stopped before it committed: what is queued behind it must not commit first.
      std::lock_guard lock(mutex_);
      queue_.clear();
      return;
    }
  }
}

// Until it commits or the sink stops: the batches behind wait, so the order holds, and so does
// the flow (its max_in_flight fills and the source stops reading). Giving the batch back as
// retry instead would let the batches queued behind it commit first.
bool Applier::apply(Work& w) {
  bool careful = false;
  int conflicts = 0;
  sdk::Backoff backoff(std::chrono::milliseconds(100), std::chrono::seconds(30));
  for (;;) {
    try {
      client_.connect();
      client_.run("BEGIN");
      run_all(w, careful);
      client_.run("COMMIT");
      break;
    } catch (const SqlError& e) {
      for (auto& h : w.held) h.reason.clear();
      if (e.connection_lost()) {
        client_.close();
      } else {
        try {
          client_.run("ROLLBACK");
        } catch (const SqlError&) {
          client_.close();
        }
        if (!e.transient() && !careful) {
          careful = true;
          counter_("batches_isolated", ++isolated_);
          continue;
        }
        if (e.transient() && ++conflicts < 3) continue;
      }
      auto wait = backoff.next();
      if (backoff.attempts() <= 3 || backoff.attempts() % 10 == 0)
        note("postgres: " + std::string(e.what()) + "; " + std::to_string(w.held.size()) +
             " message(s) wait, trying again in " + std::to_string(wait.count()) + "ms (failure " +
             std::to_string(backoff.attempts()) + ")");
      counter_("apply_failures", ++failures_);
      std::unique_lock lock(mutex_);
      if (cv_.wait_for(lock, wait, [&] { return stopping_; })) return false;  // unacked: read again after a restart
    }
  }
  if (backoff.attempts() > 0) note("postgres: applied again after " + std::to_string(backoff.attempts()) + " failure(s)");
  // Counted before the acks go out, so whoever hears an ack sees it counted.
  for (auto& h : w.held) (h.reason.empty() ? written_ : rejected_) += 1;
  counter_("rows_written", written_);
  counter_("rows_rejected", rejected_);
  counter_("transactions", ++transactions_);
  for (auto& h : w.held) {
    if (h.reason.empty()) ack_(h.msg, EF_ACK_DELIVERED, {});
    else ack_(h.msg, EF_ACK_REJECTED, h.reason);
  }
  return true;
}

void Applier::run_all(Work& w, bool careful) {
  for (const Segment& s : w.segments) run_segment(w, s, careful);
}

void Applier::run_segment(Work& w, const Segment& seg, bool careful) {
  const Statements& s = *seg.st;
  auto first = w.rows.begin() + long(seg.begin), last = w.rows.begin() + long(seg.end);
  auto json_rows = [&] {  // only off the COPY path: it is the size of the rows
    std::string rows = "[";
    for (auto it = first; it != last; ++it) rows += (it == first ? "" : ",") + it->json;
    return rows + ']';
  };
  auto exec = [&](const std::string& json) {
    if (s.kind == OpKind::truncate) client_.run(s.sql);
    else client_.exec(s.sql, {&json});
  };
  if (!careful && !s.copy_sql.empty() && std::all_of(first, last, [](const Row& r) { return !r.copy.empty(); })) {
    std::string data;
    for (auto it = first; it != last; ++it) data += it->copy;
    if (s.kind != OpKind::update) return client_.copy(s.copy_sql, data);
    client_.run(s.stage_sql);
    client_.copy(s.copy_sql, data);
    long updated = client_.exec(s.update_sql).affected();
    client_.run(s.clear_sql);
    // A key this target never had (it was not mirrored from the start): the upsert makes it.
    if (updated < long(seg.end - seg.begin)) exec(json_rows());
    return;
  }
  std::string rows = json_rows();
  if (!careful) return exec(rows);
  client_.run("SAVEPOINT seg");
  try {
    exec(rows);
    client_.run("RELEASE SAVEPOINT seg");
    return;
  } catch (const SqlError& e) {
    if (e.connection_lost() || e.transient()) throw;
    client_.run("ROLLBACK TO SAVEPOINT seg; RELEASE SAVEPOINT seg");
    if (!e.row_fault() || seg.end - seg.begin == 1) {
      for (auto it = first; it != last; ++it) reject(w, s, *it, e);
      return;
    }
  }
  // One of the rows is at fault: find it (them), and let the others through.
  for (auto it = first; it != last; ++it) {
    std::string one = "[" + it->json + "]";
    client_.run("SAVEPOINT row");
    try {
      exec(one);
      client_.run("RELEASE SAVEPOINT row");
    } catch (const SqlError& e) {
      if (e.connection_lost() || e.transient()) throw;
      client_.run("ROLLBACK TO SAVEPOINT row; RELEASE SAVEPOINT row");
      reject(w, s, *it, e);
    }
  }
}

void Applier::reject(Work& w, const Statements& s, const Row& r, const SqlError& e) {
  Held& h = w.held[r.held];
  if (!h.reason.empty()) return;
  std::string why = e.what();
  if (e.sqlstate.rfind("22", 0) == 0) why = column_of(s, r) + why;
  if (e.sqlstate == "42P10") why += " (the key columns need a unique index on exactly them)";
  h.reason = "postgres: table " + s.table + ": " + why;
}

// "column qty: " for the first column whose value the server refuses, by reading each alone.
std::string Applier::column_of(const Statements& s, const Row& r) {
  std::string one = "[" + r.json + "]";
  for (auto& [name, probe] : s.probes) {
    client_.run("SAVEPOINT col");
    try {
      client_.exec(probe, {&one});
      client_.run("RELEASE SAVEPOINT col");
    } catch (const SqlError& e) {
      if (e.connection_lost() || e.transient()) throw;
      client_.run("ROLLBACK TO SAVEPOINT col; RELEASE SAVEPOINT col");
      return "column " + name + ": ";
    }
  }
  return "";
}

}  // namespace edgeflow::pg
