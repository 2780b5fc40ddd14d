// pg_types.hpp against a real PostgreSQL 15: the OIDs it hard-codes are the server's, and the
// text forms it parses are the ones the server really prints (each value's output-function text
// is fetched hex-encoded, so every byte is compared exactly), for a table with one column of
// each supported type, filled with edge cases.
#include "postgres_server.hpp"

#include "../../connectors/postgres_cdc/pg_types.hpp"
#include "../../connectors/postgres_cdc/pgoutput.hpp"

#include <cstddef>
#include <map>
#include <sstream>
#include <variant>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

namespace {

using edgeflow::test::PostgresServer;
namespace pg = edgeflow::pg;
namespace oid = edgeflow::pg::type_oid;

std::string unhex(const std::string& hex) {
  std::string out;
  auto v = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(v(hex[i]) * 16 + v(hex[i + 1])));
  }
  return out;
}

TEST(PgTypesIntegration, HardCodedOidsAreTheServers) {
  PostgresServer pg;
  struct Named {
    const char* name;
    pg::Oid oid;
  };
  const std::vector<Named> scalars = {
      {"bool", oid::kBool},         {"bytea", oid::kBytea},       {"char", oid::kChar},
      {"name", oid::kName},         {"int8", oid::kInt8},         {"int2", oid::kInt2},
      {"int4", oid::kInt4},         {"text", oid::kText},         {"oid", oid::kOid},
      {"json", oid::kJson},         {"float4", oid::kFloat4},     {"float8", oid::kFloat8},
      {"bpchar", oid::kBpchar},     {"varchar", oid::kVarchar},   {"date", oid::kDate},
      {"time", oid::kTime},         {"timestamp", oid::kTimestamp},
      {"timestamptz", oid::kTimestamptz},                         {"interval", oid::kInterval},
      {"timetz", oid::kTimetz},     {"numeric", oid::kNumeric},   {"uuid", oid::kUuid},
      {"jsonb", oid::kJsonb}};
  for (const auto& [name, want] : scalars) {
    EXPECT_EQ(pg.psql(std::string("SELECT oid FROM pg_type WHERE typname = '") + name +
                      "' AND typnamespace = 'pg_catalog'::regnamespace"),
              std::to_string(want))
        << name;
    EXPECT_TRUE(pg::is_known(want)) << name;
  }
  // Every array OID the header knows is the server's array type of the element it maps to.
  int arrays = 0;
  for (pg::Oid a = 0; a < 10000; ++a) {
    const pg::Oid elem = pg::array_element_type(a);
    if (elem == 0) continue;
    ++arrays;
    EXPECT_EQ(pg.psql("SELECT typelem || ' ' || typcategory::text FROM pg_type WHERE oid = " +
                      std::to_string(a)),
              std::to_string(elem) + " A")
        << pg::type_name(a);
    EXPECT_EQ(pg.psql("SELECT typarray FROM pg_type WHERE oid = " + std::to_string(elem)),
              std::to_string(a))
        << pg::type_name(elem);
  }
  EXPECT_EQ(arrays, 23);
}

struct Case {
  std::string column;
  int id;
  std::string expected;
  std::string session = "SET TimeZone = 'Asia/Kolkata';";
};

const char* const kCreateTable = R"SQL(
    CREATE TYPE mood AS ENUM ('happy', 'sad');
    CREATE TABLE v (
      id int PRIMARY KEY,
      c_bool bool, c_int2 int2, c_int4 int4, c_int8 int8, c_oid oid,
      c_numeric numeric, c_float4 float4, c_float8 float8,
      c_text text, c_varchar varchar(20), c_bpchar char(5), c_name name, c_char "char",
      c_json json, c_jsonb jsonb, c_uuid uuid,
      c_date date, c_time time, c_timetz timetz, c_timestamp timestamp, c_timestamptz timestamptz,
      c_interval interval, c_bytea bytea, c_mood mood,
      c_int4_arr int4[], c_int8_arr int8[], c_text_arr text[], c_varchar_arr varchar[],
      c_bool_arr bool[], c_float8_arr float8[], c_numeric_arr numeric[], c_uuid_arr uuid[],
      c_timestamptz_arr timestamptz[], c_jsonb_arr jsonb[], c_bytea_arr bytea[],
      c_date_arr date[], c_mood_arr mood[]);
)SQL";

