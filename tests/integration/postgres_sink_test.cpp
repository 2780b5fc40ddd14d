// The postgres sink against a real PostgreSQL 15, in the SDK harness: types, modes, CDC events,
// batches that commit around a bad row, schema evolution, connection loss and misconfiguration.
#include "postgres.cpp"

#include "postgres_server.hpp"

#include <edgeflow/testing/harness.hpp>

#include <gtest/gtest.h>

using edgeflow::test::PostgresServer;
using edgeflow::testing::Harness;
using edgeflow::testing::Input;
using edgeflow::testing::SinkAck;

namespace {

std::string yaml(const PostgresServer& pg, const std::string& rest) {
  return "dsn: \"" + pg.dsn() + "\"\n" + rest;
}

size_t count(const std::vector<SinkAck>& acks, ef_ack_status s) {
  size_t n = 0;
  for (auto& a : acks) n += a.status == s;
  return n;
}

std::string cdc(const std::string& op, const std::string& before, const std::string& after, const std::string& key,
                const std::string& extra = "") {
  return R"({"op":")" + op + R"(","before":)" + before + R"(,"after":)" + after +
         R"(,"source":{"db":"src","schema":"public","table":"items","lsn":"0/1"},"key":)" + key + extra + "}";
}

}  // namespace

TEST(PostgresSink, UpsertsConvertEveryTypeTheServerKnows) {
  PostgresServer pg;
  pg.psql("CREATE TYPE mood AS ENUM ('ok', 'sad');"
          "CREATE TABLE t (id int PRIMARY KEY, amount numeric(20,6), at timestamptz, doc jsonb, tags int[], "
          "raw bytea, m mood, note text, big bigint, f float8, d date, span interval, ok boolean)");
  Harness<PostgresSink> h(yaml(pg, "table: public.t\nbatch_rows: 100"));
  auto acks = h.deliver({{.payload = R"({"id":1,"amount":"12345678901234.123456","at":"2026-12-07T08:00:00.5Z",)"
                                     R"("doc":{"a":[1,{"b":null}]},"tags":[1,2,3],"raw":"AAEC/w==","m":"sad","note":"zoë",)"
                                     R"("big":9007199254740993,"f":"NaN","d":"2026-02-28","span":"1 day 02:00:00","ok":true})"},
                         {.payload = R"({"id":2,"note":"second","extra":"ignored"})"}});
  ASSERT_EQ(count(acks, EF_ACK_DELIVERED), 2u);
  EXPECT_EQ(pg.psql("SELECT amount, at, doc, tags, encode(raw, 'hex'), m, note, big, f, d, span, ok FROM t WHERE id = 1"),
            "12345678901234.123456|2026-12-07 08:00:00.5+00|{\"a\": [1, {\"b\": null}]}|{1,2,3}|000102ff|sad|zoë|"
            "9007199254740993|NaN|2026-02-28|1 day 02:00:00|t");
  // Upsert: fields present are updated, fields absent are left alone.
  h.deliver({{.payload = R"({"id":1,"note":"changed"})"}});
  EXPECT_EQ(pg.psql("SELECT note, amount FROM t WHERE id = 1"), "changed|12345678901234.123456");
  EXPECT_NE(pg.psql("SELECT note FROM t WHERE id = 2"), "");
}

