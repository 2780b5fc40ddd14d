#include "replication.hpp"

#include "redact.hpp"

#include <libpq-fe.h>
#include <poll.h>

#include <cerrno>
#include <cstring>
#include <ctime>

namespace edgeflow::pg {

namespace {

std::string trimmed(const char* s) { return tidy(s ? s : ""); }

void put_be64(char* p, uint64_t v) {
  for (int i = 7; i >= 0; --i) {
    p[i] = char(v & 0xff);
    v >>= 8;
  }
}

// What the operator should do about a connection failure we recognise.
std::string advice(const std::string& server_message) {
  if (server_message.find("must be superuser or replication role") != std::string::npos ||
      server_message.find("permission denied to start WAL sender") != std::string::npos)
    return " — the role needs the REPLICATION attribute: ALTER ROLE <role> REPLICATION;";
  if (server_message.find("no pg_hba.conf entry for replication") != std::string::npos)
    return " — add a pg_hba.conf line for database connections of this role (logical replication "
           "uses the database, not the `replication` pseudo-database) and reload";
  if (server_message.find("password authentication failed") != std::string::npos)
    return " — check the password in the dsn (it is not shown here)";
  return "";
}

}  // namespace

PgTimestamp pg_now() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t(ts.tv_sec) * 1000 - kPgEpochUnixMs) * 1000 + ts.tv_nsec / 1000;
}

ReplicationConnection::ReplicationConnection(const std::string& dsn) {
  Redactor redact(dsn);
  if (!redact.parse_error().empty()) throw ReplicationError("cannot connect to PostgreSQL: " + redact.parse_error());
  const char* keys[] = {"dbname", "replication", "fallback_application_name", nullptr};
  const char* values[] = {dsn.c_str(), "database", "edgeflow", nullptr};
  conn_ = PQconnectdbParams(keys, values, 1);
  if (!conn_) throw ReplicationError("cannot connect to PostgreSQL: out of memory");
  if (PQstatus(conn_) != CONNECTION_OK) {
    std::string msg = redact(PQerrorMessage(conn_));
    release();
    throw ReplicationError("cannot connect to PostgreSQL: " + msg + advice(msg));
  }
  // pgoutput prints values in this session's settings: pin the ones pg_types.hpp reads, so a
  // server's or role's defaults cannot change the JSON (the snapshot reader pins the same).
  for (const char* set : {"SET DateStyle = ISO", "SET IntervalStyle = postgres", "SET TimeZone = 'UTC'",
                          "SET extra_float_digits = 3", "SET bytea_output = hex"})
    query(set);
}

ReplicationConnection::~ReplicationConnection() { release(); }

void ReplicationConnection::release() {
  if (buf_) PQfreemem(buf_);
  buf_ = nullptr;
  if (conn_) PQfinish(conn_);
  conn_ = nullptr;
}

void ReplicationConnection::fail(const std::string& what) const {
  throw ReplicationError(what + ": " + trimmed(PQerrorMessage(conn_)));
}

std::string ReplicationConnection::user() const { return PQuser(conn_); }
std::string ReplicationConnection::database() const { return PQdb(conn_); }
int ReplicationConnection::server_version() const { return PQserverVersion(conn_); }

std::string ReplicationConnection::literal(std::string_view s) const {
  char* q = PQescapeLiteral(conn_, s.data(), s.size());
  if (!q) fail("cannot quote a literal");
  std::string out(q);
  PQfreemem(q);
  return out;
}

// The server's quote_ident: quotes only where needed, so the SQL shown to operators reads naturally.
std::string ReplicationConnection::identifier(std::string_view s) {
  auto rows = query("SELECT quote_ident(" + literal(s) + ")");
  if (rows.size() != 1 || rows[0].empty() || !rows[0][0]) throw ReplicationError("quote_ident returned no value");
  return *rows[0][0];
}

std::vector<ReplicationConnection::Row> ReplicationConnection::query(const std::string& sql) {
  PGresult* r = PQexec(conn_, sql.c_str());
  ExecStatusType st = PQresultStatus(r);
  if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
    std::string msg = trimmed(PQresultErrorMessage(r));
    PQclear(r);
    throw ReplicationError(msg.empty() ? trimmed(PQerrorMessage(conn_)) : msg);
  }
  std::vector<Row> rows(size_t(PQntuples(r)));
  int cols = PQnfields(r);
  for (size_t i = 0; i < rows.size(); ++i)
    for (int c = 0; c < cols; ++c)
      rows[i].push_back(PQgetisnull(r, int(i), c) ? std::nullopt
                                                   : std::optional<std::string>(PQgetvalue(r, int(i), c)));
  PQclear(r);
  return rows;
}

