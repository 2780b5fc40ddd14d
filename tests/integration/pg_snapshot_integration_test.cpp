// SnapshotReader (connectors/postgres_cdc/snapshot.hpp) against a real PostgreSQL 15: which tables
// a publication yields and with which key columns, chunked reads through a cursor, the JSON of
// each supported kind of value, reading inside an exported snapshot, and errors that say what went
// wrong without ever showing the password.
#include "postgres_server.hpp"

#include "../../connectors/postgres_cdc/snapshot.hpp"

#include <pqxx/pqxx>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace {

using edgeflow::pg::SnapshotReader;
using edgeflow::pg::SnapshotRow;
using edgeflow::pg::SnapshotTable;
using edgeflow::test::PostgresServer;

// Four published tables in two schemas, one table outside the publication.
void create_tables(const PostgresServer& pg) {
  pg.psql(R"sql(
    CREATE SCHEMA app;
    CREATE TABLE public.orders (id int PRIMARY KEY, note text);
    -- key order (id, region) differs from table order (region, id)
    CREATE TABLE public.customers (region text, id int, name text, PRIMARY KEY (id, region));
    CREATE TABLE app.items (id int PRIMARY KEY, site text NOT NULL, sku text NOT NULL, qty int);
    CREATE UNIQUE INDEX items_sku_site ON app.items (sku, site);
    ALTER TABLE app.items REPLICA IDENTITY USING INDEX items_sku_site;
    CREATE TABLE public.nokey (a int, b text);
    CREATE TABLE public.outside (id int PRIMARY KEY);
    CREATE PUBLICATION pub FOR TABLE public.orders, public.customers, app.items, public.nokey;
    INSERT INTO public.orders VALUES (1, 'one'), (2, 'two'), (3, NULL);
    ANALYZE public.orders;
    INSERT INTO public.customers VALUES ('eu', 7, 'Ann');
    INSERT INTO app.items VALUES (1, 'lyon', 'A-1', 5);
    INSERT INTO public.nokey VALUES (1, 'x');
    INSERT INTO public.outside VALUES (1);
  )sql");
}

std::vector<std::string> names(const std::vector<SnapshotTable>& tables) {
  std::vector<std::string> out;
  for (const auto& t : tables) out.push_back(t.table.qualified());
  return out;
}

const SnapshotTable& find(const std::vector<SnapshotTable>& tables, const std::string& name) {
  for (const auto& t : tables) {
    if (t.table.qualified() == name) return t;
  }
  throw std::runtime_error("no table " + name);
}

struct ReadResult {
  uint64_t returned = 0;
  std::vector<size_t> chunk_sizes;
  std::vector<SnapshotRow> rows;  // copies, in the order read
};

ReadResult read_all(SnapshotReader& reader, const SnapshotTable& t, size_t chunk_rows) {
  ReadResult r;
  r.returned = reader.read(t, chunk_rows, [&](std::vector<SnapshotRow>& chunk) {
    r.chunk_sizes.push_back(chunk.size());
    r.rows.insert(r.rows.end(), chunk.begin(), chunk.end());
    return true;
  });
  return r;
}

std::vector<std::string> afters(const ReadResult& r) {
  std::vector<std::string> out;
  for (const auto& row : r.rows) out.push_back(row.after);
  std::sort(out.begin(), out.end());
  return out;
}

// The message of the std::runtime_error `f` throws ("" and a test failure if it throws nothing).
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected a std::runtime_error";
  return "";
}