// Rows new to the table go by COPY: every type arrives exactly, with no batch redone.
TEST(PostgresSink, NewRowsGoByCopyWithEveryType) {
  PostgresServer pg;
  pg.psql("CREATE TYPE mood AS ENUM ('ok', 'sad');"
          "CREATE TABLE t (id int PRIMARY KEY, amount numeric(20,6), at timestamptz, doc jsonb, tags int[], "
          "raw bytea, raws bytea[], m mood, note text, big bigint, f float8, texts text[], docs jsonb[], ok boolean)");
  Harness<PostgresSink> h(yaml(pg, "mode: insert\ntable: t\nbatch_rows: 100"));
  auto acks = h.deliver(
      {{.payload = R"({"id":1,"amount":"12345678901234.123456","at":"2026-12-07T08:00:00.5Z","doc":{"a":"tab\there \\ \"q\""},)"
                   R"("tags":[[1,2],[3,null]],"raw":"AAEC/w==","raws":["AA==",null],"m":"sad","note":"line\nbreak\\N",)"
                   R"("big":9007199254740993,"f":1e-300,"texts":["a,b","\"q\"","back\\slash",null,"NULL"],)"
                   R"("docs":[{"k":[1]}],"ok":false})"},
       {.payload = R"({"id":2,"note":null})"}},
      /*batch_size=*/2);
  ASSERT_EQ(count(acks, EF_ACK_DELIVERED), 2u) << acks[0].reason;
  EXPECT_EQ(h.metric("batches_isolated"), std::nullopt);
  EXPECT_EQ(pg.psql("SELECT amount, at, doc, tags, encode(raw, 'hex'), raws, m, note, big, f, texts, docs, ok FROM t WHERE id = 1"),
            "12345678901234.123456|2026-12-07 08:00:00.5+00|{\"a\": \"tab\\there \\\\ \\\"q\\\"\"}|{{1,2},{3,NULL}}|"
            "000102ff|{\"\\\\x00\",NULL}|sad|line\nbreak\\N|9007199254740993|1e-300|"
            "{\"a,b\",\"\\\"q\\\"\",\"back\\\\slash\",NULL,\"NULL\"}|{\"{\\\"k\\\": [1]}\"}|f");
  EXPECT_EQ(pg.psql("SELECT note IS NULL FROM t WHERE id = 2"), "t");
}

TEST(PostgresSink, ABadRowIsDeadLetteredWithItsColumnAndTheRestCommits) {
  PostgresServer pg;
  pg.psql("CREATE TABLE t (id int PRIMARY KEY, qty int CHECK (qty >= 0))");
  Harness<PostgresSink> h(yaml(pg, "table: t\nbatch_rows: 100"));
  auto acks = h.deliver({{.payload = R"({"id":1,"qty":5})"},
                         {.payload = R"({"id":2,"qty":"lots"})"},
                         {.payload = R"({"id":3,"qty":-1})"},
                         {.payload = R"({"id":4,"qty":7})"},
                         {.payload = "not json"}},
                        /*batch_size=*/5);
  ASSERT_EQ(acks.size(), 5u);
  EXPECT_EQ(count(acks, EF_ACK_DELIVERED), 2u);
  std::map<std::string, std::string> why;
  for (auto& a : acks)
    if (a.status == EF_ACK_REJECTED) why[a.payload] = a.reason;
  EXPECT_EQ(why[R"({"id":2,"qty":"lots"})"],
            "postgres: table t: column qty: invalid input syntax for type integer: \"lots\"");
  EXPECT_EQ(why[R"({"id":3,"qty":-1})"].rfind("postgres: table t: new row for relation \"t\" violates check constraint", 0), 0u)
      << why[R"({"id":3,"qty":-1})"];
  EXPECT_EQ(why["not json"].rfind("payload is not JSON", 0), 0u) << why["not json"];
  EXPECT_EQ(pg.psql("SELECT string_agg(id || ':' || qty, ',' ORDER BY id) FROM t"), "1:5,4:7");
}

TEST(PostgresSink, InsertModeDeadLettersADuplicateKey) {
  PostgresServer pg;
  pg.psql("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'old')");
  Harness<PostgresSink> h(yaml(pg, "mode: insert\ntable: t"));
  auto acks = h.deliver({{.payload = R"({"id":1,"v":"new"})"}, {.payload = R"({"id":2,"v":"b"})"}}, 2);
  ASSERT_EQ(acks.size(), 2u);
  EXPECT_EQ(acks[0].status, EF_ACK_REJECTED);
  EXPECT_NE(acks[0].reason.find("duplicate key value violates unique constraint \"t_pkey\""), std::string::npos)
      << acks[0].reason;
  EXPECT_EQ(pg.psql("SELECT string_agg(id || v, ',' ORDER BY id) FROM t"), "1old,2b");
  EXPECT_EQ(h.metric("batches_isolated"), 1.0);  // the COPY failed whole; row by row found the duplicate
}

