#include "incremental.hpp"

#include "redact.hpp"

#include <edgeflow/sdk/host.hpp>
#include <edgeflow/sdk/state_file.hpp>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <unistd.h>

namespace edgeflow::pg {

IncrementalSnapshots::IncrementalSnapshots(Options o) : o_(std::move(o)), connect_(with_connect_timeout(o_.dsn, 10)) {
  // Watermarks of an earlier run (or of another flow's slot) are told apart by this.
  auto now = std::chrono::system_clock::now().time_since_epoch().count();
  nonce_ = std::to_string(::getpid()) + "-" + std::to_string(now);
}

IncrementalSnapshots::~IncrementalSnapshots() {
  if (marks_) PQfinish(marks_);
}

std::vector<std::string> IncrementalSnapshots::start(const std::vector<std::string>& listed, bool fresh) {
  std::vector<std::string> added;
  std::optional<IncrementalState> last;
  if (!o_.state_file.empty()) {
    std::ifstream in(o_.state_file);
    if (in) {
      std::string text((std::istreambuf_iterator<char>(in)), {});
      last = IncrementalState::parse(text);
      if (!last) o_.warn(o_.state_file + " does not parse; incremental snapshot progress starts afresh");
    }
  }
  if (fresh || !last || last->slot != o_.slot) {
    saved_ = IncrementalState{o_.slot, {}, {}};
    saved_.known.insert(listed.begin(), listed.end());
  } else {
    saved_ = *last;
    // A table no longer listed is forgotten: listed again later, it is read again.
    for (auto it = saved_.known.begin(); it != saved_.known.end();)
      it = std::find(listed.begin(), listed.end(), *it) == listed.end() ? saved_.known.erase(it) : std::next(it);
    if (!listed.empty())  // a table no longer listed is not read on
      saved_.pending.erase(std::remove_if(saved_.pending.begin(), saved_.pending.end(),
                                          [&](auto& p) { return std::find(listed.begin(), listed.end(), p.table) == listed.end(); }),
                           saved_.pending.end());
    for (auto& t : listed)
      if (!saved_.known.count(t) && !saved_.find(t)) {
        saved_.pending.push_back({t, {}});
        added.push_back(t);
      }
  }
  reading_ = saved_;
  save();
  return added;
}

void IncrementalSnapshots::request(const std::vector<std::string>& tables) {
  SnapshotReader reader(connect_, "", kReaderSettings);
  auto found = reader.tables(o_.publication, tables, o_.exclude);
  for (auto& t : tables) {
    auto n = parse_table_name(t);
    auto it = std::find_if(found.begin(), found.end(), [&](auto& f) { return f.table.qualified() == n.qualified(); });
    if (it == found.end())
      throw std::runtime_error("table " + n.qualified() + " is not captured by this flow (not in publication " +
                               o_.publication + ", or excluded)");
    if (it->key_columns.empty())
      throw std::runtime_error("table " + n.qualified() +
                               " has no primary key or replica identity index: an incremental snapshot reads a "
                               "table in key order, and tells its rows from the stream's changes by key");
    if (!reader.can_select(it->table))
      throw std::runtime_error("the flow's role may not SELECT from " + n.qualified() + ": GRANT SELECT ON " +
                               n.qualified() + " TO it");
  }
  std::lock_guard lock(requests_mutex_);
  for (auto& t : tables) requests_.push_back(parse_table_name(t).qualified());
  requested_.store(true, std::memory_order_release);
}

void IncrementalSnapshots::queue(const std::string& table) {
  if (reading_.find(table)) {
    o_.info("incremental snapshot of " + table + " is already queued");
    return;
  }
  reading_.pending.push_back({table, {}});
  saved_.pending.push_back({table, {}});
  o_.info("incremental snapshot of " + table + " queued (" + std::to_string(reading_.pending.size()) +
                 " table(s) to read)");
}

void IncrementalSnapshots::step() {
  if (requested_.load(std::memory_order_acquire)) {
    std::vector<std::string> taken;
    {
      std::lock_guard lock(requests_mutex_);
      taken.swap(requests_);
      requested_.store(false, std::memory_order_relaxed);
    }
    for (auto& t : taken) queue(t);
    if (!taken.empty()) save();
  }
  if (window_) return;
  if (reading_.pending.empty()) {
    reader_.reset();  // no transaction, no connection left open while there is nothing to read
    return;
  }
  if (std::chrono::steady_clock::now() < retry_at_) return;
  const std::string table = reading_.pending.front().table;
  try {
    read_chunk();
    failures_ = 0;
  } catch (const std::exception& e) {
    // Never the flow's failure: the stream goes on, and the table is tried again, then dropped.
    window_.reset();
    reader_.reset();
    if (++failures_ >= kMaxFailures) {
      o_.warn("incremental snapshot of " + table + " dropped after " + std::to_string(failures_) +
              " failed attempts: " + e.what() + "; fix the cause and run `edgeflow cdc snapshot` again");
      drop(table);
      failures_ = 0;
    } else {
      o_.warn("incremental snapshot of " + table + ": " + e.what() + "; trying again in 10s");
      retry_at_ = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    }
  }
}

void IncrementalSnapshots::drop(const std::string& table) {
  auto gone = [&](auto& p) { return p.table == table; };
  saved_.pending.erase(std::remove_if(saved_.pending.begin(), saved_.pending.end(), gone), saved_.pending.end());
  reading_.pending.erase(std::remove_if(reading_.pending.begin(), reading_.pending.end(), gone), reading_.pending.end());
  save();
}

void IncrementalSnapshots::read_chunk() {
  auto& next = reading_.pending.front();
  if (!reader_) reader_ = std::make_unique<SnapshotReader>(connect_, "", kReaderSettings);
  // The table as it is now (a column added since the last chunk is read too), in a transaction
  // of its own: none stays open between chunks, holding back vacuum or a lock.
  reader_->renew();
  auto found = reader_->tables(o_.publication, {next.table}, o_.exclude);
  reader_->commit();
  if (found.empty() || found[0].key_columns.empty()) {
    o_.warn("incremental snapshot of " + next.table +
            " dropped: the table is no longer captured, or has no key to read it in order by");
    drop(next.table);
    return;
  }
  const SnapshotTable& t = found[0];
  if (announced_ != next.table) {
    announced_ = next.table;
    o_.info("incremental snapshot of " + next.table + ": about " + std::to_string(t.estimated_rows) +
            " rows, in chunks of " + std::to_string(o_.chunk_rows));
  }
  std::string id = nonce_ + "-" + std::to_string(++seq_);
  std::vector<SnapshotRow> rows;
  std::vector<std::string> last_key = next.after_key;
  emit_watermark(id + " low");
  reader_->renew();  // its first statement, after LOW, takes the SELECT's snapshot
  size_t n = reader_->read_after(t, next.after_key, o_.chunk_rows, rows, last_key);
  reader_->commit();
  emit_watermark(id + " high");
  window_.emplace(id, next.table, std::move(rows), t.columns);
  window_last_key_ = std::move(last_key);
  window_last_ = n < o_.chunk_rows;
}

void IncrementalSnapshots::emit_watermark(const std::string& content) {
  if (!marks_ || PQstatus(marks_) != CONNECTION_OK) {
    if (marks_) PQfinish(marks_);
    marks_ = PQconnectdb(connect_.c_str());
    if (PQstatus(marks_) != CONNECTION_OK)
      throw std::runtime_error("incremental snapshot: cannot connect to write a watermark: " +
                               Redactor(o_.dsn)(PQerrorMessage(marks_)));
    PQclear(PQexec(marks_, "SET synchronous_commit = on"));
  }
  std::string text = o_.slot + " " + content;
  const char* params[] = {kWatermarkPrefix, text.c_str()};
  // A non-transactional message is not flushed (before PostgreSQL 17's `flush` argument): the
  // stream would see it only at the WAL writer's next round, 200 ms later, for every watermark.
  // Giving the statement's transaction an id makes its commit write and flush a record after it.
  PGresult* r = PQexecParams(marks_, "SELECT pg_logical_emit_message(false, $1, $2), pg_current_xact_id()", 2, nullptr,
                             params, nullptr, nullptr, 0);
  if (PQresultStatus(r) != PGRES_TUPLES_OK) {
    std::string msg = Redactor(o_.dsn)(PQerrorMessage(marks_));
    PQclear(r);
    throw std::runtime_error("incremental snapshot: cannot write a watermark (pg_logical_emit_message): " + msg);
  }
  PQclear(r);
}

IncrementalSnapshots::Mark IncrementalSnapshots::watermark(std::string_view content) {
  if (!window_) return Mark::other;
  std::string mine = o_.slot + " " + window_->id();
  if (content == mine + " low") {
    window_->open();
    return Mark::low;
  }
  return content == mine + " high" ? Mark::high : Mark::other;
}

void IncrementalSnapshots::chunk_emitted(uint64_t token) {
  size_t emitted = window_->size() - window_->superseded();
  rows_ += emitted;
  superseded_ += window_->superseded();
  ++chunks_;
  auto& front = reading_.pending.front();
  sent_.push_back({token, front.table, window_last_key_, window_last_});
  if (window_last_) {
    o_.info("incremental snapshot of " + front.table + " read; it is complete once delivered");
    reading_.pending.pop_front();
  } else {
    front.after_key = window_last_key_;
  }
  window_.reset();
}

void IncrementalSnapshots::chunk_discarded() {
  o_.info("incremental snapshot of " + window_->table() +
                 ": the table changed shape while a chunk was read; reading it again");
  window_.reset();
}

void IncrementalSnapshots::delivered(const std::function<bool(uint64_t)>& done) {
  bool changed = false;
  while (!sent_.empty() && done(sent_.front().token)) {
    Sent& s = sent_.front();
    auto it = std::find_if(saved_.pending.begin(), saved_.pending.end(), [&](auto& p) { return p.table == s.table; });
    if (it != saved_.pending.end()) {
      if (s.last) {
        saved_.pending.erase(it);
        saved_.known.insert(s.table);
        o_.info("incremental snapshot of " + s.table + " delivered");
      } else {
        it->after_key = s.last_key;
      }
    }
    sent_.pop_front();
    changed = true;
  }
  if (changed) save();
}

void IncrementalSnapshots::save() {
  if (o_.state_file.empty()) return;
  sdk::store_atomically(o_.state_file, saved_.text());
}

}  // namespace edgeflow::pg
