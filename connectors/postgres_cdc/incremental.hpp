// Incremental snapshots: a table read in key-ordered chunks while the stream goes on, with the
// watermark method of Netflix's DBLog (and Debezium's signals). For each chunk the source writes
// a LOW watermark into the WAL (pg_logical_emit_message, non-transactional), SELECTs the chunk,
// and writes a HIGH watermark. In the stream, a change to a row of the chunk between LOW and HIGH
// is newer than (or as new as) what the SELECT saw, so that row is taken out of the chunk; at
// HIGH the rest go out as read events (op "r"). No gap (every row is in a chunk or in a change
// after it) and no stale overwrite (a row read is never emitted after a newer change of it).
//
// ChunkWindow and IncrementalState are the part without I/O (unit-tested); IncrementalSnapshots
// does the reading, the watermarks and the bookkeeping across restarts.
#pragma once

#include "snapshot.hpp"

#include <libpq-fe.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace edgeflow::pg {

inline constexpr const char* kWatermarkPrefix = "edgeflow.watermark";

// The connection string with libpq's connect_timeout when it sets none: a server that does not
// answer holds the caller (an operator's signal, the stream) that long, not the kernel's minutes.
inline std::string with_connect_timeout(const std::string& dsn, int seconds) {
  if (dsn.find("connect_timeout") != std::string::npos) return dsn;
  std::string setting = "connect_timeout=" + std::to_string(seconds);
  if (dsn.rfind("postgresql://", 0) == 0 || dsn.rfind("postgres://", 0) == 0)
    return dsn + (dsn.find('?') == std::string::npos ? "?" : "&") + setting;
  return dsn.empty() ? setting : dsn + " " + setting;
}

// One chunk between its watermarks.
class ChunkWindow {
 public:
  ChunkWindow(std::string id, std::string table, std::vector<SnapshotRow> rows, std::vector<std::string> columns = {})
      : id_(std::move(id)), table_(std::move(table)), columns_(std::move(columns)), rows_(std::move(rows)),
        gone_(rows_.size(), false) {
    for (size_t i = 0; i < rows_.size(); ++i) index_.emplace(rows_[i].key, i);
  }
  const std::string& id() const { return id_; }
  const std::string& table() const { return table_; }
  // Whether it is schema.name, without building the text (asked of every change while it is open).
  bool is_table(std::string_view schema, std::string_view name) const {
    return table_.size() == schema.size() + 1 + name.size() && table_.compare(0, schema.size(), schema) == 0 &&
           table_[schema.size()] == '.' && table_.compare(schema.size() + 1, name.size(), name) == 0;
  }
  // LOW was seen: changes from here on supersede rows of the chunk.
  void open() { open_ = true; }
  bool is_open() const { return open_; }
  // A change of this row (its key's JSON text) came between the watermarks.
  void supersede(const std::string& key) {
    if (!open_) return;
    auto it = index_.find(key);
    if (it != index_.end() && !gone_[it->second]) {
      gone_[it->second] = true;
      ++superseded_;
    }
  }
  void supersede_all() {
    if (!open_) return;
    for (size_t i = 0; i < rows_.size(); ++i)
      if (!gone_[i]) {
        gone_[i] = true;
        ++superseded_;
      }
  }
  // The server described the table again while the chunk was open: when its columns are not
  // those the chunk was read with, the chunk is read again.
  void relation(const std::vector<std::string>& columns) {
    if (columns != columns_) stale_ = true;
  }
  bool stale() const { return stale_; }
  size_t superseded() const { return superseded_; }
  size_t size() const { return rows_.size(); }
  // The rows to emit at HIGH: those no change superseded, in key order.
  template <class F>
  void each_remaining(F&& f) const {
    for (size_t i = 0; i < rows_.size(); ++i)
      if (!gone_[i]) f(rows_[i]);
  }

 private:
  std::string id_, table_;
  std::vector<std::string> columns_;
  std::vector<SnapshotRow> rows_;
  std::vector<bool> gone_;
  std::unordered_map<std::string, size_t> index_;
  size_t superseded_ = 0;
  bool open_ = false;
  bool stale_ = false;
};

// What survives a restart: the tables the flow has every row of, and the ones still to read,
// each with the key of the last chunk delivered end to end (the next chunk starts after it).
struct IncrementalState {
  struct Pending {
    std::string table;                   // schema.table
    std::vector<std::string> after_key;  // the key columns' text; empty: from the first row
  };
  std::string slot;
  std::set<std::string> known;
  std::deque<Pending> pending;

  Pending* find(const std::string& table) {
    for (auto& p : pending)
      if (p.table == table) return &p;
    return nullptr;
  }

