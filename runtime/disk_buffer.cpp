#include "disk_buffer.hpp"

#include <sqlite3.h>
#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <filesystem>

namespace edgeflow {

namespace {

uint32_t crc_of(std::string_view body) {
  return uint32_t(crc32(crc32(0, nullptr, 0), reinterpret_cast<const Bytef*>(body.data()), uInt(body.size())));
}

void put_u32(std::string& out, uint32_t v) {
  char b[4];
  for (int i = 0; i < 4; ++i) b[i] = char(v >> (8 * i) & 0xFF);
  out.append(b, 4);
}
uint32_t get_u32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= uint32_t(uint8_t(p[i])) << (8 * i);
  return v;
}

int64_t seq_of(int64_t segment, uint64_t index) { return segment << DiskBuffer::kIndexBits | int64_t(index); }

// Statements are reset (and their bindings cleared) whatever happens after they ran.
struct Reset {
  sqlite3_stmt* s;
  ~Reset() {
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
  }
};

}  // namespace

DiskBuffer::DiskBuffer(std::string path, uint64_t max_bytes) : path_(std::move(path)), max_bytes_(max_bytes) {
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path_).parent_path(), ec);
  if (ec) throw BufferError("buffer " + path_ + ": cannot create its directory: " + ec.message());
  if (sqlite3_open_v2(path_.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr) !=
      SQLITE_OK) {
    std::string why = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    db_ = nullptr;
    throw BufferError("buffer " + path_ + ": cannot open: " + why);
  }
  try {
    // Before anything is written. A segment's records sit in a chain of overflow pages that
    // SQLite walks page by page to read and to free: 16 KiB pages cost a buffered HTTP flow 25%
    // less CPU than 4 KiB ones (bench/buffer). A commit writes whole pages, so a message that
    // comes alone costs a page to append and one to remove: 64 KiB would cost less CPU still and
    // four times those writes.
    exec("PRAGMA page_size = 16384");
    // WAL: appends do not wait for the drain's reads; FULL: a commit is on disk when it returns.
    exec("PRAGMA journal_mode = WAL");
    exec("PRAGMA synchronous = FULL");
    exec("PRAGMA busy_timeout = 5000");
    exec("PRAGMA journal_size_limit = 67108864");
    exec("CREATE TABLE IF NOT EXISTS segment (seq INTEGER PRIMARY KEY AUTOINCREMENT, at_ms INTEGER NOT NULL, "
         "count INTEGER NOT NULL, body BLOB NOT NULL)");
    sqlite3_stmt* s = prepare("SELECT coalesce(sum(count), 0), coalesce(sum(length(body)), 0) FROM segment");
    if (sqlite3_step(s) != SQLITE_ROW) {
      sqlite3_finalize(s);
      fail("cannot count its records");
    }
    stats_.records = uint64_t(sqlite3_column_int64(s, 0));
    stats_.bytes = uint64_t(sqlite3_column_int64(s, 1));
    sqlite3_finalize(s);
    s = prepare("SELECT seq, count FROM segment ORDER BY seq DESC LIMIT 1");
    if (sqlite3_step(s) == SQLITE_ROW)
      last_seq_ = seq_of(sqlite3_column_int64(s, 0), uint64_t(std::max<int64_t>(sqlite3_column_int64(s, 1), 1) - 1));
    sqlite3_finalize(s);
    oldest_ = prepare("SELECT at_ms FROM segment ORDER BY seq LIMIT 1");
    refresh_oldest();
    insert_ = prepare("INSERT INTO segment (at_ms, count, body) VALUES (?, ?, ?)");
    select_ = prepare("SELECT seq, at_ms, count, body FROM segment WHERE seq >= ? ORDER BY seq");
    delete_ = prepare("DELETE FROM segment WHERE seq = ?");
  } catch (...) {
    sqlite3_finalize(oldest_);
    sqlite3_finalize(insert_);
    sqlite3_finalize(select_);
    sqlite3_close(db_);
    throw;
  }
}