TEST(PgSnapshot, TablesOfThePublicationSortedWithKeysAndEstimates) {
  PostgresServer pg;
  create_tables(pg);
  // Never analysed: reltuples is -1 on PostgreSQL 14+, reported as 0.
  ASSERT_EQ(pg.psql("SELECT reltuples FROM pg_class WHERE oid = 'public.customers'::regclass"),
            "-1");

  SnapshotReader reader(pg.dsn(), "");
  const auto tables = reader.tables("pub", {}, {});
  EXPECT_EQ(names(tables), (std::vector<std::string>{"app.items", "public.customers",
                                                     "public.nokey", "public.orders"}));
  // Replica identity index over the primary key, in table order as pgoutput flags them.
  EXPECT_EQ(find(tables, "app.items").key_columns, (std::vector<std::string>{"site", "sku"}));
  // Primary key, in table order.
  EXPECT_EQ(find(tables, "public.customers").key_columns,
            (std::vector<std::string>{"region", "id"}));
  EXPECT_EQ(find(tables, "public.orders").key_columns, (std::vector<std::string>{"id"}));
  EXPECT_TRUE(find(tables, "public.nokey").key_columns.empty());

  EXPECT_EQ(find(tables, "public.orders").estimated_rows, 3u);
  EXPECT_EQ(find(tables, "public.customers").estimated_rows, 0u);

  EXPECT_EQ(find(tables, "public.customers").columns,
            (std::vector<std::string>{"region", "id", "name"}));
  EXPECT_EQ(find(tables, "public.customers").row_filter, "");

  // Keys come out as objects of the key columns, in table order as the stream's; no key gives {}.
  auto items = read_all(reader, find(tables, "app.items"), 100);
  ASSERT_EQ(items.rows.size(), 1u);
  EXPECT_EQ(items.rows[0].after, R"({"id":1,"site":"lyon","sku":"A-1","qty":5})");
  EXPECT_EQ(items.rows[0].key, R"({"site":"lyon","sku":"A-1"})");
  auto customers = read_all(reader, find(tables, "public.customers"), 100);
  ASSERT_EQ(customers.rows.size(), 1u);
  EXPECT_EQ(customers.rows[0].after, R"({"region":"eu","id":7,"name":"Ann"})");
  EXPECT_EQ(customers.rows[0].key, R"({"region":"eu","id":7})");
  auto nokey = read_all(reader, find(tables, "public.nokey"), 100);
  ASSERT_EQ(nokey.rows.size(), 1u);
  EXPECT_EQ(nokey.rows[0].after, R"({"a":1,"b":"x"})");
  EXPECT_EQ(nokey.rows[0].key, "{}");
  auto orders = read_all(reader, find(tables, "public.orders"), 100);
  EXPECT_EQ(afters(orders), (std::vector<std::string>{R"({"id":1,"note":"one"})",
                                                       R"({"id":2,"note":"two"})",
                                                       R"({"id":3,"note":null})"}));
  reader.finish();
}

TEST(PgSnapshot, IncludeAndExcludeFilters) {
  PostgresServer pg;
  create_tables(pg);
  SnapshotReader reader(pg.dsn(), "");
  using V = std::vector<std::string>;
  // "table" means public.table.
  EXPECT_EQ(names(reader.tables("pub", {"orders"}, {})), (V{"public.orders"}));
  EXPECT_EQ(names(reader.tables("pub", {"public.customers", "app.items"}, {})),
            (V{"app.items", "public.customers"}));
  EXPECT_EQ(names(reader.tables("pub", {}, {"public.orders", "nokey"})),
            (V{"app.items", "public.customers"}));
  EXPECT_EQ(names(reader.tables("pub", {"orders", "customers"}, {"orders"})),
            (V{"public.customers"}));
  // Filters select among the publication's tables, never add to them.
  EXPECT_EQ(names(reader.tables("pub", {"outside"}, {})), V{});
  // "items" is public.items, which does not exist.
  EXPECT_EQ(names(reader.tables("pub", {"items"}, {})), V{});
}

TEST(PgSnapshot, UnknownPublicationIsAnError) {
  PostgresServer pg;
  create_tables(pg);
  SnapshotReader reader(pg.dsn(), "");
  const std::string msg = error_of([&] { reader.tables("nope", {}, {}); });
  EXPECT_NE(msg.find("publication \"nope\" does not exist"), std::string::npos) << msg;
  // An existing publication without tables is simply empty.
  pg.psql("CREATE PUBLICATION empty_pub");
  SnapshotReader reader2(pg.dsn(), "");
  EXPECT_TRUE(reader2.tables("empty_pub", {}, {}).empty());
}