TEST(PostgresSink, AcksComeOnlyAfterCommit) {
  PostgresServer pg;
  pg.psql("CREATE TABLE t (id int PRIMARY KEY)");
  Harness<PostgresSink> h(yaml(pg, "table: t\nbatch_rows: 50"));
  std::vector<Input> in;
  for (int i = 0; i < 10; ++i) in.push_back({.payload = "{\"id\":" + std::to_string(i) + "}"});
  h.write(in);
  EXPECT_TRUE(h.acks().empty());
  EXPECT_EQ(pg.psql("SELECT count(*) FROM t"), "0");
  h.flush();  // hands the batch to the sink's worker; the acks follow its COMMIT
  EXPECT_EQ(count(h.wait_acks(10), EF_ACK_DELIVERED), 10u);
  EXPECT_EQ(pg.psql("SELECT count(*) FROM t"), "10");
  EXPECT_EQ(h.metric("rows_written"), 10.0);
  EXPECT_EQ(h.metric("transactions"), 1.0);
}

TEST(PostgresSink, CdcEventsMoveUpdateDeleteTruncateAndLeaveUnchangedToastAlone) {
  PostgresServer pg;
  pg.psql("CREATE TABLE items (id int PRIMARY KEY, name text, body text)");
  Harness<PostgresSink> h(yaml(pg, "mode: cdc\nbatch_rows: 100"));
  std::string big(5000, 'x');
  auto acks = h.deliver(
      {{.payload = cdc("r", "null", R"({"id":1,"name":"a","body":")" + big + "\"}", R"({"id":1})")},
       {.payload = cdc("c", "null", R"({"id":2,"name":"b","body":"short"})", R"({"id":2})")},
       // body is TOAST and unchanged: not in "after", named in "unchanged"; it must stay.
       {.payload = cdc("u", "null", R"({"id":1,"name":"a2"})", R"({"id":1})", R"(,"unchanged":["body"])")},
       // the key changes: the row moves from 2 to 20
       {.payload = cdc("u", R"({"id":2})", R"({"id":20,"name":"b2","body":"short"})", R"({"id":2})")},
       {.payload = cdc("c", "null", R"({"id":3,"name":"c","body":"x"})", R"({"id":3})")},
       {.payload = cdc("d", R"({"id":3})", "null", R"({"id":3})")},
       {.payload = R"({"op":"commit","events":5,"source":{"db":"src"}})"}},
      /*batch_size=*/7);
  ASSERT_EQ(count(acks, EF_ACK_DELIVERED), 7u) << (acks.empty() ? "" : acks[0].reason);
  EXPECT_EQ(pg.psql("SELECT string_agg(id || ':' || name || ':' || length(body), ',' ORDER BY id) FROM items"),
            "1:a2:5000,20:b2:5");
  EXPECT_EQ(h.metric("batches_isolated"), std::nullopt);  // COPY, the staged UPDATE and its upsert did it
  // Delivered twice (a redelivery after a crash): the same end state.
  h.deliver({{.payload = cdc("u", R"({"id":2})", R"({"id":20,"name":"b2","body":"short"})", R"({"id":2})")},
             {.payload = cdc("d", R"({"id":3})", "null", R"({"id":3})")}});
  EXPECT_EQ(pg.psql("SELECT string_agg(id::text, ',' ORDER BY id) FROM items"), "1,20");
  h.deliver({{.payload = R"({"op":"t","before":null,"after":null,"source":{"db":"src","schema":"public","table":"items"}})"}});
  EXPECT_EQ(pg.psql("SELECT count(*) FROM items"), "0");
}