  // Line based; names and key values in hex, so any byte is safe.
  std::string text() const {
    std::string s = "v1 " + hex(slot) + "\n";
    for (auto& k : known) s += "known " + hex(k) + "\n";
    for (auto& p : pending) {
      s += "pending " + hex(p.table) + " ";
      if (p.after_key.empty()) s += "-";
      for (size_t i = 0; i < p.after_key.size(); ++i) {
        if (i) s += ',';
        s += hex(p.after_key[i]);
      }
      s += "\n";
    }
    return s;
  }
  static std::optional<IncrementalState> parse(const std::string& text) {
    std::istringstream in(text);
    std::string line, word, a, b;
    IncrementalState st;
    if (!std::getline(in, line)) return std::nullopt;
    std::istringstream first(line);
    if (!(first >> word >> a) || word != "v1" || !unhex(a, st.slot)) return std::nullopt;
    while (std::getline(in, line)) {
      std::istringstream l(line);
      if (!(l >> word >> a)) return std::nullopt;
      std::string table;
      if (!unhex(a, table)) return std::nullopt;
      if (word == "known") {
        st.known.insert(table);
      } else if (word == "pending" && (l >> b)) {
        Pending p{table, {}};
        if (b != "-") {
          std::istringstream keys(b);
          std::string part, value;
          while (std::getline(keys, part, ',')) {
            if (!unhex(part, value)) return std::nullopt;
            p.after_key.push_back(value);
          }
        }
        st.pending.push_back(std::move(p));
      } else {
        return std::nullopt;
      }
    }
    return st;
  }

  static std::string hex(const std::string& s) {
    static const char* digits = "0123456789abcdef";
    std::string out;
    for (unsigned char c : s) {
      out += digits[c >> 4];
      out += digits[c & 15];
    }
    return out.empty() ? "." : out;  // "." stands for the empty text
  }
  static bool unhex(const std::string& h, std::string& out) {
    out.clear();
    if (h == ".") return true;
    if (h.size() % 2) return false;
    auto value = [](char c) { return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1; };
    for (size_t i = 0; i < h.size(); i += 2) {
      int hi = value(h[i]), lo = value(h[i + 1]);
      if (hi < 0 || lo < 0) return false;
      out += char(hi * 16 + lo);
    }
    return true;
  }
};

// The tables to snapshot and the chunk being read, for one postgres_cdc source. Everything but
// request() runs on the source's thread.
class IncrementalSnapshots {
 public:
  struct Options {
    std::string dsn, publication, slot;
    std::vector<std::string> exclude;
    size_t chunk_rows = 1024;
    std::string state_file;  // empty: progress is not kept across restarts
    std::function<void(const std::string&)> info, warn;  // the source's log
  };
  explicit IncrementalSnapshots(Options o);
  ~IncrementalSnapshots();
  IncrementalSnapshots(const IncrementalSnapshots&) = delete;
  IncrementalSnapshots& operator=(const IncrementalSnapshots&) = delete;

  // At start: the tables listed now against those of the last run. A listed table the last run
  // did not have is queued (returned); with `fresh` (a new slot: its initial snapshot, or none
  // by choice, covers every table) or no earlier state, all are taken as known.
  std::vector<std::string> start(const std::vector<std::string>& listed, bool fresh);

  // From any thread: checks the tables (in the publication, with a key to read them in order by)
  // and queues them. Throws the reason it refuses.
  void request(const std::vector<std::string>& tables);

  // Takes the queued requests; when no chunk is open and a table waits, reads its next chunk
  // between a LOW and a HIGH watermark. The source then streams until it meets them.
  void step();
  ChunkWindow* window() { return window_ ? &*window_ : nullptr; }
  // A watermark from the stream (its content): whether it is the open chunk's LOW or HIGH.
  enum class Mark { other, low, high };
  Mark watermark(std::string_view content);
  // After the HIGH: the chunk's rows went out under `token` (or, stale, not at all: read again).
  void chunk_emitted(uint64_t token);
  void chunk_discarded();
  // Makes durable what `done(token)` says was delivered: the next run resumes after it.
  void delivered(const std::function<bool(uint64_t)>& done);

  // Queued, being read, or asked for and not taken by step() yet.
  size_t tables_pending() {
    std::lock_guard lock(requests_mutex_);
    return reading_.pending.size() + requests_.size();
  }
  uint64_t rows() const { return rows_; }
  uint64_t chunks() const { return chunks_; }
  uint64_t superseded() const { return superseded_; }

 private:
  void read_chunk();
  void emit_watermark(const std::string& kind);
  void save();
  void queue(const std::string& table);
  void drop(const std::string& table);

  // A chunk read waiting for a lock (an ALTER TABLE) holds the stream: not for long.
  static constexpr const char* kReaderSettings = "SET lock_timeout = '10s'; SET statement_timeout = '60s'";
  static constexpr int kMaxFailures = 5;

  Options o_;
  std::string connect_;  // o_.dsn with a connect timeout
  std::unique_ptr<SnapshotReader> reader_;
  PGconn* marks_ = nullptr;  // a plain connection for the watermarks
  IncrementalState reading_;  // where reading is (the next chunk starts after its first key)
  IncrementalState saved_;    // what was delivered: what a restart resumes from
  std::string announced_;  // the table whose first chunk was logged
  std::optional<ChunkWindow> window_;
  std::vector<std::string> window_last_key_;
  bool window_last_ = false;
  struct Sent {
    uint64_t token;
    std::string table;
    std::vector<std::string> last_key;
    bool last;
  };
  std::deque<Sent> sent_;
  std::string nonce_;
  uint64_t seq_ = 0;
  int failures_ = 0;  // of the table in front, in a row
  std::chrono::steady_clock::time_point retry_at_{};
  uint64_t rows_ = 0, chunks_ = 0, superseded_ = 0;
  std::mutex requests_mutex_;
  std::vector<std::string> requests_;
  std::atomic<bool> requested_{false};  // requests_ has some: step() takes the lock only then
};

}  // namespace edgeflow::pg