TEST(PgSnapshot, ColumnListRowFilterAndGeneratedColumnsFollowPgoutput) {
  PostgresServer pg;
  pg.psql(R"sql(
    CREATE TABLE people (id int PRIMARY KEY, name text, secret text, active bool,
                         twice int GENERATED ALWAYS AS (id * 2) STORED);
    CREATE TABLE gen (id int PRIMARY KEY, twice int GENERATED ALWAYS AS (id * 2) STORED, v text);
    CREATE PUBLICATION pub FOR TABLE people (id, name) WHERE (active), gen;
    INSERT INTO people VALUES (1, 'Ann', 's1', true), (2, 'Bob', 's2', false),
                              (3, 'Cy', 's3', true);
    INSERT INTO gen (id, v) VALUES (1, 'a');
  )sql");
  SnapshotReader reader(pg.dsn(), "");
  const auto tables = reader.tables("pub", {}, {});
  ASSERT_EQ(names(tables), (std::vector<std::string>{"public.gen", "public.people"}));
  const auto& people = find(tables, "public.people");
  EXPECT_EQ(people.columns, (std::vector<std::string>{"id", "name"}));
  EXPECT_EQ(people.row_filter, "active");
  EXPECT_EQ(people.key_columns, (std::vector<std::string>{"id"}));
  EXPECT_EQ(afters(read_all(reader, people, 10)),
            (std::vector<std::string>{R"({"id":1,"name":"Ann"})", R"({"id":3,"name":"Cy"})"}));
  // Generated columns are not published by pgoutput (PostgreSQL 15), so not read either.
  const auto& gen = find(tables, "public.gen");
  EXPECT_EQ(gen.columns, (std::vector<std::string>{"id", "v"}));
  auto rows = read_all(reader, gen, 10);
  ASSERT_EQ(rows.rows.size(), 1u);
  EXPECT_EQ(rows.rows[0].after, R"({"id":1,"v":"a"})");
  // A SnapshotTable made by hand (no column list): every column but the generated one.
  SnapshotTable by_hand;
  by_hand.table = {"public", "people"};
  by_hand.key_columns = {"id"};
  EXPECT_EQ(afters(read_all(reader, by_hand, 10)),
            (std::vector<std::string>{
                R"({"id":1,"name":"Ann","secret":"s1","active":true})",
                R"({"id":2,"name":"Bob","secret":"s2","active":false})",
                R"({"id":3,"name":"Cy","secret":"s3","active":true})"}));
}