const char* const kInsertRows = R"SQL(
    INSERT INTO v (id, c_bool, c_int2, c_int4, c_int8, c_oid, c_numeric, c_float4, c_float8,
                   c_text, c_varchar, c_bpchar, c_name, c_char, c_json, c_jsonb, c_uuid,
                   c_date, c_time, c_timetz, c_timestamp, c_timestamptz, c_interval, c_bytea,
                   c_mood, c_int4_arr, c_int8_arr, c_text_arr, c_varchar_arr, c_bool_arr,
                   c_float8_arr, c_numeric_arr, c_uuid_arr, c_timestamptz_arr, c_jsonb_arr,
                   c_bytea_arr, c_date_arr, c_mood_arr) VALUES
      (1, true, -32768, 2147483647, -9223372036854775808, 4294967295,
       123456789012345678901234567890.123456789012345678901234567890, 1.1, 1e100,
       E'a"b\\c\t\n\x01 \u00e9\u20ac\U0001F600', 'x,y', 'ab', 'nm', 'z',
       '{"b": 1,  "a": [1,2]}', '{"b": 1, "a": [1, 2, {"c": null}], "s": "x\"y"}',
       'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11',
       '2026-11-24', '23:59:59.999999', '12:00:00+05:30', '2026-11-24 12:00:00.123',
       '2026-11-24 12:00:00.000001+00', '1 year 2 months 3 days 4 hours 5 minutes 6.5 seconds',
       '\x', 'happy',
       '{}', '{{1,2},{3,NULL}}',
       ARRAY['a', 'b c', 'a "b"', 'x,y', '{z}', 'back\slash', 'NULL', '', NULL, ' sp '],
       '{"x y",NULL}', '{t,f,NULL}', '{1.5,NaN,-Infinity,Infinity,1e-7}', '{1.10,NaN,NULL}',
       '{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11,NULL}',
       '{"2026-11-24 12:00:00.5+00","2026-11-24 20:00:00+00",infinity}',
       ARRAY['{"a": [1, 2]}'::jsonb, '[]', '3', '"s"', 'null', NULL],
       ARRAY['\x0a0b'::bytea, '\x', NULL], '{2026-11-24,infinity,-infinity}', '{happy,NULL,sad}'),
      (2, false, 0, -1, 0, 0, 'NaN', 'NaN', '-Infinity',
       '', '', '', '', '', '[]', 'null', '00000000-0000-0000-0000-000000000000',
       'infinity', '00:00:00', '00:00:00-08', '-infinity', 'infinity', '-1 second',
       '\xdeadbeef00', 'sad',
       '[0:1]={7,8}', '{{{1},{2}},{{3},{4}}}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}',
       '{}', '{}', '{}'),
      (3, NULL, NULL, NULL, NULL, NULL, 'Infinity', '-0', '1.5e-7',
       'NULL', NULL, NULL, NULL, NULL, '"s"', '"\u00e9"', NULL,
       '0044-03-15 BC', NULL, NULL, '0044-03-15 12:00:00 BC', '1800-01-01 00:00:00+00', NULL,
       NULL, NULL, NULL, NULL, '{"{\"a\"}"}', NULL, NULL, NULL, NULL, NULL,
       '{"1800-01-01 00:00:00+00"}', NULL, NULL, NULL, NULL),
      (4, NULL, NULL, NULL, NULL, NULL, '-Infinity', NULL, '0.1',
       NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       '10000-01-01', NULL, NULL, NULL, '2026-12-31 23:59:59.999999-01', NULL,
       NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       NULL, NULL, NULL, NULL, NULL);
)SQL";