DiskBuffer::~DiskBuffer() {
  sqlite3_finalize(oldest_);
  sqlite3_finalize(insert_);
  sqlite3_finalize(select_);
  sqlite3_finalize(delete_);
  sqlite3_close(db_);
}

void DiskBuffer::fail(const std::string& what) const {
  throw BufferError("buffer " + path_ + ": " + what + ": " + sqlite3_errmsg(db_));
}

void DiskBuffer::exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string why = err ? err : sqlite3_errmsg(db_);
    sqlite3_free(err);
    throw BufferError("buffer " + path_ + ": " + why);
  }
}

sqlite3_stmt* DiskBuffer::prepare(const char* sql) {
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, nullptr) != SQLITE_OK) fail("cannot prepare");
  return s;
}

// A drained backlog leaves its pages free in the file; when many are, and nothing is left in
// it, VACUUM copies nothing and gives them back.
void DiskBuffer::shrink() {
  sqlite3_stmt* s = prepare("PRAGMA freelist_count");
  int64_t free_pages = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
  sqlite3_finalize(s);
  if (free_pages * 16384 < kShrinkAbove) return;
  cached_ = 0;
  exec("VACUUM");
  exec("PRAGMA wal_checkpoint(TRUNCATE)");  // in WAL mode the file is cut at a checkpoint
}

void DiskBuffer::refresh_oldest() {
  Reset r{oldest_};
  stats_.oldest_ms = sqlite3_step(oldest_) == SQLITE_ROW ? sqlite3_column_int64(oldest_, 0) : 0;
}