TEST(PostgresSink, OneKeysChangesInOneBatchApplyInOrder) {
  PostgresServer pg;
  pg.psql("CREATE TABLE items (id int PRIMARY KEY, name text)");
  Harness<PostgresSink> h(yaml(pg, "mode: cdc"));
  auto acks = h.deliver({{.payload = cdc("c", "null", R"({"id":1,"name":"a"})", R"({"id":1})")},
                         {.payload = cdc("u", "null", R"({"id":1,"name":"b"})", R"({"id":1})")},
                         {.payload = cdc("d", R"({"id":1})", "null", R"({"id":1})")},
                         {.payload = cdc("c", "null", R"({"id":1,"name":"c"})", R"({"id":1})")},
                         {.payload = cdc("u", "null", R"({"id":1,"name":"d"})", R"({"id":1})")}},
                        /*batch_size=*/5);
  ASSERT_EQ(count(acks, EF_ACK_DELIVERED), 5u);
  EXPECT_EQ(pg.psql("SELECT name FROM items"), "d");
}

TEST(PostgresSink, AddColumnsAddsWhatTheTableLacks) {
  PostgresServer pg;
  pg.psql("CREATE TABLE t (id int PRIMARY KEY)");
  Harness<PostgresSink> h(yaml(pg, "table: t\nschema_evolution: add_columns"));
  auto acks = h.deliver({{.payload = R"({"id":1,"name":"a","n":5,"x":1.5,"big":12345678901234567890,"doc":{"k":1},"on":true})"}});
  ASSERT_EQ(count(acks, EF_ACK_DELIVERED), 1u) << acks[0].reason;
  EXPECT_EQ(pg.psql("SELECT string_agg(column_name || ' ' || data_type, ', ' ORDER BY ordinal_position) "
                    "FROM information_schema.columns WHERE table_name = 't'"),
            "id integer, name text, n bigint, x double precision, big numeric, doc jsonb, on boolean");
  EXPECT_EQ(pg.psql("SELECT name, n, x, big, doc, \"on\" FROM t"), "a|5|1.5|12345678901234567890|{\"k\": 1}|t");
}

TEST(PostgresSink, WithoutAddColumnsAnUnknownFieldIsLeftOutAndLoggedOnce) {
  PostgresServer pg;
  pg.psql("CREATE TABLE t (id int PRIMARY KEY)");
  Harness<PostgresSink> h(yaml(pg, "table: t"));
  h.deliver({{.payload = R"({"id":1,"color":"red"})"}, {.payload = R"({"id":2,"color":"blue"})"}});
  EXPECT_EQ(pg.psql("SELECT count(*) FROM t"), "2");
  size_t warnings = 0;
  for (auto& l : h.logs()) warnings += l.find("has no column color") != std::string::npos;
  EXPECT_EQ(warnings, 1u);
}