// The expected JSON of each column value of table v (row id) under a session setting.
std::vector<Case> expected_cases() {
  const std::string LA = "SET TimeZone = 'America/Los_Angeles';";
  const std::string UTC = "SET TimeZone = 'UTC';";
  return {
      {"c_bool", 1, "true"},
      {"c_bool", 2, "false"},
      {"c_int2", 1, "-32768"},
      {"c_int4", 1, "2147483647"},
      {"c_int4", 2, "-1"},
      {"c_int8", 1, "-9223372036854775808"},
      {"c_oid", 1, "4294967295"},
      {"c_numeric", 1, R"("123456789012345678901234567890.123456789012345678901234567890")"},
      {"c_numeric", 2, R"("NaN")"},
      {"c_numeric", 3, R"("Infinity")"},
      {"c_numeric", 4, R"("-Infinity")"},
      {"c_float4", 1, "1.1"},
      {"c_float4", 2, R"("NaN")"},
      {"c_float4", 3, "-0"},
      {"c_float8", 1, "1e+100"},
      {"c_float8", 2, R"("-Infinity")"},
      {"c_float8", 3, "1.5e-07"},
      {"c_float8", 4, "0.1"},
      {"c_text", 1, "\"a\\\"b\\\\c\\t\\n\\u0001 \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\""},
      {"c_text", 2, R"("")"},
      {"c_text", 3, R"("NULL")"},
      {"c_varchar", 1, R"("x,y")"},
      {"c_bpchar", 1, R"("ab   ")"},
      {"c_bpchar", 2, R"("     ")"},
      {"c_name", 1, R"("nm")"},
      {"c_char", 1, R"("z")"},
      {"c_json", 1, R"({"b": 1,  "a": [1,2]})"},
      {"c_json", 2, "[]"},
      {"c_json", 3, R"("s")"},
      {"c_jsonb", 1, R"({"a": [1, 2, {"c": null}], "b": 1, "s": "x\"y"})"},
      {"c_jsonb", 2, "null"},
      {"c_jsonb", 3, "\"\xc3\xa9\""},
      {"c_uuid", 1, R"("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")"},
      {"c_date", 1, R"("2026-11-24")"},
      {"c_date", 2, R"("infinity")"},
      {"c_date", 3, R"("0044-03-15 BC")"},
      {"c_date", 4, R"("10000-01-01")"},
      {"c_time", 1, R"("23:59:59.999999")"},
      {"c_time", 2, R"("00:00:00")"},
      {"c_timetz", 1, R"("12:00:00+05:30")"},
      {"c_timetz", 2, R"("00:00:00-08")"},
      {"c_timestamp", 1, R"("2026-11-24T12:00:00.123")"},
      {"c_timestamp", 2, R"("-infinity")"},
      {"c_timestamp", 3, R"("0044-03-15 12:00:00 BC")"},
      // Printed as "2026-11-24 17:30:00.000001+05:30" in Asia/Kolkata.
      {"c_timestamptz", 1, R"("2026-11-24T12:00:00.000001Z")"},
      // Printed as "2026-11-24 04:00:00.000001-08" in Los Angeles.
      {"c_timestamptz", 1, R"("2026-11-24T12:00:00.000001Z")", LA},
      {"c_timestamptz", 1, R"("2026-11-24T12:00:00.000001Z")", UTC},
      {"c_timestamptz", 2, R"("infinity")"},
      // Before 1854 Asia/Kolkata is local mean time: printed "1800-01-01 05:53:28+05:53:28".
      {"c_timestamptz", 3, R"("1800-01-01T00:00:00Z")"},
      {"c_timestamptz", 3, R"("1800-01-01T00:00:00Z")", LA},
      // Crosses a year boundary on conversion.
      {"c_timestamptz", 4, R"("2027-01-01T00:59:59.999999Z")"},
      {"c_timestamptz", 4, R"("2027-01-01T00:59:59.999999Z")", LA},
      {"c_interval", 1, R"("1 year 2 mons 3 days 04:05:06.5")"},
      {"c_interval", 2, R"("-00:00:01")"},
      {"c_bytea", 1, R"("")"},
      {"c_bytea", 2, R"("3q2+7wA=")"},
      {"c_bytea", 2, R"("3q2+7wA=")", "SET bytea_output = 'escape';"},
      {"c_mood", 1, R"("happy")"},
      {"c_int4_arr", 1, "[]"},
      {"c_int4_arr", 2, "[7,8]"},
      {"c_int8_arr", 1, "[[1,2],[3,null]]"},
      {"c_int8_arr", 2, "[[[1],[2]],[[3],[4]]]"},
      {"c_text_arr", 1,
       R"(["a","b c","a \"b\"","x,y","{z}","back\\slash","NULL","",null," sp "])"},
      {"c_text_arr", 2, "[]"},
      {"c_text_arr", 3, R"(["{\"a\"}"])"},
      {"c_varchar_arr", 1, R"(["x y",null])"},
      {"c_bool_arr", 1, "[true,false,null]"},
      {"c_float8_arr", 1, R"([1.5,"NaN","-Infinity","Infinity",1e-07])"},
      {"c_numeric_arr", 1, R"(["1.10","NaN",null])"},
      {"c_uuid_arr", 1, R"(["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",null])"},
      {"c_timestamptz_arr", 1,
       R"(["2026-11-24T12:00:00.5Z","2026-11-24T20:00:00Z","infinity"])"},
      {"c_timestamptz_arr", 1,
       R"(["2026-11-24T12:00:00.5Z","2026-11-24T20:00:00Z","infinity"])", LA},
      {"c_timestamptz_arr", 3, R"(["1800-01-01T00:00:00Z"])"},
      {"c_jsonb_arr", 1, R"([{"a": [1, 2]},[],3,"s",null,null])"},
      {"c_bytea_arr", 1, R"(["Cgs=","",null])"},
      {"c_bytea_arr", 1, R"(["Cgs=","",null])", "SET bytea_output = 'escape';"},
      {"c_date_arr", 1, R"(["2026-11-24","infinity","-infinity"])"},
      {"c_mood_arr", 1, R"("{happy,NULL,sad}")"},
  };
}

