// The store under a sink's durable buffer: records appended durably (the source may be acked
// once append() returns), read back in order, removed once the sink delivered them. SQLite in WAL
// mode with synchronous=FULL: each append is one transaction, on disk when it commits, and a
// crash at any moment leaves the last committed state, with no file for an operator to delete.
//
// An append is one row, a segment: its records one after the other, each framed by its length
// and a CRC-32 of its bytes. A row per record cost 14 times the CPU of the flow it buffered
// (bench/buffer, docs/architecture.md); a row per append costs SQLite once per batch. A damaged
// byte is found when its record is read: that record (or, when the framing itself is hit, the
// rest of its segment) is reported apart, for the dead letter, and the rest is read on. A
// segment leaves the file once all its records were removed; a crash before then brings the
// ones removed back (delivered twice, never lost).
#pragma once

#include <cstdint>
#include <map>
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
  // A record's seq: its segment's row id << kIndexBits | its index there. Increasing.
  static constexpr int kIndexBits = 20;
  static constexpr size_t kMaxPerSegment = 65536;
  static constexpr uint64_t kFraming = 8;  // bytes per record besides its own: length and CRC

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
    uint64_t bytes = 0;     // of the segments on disk, framing included
    int64_t oldest_ms = 0;  // when the oldest record was appended; 0 when empty
  };

  // Opens (or creates) the buffer at path, holding at most max_bytes. Throws BufferError naming
  // the file and the reason.
  DiskBuffer(std::string path, uint64_t max_bytes);
  ~DiskBuffer();
  DiskBuffer(const DiskBuffer&) = delete;
  DiskBuffer& operator=(const DiskBuffer&) = delete;

  // Appends the longest run of bodies, from the first, that keeps the buffer within max_bytes
  // (each body counts kFraming more), in one transaction, and returns how many: they are on disk
  // when it returns; their seqs, in order, go to `seqs` when given. Throws BufferError when the
  // disk refuses.
  size_t append(const std::vector<std::string_view>& bodies, int64_t now_ms, std::vector<int64_t>* seqs = nullptr);
  // Up to n records with seq > after, in order. A record that fails its checksum is reported in
  // `damaged` instead; it stays until removed.
  std::vector<Record> read(int64_t after, size_t n, std::vector<Damaged>& damaged);
  // Forgets records that were delivered (or dead-lettered): seqs this process appended or read.
  // Not synced to disk by itself (the next append is).
  void remove(const std::vector<int64_t>& seqs);
  Stats stats() const { return stats_; }
  int64_t last_seq() const { return last_seq_; }
  uint64_t max_bytes() const { return max_bytes_; }
  const std::string& path() const { return path_; }

 private:
  // A segment this process appended or read: how many of its records are still to be removed.
  struct Live {
    uint32_t count = 0;
    uint32_t removed = 0;
    uint64_t bytes = 0;
  };
  void exec(const char* sql);
  sqlite3_stmt* prepare(const char* sql);
  [[noreturn]] void fail(const std::string& what) const;
  void refresh_oldest();
  void shrink();
  static constexpr int64_t kShrinkAbove = 64 << 20;  // bytes of free pages
  // Splits a segment's bytes into records after `after`, up to n, into out/damaged.
  void parse(int64_t segment, int64_t at_ms, std::string_view body, int64_t after, size_t n, std::vector<Record>& out,
             std::vector<Damaged>& damaged);

  std::string path_;
  uint64_t max_bytes_;
  sqlite3* db_ = nullptr;
  sqlite3_stmt* insert_ = nullptr;
  sqlite3_stmt* select_ = nullptr;
  sqlite3_stmt* delete_ = nullptr;
  sqlite3_stmt* oldest_ = nullptr;
  Stats stats_;
  int64_t last_seq_ = 0;
  std::map<int64_t, Live> live_;
  std::string frame_;  // scratch: a segment being written
  // The last segment read, kept: a read of n records often ends inside one.
  int64_t cached_ = 0;
  int64_t cached_at_ = 0;
  std::string cached_body_;
};

}  // namespace edgeflow
