// A logical replication connection over libpq (`replication=database`): the SQL the connector
// needs before streaming (checks, publication, slot) and the CopyBoth stream itself.
//
// Errors are std::runtime_error texts meant for operators: the server's message plus, where we
// know it, what to run or change. The DSN is never part of a message (it may hold a password).
#pragma once

#include "pgoutput.hpp"

#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

struct pg_conn;

namespace edgeflow::pg {

struct ReplicationError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class ReplicationConnection {
 public:
  // Connects with replication=database added to `dsn` (keyword/value or URI form).
  explicit ReplicationConnection(const std::string& dsn);
  ~ReplicationConnection();
  ReplicationConnection(const ReplicationConnection&) = delete;
  ReplicationConnection& operator=(const ReplicationConnection&) = delete;

  std::string user() const;
  std::string database() const;
  int server_version() const;

  // Simple-protocol SQL (a walsender takes no extended protocol): rows of text, NULL as nullopt.
  using Row = std::vector<std::optional<std::string>>;
  std::vector<Row> query(const std::string& sql);
  std::string literal(std::string_view s) const;     // 'quoted'
  std::string identifier(std::string_view s);  // quoted where needed, by the server

  struct Slot {
    Lsn consistent_point = 0;
    std::string snapshot;  // exported snapshot name; valid until the next command on this connection
  };
  Slot create_slot(const std::string& name, bool temporary, bool export_snapshot);
  void drop_slot(const std::string& name);

  struct StartOptions {
    std::string slot;
    Lsn start = 0;  // 0: the slot's confirmed_flush_lsn
    std::string publication;
    int proto_version = 1;
    bool messages = false;
    bool streaming = false;  // protocol 2 only
  };
  void start(const StartOptions& o);

  // One CopyData message of the stream, valid until the next read().
  enum class Read { data, none, ended };
  Read read(std::string_view& msg);
  // Waits until the socket is readable or `timeout` passed, then takes in what arrived.
  void wait(std::chrono::milliseconds timeout);
  // Standby status update: written/flushed positions; flushed becomes the slot's confirmed LSN.
  void send_status(Lsn written, Lsn flushed, bool reply_requested = false);

 private:
  [[noreturn]] void fail(const std::string& what) const;
  void release();
  pg_conn* conn_ = nullptr;
  char* buf_ = nullptr;  // the last CopyData, owned by libpq's allocator
};

// A server message inside the stream: XLogData ('w': one pgoutput message at wal_start) or a
// keepalive ('k': the server has sent everything before wal_end). nullopt when malformed.
struct StreamMessage {
  char type = 0;
  Lsn wal_start = 0;
  Lsn wal_end = 0;
  bool reply_requested = false;
  std::string_view data;
};

inline std::optional<StreamMessage> parse_stream_message(std::string_view m) {
  auto be64 = [&](size_t at) {
    uint64_t v = 0;
    for (size_t i = at; i < at + 8; ++i) v = (v << 8) | uint8_t(m[i]);
    return v;
  };
  if (m.size() >= 25 && m[0] == 'w') return StreamMessage{'w', be64(1), be64(9), false, m.substr(25)};
  if (m.size() >= 18 && m[0] == 'k') return StreamMessage{'k', 0, be64(1), m[17] != 0, {}};
  return std::nullopt;
}

// Microseconds since 2000-01-01 UTC, PostgreSQL's clock for status messages.
PgTimestamp pg_now();

}  // namespace edgeflow::pg