// The batch waits for a new connection and commits in its turn: giving it back as retry would let
// the batches queued behind it commit first.
TEST(PostgresSink, ALostConnectionIsMadeAgainAndTheBatchCommitsInItsTurn) {
  PostgresServer pg;
  pg.psql("CREATE TABLE t (id int PRIMARY KEY, v text)");
  Harness<PostgresSink> h(yaml(pg, "table: t\nbatch_rows: 100"));
  h.deliver({{.payload = R"({"id":1,"v":"a"})"}});
  EXPECT_EQ(pg.psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'edgeflow'"), "2");
  pg.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'edgeflow'");
  h.write({{.payload = R"({"id":1,"v":"b"})"}});
  h.flush();
  h.write({{.payload = R"({"id":1,"v":"c"})"}});
  h.flush();
  auto acks = h.wait_acks(3);
  ASSERT_EQ(acks.size(), 3u);
  for (auto& a : acks) EXPECT_EQ(a.status, EF_ACK_DELIVERED) << a.reason;
  EXPECT_EQ(pg.psql("SELECT v FROM t WHERE id = 1"), "c");
  EXPECT_EQ(h.metric("apply_failures"), 1.0);
  h.flush();  // a hook: the worker's notes are logged from here
  std::string log;
  for (auto& l : h.logs()) log += l + "\n";
  EXPECT_NE(log.find("message(s) wait, trying again in"), std::string::npos) << log;
  EXPECT_NE(log.find("applied again after 1 failure(s)"), std::string::npos) << log;
}

TEST(PostgresSink, CreateTablesMakesAMissingTableFromTheFirstEvent) {
  PostgresServer pg;
  pg.psql("CREATE SCHEMA mirror");
  Harness<PostgresSink> h(yaml(pg, "mode: cdc\ntable: \"mirror.${source.table}\"\ncreate_tables: true"));
  auto acks = h.deliver({{.payload = cdc("c", "null", R"({"id":1,"name":"a","qty":2,"doc":{"k":1}})", R"({"id":1})")},
                         {.payload = cdc("u", "null", R"({"id":1,"name":"b","qty":3,"doc":{"k":2}})", R"({"id":1})")}});
  ASSERT_EQ(count(acks, EF_ACK_DELIVERED), 2u) << acks[0].reason;
  EXPECT_EQ(pg.psql("SELECT string_agg(column_name || ' ' || data_type, ', ' ORDER BY ordinal_position) "
                    "FROM information_schema.columns WHERE table_schema = 'mirror' AND table_name = 'items'"),
            "id bigint, name text, qty bigint, doc jsonb");
  EXPECT_EQ(pg.psql("SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'mirror.items'::regclass"),
            "PRIMARY KEY (id)");
  EXPECT_EQ(pg.psql("SELECT name, qty, doc FROM mirror.items"), "b|3|{\"k\": 2}");
}

TEST(PostgresSink, ATableTemplateThatCannotBeFilledDeadLettersTheMessage) {
  PostgresServer pg;
  pg.psql("CREATE TABLE t_eu (id int PRIMARY KEY)");
  Harness<PostgresSink> h(yaml(pg, "table: \"t_${region}\""));
  auto acks = h.deliver({{.payload = R"({"id":1,"region":"eu"})"}, {.payload = R"({"id":2})"}});
  ASSERT_EQ(acks.size(), 2u);
  // A rejection is acked at once, the rest after COMMIT.
  EXPECT_EQ(acks[0].payload, R"({"id":2})");
  EXPECT_EQ(acks[0].reason, "postgres: table: `t_${region}`: template part ${region} is null");
  EXPECT_EQ(acks[1].status, EF_ACK_DELIVERED) << acks[1].reason;
  EXPECT_THROW(Harness<PostgresSink>(yaml(pg, "table: \"t_${region\"")), edgeflow::testing::ConfigError);
}

TEST(PostgresSink, ColumnsMapsExpressionsToColumns) {
  PostgresServer pg;
  pg.psql("CREATE TABLE orders (order_id int PRIMARY KEY, customer text, total numeric, untouched text DEFAULT 'kept')");
  Harness<PostgresSink> h(yaml(pg, "table: orders\ncolumns: { order_id: id, customer: upper(customer.name), "
                                   "total: \"round(amount * 1.2, 2)\" }"));
  auto acks = h.deliver({{.payload = R"({"id":7,"customer":{"name":"ada"},"amount":10,"other":"ignored"})"},
                         {.payload = R"({"id":8,"customer":{"name":"bob"},"amount":"x"})"}});
  ASSERT_EQ(acks.size(), 2u);
  EXPECT_EQ(acks[0].payload, R"({"id":8,"customer":{"name":"bob"},"amount":"x"})");
  EXPECT_EQ(acks[0].reason.rfind("postgres: columns.total: `round(amount * 1.2, 2)`: ", 0), 0u) << acks[0].reason;
  EXPECT_EQ(acks[1].status, EF_ACK_DELIVERED) << acks[1].reason;
  EXPECT_EQ(pg.psql("SELECT order_id, customer, total, untouched FROM orders"), "7|ADA|12|kept");
  try {
    Harness<PostgresSink> bad(yaml(pg, "mode: cdc\ncolumns: { a: b }"), {.file = "flow.yaml"});
    FAIL() << "columns with mode cdc was accepted";
  } catch (const edgeflow::testing::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("flow.yaml:3:10: columns: applies to modes upsert and insert"), std::string::npos)
        << e.what();
  }
}