ReplicationConnection::Slot ReplicationConnection::create_slot(const std::string& name, bool temporary,
                                                               bool export_snapshot) {
  // The pre-15 spelling of the options, which 15 still takes: works on every supported server.
  auto rows = query("CREATE_REPLICATION_SLOT " + identifier(name) + (temporary ? " TEMPORARY" : "") +
                    " LOGICAL pgoutput " + (export_snapshot ? "EXPORT_SNAPSHOT" : "NOEXPORT_SNAPSHOT"));
  if (rows.size() != 1 || rows[0].size() < 3 || !rows[0][1])
    throw ReplicationError("CREATE_REPLICATION_SLOT returned an unexpected result");
  auto lsn = parse_lsn(*rows[0][1]);
  if (!lsn) throw ReplicationError("CREATE_REPLICATION_SLOT returned a bad consistent point " + *rows[0][1]);
  return Slot{*lsn, rows[0][2].value_or("")};
}

void ReplicationConnection::drop_slot(const std::string& name) { query("DROP_REPLICATION_SLOT " + identifier(name)); }

void ReplicationConnection::start(const StartOptions& o) {
  std::string sql = "START_REPLICATION SLOT " + identifier(o.slot) + " LOGICAL " + format_lsn(o.start) +
                    " (proto_version '" + std::to_string(o.proto_version) +
                    "', publication_names " + literal(identifier(o.publication)) +
                    (o.messages ? ", messages 'true'" : "") + (o.streaming ? ", streaming 'on'" : "") + ")";
  PGresult* r = PQexec(conn_, sql.c_str());
  if (PQresultStatus(r) != PGRES_COPY_BOTH) {
    std::string msg = trimmed(PQresultErrorMessage(r));
    PQclear(r);
    throw ReplicationError("START_REPLICATION failed: " + msg);
  }
  PQclear(r);
  if (PQsetnonblocking(conn_, 1) != 0) fail("cannot make the replication connection non-blocking");
}

ReplicationConnection::Read ReplicationConnection::read(std::string_view& msg) {
  if (buf_) {
    PQfreemem(buf_);
    buf_ = nullptr;
  }
  int n = PQgetCopyData(conn_, &buf_, 1);
  if (n > 0) {
    msg = std::string_view(buf_, size_t(n));
    return Read::data;
  }
  if (n == 0) return Read::none;
  if (n == -1) {
    // The server ended the stream: either cleanly or with an error in the final result.
    PGresult* r = PQgetResult(conn_);
    std::string err = r && PQresultStatus(r) != PGRES_COMMAND_OK ? trimmed(PQresultErrorMessage(r)) : "";
    PQclear(r);
    if (!err.empty()) throw ReplicationError("replication stream ended: " + err);
    return Read::ended;
  }
  fail("replication stream broken");
}

void ReplicationConnection::wait(std::chrono::milliseconds timeout) {
  pollfd p{PQsocket(conn_), POLLIN, 0};
  int r = ::poll(&p, 1, int(timeout.count()));
  if (r < 0 && errno != EINTR) throw ReplicationError(std::string("poll: ") + std::strerror(errno));
  if (r > 0 && PQconsumeInput(conn_) == 0) fail("replication connection lost");
}

void ReplicationConnection::send_status(Lsn written, Lsn flushed, bool reply_requested) {
  char m[34];
  m[0] = 'r';
  put_be64(m + 1, written);
  put_be64(m + 9, flushed);
  put_be64(m + 17, flushed);  // applied: nothing is applied later than it is flushed here
  put_be64(m + 25, uint64_t(pg_now()));
  m[33] = reply_requested ? 1 : 0;
  if (PQputCopyData(conn_, m, sizeof m) <= 0) fail("cannot send a status update");
  // Non-blocking: a flush that cannot finish now completes on a later call.
  if (PQflush(conn_) < 0) fail("cannot send a status update");
}

}  // namespace edgeflow::pg
