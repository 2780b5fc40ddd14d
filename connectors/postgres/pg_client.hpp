// One libpq connection of the postgres sink: statements with text parameters, and every
// failure as its SQLSTATE and a one-line, redacted message.
//
// libpq, not libpqxx (the snapshot reader's library): the sink classifies every failure by
// SQLSTATE (a lost link, a conflict to retry, a row to dead-letter, a grant to name), and
// libpqxx 6.4 loses libpq's reason when the link drops and may silently reconnect a session
// mid-transaction (see snapshot.cpp). docs/architecture.md, "PostgreSQL sink".
#pragma once

#include "redact.hpp"

#include <libpq-fe.h>

#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace edgeflow::pg {

// What a failed statement or connection says. `sqlstate` is empty for a connection that could
// not be made or was lost without a server message.
struct SqlError : std::runtime_error {
  SqlError(std::string state, const std::string& message) : std::runtime_error(message), sqlstate(std::move(state)) {}
  std::string sqlstate;

  // The link is gone (or the server is shutting the session down): reconnect and try again.
  bool connection_lost() const;
  // Serialization failure or deadlock: the transaction may succeed when run again.
  bool transient() const;
  // A fault of one row's values (class 22 data exception, class 23 integrity): isolate the row.
  bool row_fault() const;
};

class Result {
 public:
  explicit Result(PGresult* r) : r_(r, &PQclear) {}
  int rows() const { return PQntuples(r_.get()); }
  bool null(int row, int col) const { return PQgetisnull(r_.get(), row, col) != 0; }
  std::string_view get(int row, int col) const {
    return {PQgetvalue(r_.get(), row, col), size_t(PQgetlength(r_.get(), row, col))};
  }
  // Rows an INSERT, UPDATE or DELETE touched.
  long affected() const { return std::atol(PQcmdTuples(r_.get())); }

 private:
  std::unique_ptr<PGresult, decltype(&PQclear)> r_;
};

class Client {
 public:
  explicit Client(std::string dsn) : dsn_(std::move(dsn)), redact_(dsn_) {}
  ~Client() { close(); }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Connects if not connected (throws SqlError); pins the session settings values are read with.
  void connect();
  bool connected() const { return conn_ && PQstatus(conn_) == CONNECTION_OK; }
  void close();
  // Runs one statement with text parameters (NULL for a null pointer); throws SqlError.
  Result exec(const std::string& sql, const std::vector<const std::string*>& params = {});
  // exec() for statements whose result is not needed.
  void run(const std::string& sql) { exec(sql); }
  // COPY ... FROM STDIN with `data` (text format lines); throws SqlError.
  void copy(const std::string& sql, const std::string& data);
  const Redactor& redact() const { return redact_; }

 private:
  std::string dsn_;
  Redactor redact_;
  PGconn* conn_ = nullptr;
};

// "schema"."table" from `schema.table` (split at the first dot) or `table`.
std::string quote_table(std::string_view name);
std::string quote_ident(std::string_view name);

}  // namespace edgeflow::pg