TEST(PostgresSink, TheCatalogsConnectionIsMadeAgainForTheNextNewTable) {
  PostgresServer pg;
  pg.psql("CREATE TABLE t_a (id int PRIMARY KEY); CREATE TABLE t_b (id int PRIMARY KEY)");
  Harness<PostgresSink> h(yaml(pg, "table: \"t_${part}\""));
  ASSERT_EQ(count(h.deliver({{.payload = R"({"id":1,"part":"a"})"}}), EF_ACK_DELIVERED), 1u);
  pg.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'edgeflow'");
  auto acks = h.deliver({{.payload = R"({"id":2,"part":"b"})"}});
  ASSERT_EQ(acks.size(), 2u);
  EXPECT_EQ(acks[1].status, EF_ACK_DELIVERED) << acks[1].reason;
  EXPECT_EQ(pg.psql("SELECT count(*) FROM t_b"), "1");
}

TEST(PostgresSink, MisconfigurationFailsAtStartWithTheSqlToRun) {
  PostgresServer pg;
  pg.psql("CREATE TABLE t (id int PRIMARY KEY); CREATE ROLE reader LOGIN; GRANT SELECT ON t TO reader;"
          "CREATE TABLE nokey (v text)");
  auto start_error = [&](const std::string& config) {
    Harness<PostgresSink> h(config);
    try {
      h.start();
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
    return std::string("(started)");
  };
  EXPECT_EQ(start_error(yaml(pg, "table: missing")),
            "postgres: table missing does not exist in the target database; create it (with a primary key for "
            "upserts and deletes), or set create_tables: true");
  std::string reader = pg.dsn();
  reader.replace(reader.find("user=postgres"), 13, "user=reader");
  EXPECT_EQ(start_error("dsn: \"" + reader + "\"\ntable: t"),
            "postgres: role reader may not INSERT, UPDATE on t; as its owner run: GRANT INSERT, UPDATE ON \"t\" TO \"reader\"");
  pg.psql("ALTER ROLE reader SET default_transaction_read_only = on; GRANT INSERT, UPDATE ON t TO reader");
  EXPECT_EQ(start_error("dsn: \"" + reader + "\"\ntable: t").rfind("postgres: the target database is read-only", 0), 0u);
  // A server that is not there: the reason, never the password.
  std::string refused = start_error("dsn: \"host=127.0.0.1 port=1 user=edgeflow password=s3cret-pw\"\ntable: t");
  EXPECT_EQ(refused.rfind("cannot connect to PostgreSQL: ", 0), 0u) << refused;
  EXPECT_EQ(refused.find("s3cret-pw"), std::string::npos) << refused;
  // A table without a key takes inserts, and refuses upserts per message with the fix.
  Harness<PostgresSink> h(yaml(pg, "table: nokey"));
  auto acks = h.deliver({{.payload = R"({"v":"a"})"}});
  ASSERT_EQ(acks.size(), 1u);
  EXPECT_EQ(acks[0].reason.rfind("postgres: table nokey has no primary key", 0), 0u) << acks[0].reason;
  EXPECT_THROW(Harness<PostgresSink>(yaml(pg, "mode: upsert")), edgeflow::testing::ConfigError);
}