TEST(PgSnapshot, InheritanceChildrenAndPartitionsAreReadOnce) {
  PostgresServer pg;
  pg.psql(R"sql(
    CREATE TABLE parent (id int PRIMARY KEY, v text);
    CREATE TABLE child (extra int) INHERITS (parent);
    INSERT INTO parent VALUES (1, 'p');
    INSERT INTO child VALUES (2, 'c', 9);
    CREATE TABLE measures (id int, at date, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
    CREATE TABLE measures_2023 PARTITION OF measures
      FOR VALUES FROM ('2023-01-01') TO ('2024-01-01');
    CREATE TABLE measures_2024 PARTITION OF measures
      FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
    INSERT INTO measures VALUES (1, '2023-05-01'), (2, '2024-05-01');
    -- FOR TABLE parent publishes its inheritance children too
    CREATE PUBLICATION leaves FOR TABLE parent, measures;
    CREATE PUBLICATION roots FOR TABLE measures WITH (publish_via_partition_root = true);
  )sql");
  SnapshotReader reader(pg.dsn(), "");
  const auto leaves = reader.tables("leaves", {}, {});
  ASSERT_EQ(names(leaves), (std::vector<std::string>{"public.child", "public.measures_2023",
                                                     "public.measures_2024", "public.parent"}));
  // Each table's own rows only: the parent's read does not repeat the child's rows.
  EXPECT_EQ(afters(read_all(reader, find(leaves, "public.parent"), 10)),
            (std::vector<std::string>{R"({"id":1,"v":"p"})"}));
  EXPECT_EQ(afters(read_all(reader, find(leaves, "public.child"), 10)),
            (std::vector<std::string>{R"({"id":2,"v":"c","extra":9})"}));
  EXPECT_EQ(afters(read_all(reader, find(leaves, "public.measures_2024"), 10)),
            (std::vector<std::string>{R"({"id":2,"at":"2024-05-01"})"}));
  // Published through the root: the partitioned table, read whole.
  const auto roots = reader.tables("roots", {}, {});
  ASSERT_EQ(names(roots), (std::vector<std::string>{"public.measures"}));
  EXPECT_EQ(roots[0].key_columns, (std::vector<std::string>{"id", "at"}));
  EXPECT_EQ(afters(read_all(reader, roots[0], 10)),
            (std::vector<std::string>{R"({"id":1,"at":"2023-05-01"})",
                                      R"({"id":2,"at":"2024-05-01"})"}));
}

TEST(PgSnapshot, ReadsInChunksWithEveryRowExact) {
  PostgresServer pg;
  pg.psql(R"sql(
    CREATE TABLE big (id int PRIMARY KEY, v text);
    INSERT INTO big SELECT g, 'row ' || g FROM generate_series(1, 2500) AS g;
    CREATE TABLE even (id int PRIMARY KEY);
    INSERT INTO even SELECT g FROM generate_series(1, 2000) AS g;
    CREATE TABLE empty (id int PRIMARY KEY);
    CREATE PUBLICATION pub FOR TABLE big, even, empty;
  )sql");
  SnapshotReader reader(pg.dsn(), "");
  const auto tables = reader.tables("pub", {}, {});
  const auto& big = find(tables, "public.big");

  std::vector<std::string> expected_after, expected_key;
  for (int i = 1; i <= 2500; ++i) {
    expected_after.push_back("{\"id\":" + std::to_string(i) + ",\"v\":\"row " + std::to_string(i) +
                             "\"}");
    expected_key.push_back("{\"id\":" + std::to_string(i) + "}");
  }
  std::sort(expected_after.begin(), expected_after.end());
  std::sort(expected_key.begin(), expected_key.end());

  // The same vector comes back every time.
  const std::vector<SnapshotRow>* seen = nullptr;
  bool same_vector = true;
  ReadResult r;
  r.returned = reader.read(big, 1000, [&](std::vector<SnapshotRow>& chunk) {
    if (seen != nullptr && seen != &chunk) same_vector = false;
    seen = &chunk;
    r.chunk_sizes.push_back(chunk.size());
    r.rows.insert(r.rows.end(), chunk.begin(), chunk.end());
    return true;
  });
  EXPECT_TRUE(same_vector);
  EXPECT_EQ(r.returned, 2500u);
  EXPECT_EQ(r.chunk_sizes, (std::vector<size_t>{1000, 1000, 500}));
  EXPECT_EQ(afters(r), expected_after);
  std::vector<std::string> keys;
  for (const auto& row : r.rows) keys.push_back(row.key);
  std::sort(keys.begin(), keys.end());
  EXPECT_EQ(keys, expected_key);

  // A table that is a whole number of chunks: no empty chunk at the end.
  auto even = read_all(reader, find(tables, "public.even"), 1000);
  EXPECT_EQ(even.returned, 2000u);
  EXPECT_EQ(even.chunk_sizes, (std::vector<size_t>{1000, 1000}));
  // One chunk larger than the table.
  auto whole = read_all(reader, big, 5000);
  EXPECT_EQ(whole.chunk_sizes, (std::vector<size_t>{2500}));
  EXPECT_EQ(afters(whole), expected_after);
  // An empty table: no chunk at all.
  auto empty = read_all(reader, find(tables, "public.empty"), 1000);
  EXPECT_EQ(empty.returned, 0u);
  EXPECT_TRUE(empty.chunk_sizes.empty());

  // on_chunk returning false stops the read; the reader stays usable.
  int calls = 0;
  EXPECT_EQ(reader.read(big, 1000, [&](std::vector<SnapshotRow>&) { return ++calls < 1; }), 1000u);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(read_all(reader, big, 700).chunk_sizes, (std::vector<size_t>{700, 700, 700, 400}));
  reader.finish();
}

TEST(PgSnapshot, ValuesBecomeJsonByColumnType) {
  PostgresServer pg;
  pg.psql(R"sql(
    CREATE TYPE mood AS ENUM ('happy', 'sad');
    CREATE DOMAIN posint AS int CHECK (VALUE > 0);
    CREATE TABLE types (
      id int PRIMARY KEY,
      n numeric,
      t text,
      j jsonb,
      b bool,
      nothing text,
      ts timestamptz,
      bin bytea,
      arr int[],
      f float8,
      m mood,
      d posint,
      "we""ird col" text
    );
    CREATE PUBLICATION pub FOR TABLE types;
    INSERT INTO types VALUES
      (1, 12345678901234567890.000000001, 'say "hi" \ ünï €😀' || E'\n\t',
       '{"a": {"b": [1, 2.50, {"c": null}]}, "s": "x\"y"}', true, NULL,
       '2024-02-29 23:30:00.123456+05:30', '\x00ff10', '{1,NULL,3}', 1.5, 'happy', 7, 'x'),
      (2, 'NaN', '', '[]', false, NULL, 'infinity', '', '{}', '-Infinity', 'sad', 1, NULL),
      (3, -0.5, NULL, 'null', NULL, NULL, '0001-01-01 00:00:00+00', '\x01', '{{1,2},{3,4}}',
       1e100, NULL, NULL, NULL);
  )sql");
  SnapshotReader reader(pg.dsn(), "");
  const auto tables = reader.tables("pub", {}, {});
  ASSERT_EQ(tables.size(), 1u);
  auto r = read_all(reader, tables[0], 10);
  ASSERT_EQ(r.rows.size(), 3u);
  std::sort(r.rows.begin(), r.rows.end(),
            [](const SnapshotRow& a, const SnapshotRow& b) { return a.key < b.key; });
  // numeric as an exact string, text escaped (UTF-8 as is), jsonb nested as the server prints it,
  // timestamptz in UTC, bytea base64, arrays as arrays, an enum as its label, and a domain over
  // int as a string: the type OID is the column's declared one (the domain's), as in pgoutput.
  EXPECT_EQ(r.rows[0].after,
            "{\"id\":1,\"n\":\"12345678901234567890.000000001\","
            "\"t\":\"say \\\"hi\\\" \\\\ ünï €😀\\n\\t\","
            "\"j\":{\"a\": {\"b\": [1, 2.50, {\"c\": null}]}, \"s\": \"x\\\"y\"},"
            "\"b\":true,\"nothing\":null,\"ts\":\"2024-02-29T18:00:00.123456Z\","
            "\"bin\":\"AP8Q\",\"arr\":[1,null,3],\"f\":1.5,\"m\":\"happy\",\"d\":\"7\","
            "\"we\\\"ird col\":\"x\"}");
  EXPECT_EQ(r.rows[0].key, R"({"id":1})");
  EXPECT_EQ(r.rows[1].after,
            R"({"id":2,"n":"NaN","t":"","j":[],"b":false,"nothing":null,"ts":"infinity",)"
            R"("bin":"","arr":[],"f":"-Infinity","m":"sad","d":"1","we\"ird col":null})");
  EXPECT_EQ(r.rows[2].after,
            R"({"id":3,"n":"-0.5","t":null,"j":null,"b":null,"nothing":null,)"
            R"("ts":"0001-01-01T00:00:00Z","bin":"AQ==","arr":[[1,2],[3,4]],"f":1e+100,)"
            R"("m":null,"d":null,"we\"ird col":null})");
}

