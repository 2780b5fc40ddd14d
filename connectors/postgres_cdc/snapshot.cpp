// The initial snapshot reader (see snapshot.hpp), on libpqxx 6.4.
//
// libpqxx 6.4 notes that shape this file:
//  * pqxx::transaction<repeatable_read, read_only> opens with the single simple query
//    "BEGIN; SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY" — the same transaction as
//    BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; no query runs before our SET TRANSACTION
//    SNAPSHOT, which is therefore the transaction's first statement after its characteristics.
//  * A 6.x connection reconnects by itself ("reactivates") when a statement finds the link already
//    down, and would run that statement in a new session, outside our transaction and snapshot.
//    The failure that broke the link aborts the pqxx transaction first, so this should not
//    happen; we inhibit reactivation anyway (a deprecated call in 6.4, hence the pragma).
//  * pqxx exceptions carry libpq's text. A connection failure's text names host and port, not the
//    password, but a malformed connection string can be echoed whole (URI parse errors quote it),
//    and option values are quoted, so every message goes through redact() before it leaves.
//  * A link the server closed surfaces as "Could not obtain client encoding: not connected.":
//    libpq's own reason is lost inside libpqxx (see Impl::fail).
#include "snapshot.hpp"

#include "redact.hpp"

#include <pqxx/pqxx>

#include <libpq-fe.h>

#include <algorithm>
#include <exception>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

namespace edgeflow::pg {

namespace {

constexpr std::string_view kPrefix = "postgres_cdc snapshot: ";

// Session settings pg_types.hpp assumes of the text it parses, pinned so a server or role default
// (DateStyle = German, bytea_output = escape, extra_float_digits = 0, ...) cannot change the JSON.
// extra_float_digits > 0 gives the shortest exact float text from PostgreSQL 12 on. TimeZone UTC
// changes no JSON (timestamptz becomes UTC anyway) but keeps the printed offsets whole hours and
// early dates out of local mean time (a year-1 value west of Greenwich would print as BC).
constexpr const char* kSessionSetup =
    "SET client_encoding = 'UTF8'; SET DateStyle = 'ISO, MDY'; SET IntervalStyle = 'postgres'; "
    "SET bytea_output = 'hex'; SET extra_float_digits = 3; SET TimeZone = 'UTC'";

bool matches_any(const TableName& t, const std::vector<TableName>& list) {
  return std::any_of(list.begin(), list.end(), [&](const TableName& f) {
    return f.schema == t.schema && f.name == t.name;
  });
}

// How one table's rows become JSON, worked out once per read().
struct Layout {
  std::vector<std::string> prefixes;      // `{"col":` for the first column, `,"col":` after
  std::vector<Oid> types;                 // pg_attribute.atttypid: what pgoutput announces
  std::vector<std::size_t> key_index;     // positions of the key columns among the columns
  std::vector<std::string> key_prefixes;  // as prefixes, for the key object
  std::string select_list;                // quoted, comma separated
  bool from_only = true;                  // SELECT ... FROM ONLY (not for partitioned tables)
};

void append_member_prefix(std::string& out, bool first, std::string_view name) {
  out.push_back(first ? '{' : ',');
  append_json_string(out, name);
  out.push_back(':');
}

}  // namespace

struct SnapshotReader::Impl {
  using Transaction = pqxx::transaction<pqxx::repeatable_read, pqxx::read_only>;

  explicit Impl(const std::string& dsn) : redact(dsn) {}

  ~Impl() {
    tx.reset();  // rolls back if still open; noexcept in libpqxx
    conn.reset();
  }

  // libpqxx 6.4 reports a link the server closed as "Could not obtain client encoding: not
  // connected." (it asks for the encoding before it looks at the failed result): say what it is.
  [[noreturn]] void fail(const std::string& what, const std::exception& e) const {
    std::string msg = redact(e.what());
    if (conn && !conn->is_open()) msg = "the connection to the server was lost (" + msg + ")";
    throw std::runtime_error(std::string(kPrefix) + what + ": " + msg);
  }

  Transaction& transaction() {
    if (!tx) throw std::runtime_error(std::string(kPrefix) + "the reader is finished");
    return *tx;
  }

  pqxx::result exec(const std::string& sql, const std::string& what) {
    Transaction& t = transaction();
    try {
      return t.exec(sql);
    } catch (const std::exception& e) {
      fail(what, e);
    }
  }

