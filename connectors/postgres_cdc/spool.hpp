// Streamed transactions (pgoutput protocol 2) kept until their commit: the server sends a large
// transaction in chunks while it still runs, and it may yet abort (whole, or a subtransaction),
// so its raw messages go to one file per top-level transaction and are decoded and emitted only
// at Stream Commit. Nothing here must survive a restart: the server streams an unconfirmed
// transaction again from its start.
#pragma once

#include "pgoutput.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>

#include <unistd.h>

namespace edgeflow::pg {

class Spool {
 public:
  // Files go to `dir` (created; leftovers of an earlier run removed).
  explicit Spool(std::filesystem::path dir) : dir_(std::move(dir)) {
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  ~Spool() {
    for (auto& [xid, t] : txns_) std::fclose(t.file);
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  Spool(const Spool&) = delete;
  Spool& operator=(const Spool&) = delete;

  // One message of (sub)transaction `sub` of top-level transaction `top`, at `lsn`.
  void append(Xid top, Xid sub, Lsn lsn, std::string_view msg) {
    Txn& t = open(top);
    t.sub_start.try_emplace(sub, t.size);
    uint32_t len = uint32_t(msg.size());
    if (std::fwrite(&len, sizeof len, 1, t.file) != 1 || std::fwrite(&lsn, sizeof lsn, 1, t.file) != 1 ||
        std::fwrite(msg.data(), 1, msg.size(), t.file) != msg.size())
      fail("cannot write the spool of transaction " + std::to_string(top));
    t.size += sizeof len + sizeof lsn + msg.size();
  }

  // The whole transaction (sub == top) or a subtransaction and everything after it rolled back.
  void abort(Xid top, Xid sub) {
    auto it = txns_.find(top);
    if (it == txns_.end()) return;
    Txn& t = it->second;
    auto at = t.sub_start.find(sub);
    if (sub == top || (at != t.sub_start.end() && at->second == 0)) {
      drop(it);
      return;
    }
    if (at == t.sub_start.end()) return;  // nothing of it was streamed
    uint64_t keep = at->second;
    if (std::fflush(t.file) != 0 || ::ftruncate(fileno(t.file), off_t(keep)) != 0 ||
        std::fseek(t.file, 0, SEEK_END) != 0)
      fail("cannot truncate the spool of transaction " + std::to_string(top));
    t.size = keep;
    for (auto s = t.sub_start.begin(); s != t.sub_start.end();)
      s = s->second >= keep ? t.sub_start.erase(s) : std::next(s);
  }

  // Hands every message of `top` to f(lsn, msg) in order while f returns true, then forgets the
  // transaction. Returns false when f stopped early.
  template <class F>
  bool replay(Xid top, F&& f) {
    auto it = txns_.find(top);
    if (it == txns_.end()) return true;
    Txn& t = it->second;
    if (std::fflush(t.file) != 0 || std::fseek(t.file, 0, SEEK_SET) != 0)
      fail("cannot read the spool of transaction " + std::to_string(top));
    bool go = true;
    for (uint64_t pos = 0; go && pos < t.size;) {
      uint32_t len = 0;
      Lsn lsn = 0;
      if (std::fread(&len, sizeof len, 1, t.file) != 1 || std::fread(&lsn, sizeof lsn, 1, t.file) != 1)
        fail("the spool of transaction " + std::to_string(top) + " is truncated");
      buf_.resize(len);
      if (std::fread(buf_.data(), 1, len, t.file) != len)
        fail("the spool of transaction " + std::to_string(top) + " is truncated");
      pos += sizeof len + sizeof lsn + len;
      go = f(lsn, std::string_view(buf_));
    }
    drop(it);
    return go;
  }

  size_t open_transactions() const { return txns_.size(); }

 private:
  struct Txn {
    std::FILE* file = nullptr;
    uint64_t size = 0;
    std::unordered_map<Xid, uint64_t> sub_start;  // offset of a subtransaction's first message
  };
  using Map = std::unordered_map<Xid, Txn>;

  Txn& open(Xid top) {
    auto [it, fresh] = txns_.try_emplace(top);
    if (fresh) {
      it->second.file = std::fopen(path(top).c_str(), "w+b");
      if (!it->second.file) {
        txns_.erase(it);
        fail("cannot create " + path(top));
      }
    }
    return it->second;
  }
  void drop(Map::iterator it) {
    std::fclose(it->second.file);
    std::remove(path(it->first).c_str());
    txns_.erase(it);
  }
  std::string path(Xid top) const { return (dir_ / (std::to_string(top) + ".spool")).string(); }
  [[noreturn]] static void fail(const std::string& what) {
    throw std::runtime_error(what + ": " + std::strerror(errno));
  }

  std::filesystem::path dir_;
  Map txns_;
  std::string buf_;
};

}  // namespace edgeflow::pg