TEST(PgSnapshot, SessionSettingsDoNotChangeTheJson) {
  PostgresServer pg;
  // Role defaults a server might have; the reader pins what pg_types.hpp parses.
  pg.psql(R"sql(
    ALTER ROLE postgres SET DateStyle = 'German, DMY';
    ALTER ROLE postgres SET bytea_output = 'escape';
    ALTER ROLE postgres SET extra_float_digits = -3;
    ALTER ROLE postgres SET TimeZone = 'Asia/Kathmandu';
    CREATE TABLE t (id int PRIMARY KEY, ts timestamptz, d date, bin bytea, f float8);
    CREATE PUBLICATION pub FOR TABLE t;
    INSERT INTO t VALUES (1, '2024-01-02 03:04:05+00', '2024-01-02', '\x41ff', 0.1234567890123);
  )sql");
  SnapshotReader reader(pg.dsn(), "");
  auto r = read_all(reader, reader.tables("pub", {}, {}).at(0), 10);
  ASSERT_EQ(r.rows.size(), 1u);
  EXPECT_EQ(r.rows[0].after,
            R"({"id":1,"ts":"2024-01-02T03:04:05Z","d":"2024-01-02","bin":"Qf8=",)"
            R"("f":0.1234567890123})");
}

TEST(PgSnapshot, ExportedSnapshotHidesLaterChanges) {
  PostgresServer pg;
  pg.psql(R"sql(
    CREATE TABLE events (id int PRIMARY KEY, v text);
    CREATE PUBLICATION pub FOR TABLE events;
    INSERT INTO events SELECT g, 'before' FROM generate_series(1, 5) AS g;
  )sql");

  // The exporting transaction stays open for as long as the snapshot is imported.
  pqxx::connection exporter(pg.dsn());
  pqxx::transaction<pqxx::repeatable_read> export_tx(exporter);
  const auto snapshot = export_tx.exec("SELECT pg_export_snapshot()")[0][0].as<std::string>();
  ASSERT_FALSE(snapshot.empty());

  pg.psql(R"sql(
    INSERT INTO events SELECT g, 'after' FROM generate_series(6, 9) AS g;
    UPDATE events SET v = 'changed' WHERE id = 1;
    DELETE FROM events WHERE id = 2;
  )sql");

  std::vector<std::string> before;
  for (int i = 1; i <= 5; ++i) {
    before.push_back("{\"id\":" + std::to_string(i) + ",\"v\":\"before\"}");
  }
  std::sort(before.begin(), before.end());
  {
    SnapshotReader reader(pg.dsn(), snapshot);
    const auto tables = reader.tables("pub", {}, {});
    ASSERT_EQ(tables.size(), 1u);
    auto r = read_all(reader, tables[0], 2);
    EXPECT_EQ(r.chunk_sizes, (std::vector<size_t>{2, 2, 1}));
    EXPECT_EQ(afters(r), before);
    reader.finish();
  }
  // Without a snapshot: the current state.
  SnapshotReader now(pg.dsn(), "");
  auto r = read_all(now, now.tables("pub", {}, {}).at(0), 100);
  EXPECT_EQ(r.rows.size(), 8u);
  export_tx.commit();
}