  template <typename... Args>
  pqxx::result exec_params(const std::string& sql, const std::string& what, Args&&... args) {
    Transaction& t = transaction();
    try {
      return t.exec_params(sql, std::forward<Args>(args)...);
    } catch (const std::exception& e) {
      fail(what, e);
    }
  }

  std::string quote_name(const std::string& identifier) const {
    return conn->quote_name(identifier);
  }

  Layout layout(const SnapshotTable& t);
  void resize_rows(std::size_t n);
  // The rows of a result, its first ncols columns as JSON, into `rows` (resized to match).
  void convert(const pqxx::result& res, const Layout& l, std::size_t ncols);

  Redactor redact;
  std::unique_ptr<pqxx::connection> conn;
  std::unique_ptr<Transaction> tx;
  std::vector<SnapshotRow> rows;   // handed to on_chunk; strings keep their capacity
  std::vector<SnapshotRow> spare;  // rows beyond the current chunk's size, kept for their buffers
  std::vector<std::pair<std::size_t, std::size_t>> spans;  // each value's [begin, end) in `after`
  uint64_t cursors = 0;
  Lsn position = 0;  // without an imported snapshot: the WAL position when it was taken
};

SnapshotReader::SnapshotReader(const std::string& dsn, const std::string& snapshot, const std::string& settings)
    : impl_(std::make_unique<Impl>(dsn)) {
  Impl& d = *impl_;
  if (!d.redact.parse_error().empty()) {
    throw std::runtime_error(std::string(kPrefix) + "invalid connection string: " +
                             d.redact.parse_error());
  }
  try {
    d.conn = std::make_unique<pqxx::connection>(dsn);
  } catch (const std::exception& e) {
    d.fail("cannot connect", e);
  }
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  d.conn->inhibit_reactivation(true);
#pragma GCC diagnostic pop
  try {
    pqxx::nontransaction setup(*d.conn);
    setup.exec(kSessionSetup);
    if (!settings.empty()) setup.exec(settings);
  } catch (const std::exception& e) {
    d.fail("cannot set up the session", e);
  }
  try {
    d.tx = std::make_unique<Impl::Transaction>(*d.conn);
  } catch (const std::exception& e) {
    d.fail("cannot begin the snapshot transaction", e);
  }
  if (!snapshot.empty()) {
    d.exec("SET TRANSACTION SNAPSHOT " + d.tx->quote(snapshot),
           "cannot import snapshot \"" + snapshot + "\"");
    return;
  }
  // The transaction's first statement takes its snapshot: every commit it sees is before this.
  const pqxx::result at = d.exec(
      "SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END::text",
      "cannot read the WAL position of the snapshot");
  d.position = parse_lsn(at[0][0].c_str()).value_or(0);
}

Lsn SnapshotReader::position() const { return impl_->position; }

SnapshotReader::~SnapshotReader() = default;

std::vector<SnapshotTable> SnapshotReader::tables(const std::string& publication,
                                                  const std::vector<std::string>& include,
                                                  const std::vector<std::string>& exclude) {
  Impl& d = *impl_;
  const std::string what = "listing the tables of publication \"" + publication + "\"";
  if (d.exec_params("SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = $1", what,
                    publication)
          .empty()) {
    throw std::runtime_error(std::string(kPrefix) + "publication \"" + publication +
                             "\" does not exist (in the snapshot's view of the database)");
  }

  // One row per published column (a NULL column for a table with none), tables by oid, columns
  // in table order. Generated columns are left out as pgoutput leaves them out; on PostgreSQL 15
  // the publication's column list (attnames) and row filter apply too.
  const bool pg15 = d.conn->server_version() >= 150000;
  const std::string columns_sql = std::string(
      "SELECT c.oid::int8, pt.schemaname::text, pt.tablename::text, "
      "  CASE WHEN c.reltuples < 0 THEN 0 ELSE c.reltuples::int8 END, ") +
      (pg15 ? "pt.rowfilter" : "NULL::text") +
      ", a.attname::text "
      "FROM pg_catalog.pg_publication_tables pt "
      "JOIN pg_catalog.pg_namespace n ON n.nspname = pt.schemaname "
      "JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = pt.tablename "
      "LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 "
      "  AND NOT a.attisdropped AND a.attgenerated = '' " +
      (pg15 ? "AND a.attname = ANY (pt.attnames) " : "") +
      "WHERE pt.pubname = $1 "
      "ORDER BY c.oid, a.attnum";
  const pqxx::result cols = d.exec_params(columns_sql, what, publication);

  std::vector<TableName> includes, excludes;
  for (const auto& e : include) includes.push_back(parse_table_name(e));
  for (const auto& e : exclude) excludes.push_back(parse_table_name(e));

  std::vector<SnapshotTable> out;
  std::vector<int64_t> oids;  // parallel to out
  for (const auto& row : cols) {
    const auto oid = row[0].as<int64_t>();
    if (oids.empty() || oids.back() != oid) {
      SnapshotTable t;
      t.table = {row[1].as<std::string>(), row[2].as<std::string>()};
      if ((!includes.empty() && !matches_any(t.table, includes)) || matches_any(t.table, excludes))
        continue;
      t.estimated_rows = row[3].as<uint64_t>();
      if (!row[4].is_null()) t.row_filter = row[4].as<std::string>();
      out.push_back(std::move(t));
      oids.push_back(oid);
    }
    if (!row[5].is_null()) out.back().columns.push_back(row[5].as<std::string>());
  }
  if (out.empty()) return out;

  // Key columns: the replica identity index's key columns if the table has one, else the
  // primary key's, in table order as pgoutput flags them, so a row's key is the same text in
  // snapshot and stream. Key columns a column list leaves out are left out here too: the stream
  // cannot see them either.
  std::string oid_array = "{";
  for (std::size_t i = 0; i < oids.size(); ++i) {
    if (i > 0) oid_array.push_back(',');
    oid_array += std::to_string(oids[i]);
  }
  oid_array.push_back('}');
  const pqxx::result keys = d.exec_params(
      "SELECT i.indrelid::int8, a.attname::text "
      "FROM pg_catalog.pg_index i "
      "CROSS JOIN LATERAL generate_series(0, i.indnkeyatts - 1) AS k(n) "
      "JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[k.n] "
      "WHERE i.indrelid = ANY ($1::oid[]) "
      "  AND (i.indisreplident OR (i.indisprimary AND NOT EXISTS ("
      "    SELECT FROM pg_catalog.pg_index r WHERE r.indrelid = i.indrelid AND r.indisreplident))) "
      "ORDER BY i.indrelid, a.attnum",
      what, oid_array);
  for (const auto& row : keys) {
    const auto oid = row[0].as<int64_t>();
    const auto it = std::find(oids.begin(), oids.end(), oid);
    if (it == oids.end()) continue;
    SnapshotTable& t = out[static_cast<std::size_t>(it - oids.begin())];
    auto name = row[1].as<std::string>();
    if (std::find(t.columns.begin(), t.columns.end(), name) != t.columns.end())
      t.key_columns.push_back(std::move(name));
  }

  std::sort(out.begin(), out.end(), [](const SnapshotTable& a, const SnapshotTable& b) {
    return std::tie(a.table.schema, a.table.name) < std::tie(b.table.schema, b.table.name);
  });
  return out;
}

Layout SnapshotReader::Impl::layout(const SnapshotTable& t) {
  const std::string what = "reading the columns of " + t.table.qualified();
  const pqxx::result rel = exec_params(
      "SELECT c.oid::int8, c.relkind::text FROM pg_catalog.pg_class c "
      "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
      "WHERE n.nspname = $1 AND c.relname = $2",
      what, t.table.schema, t.table.name);
  if (rel.empty()) {
    throw std::runtime_error(std::string(kPrefix) + "table " + t.table.qualified() +
                             " does not exist (in the snapshot's view of the database)");
  }
  Layout l;
  // A plain table's inheritance children are published (and read) as tables of their own: read
  // ONLY its own rows. A partitioned table has no rows of its own: read it whole.
  l.from_only = rel[0][1].as<std::string>() != "p";
  const pqxx::result attrs = exec_params(
      "SELECT a.attname::text, a.atttypid::int8 FROM pg_catalog.pg_attribute a "
      "WHERE a.attrelid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped "
      "  AND a.attgenerated = '' "
      "ORDER BY a.attnum",
      what, rel[0][0].as<int64_t>());
  std::vector<std::string> names;
  for (const auto& row : attrs) {
    auto name = row[0].as<std::string>();
    if (!t.columns.empty() &&
        std::find(t.columns.begin(), t.columns.end(), name) == t.columns.end())
      continue;
    l.types.push_back(static_cast<Oid>(row[1].as<int64_t>()));
    names.push_back(std::move(name));
  }
  for (const auto& c : t.columns) {
    if (std::find(names.begin(), names.end(), c) == names.end()) {
      throw std::runtime_error(std::string(kPrefix) + "table " + t.table.qualified() +
                               " has no column \"" + c + "\" to read");
    }
  }
  for (std::size_t i = 0; i < names.size(); ++i) {
    append_member_prefix(l.prefixes.emplace_back(), i == 0, names[i]);
    if (i > 0) l.select_list += ", ";
    l.select_list += quote_name(names[i]);
  }
  for (const auto& k : t.key_columns) {
    const auto it = std::find(names.begin(), names.end(), k);
    if (it == names.end()) {
      throw std::runtime_error(std::string(kPrefix) + "key column \"" + k + "\" is not among " +
                               "the columns read from " + t.table.qualified());
    }
    l.key_index.push_back(static_cast<std::size_t>(it - names.begin()));
    append_member_prefix(l.key_prefixes.emplace_back(), l.key_prefixes.empty(), k);
  }
  return l;
}

void SnapshotReader::Impl::resize_rows(std::size_t n) {
  while (rows.size() > n) {
    spare.push_back(std::move(rows.back()));
    rows.pop_back();
  }
  rows.reserve(n);
  while (rows.size() < n) {
    if (spare.empty()) {
      rows.emplace_back();
    } else {
      rows.push_back(std::move(spare.back()));
      spare.pop_back();
    }
  }
}

void SnapshotReader::Impl::convert(const pqxx::result& res, const Layout& l, std::size_t ncols) {
  const std::size_t n = res.size();
  resize_rows(n);
  spans.resize(ncols);
  for (std::size_t r = 0; r < n; ++r) {
    SnapshotRow& out = rows[r];
    std::string& after = out.after;
    after.clear();
    std::size_t c = 0;
    const pqxx::row row = res[static_cast<pqxx::result::size_type>(r)];
    for (auto f = row.begin(); c < ncols; ++f, ++c) {
      after += l.prefixes[c];
      const std::size_t begin = after.size();
      if (f->is_null()) {
        after += "null";
      } else {
        const std::string_view text(f->c_str(), f->size());
        try {
          append_json(after, l.types[c], text);
        } catch (const ValueError&) {
          after.resize(begin);  // the text, as a string: nothing is lost
          append_json_string(after, text);
        }
      }
      spans[c] = {begin, after.size()};
    }
    if (ncols == 0) after.push_back('{');
    after.push_back('}');

    std::string& key = out.key;
    key.clear();
    if (l.key_index.empty()) {
      key = "{}";
    } else {
      for (std::size_t k = 0; k < l.key_index.size(); ++k) {
        key += l.key_prefixes[k];
        const auto [b, e] = spans[l.key_index[k]];
        key.append(after, b, e - b);
      }
      key.push_back('}');
    }
  }
}

uint64_t SnapshotReader::read(const SnapshotTable& t, size_t chunk_rows,
                              const std::function<bool(std::vector<SnapshotRow>&)>& on_chunk) {
  Impl& d = *impl_;
  if (chunk_rows == 0) throw std::invalid_argument(std::string(kPrefix) + "chunk_rows is 0");
  d.transaction();  // throws when finished
  const Layout l = d.layout(t);
  const std::string what = "reading " + t.table.qualified();
  const std::string cursor = "edgeflow_snapshot_" + std::to_string(++d.cursors);

  std::string select = "DECLARE " + cursor + " NO SCROLL CURSOR FOR SELECT " + l.select_list +
                       (l.from_only ? " FROM ONLY " : " FROM ") +
                       d.quote_name(t.table.schema) + "." + d.quote_name(t.table.name);
  if (!t.row_filter.empty()) select += " WHERE (" + t.row_filter + ")";
  d.exec(select, what);

  const std::string fetch = "FETCH FORWARD " + std::to_string(chunk_rows) + " FROM " + cursor;
  const std::size_t ncols = l.types.size();
  uint64_t total = 0;
  for (;;) {
    const pqxx::result res = d.exec(fetch, what);
    const std::size_t n = res.size();
    if (n == 0) break;
    if (static_cast<std::size_t>(res.columns()) != ncols) {
      throw std::runtime_error(std::string(kPrefix) + what + ": expected " +
                               std::to_string(ncols) + " columns, the server sent " +
                               std::to_string(res.columns()));
    }
    d.convert(res, l, ncols);
    total += n;
    if (!on_chunk(d.rows)) break;
    if (n < chunk_rows) break;  // the last chunk: no need to ask for an empty one
  }
  d.exec("CLOSE " + cursor, what);
  return total;
}

void SnapshotReader::renew() {
  Impl& d = *impl_;
  if (!d.conn) throw std::runtime_error(std::string(kPrefix) + "the reader is finished");
  try {
    if (d.tx) d.tx->commit();
    d.tx.reset();
    d.tx = std::make_unique<Impl::Transaction>(*d.conn);
  } catch (const std::exception& e) {
    d.tx.reset();
    d.fail("beginning a new snapshot transaction", e);
  }
}

void SnapshotReader::commit() {
  Impl& d = *impl_;
  if (!d.tx) return;
  try {
    d.tx->commit();
  } catch (const std::exception& e) {
    d.tx.reset();
    d.fail("ending a snapshot transaction", e);
  }
  d.tx.reset();
}

bool SnapshotReader::can_select(const TableName& t) {
  Impl& d = *impl_;
  const pqxx::result r = d.exec_params("SELECT has_table_privilege(quote_ident($1) || '.' || quote_ident($2), 'SELECT')",
                                       "checking the privileges on " + t.qualified(), t.schema, t.name);
  return !r.empty() && r[0][0].as<bool>();
}

size_t SnapshotReader::read_after(const SnapshotTable& t, const std::vector<std::string>& after_key, size_t limit,
                                  std::vector<SnapshotRow>& rows, std::vector<std::string>& last_key) {
  Impl& d = *impl_;
  if (limit == 0) throw std::invalid_argument(std::string(kPrefix) + "limit is 0");
  if (t.key_columns.empty())
    throw std::runtime_error(std::string(kPrefix) + t.table.qualified() +
                             " has no primary key or replica identity index to read it in key order by");
  d.transaction();
  const Layout l = d.layout(t);
  // Keyset paging: the rows after the last key read, in the key's order (its index serves it).
  std::string keys, bound;
  for (std::size_t k = 0; k < t.key_columns.size(); ++k) {
    keys += (k ? ", " : "") + d.quote_name(t.key_columns[k]);
    if (k < after_key.size()) bound += (k ? ", " : "") + d.tx->quote(after_key[k]);
  }
  std::string where;
  if (!t.row_filter.empty()) where = "(" + t.row_filter + ")";
  if (!after_key.empty()) {
    if (after_key.size() != t.key_columns.size())
      throw std::invalid_argument(std::string(kPrefix) + "the last key read has " + std::to_string(after_key.size()) +
                                  " values, the table's key " + std::to_string(t.key_columns.size()));
    where += (where.empty() ? "" : " AND ") + std::string("(") + keys + ") > (" + bound + ")";
  }
  // The key columns' own text comes last, for the next bound.
  std::string key_text;
  for (std::size_t k = 0; k < t.key_columns.size(); ++k)
    key_text += ", " + d.quote_name(t.key_columns[k]) + "::text AS edgeflow_key_" + std::to_string(k);
  const pqxx::result res = d.exec("SELECT " + l.select_list + key_text + (l.from_only ? " FROM ONLY " : " FROM ") +
                                      d.quote_name(t.table.schema) + "." + d.quote_name(t.table.name) +
                                      (where.empty() ? "" : " WHERE " + where) + " ORDER BY " + keys + " LIMIT " +
                                      std::to_string(limit),
                                  "reading a chunk of " + t.table.qualified());
  const std::size_t ncols = l.types.size(), nkeys = t.key_columns.size();
  if (static_cast<std::size_t>(res.columns()) != ncols + nkeys)
    throw std::runtime_error(std::string(kPrefix) + "reading a chunk of " + t.table.qualified() + ": expected " +
                             std::to_string(ncols + nkeys) + " columns, the server sent " + std::to_string(res.columns()));
  if (!res.empty()) {
    const pqxx::row last = res[static_cast<pqxx::result::size_type>(res.size() - 1)];
    last_key.clear();
    for (std::size_t k = 0; k < nkeys; ++k) last_key.emplace_back(last[static_cast<pqxx::row::size_type>(ncols + k)].c_str());
  }
  d.convert(res, l, ncols);
  rows.assign(d.rows.begin(), d.rows.end());
  return res.size();
}

void SnapshotReader::finish() {
  Impl& d = *impl_;
  if (!d.conn) return;
  try {
    if (d.tx) d.tx->commit();
  } catch (const std::exception& e) {
    d.tx.reset();
    d.conn.reset();
    d.fail("ending the snapshot transaction", e);
  }
  d.tx.reset();
  d.conn.reset();
}

}  // namespace edgeflow::pg