size_t DiskBuffer::append(const std::vector<std::string_view>& bodies, int64_t now_ms, std::vector<int64_t>* seqs) {
  uint64_t bytes = 0;
  size_t n = 0;
  for (; n < bodies.size() && stats_.bytes + bytes + bodies[n].size() + kFraming <= max_bytes_; ++n)
    bytes += bodies[n].size() + kFraming;
  if (n == 0) return 0;
  exec("BEGIN IMMEDIATE");
  std::vector<std::pair<int64_t, Live>> added;
  try {
    for (size_t from = 0; from < n; from += kMaxPerSegment) {
      size_t to = std::min(n, from + kMaxPerSegment);
      frame_.clear();
      for (size_t i = from; i < to; ++i) {
        put_u32(frame_, uint32_t(bodies[i].size()));
        put_u32(frame_, crc_of(bodies[i]));
        frame_.append(bodies[i]);
      }
      Reset r{insert_};
      sqlite3_bind_int64(insert_, 1, now_ms);
      sqlite3_bind_int64(insert_, 2, int64_t(to - from));
      sqlite3_bind_blob64(insert_, 3, frame_.data(), frame_.size(), SQLITE_STATIC);
      if (sqlite3_step(insert_) != SQLITE_DONE) fail("cannot append");
      added.push_back({sqlite3_last_insert_rowid(db_), Live{uint32_t(to - from), 0, frame_.size()}});
    }
    exec("COMMIT");
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
  for (auto& [segment, live] : added) {
    live_[segment] = live;
    for (uint32_t i = 0; i < live.count; ++i)
      if (seqs) seqs->push_back(seq_of(segment, i));
    last_seq_ = seq_of(segment, live.count - 1);
  }
  if (stats_.records == 0) stats_.oldest_ms = now_ms;
  stats_.records += n;
  stats_.bytes += bytes;
  return n;
}

void DiskBuffer::parse(int64_t segment, int64_t at_ms, std::string_view body, int64_t after, size_t n,
                       std::vector<Record>& out, std::vector<Damaged>& damaged) {
  Live& live = live_[segment];
  size_t at = 0;
  for (uint32_t i = 0; i < live.count && out.size() < n; ++i) {
    int64_t seq = seq_of(segment, i);
    bool framed = body.size() - at >= kFraming && get_u32(body.data() + at) <= body.size() - at - kFraming;
    if (!framed) {
      // The framing itself is hit: what follows cannot be told apart. The rest of the segment
      // goes aside as one, and counts for every record it held.
      if (seq > after) {
        char why[160];
        std::snprintf(why, sizeof why, "buffer segment %lld is damaged at byte %zu: records %u to %u of %u set aside as one",
                      (long long)segment, at, i + 1, live.count, live.count);
        damaged.push_back({seq, why, std::string(body.substr(std::min(at, body.size())))});
        uint32_t lost = live.count - i - 1;
        live.removed += lost;
        stats_.records -= std::min<uint64_t>(stats_.records, lost);
      }
      return;
    }
    uint32_t len = get_u32(body.data() + at);
    uint32_t stored = get_u32(body.data() + at + 4);
    std::string_view record = body.substr(at + kFraming, len);
    at += kFraming + len;
    if (seq <= after) continue;
    uint32_t computed = crc_of(record);
    if (computed != stored) {
      char why[128];
      std::snprintf(why, sizeof why, "buffer record %lld is damaged: checksum %08x, stored %08x", (long long)seq, computed,
                    stored);
      damaged.push_back({seq, why, std::string(record)});
      continue;
    }
    out.push_back({seq, at_ms, std::string(record)});
  }
}

std::vector<DiskBuffer::Record> DiskBuffer::read(int64_t after, size_t n, std::vector<Damaged>& damaged) {
  std::vector<Record> out;
  int64_t from = after >> kIndexBits;
  if (cached_ && cached_ == from) {
    parse(cached_, cached_at_, cached_body_, after, n, out, damaged);
    from = cached_ + 1;
  }
  Reset r{select_};
  sqlite3_bind_int64(select_, 1, from);
  while (out.size() < n) {
    int rc = sqlite3_step(select_);
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) fail("cannot read");
    int64_t segment = sqlite3_column_int64(select_, 0);
    auto data = static_cast<const char*>(sqlite3_column_blob(select_, 3));
    cached_ = segment;
    cached_at_ = sqlite3_column_int64(select_, 1);
    cached_body_.assign(data ? data : "", size_t(sqlite3_column_bytes(select_, 3)));
    Live& live = live_[segment];
    if (live.count == 0) {
      live.count = uint32_t(std::max<int64_t>(sqlite3_column_int64(select_, 2), 0));
      live.bytes = cached_body_.size();
    }
    parse(segment, cached_at_, cached_body_, after, n, out, damaged);
  }
  return out;
}

void DiskBuffer::remove(const std::vector<int64_t>& seqs) {
  if (seqs.empty()) return;
  std::vector<int64_t> gone;
  for (int64_t seq : seqs) {
    auto it = live_.find(seq >> kIndexBits);
    if (it == live_.end()) continue;  // not handed out by this process, or removed already
    Live& live = it->second;
    if (live.removed < live.count) {
      ++live.removed;
      if (stats_.records) --stats_.records;
    }
    if (live.removed >= live.count) {
      gone.push_back(it->first);
      stats_.bytes -= std::min(stats_.bytes, live.bytes);
      live_.erase(it);
      if (cached_ == gone.back()) cached_ = 0;
    }
  }
  if (gone.empty()) return;
  // The records stay delivered whether or not this reaches the disk before a crash: the next
  // append's FULL commit syncs it with itself.
  exec("PRAGMA synchronous = NORMAL");
  exec("BEGIN IMMEDIATE");
  try {
    for (int64_t segment : gone) {
      Reset r{delete_};
      sqlite3_bind_int64(delete_, 1, segment);
      if (sqlite3_step(delete_) != SQLITE_DONE) fail("cannot remove");
    }
    exec("COMMIT");
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    sqlite3_exec(db_, "PRAGMA synchronous = FULL", nullptr, nullptr, nullptr);
    throw;
  }
  exec("PRAGMA synchronous = FULL");
  if (stats_.records == 0) shrink();
  refresh_oldest();
}

}  // namespace edgeflow