TEST(PgSnapshot, BadSnapshotNameIsAClearError) {
  PostgresServer pg;
  pg.psql("CREATE TABLE keep (id int)");
  std::string msg = error_of([&] { SnapshotReader r(pg.dsn(), "00000003-0000001B-1"); });
  EXPECT_NE(msg.find("cannot import snapshot \"00000003-0000001B-1\""), std::string::npos) << msg;
  EXPECT_NE(msg.find("invalid snapshot identifier"), std::string::npos) << msg;
  // The name is quoted as a literal: no injection.
  msg = error_of([&] { SnapshotReader r(pg.dsn(), "x'; DROP TABLE keep; --"); });
  EXPECT_NE(msg.find("invalid snapshot identifier"), std::string::npos) << msg;
  EXPECT_EQ(pg.psql("SELECT count(*) FROM keep"), "0");
}

TEST(PgSnapshot, ConnectionErrorsNeverShowThePassword) {
  PostgresServer pg;
  const std::string secret = "Wr0ng-S3cret-Pa55";
  // Password authentication for one role over TCP (the fixture trusts everything else); the
  // restart makes the new pg_hba.conf certain to be in force before we connect.
  {
    const auto hba_path = pg.data_dir() / "pg_hba.conf";
    std::ifstream in(hba_path);
    const std::string rest((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    in.close();
    std::ofstream out(hba_path, std::ios::trunc);
    out << "host all guarded 127.0.0.1/32 scram-sha-256\n" << rest;
    ASSERT_TRUE(out.good());
  }
  pg.psql("CREATE ROLE guarded LOGIN PASSWORD 'Right-Pa55'; CREATE PUBLICATION pub");
  auto restart = pg.run({pg.bin("pg_ctl"), "-D", pg.data_dir().string(), "-l",
                         (pg.dir() / "server.log").string(), "-w", "-t", "60", "-m", "fast",
                         "restart"},
                        /*as_server=*/true);
  ASSERT_EQ(restart.status, 0) << restart.err << restart.out << pg.log_tail();

  const std::string base = "host=127.0.0.1 port=" + std::to_string(pg.port()) + " dbname=postgres";
  {  // the right password works
    SnapshotReader ok(base + " user=guarded password=Right-Pa55", "");
    EXPECT_TRUE(ok.tables("pub", {}, {}).empty());
    ok.finish();
  }
  // Wrong password: the server's reason, not the password.
  std::string msg =
      error_of([&] { SnapshotReader r(base + " user=guarded password=" + secret, ""); });
  EXPECT_NE(msg.find("password authentication failed for user \"guarded\""), std::string::npos)
      << msg;
  EXPECT_EQ(msg.find(secret), std::string::npos) << msg;
  // The same as a URI.
  msg = error_of([&] {
    SnapshotReader r("postgresql://guarded:" + secret + "@127.0.0.1:" + std::to_string(pg.port()) +
                         "/postgres",
                     "");
  });
  EXPECT_NE(msg.find("password authentication failed"), std::string::npos) << msg;
  EXPECT_EQ(msg.find(secret), std::string::npos) << msg;
  // Nobody listening.
  msg = error_of([&] {
    SnapshotReader r("host=127.0.0.1 port=1 user=guarded connect_timeout=5 password=" + secret, "");
  });
  EXPECT_NE(msg.find("cannot connect"), std::string::npos) << msg;
  EXPECT_EQ(msg.find(secret), std::string::npos) << msg;
  // libpq quotes the values of other options in its errors: a password pasted into one of them
  // is hidden too.
  msg = error_of([&] {
    SnapshotReader r("host=127.0.0.1 user=guarded port=" + secret + " password=" + secret, "");
  });
  EXPECT_NE(msg.find("for connection option \"port\""), std::string::npos) << msg;
  EXPECT_EQ(msg.find(secret), std::string::npos) << msg;
  // A database that does not exist.
  msg = error_of([&] { SnapshotReader r(base + "x user=guarded password=Right-Pa55", ""); });
  EXPECT_NE(msg.find("database \"postgresx\" does not exist"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("Right-Pa55"), std::string::npos) << msg;
  // Connection strings libpq cannot parse: libpq's message would quote the URI (password and
  // all), so quoted parts are hidden.
  msg = error_of([&] {
    SnapshotReader r("postgresql://guarded:" + secret + "@[::1/postgres", "");
  });
  EXPECT_NE(msg.find("invalid connection string"), std::string::npos) << msg;
  EXPECT_EQ(msg.find(secret), std::string::npos) << msg;
  msg = error_of([&] { SnapshotReader r("host=127.0.0.1 password=" + secret + " oops", ""); });
  EXPECT_NE(msg.find("invalid connection string"), std::string::npos) << msg;
  EXPECT_EQ(msg.find(secret), std::string::npos) << msg;
  msg = error_of([&] { SnapshotReader r("password=" + secret + " colour=red", ""); });
  EXPECT_NE(msg.find("invalid connection option"), std::string::npos) << msg;
  EXPECT_EQ(msg.find(secret), std::string::npos) << msg;
}

TEST(PgSnapshot, FinishEndsTheReader) {
  PostgresServer pg;
  pg.psql("CREATE TABLE t (id int PRIMARY KEY); CREATE PUBLICATION pub FOR TABLE t");
  SnapshotReader reader(pg.dsn(), "");
  const auto tables = reader.tables("pub", {}, {});
  reader.finish();
  reader.finish();  // idempotent
  const std::string msg = error_of([&] { reader.tables("pub", {}, {}); });
  EXPECT_NE(msg.find("finished"), std::string::npos) << msg;
  EXPECT_NE(error_of([&] { read_all(reader, tables.at(0), 10); }).find("finished"),
            std::string::npos);
  // Destroyed without finish(): rolls back quietly.
  { SnapshotReader unfinished(pg.dsn(), ""); }
}

TEST(PgSnapshot, MissingTableIsAClearError) {
  PostgresServer pg;
  SnapshotReader reader(pg.dsn(), "");
  SnapshotTable t;
  t.table = {"public", "nowhere"};
  const std::string msg = error_of([&] { read_all(reader, t, 10); });
  EXPECT_NE(msg.find("table public.nowhere does not exist"), std::string::npos) << msg;
}

}  // namespace