TEST(PgTypesIntegration, ServerTextFormsConvertToTheExpectedJson) {
  PostgresServer pg;
  pg.psql(kCreateTable);
  pg.psql(kInsertRows);

  // The text we read back is the type's output function (what pgoutput sends): concat() calls it,
  // unlike a ::text cast (bool::text is 'true', boolout is 't').
  ASSERT_EQ(pg.psql("SELECT concat(true, '{1,NULL}'::int4[])"), "t{1,NULL}");

  const std::vector<Case> cases = expected_cases();

  for (const Case& c : cases) {
    SCOPED_TRACE(c.column + " id=" + std::to_string(c.id) + " " + c.session);
    const std::string type_text = pg.psql(
        "SELECT atttypid FROM pg_attribute WHERE attrelid = 'v'::regclass AND attname = '" +
        c.column + "'");
    const auto type = static_cast<pg::Oid>(std::stoul(type_text));
    const std::string text = unhex(pg.psql(c.session + " SELECT encode(convert_to(concat(" +
                                           c.column + "), 'UTF8'), 'hex') FROM v WHERE id = " +
                                           std::to_string(c.id)));
    std::string json;
    try {
      pg::append_json(json, type, text);
    } catch (const pg::ValueError& e) {
      ADD_FAILURE() << "server text '" << text << "' rejected: " << e.what();
      continue;
    }
    EXPECT_EQ(json, c.expected) << "server text: " << text << " (type " << type << ")";
    const bool user_type = c.column == "c_mood" || c.column == "c_mood_arr";
    EXPECT_EQ(pg::is_known(type), !user_type) << "type " << type;
  }
}

// End to end: the same rows through a pgoutput slot (text-format tuple columns, decoded with
// pgoutput.hpp). SQL-level decoding runs the output functions in the calling session, so its
// TimeZone (Asia/Kolkata) is the one that appears in the timestamptz text.
TEST(PgTypesIntegration, PgoutputTupleTextConvertsToTheExpectedJson) {
  PostgresServer pg;
  pg.psql(kCreateTable);
  pg.psql("CREATE PUBLICATION p FOR TABLE v;"
          "SELECT 1 FROM pg_create_logical_replication_slot('s', 'pgoutput');");
  pg.psql(kInsertRows);
  const std::string hex = pg.psql(
      "SET TimeZone = 'Asia/Kolkata';"
      "SELECT encode(data, 'hex') FROM pg_logical_slot_peek_binary_changes('s', NULL, NULL, "
      "'proto_version', '1', 'publication_names', 'p')");

  pg::RelationCache cache;
  std::map<int, std::map<std::string, std::string>> json_by_row;  // id → column → JSON
  std::map<int, std::map<std::string, std::string>> text_by_row;  // id → column → pgoutput text
  std::istringstream lines(hex);
  int inserts = 0;
  for (std::string line; std::getline(lines, line);) {
    const std::string bytes = unhex(line);
    const pg::Message m = pg::decode(std::string_view(bytes), cache);
    const auto* ins = std::get_if<pg::Insert>(&m);
    if (ins == nullptr) continue;
    ++inserts;
    const auto& cols = ins->relation->columns;
    ASSERT_EQ(cols.size(), ins->new_tuple.values.size());
    ASSERT_EQ(cols[0].name, "id");
    const int id = std::stoi(std::string(ins->new_tuple.values[0].data));
    for (std::size_t i = 0; i < cols.size(); ++i) {
      const pg::Value& v = ins->new_tuple.values[i];
      std::string json;
      if (v.is_null()) {
        json = "null";
      } else {
        ASSERT_EQ(v.kind, pg::Value::Kind::Text) << cols[i].name;
        text_by_row[id][cols[i].name] = std::string(v.data);
        try {
          pg::append_json(json, cols[i].type_oid, v.data);
        } catch (const pg::ValueError& e) {
          ADD_FAILURE() << cols[i].name << ": pgoutput text '" << v.data
                        << "' rejected: " << e.what();
        }
      }
      json_by_row[id][cols[i].name] = json;
    }
  }
  ASSERT_EQ(inserts, 4);
  // The raw forms really carry the session's offsets (incl. local mean time with seconds).
  EXPECT_EQ(text_by_row[1]["c_timestamptz"], "2026-11-24 17:30:00.000001+05:30");
  EXPECT_EQ(text_by_row[3]["c_timestamptz"], "1800-01-01 05:53:28+05:53:28");
  EXPECT_EQ(text_by_row[1]["c_bytea"], "\\x");
  EXPECT_EQ(text_by_row[2]["c_int4_arr"], "[0:1]={7,8}");
  int checked = 0;
  for (const Case& c : expected_cases()) {
    if (c.session != Case{}.session) continue;  // other settings: covered by the psql test
    EXPECT_EQ(json_by_row[c.id][c.column], c.expected) << c.column << " id=" << c.id;
    ++checked;
  }
  EXPECT_GT(checked, 60);
}

}  // namespace
