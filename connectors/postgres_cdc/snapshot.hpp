// The initial snapshot: every row of the captured tables, read with libpqxx inside one
// REPEATABLE READ transaction that imports the replication slot's exported snapshot, so the rows
// are exactly the state at the slot's consistent point (the stream starts right after it: no gap,
// no overlap). Tables are read through a cursor in chunks: memory stays bounded by one chunk.
//
// Each row looks as the stream would show it: the columns pgoutput sends (publication column list,
// no generated columns), only the rows its row filter passes, each value converted by the column's
// declared type OID (pg_attribute.atttypid, as in pgoutput's Relation message: a domain column
// arrives as the domain's OID, not its base type's as a plain SELECT reports it). The session
// pins the settings pg_types.hpp parses (client_encoding UTF8, DateStyle ISO, IntervalStyle
// postgres, bytea_output hex, extra_float_digits 3, TimeZone UTC), whatever the server's or
// role's defaults. Needs PostgreSQL 12 or later; column lists and row filters need 15.
// Not thread-safe: one reader, one thread.
#pragma once

#include "pg_types.hpp"
#include "pgoutput.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace edgeflow::pg {

struct TableName {
  std::string schema;
  std::string name;
  std::string qualified() const { return schema + "." + name; }
};

// "schema.table", or "table" (schema public), split at the first '.'.
inline TableName parse_table_name(const std::string& s) {
  const auto dot = s.find('.');
  if (dot == std::string::npos) return {"public", s};
  return {s.substr(0, dot), s.substr(dot + 1)};
}

// One table to snapshot, as the server describes it.
struct SnapshotTable {
  TableName table;
  std::vector<std::string> key_columns;  // replica identity index, else primary key; may be empty
  uint64_t estimated_rows = 0;           // pg_class.reltuples, for progress logs only
  // The columns read, in table order: exactly those pgoutput sends for the table — the
  // publication's column list (PostgreSQL 15) if it has one, never dropped or generated columns.
  // Empty (e.g. a SnapshotTable made by hand): every column that is neither dropped nor generated.
  std::vector<std::string> columns;
  // The publication's row filter (pg_publication_tables.rowfilter, PostgreSQL 15) as the SQL
  // expression the server prints; empty for none. read() applies it as the WHERE clause, so the
  // snapshot holds exactly the rows the stream would publish.
  std::string row_filter;
};

// One row of a chunk: the JSON object texts of the whole row and of its key columns
// ("{}" when the table has no key), built with pg_types' conversion from the text output form.
struct SnapshotRow {
  std::string after;
  std::string key;
};

class SnapshotReader {
 public:
  // Connects (a normal connection, not a replication one) and opens the transaction:
  // BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY, then SET TRANSACTION SNAPSHOT `snapshot`
  // unless it is empty (initial_only reads the current state without a slot).
  // Throws std::runtime_error with the server's message (never the DSN: it may hold a password;
  // the password is masked wherever libpq would quote it, and a DSN libpq cannot parse is
  // reported with its quoted parts hidden).
  // `settings`: more SQL run once on the session (incremental snapshots set their timeouts).
  SnapshotReader(const std::string& dsn, const std::string& snapshot, const std::string& settings = "");
  ~SnapshotReader();
  SnapshotReader(const SnapshotReader&) = delete;
  SnapshotReader& operator=(const SnapshotReader&) = delete;

  // The tables of `publication` (pg_publication_tables) that pass the filters, in a stable order
  // (schema, name; bytewise). A filter entry is "schema.table" or "table" (schema public), split
  // at the first '.' and compared exactly with the catalog's names (unquoted, case-sensitive).
  // An empty `include` means every table; `exclude` wins over `include`; entries naming no table
  // of the publication are ignored. Partitions appear as the publication publishes them (leaves,
  // or the root with publish_via_partition_root). A publication that does not exist (in the
  // snapshot) throws std::runtime_error; one without tables gives an empty list.
  std::vector<SnapshotTable> tables(const std::string& publication,
                                    const std::vector<std::string>& include,
                                    const std::vector<std::string>& exclude);

  // Reads every row of `t`, handing them to on_chunk at most chunk_rows at a time (the vector is
  // reused between calls). on_chunk returns false to stop early (the flow is stopping); read then
  // returns the rows handed over so far. Never calls on_chunk with an empty vector. A plain
  // table is read ONLY (its inheritance children are tables of their own), a partitioned table
  // whole. chunk_rows 0 throws std::invalid_argument; server errors throw std::runtime_error (the
  // transaction is then aborted: the reader is unusable). Exceptions from on_chunk propagate.
  uint64_t read(const SnapshotTable& t, size_t chunk_rows,
                const std::function<bool(std::vector<SnapshotRow>&)>& on_chunk);

  // Incremental snapshots. renew() commits the transaction, if one is open, and begins another
  // like it (without an imported snapshot): its first statement takes a snapshot of now.
  // commit() ends it, leaving none open until the next renew().
  void renew();
  void commit();
  // Whether the session's role may SELECT from the table.
  bool can_select(const TableName& t);
  // The next rows of `t` in key order after the key `after_key` (the key columns' text form;
  // empty: from the first row), at most `limit`, into `rows`; `last_key` gets the last row's key
  // text (unchanged when none came). Returns the rows read. A table without key columns throws.
  size_t read_after(const SnapshotTable& t, const std::vector<std::string>& after_key, size_t limit,
                    std::vector<SnapshotRow>& rows, std::vector<std::string>& last_key);

  // Without an imported snapshot (`snapshot` empty): the server's WAL position when the reader's
  // own snapshot was taken, which every row it reads was committed before; else 0.
  Lsn position() const;

  // Ends the transaction (commit of a read-only transaction) and closes the connection. A second
  // call does nothing; tables() and read() afterwards throw. Destroying the reader without
  // finish() rolls back and closes, without throwing.
  void finish();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace edgeflow::pg
