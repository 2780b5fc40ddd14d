#include "pg_client.hpp"

#include <algorithm>

namespace edgeflow::pg {

bool SqlError::connection_lost() const {
  // 08: connection exception; 57P01-57P03: the server is shutting the session down.
  return sqlstate.empty() || sqlstate.rfind("08", 0) == 0 || sqlstate == "57P01" || sqlstate == "57P02" ||
         sqlstate == "57P03";
}

bool SqlError::transient() const {
  // serialization_failure, deadlock_detected, lock_not_available; 53: out of resources.
  return sqlstate == "40001" || sqlstate == "40P01" || sqlstate == "55P03" || sqlstate.rfind("53", 0) == 0;
}

bool SqlError::row_fault() const {
  // 22: a value the column's type refuses; 23: a constraint; 42804: a value of the wrong type.
  return sqlstate.rfind("22", 0) == 0 || sqlstate.rfind("23", 0) == 0 || sqlstate == "42804";
}

void Client::connect() {
  if (connected()) return;
  close();
  if (!redact_.parse_error().empty()) throw SqlError("", "cannot connect to PostgreSQL: " + redact_.parse_error());
  // Defaults the connection string may override (it is expanded after them): a server that does
  // not answer must not hold the sink's worker, or its stop, for minutes.
  const char* keys[] = {"connect_timeout", "keepalives_idle", "keepalives_interval", "keepalives_count", "dbname",
                        "fallback_application_name", nullptr};
  const char* values[] = {"10", "30", "10", "3", dsn_.c_str(), "edgeflow", nullptr};
  conn_ = PQconnectdbParams(keys, values, 1);
  if (!conn_) throw SqlError("", "cannot connect to PostgreSQL: out of memory");
  if (PQstatus(conn_) != CONNECTION_OK) {
    std::string msg = redact_(tidy(PQerrorMessage(conn_)));
    close();
    throw SqlError("", "cannot connect to PostgreSQL: " + msg);
  }
  // NOTICEs (CREATE ... IF NOT EXISTS of an existing table) are not for the daemon's stderr.
  PQsetNoticeProcessor(conn_, [](void*, const char*) {}, nullptr);
  // Values are sent as JSON text and read by the server in this session's settings: pin the
  // ones that change how text becomes a date, a time or bytes.
  run("SET client_encoding = 'UTF8'; SET DateStyle = 'ISO, MDY'; SET IntervalStyle = 'postgres'; "
      "SET TimeZone = 'UTC'; SET bytea_output = 'hex'; SET extra_float_digits = 3");
}

void Client::close() {
  if (conn_) PQfinish(conn_);
  conn_ = nullptr;
}

Result Client::exec(const std::string& sql, const std::vector<const std::string*>& params) {
  if (!connected()) throw SqlError("", "not connected to PostgreSQL");
  std::vector<const char*> values;
  std::vector<int> lengths;
  for (const std::string* p : params) {
    values.push_back(p ? p->data() : nullptr);
    lengths.push_back(p ? int(p->size()) : 0);
  }
  // Without parameters, the simple protocol: it takes several statements at once.
  PGresult* r = params.empty() ? PQexec(conn_, sql.c_str())
                               : PQexecParams(conn_, sql.c_str(), int(values.size()), nullptr, values.data(),
                                              lengths.data(), nullptr, 0);
  ExecStatusType status = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return Result(r);
  const char* field = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
  std::string state = field ? field : "";
  std::string msg = redact_(tidy(r ? PQresultErrorMessage(r) : PQerrorMessage(conn_)));
  if (msg.empty()) msg = redact_(tidy(PQerrorMessage(conn_)));
  if (msg.rfind("ERROR: ", 0) == 0) msg.erase(0, 7);
  if (r) PQclear(r);
  SqlError e(state, msg);
  if (e.sqlstate.empty() && PQstatus(conn_) == CONNECTION_OK) e.sqlstate = "XX000";  // a client-side failure
  throw e;
}

void Client::copy(const std::string& sql, const std::string& data) {
  if (!connected()) throw SqlError("", "not connected to PostgreSQL");
  PGresult* r = PQexec(conn_, sql.c_str());
  bool ready = r && PQresultStatus(r) == PGRES_COPY_IN;
  if (!ready) {
    std::string state = r && PQresultErrorField(r, PG_DIAG_SQLSTATE) ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : "";
    std::string msg = redact_(tidy(r ? PQresultErrorMessage(r) : PQerrorMessage(conn_)));
    if (r) PQclear(r);
    throw SqlError(state, msg.rfind("ERROR: ", 0) == 0 ? msg.substr(7) : msg);
  }
  PQclear(r);
  // In slices: libpq buffers what it is given, and a slice bounds that buffer.
  constexpr size_t kSlice = 1 << 20;
  bool sent = true;
  for (size_t at = 0; at < data.size() && sent; at += kSlice)
    sent = PQputCopyData(conn_, data.data() + at, int(std::min(kSlice, data.size() - at))) == 1;
  if (PQputCopyEnd(conn_, sent ? nullptr : "edgeflow: sending the rows failed") != 1 || !sent)
    throw SqlError("", "COPY: " + redact_(tidy(PQerrorMessage(conn_))));
  // The COPY's own result, then the end of the command.
  bool failed = false;
  std::string state, msg;
  while (PGresult* res = PQgetResult(conn_)) {
    if (PQresultStatus(res) != PGRES_COMMAND_OK && !failed) {
      failed = true;
      const char* f = PQresultErrorField(res, PG_DIAG_SQLSTATE);
      state = f ? f : "";
      msg = redact_(tidy(PQresultErrorMessage(res)));
    }
    PQclear(res);
  }
  if (failed) {
    if (state.empty() && PQstatus(conn_) == CONNECTION_OK) state = "XX000";
    throw SqlError(state, msg.rfind("ERROR: ", 0) == 0 ? msg.substr(7) : msg);
  }
}

std::string quote_ident(std::string_view name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string quote_table(std::string_view name) {
  size_t dot = name.find('.');
  if (dot == std::string_view::npos) return quote_ident(name);
  return quote_ident(name.substr(0, dot)) + "." + quote_ident(name.substr(dot + 1));
}

}  // namespace edgeflow::pg
