// The store under a sink's durable buffer: records appended durably (the source may be acked
// once append() returns), read back in order, removed once the sink delivered them. SQLite in WAL
// mode with synchronous=FULL: each append is one transaction, on disk when it commits, and a
// crash at any moment leaves the last committed state, with no file for an operator to delete.
// Every record carries a CRC-32 of its body, so a damaged byte is found when the record is
// read: it is reported apart (for the dead letter) and the rest is read on.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

struct sqlite3;
struct sqlite3_stmt;

namespace edgeflow {

struct BufferError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class DiskBuffer {
 public:
  struct Record {
    int64_t seq;
    int64_t at_ms;  // when it was appended
    std::string body;
  };
  struct Damaged {
    int64_t seq;
    std::string reason;
    std::string body;  // what could be read of it
  };
  struct Stats {
    uint64_t records = 0;
    uint64_t bytes = 0;     // of the bodies
    int64_t oldest_ms = 0;  // when the oldest record was appended; 0 when empty
  };

  // Opens (or creates) the buffer at path, holding at most max_bytes of bodies. Throws
  // BufferError naming the file and the reason.
  DiskBuffer(std::string path, uint64_t max_bytes);
  ~DiskBuffer();
  DiskBuffer(const DiskBuffer&) = delete;
  DiskBuffer& operator=(const DiskBuffer&) = delete;

  // Appends the longest run of bodies, from the first, that keeps the buffer within max_bytes,
  // in one transaction, and returns how many: they are on disk when it returns, numbered
  // last_seq() - count + 1 ... last_seq(). Throws BufferError when the disk refuses.
  size_t append(const std::vector<std::string_view>& bodies, int64_t now_ms);
  // Up to n records with seq > after, in order. A record whose body fails its checksum is
  // reported in `damaged` instead; it stays until removed.
  std::vector<Record> read(int64_t after, size_t n, std::vector<Damaged>& damaged);
  // Forgets records that were delivered (or dead-lettered). Not synced to disk by itself (the
  // next append is): a crash may bring back the last ones removed, never lose one.
  void remove(const std::vector<int64_t>& seqs);
  Stats stats() const { return stats_; }
  int64_t last_seq() const { return last_seq_; }
  uint64_t max_bytes() const { return max_bytes_; }
  const std::string& path() const { return path_; }

 private:
  void exec(const char* sql);
  sqlite3_stmt* prepare(const char* sql);
  [[noreturn]] void fail(const std::string& what) const;
  void refresh_oldest();

  std::string path_;
  uint64_t max_bytes_;
  sqlite3* db_ = nullptr;
  sqlite3_stmt* insert_ = nullptr;
  sqlite3_stmt* select_ = nullptr;
  sqlite3_stmt* delete_ = nullptr;
  Stats stats_;
  int64_t last_seq_ = 0;
};

}  // namespace edgeflow
