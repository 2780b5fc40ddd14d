#include "disk_buffer.hpp"

#include <sqlite3.h>
#include <zlib.h>

#include <filesystem>

namespace edgeflow {

namespace {

uint32_t crc_of(std::string_view body) {
  return uint32_t(crc32(crc32(0, nullptr, 0), reinterpret_cast<const Bytef*>(body.data()), uInt(body.size())));
}

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
    // WAL: appends do not wait for the drain's reads; FULL: a commit is on disk when it returns.
    exec("PRAGMA journal_mode = WAL");
    exec("PRAGMA synchronous = FULL");
    exec("PRAGMA busy_timeout = 5000");
    // The file gives back what a drained backlog took (see remove()); the WAL is cut back after
    // a checkpoint.
    exec("PRAGMA auto_vacuum = INCREMENTAL");
    exec("PRAGMA journal_size_limit = 67108864");
    exec("CREATE TABLE IF NOT EXISTS record (seq INTEGER PRIMARY KEY AUTOINCREMENT, at_ms INTEGER NOT NULL, "
         "crc INTEGER NOT NULL, body BLOB NOT NULL)");
    sqlite3_stmt* s = prepare("SELECT count(*), coalesce(sum(length(body)), 0), coalesce(max(seq), 0) FROM record");
    if (sqlite3_step(s) != SQLITE_ROW) {
      sqlite3_finalize(s);
      fail("cannot count its records");
    }
    stats_.records = uint64_t(sqlite3_column_int64(s, 0));
    stats_.bytes = uint64_t(sqlite3_column_int64(s, 1));
    last_seq_ = sqlite3_column_int64(s, 2);
    sqlite3_finalize(s);
    refresh_oldest();
    insert_ = prepare("INSERT INTO record (at_ms, crc, body) VALUES (?, ?, ?)");
    select_ = prepare("SELECT seq, at_ms, crc, body FROM record WHERE seq > ? ORDER BY seq LIMIT ?");
    delete_ = prepare("DELETE FROM record WHERE seq = ? RETURNING length(body)");
  } catch (...) {
    sqlite3_finalize(insert_);
    sqlite3_finalize(select_);
    sqlite3_close(db_);
    throw;
  }
}

DiskBuffer::~DiskBuffer() {
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

void DiskBuffer::refresh_oldest() {
  sqlite3_stmt* s = prepare("SELECT at_ms FROM record ORDER BY seq LIMIT 1");
  stats_.oldest_ms = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
  sqlite3_finalize(s);
}

size_t DiskBuffer::append(const std::vector<std::string_view>& bodies, int64_t now_ms) {
  uint64_t bytes = 0;
  size_t n = 0;
  for (; n < bodies.size() && stats_.bytes + bytes + bodies[n].size() <= max_bytes_; ++n) bytes += bodies[n].size();
  if (n == 0) return 0;
  exec("BEGIN IMMEDIATE");
  int64_t last = last_seq_;
  try {
    for (size_t i = 0; i < n; ++i) {
      Reset r{insert_};
      sqlite3_bind_int64(insert_, 1, now_ms);
      sqlite3_bind_int64(insert_, 2, crc_of(bodies[i]));
      sqlite3_bind_blob64(insert_, 3, bodies[i].data(), bodies[i].size(), SQLITE_STATIC);
      if (sqlite3_step(insert_) != SQLITE_DONE) fail("cannot append");
      last = sqlite3_last_insert_rowid(db_);
    }
    exec("COMMIT");
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
  last_seq_ = last;
  if (stats_.records == 0) stats_.oldest_ms = now_ms;
  stats_.records += n;
  stats_.bytes += bytes;
  return n;
}

std::vector<DiskBuffer::Record> DiskBuffer::read(int64_t after, size_t n, std::vector<Damaged>& damaged) {
  std::vector<Record> out;
  {
    Reset r{select_};
    sqlite3_bind_int64(select_, 1, after);
    sqlite3_bind_int64(select_, 2, int64_t(n));
    for (int rc; (rc = sqlite3_step(select_)) != SQLITE_DONE;) {
      if (rc != SQLITE_ROW) fail("cannot read");
      int64_t seq = sqlite3_column_int64(select_, 0);
      auto data = static_cast<const char*>(sqlite3_column_blob(select_, 3));
      std::string body(data ? data : "", size_t(sqlite3_column_bytes(select_, 3)));
      auto stored = uint32_t(sqlite3_column_int64(select_, 2));
      uint32_t computed = crc_of(body);
      if (stored != computed) {
        char why[128];
        std::snprintf(why, sizeof why, "buffer record %lld is damaged: checksum %08x, stored %08x", (long long)seq,
                      computed, stored);
        damaged.push_back({seq, why, std::move(body)});
        continue;
      }
      out.push_back({seq, sqlite3_column_int64(select_, 1), std::move(body)});
    }
  }
  return out;
}

void DiskBuffer::remove(const std::vector<int64_t>& seqs) {
  if (seqs.empty()) return;
  // The records stay delivered whether or not this reaches the disk before a crash: the next
  // append's FULL commit syncs it with itself.
  exec("PRAGMA synchronous = NORMAL");
  exec("BEGIN IMMEDIATE");
  uint64_t records = 0, bytes = 0;
  try {
    for (int64_t seq : seqs) {
      Reset r{delete_};
      sqlite3_bind_int64(delete_, 1, seq);
      int rc = sqlite3_step(delete_);
      if (rc != SQLITE_ROW && rc != SQLITE_DONE) fail("cannot remove");
      if (rc == SQLITE_ROW) {  // RETURNING: it was there
        ++records;
        bytes += uint64_t(sqlite3_column_int64(delete_, 0));
        while (sqlite3_step(delete_) == SQLITE_ROW) {
        }
      }
    }
    exec("COMMIT");
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    sqlite3_exec(db_, "PRAGMA synchronous = FULL", nullptr, nullptr, nullptr);
    throw;
  }
  exec("PRAGMA synchronous = FULL");
  stats_.records -= records;
  stats_.bytes -= bytes;
  if (stats_.records == 0) exec("PRAGMA incremental_vacuum");
  refresh_oldest();
}

}  // namespace edgeflow
