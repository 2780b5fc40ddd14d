// Unit tests for connectors/postgres_cdc/pg_types.hpp: PostgreSQL text-format values → JSON.
// The text forms used here are the ones PostgreSQL 15 prints (checked against a real server in
// tests/integration/pg_types_integration_test.cpp).
#include "pg_types.hpp"

#include <gtest/gtest.h>

#include <cstddef>
#include <initializer_list>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pg = edgeflow::pg;
namespace oid = edgeflow::pg::type_oid;

namespace {

std::string J(pg::Oid type, std::string_view text) { return pg::to_json(type, text); }

// Expects a ValueError whose message contains `needle`.
void expect_error(pg::Oid type, std::string_view text, std::string_view needle) {
  try {
    (void)J(type, text);
    ADD_FAILURE() << "no ValueError for type " << type << " text '" << text << "'";
  } catch (const pg::ValueError& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos)
        << "message: " << e.what() << "\nexpected to contain: " << needle;
  }
}

// Minimal strict JSON validator (RFC 8259 grammar, no depth limit needed for these inputs).
class JsonCheck {
 public:
  explicit JsonCheck(std::string_view s) : s_(s) {}
  bool valid() {
    ws();
    if (!value(0)) return false;
    ws();
    return i_ == s_.size();
  }

 private:
  bool value(int depth) {
    if (depth > 64 || i_ >= s_.size()) return false;
    const char c = s_[i_];
    if (c == '"') return string();
    if (c == '[') {
      ++i_;
      ws();
      if (eat(']')) return true;
      do {
        ws();
        if (!value(depth + 1)) return false;
        ws();
      } while (eat(','));
      return eat(']');
    }
    if (c == '{') {
      ++i_;
      ws();
      if (eat('}')) return true;
      do {
        ws();
        if (!string()) return false;
        ws();
        if (!eat(':')) return false;
        ws();
        if (!value(depth + 1)) return false;
        ws();
      } while (eat(','));
      return eat('}');
    }
    for (std::string_view lit : {"true", "false", "null"}) {
      if (s_.substr(i_, lit.size()) == lit) {
        i_ += lit.size();
        return true;
      }
    }
    std::size_t j = i_;
    while (j < s_.size() && std::string_view("+-0123456789.eE").find(s_[j]) != std::string_view::npos) ++j;
    if (j == i_ || !pg::detail::is_json_number(s_.substr(i_, j - i_), false)) return false;
    i_ = j;
    return true;
  }
  bool string() {
    if (!eat('"')) return false;
    while (i_ < s_.size()) {
      const auto c = static_cast<unsigned char>(s_[i_++]);
      if (c == '"') return true;
      if (c < 0x20) return false;
      if (c == '\\') {
        if (i_ >= s_.size()) return false;
        const char e = s_[i_++];
        if (e == 'u') {
          for (int k = 0; k < 4; ++k) {
            if (i_ >= s_.size() || pg::detail::hex_value(s_[i_++]) < 0) return false;
          }
        } else if (std::string_view("\"\\/bfnrt").find(e) == std::string_view::npos) {
          return false;
        }
      }
    }
    return false;
  }
  bool eat(char c) {
    if (i_ < s_.size() && s_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  void ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
  }
  std::string_view s_;
  std::size_t i_ = 0;
};

TEST(PgTypes, Bool) {
  EXPECT_EQ(J(oid::kBool, "t"), "true");
  EXPECT_EQ(J(oid::kBool, "f"), "false");
  expect_error(oid::kBool, "true", "expected 't' or 'f'");
  expect_error(oid::kBool, "", "bool");
}

TEST(PgTypes, Integers) {
  EXPECT_EQ(J(oid::kInt2, "-32768"), "-32768");
  EXPECT_EQ(J(oid::kInt4, "0"), "0");
  EXPECT_EQ(J(oid::kInt4, "2147483647"), "2147483647");
  EXPECT_EQ(J(oid::kInt8, "-9223372036854775808"), "-9223372036854775808");
  EXPECT_EQ(J(oid::kOid, "4294967295"), "4294967295");
  expect_error(oid::kInt4, "", "not an integer");
  expect_error(oid::kInt4, "1.5", "not an integer");
  expect_error(oid::kInt4, "12abc", "not an integer");
  expect_error(oid::kInt8, "-", "not an integer");
  expect_error(oid::kInt2, " 1", "int2");
}

TEST(PgTypes, NumericIsAnExactString) {
  EXPECT_EQ(J(oid::kNumeric, "3.14"), "\"3.14\"");
  EXPECT_EQ(J(oid::kNumeric, "-0.000000000000000000000000000001"),
            "\"-0.000000000000000000000000000001\"");
  const std::string huge = "123456789012345678901234567890123456789012345678901234567890."
                           "123456789012345678901234567890";
  EXPECT_EQ(J(oid::kNumeric, huge), "\"" + huge + "\"");
  EXPECT_EQ(J(oid::kNumeric, "NaN"), "\"NaN\"");
  EXPECT_EQ(J(oid::kNumeric, "Infinity"), "\"Infinity\"");
  EXPECT_EQ(J(oid::kNumeric, "-Infinity"), "\"-Infinity\"");
}

TEST(PgTypes, FloatsAreNumbersExceptNonFinite) {
  EXPECT_EQ(J(oid::kFloat8, "3.141592653589793"), "3.141592653589793");
  EXPECT_EQ(J(oid::kFloat8, "-1.5e-07"), "-1.5e-07");
  EXPECT_EQ(J(oid::kFloat8, "1e+100"), "1e+100");
  EXPECT_EQ(J(oid::kFloat8, "-0"), "-0");
  EXPECT_EQ(J(oid::kFloat4, "1.1"), "1.1");
  EXPECT_EQ(J(oid::kFloat8, "NaN"), "\"NaN\"");
  EXPECT_EQ(J(oid::kFloat8, "Infinity"), "\"Infinity\"");
  EXPECT_EQ(J(oid::kFloat4, "-Infinity"), "\"-Infinity\"");
  expect_error(oid::kFloat8, "nan", "not a number");
  expect_error(oid::kFloat8, "1.", "not a number");
  expect_error(oid::kFloat8, ".5", "not a number");
  expect_error(oid::kFloat8, "1e", "not a number");
  // Found by fuzz_pgoutput: valid JSON grammar that no JSON reader takes as a number.
  expect_error(oid::kFloat8, "1e+900", "beyond the range of a double");
  expect_error(oid::kFloat8, "0e+500", "beyond the range of a double");
  EXPECT_EQ(J(oid::kFloat8, "4.9e-324"), "4.9e-324");
}

TEST(PgTypes, JsonValuesAreCheckedAndTextIsAlwaysValidUtf8) {
  EXPECT_EQ(J(oid::kJsonb, R"({"a": [1, null]})"), R"({"a": [1, null]})");
  expect_error(oid::kJson, "{\"a\": ", "not JSON");
  expect_error(oid::kJsonb, "[1] [2]", "text after the JSON value");
  expect_error(oid::kJson, "\"\xff\"", "not JSON");
  EXPECT_EQ(J(oid::kText, "caf\xc3\xa9 \xff\xfe"), "\"caf\xc3\xa9 \xef\xbf\xbd\xef\xbf\xbd\"");
}

TEST(PgTypes, TextTypesAreEscapedStrings) {
  for (pg::Oid t : {oid::kText, oid::kVarchar, oid::kBpchar, oid::kName, oid::kChar}) {
    EXPECT_EQ(J(t, "plain"), "\"plain\"") << t;
  }
  EXPECT_EQ(J(oid::kText, ""), "\"\"");
  EXPECT_EQ(J(oid::kText, "a\"b\\c/d"), R"("a\"b\\c/d")");
  EXPECT_EQ(J(oid::kText, "tab\there\nnl\rcr\bbs\fff"), R"("tab\there\nnl\rcr\bbs\fff")");
  EXPECT_EQ(J(oid::kText, std::string_view("\x01\x1f\x7f", 3)), "\"\\u0001\\u001f\x7f\"");
  EXPECT_EQ(J(oid::kText, "h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80"),
            "\"h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80\"");  // UTF-8 passed through
  EXPECT_EQ(J(oid::kBpchar, "ab   "), "\"ab   \"");          // blank padding kept
}

TEST(PgTypes, JsonIsEmbeddedVerbatim) {
  EXPECT_EQ(J(oid::kJsonb, R"({"a": 1, "b": [true, null, "x\"y"]})"),
            R"({"a": 1, "b": [true, null, "x\"y"]})");
  EXPECT_EQ(J(oid::kJson, "  [1,2 ,3]"), "  [1,2 ,3]");
  EXPECT_EQ(J(oid::kJsonb, "null"), "null");
  EXPECT_EQ(J(oid::kJsonb, "\"s\""), "\"s\"");
  expect_error(oid::kJsonb, "", "empty JSON text");
}

TEST(PgTypes, UuidTimeIntervalAreStringsAsGiven) {
  EXPECT_EQ(J(oid::kUuid, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
            "\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\"");
  EXPECT_EQ(J(oid::kTime, "23:59:59.999999"), "\"23:59:59.999999\"");
  EXPECT_EQ(J(oid::kTimetz, "12:00:00+05:30"), "\"12:00:00+05:30\"");
  EXPECT_EQ(J(oid::kInterval, "1 year 2 mons 3 days 04:05:06.5"),
            "\"1 year 2 mons 3 days 04:05:06.5\"");
  EXPECT_EQ(J(oid::kInterval, "-00:00:01"), "\"-00:00:01\"");
}

TEST(PgTypes, Date) {
  EXPECT_EQ(J(oid::kDate, "2026-11-24"), "\"2026-11-24\"");
  EXPECT_EQ(J(oid::kDate, "infinity"), "\"infinity\"");
  EXPECT_EQ(J(oid::kDate, "-infinity"), "\"-infinity\"");
  EXPECT_EQ(J(oid::kDate, "0044-03-15 BC"), "\"0044-03-15 BC\"");
  EXPECT_EQ(J(oid::kDate, "10000-01-01"), "\"10000-01-01\"");
  expect_error(oid::kDate, "11/24/2026", "not an ISO DateStyle value");
  expect_error(oid::kDate, "2026-13-01", "month");
  expect_error(oid::kDate, "2026-11-24x", "trailing");
}

TEST(PgTypes, Timestamp) {
  EXPECT_EQ(J(oid::kTimestamp, "2026-11-24 12:00:00"), "\"2026-11-24T12:00:00\"");
  EXPECT_EQ(J(oid::kTimestamp, "2026-11-24 12:00:00.123"), "\"2026-11-24T12:00:00.123\"");
  EXPECT_EQ(J(oid::kTimestamp, "1999-12-31 23:59:59.999999"), "\"1999-12-31T23:59:59.999999\"");
  EXPECT_EQ(J(oid::kTimestamp, "infinity"), "\"infinity\"");
  EXPECT_EQ(J(oid::kTimestamp, "-infinity"), "\"-infinity\"");
  EXPECT_EQ(J(oid::kTimestamp, "0044-03-15 12:00:00 BC"), "\"0044-03-15 12:00:00 BC\"");
  expect_error(oid::kTimestamp, "2026-11-24T12:00:00", "hour");
  expect_error(oid::kTimestamp, "2026-11-24 12:00:00+01", "trailing");
  expect_error(oid::kTimestamp, "2026-11-24 12:00:00.1234567", "fractional");
  expect_error(oid::kTimestamp, "Tue Nov 24 12:00:00 2026", "ISO DateStyle");
}

TEST(PgTypes, TimestamptzIsNormalisedToUtc) {
  EXPECT_EQ(J(oid::kTimestamptz, "2026-11-24 12:00:00+00"), "\"2026-11-24T12:00:00Z\"");
  EXPECT_EQ(J(oid::kTimestamptz, "2026-11-24 12:00:00.123+01"), "\"2026-11-24T11:00:00.123Z\"");
  EXPECT_EQ(J(oid::kTimestamptz, "2026-11-24 17:30:00.000001+05:30"),
            "\"2026-11-24T12:00:00.000001Z\"");
  // Negative offset crossing midnight and a month/year boundary.
  EXPECT_EQ(J(oid::kTimestamptz, "2026-12-31 20:15:30.5-08"), "\"2027-01-01T04:15:30.5Z\"");
  // Positive offset going back over a leap day.
  EXPECT_EQ(J(oid::kTimestamptz, "2024-03-01 03:00:00+05:30"), "\"2024-02-29T21:30:00Z\"");
  // Historical local mean time offsets have seconds (Asia/Kolkata before 1854: +05:53:28).
  EXPECT_EQ(J(oid::kTimestamptz, "1800-01-01 00:00:00+05:53:28"),
            "\"1799-12-31T18:06:32Z\"");
  EXPECT_EQ(J(oid::kTimestamptz, "1800-01-01 00:00:00.25-03:06:04"), "\"1800-01-01T03:06:04.25Z\"");
  EXPECT_EQ(J(oid::kTimestamptz, "10000-01-01 00:30:00+01"), "\"9999-12-31T23:30:00Z\"");
  EXPECT_EQ(J(oid::kTimestamptz, "infinity"), "\"infinity\"");
  EXPECT_EQ(J(oid::kTimestamptz, "-infinity"), "\"-infinity\"");
  EXPECT_EQ(J(oid::kTimestamptz, "0044-03-15 12:00:00+00 BC"), "\"0044-03-15 12:00:00+00 BC\"");
  // Would land before year 1 in UTC: kept as PostgreSQL's text.
  EXPECT_EQ(J(oid::kTimestamptz, "0001-01-01 00:30:00+01"), "\"0001-01-01 00:30:00+01\"");
  expect_error(oid::kTimestamptz, "2026-11-24 12:00:00", "missing UTC offset");
  expect_error(oid::kTimestamptz, "2026-11-24 12:00:00+1", "bad UTC offset");
  expect_error(oid::kTimestamptz, "2026-11-24 12:00:00+01:6", "bad UTC offset");
  expect_error(oid::kTimestamptz, "2026-11-24 12:00:00+01:00 CET", "trailing");
}

TEST(PgTypes, ByteaIsBase64) {
  EXPECT_EQ(J(oid::kBytea, "\\x"), "\"\"");
  EXPECT_EQ(J(oid::kBytea, "\\x00"), "\"AA==\"");
  EXPECT_EQ(J(oid::kBytea, "\\x0a0b"), "\"Cgs=\"");
  EXPECT_EQ(J(oid::kBytea, "\\xdeadBEEF"), "\"3q2+7w==\"");
  EXPECT_EQ(J(oid::kBytea, "\\x666f6f626172"), "\"Zm9vYmFy\"");  // "foobar"
  EXPECT_EQ(J(oid::kBytea, "\\xfbff"), "\"+/8=\"");
  expect_error(oid::kBytea, "\\x0", "odd number of hex digits");
  expect_error(oid::kBytea, "\\x0g", "invalid hex digit");
  // Legacy escape format (bytea_output = escape).
  EXPECT_EQ(J(oid::kBytea, ""), "\"\"");
  EXPECT_EQ(J(oid::kBytea, "foobar"), "\"Zm9vYmFy\"");
  EXPECT_EQ(J(oid::kBytea, "a\\000\\\\\\377"), "\"YQBc/w==\"");  // a NUL \ 0xff
  expect_error(oid::kBytea, "a\\9", "invalid escape-format");
  expect_error(oid::kBytea, "a\\", "invalid escape-format");
  expect_error(oid::kBytea, "\\40", "invalid escape-format");
}

TEST(PgTypes, Base64Helper) {
  std::string out;
  for (const auto& [in, want] : std::initializer_list<std::pair<std::string_view, std::string_view>>{
           {"", ""}, {"f", "Zg=="}, {"fo", "Zm8="}, {"foo", "Zm9v"}, {"foob", "Zm9vYg=="},
           {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"}}) {
    out.clear();
    pg::append_base64(out, in);
    EXPECT_EQ(out, want) << in;
  }
}

TEST(PgTypes, Arrays) {
  EXPECT_EQ(J(oid::kInt4Array, "{}"), "[]");
  EXPECT_EQ(J(oid::kInt4Array, "{1,-2,3}"), "[1,-2,3]");
  EXPECT_EQ(J(oid::kInt4Array, "{1,NULL,3}"), "[1,null,3]");
  EXPECT_EQ(J(oid::kInt8Array, "{{1,2},{3,4}}"), "[[1,2],[3,4]]");
  EXPECT_EQ(J(oid::kInt4Array, "{{{1},{2}},{{3},{NULL}}}"), "[[[1],[2]],[[3],[null]]]");
  EXPECT_EQ(J(oid::kBoolArray, "{t,f,NULL}"), "[true,false,null]");
  EXPECT_EQ(J(oid::kFloat8Array, "{1.5,NaN,-Infinity,1e+100}"),
            "[1.5,\"NaN\",\"-Infinity\",1e+100]");
  EXPECT_EQ(J(oid::kNumericArray, "{1.10,NaN,NULL}"), "[\"1.10\",\"NaN\",null]");
  EXPECT_EQ(J(oid::kTextArray, R"({a,"b c","a \"b\"","x,y","{z}","back\\slash","NULL",""})"),
            R"(["a","b c","a \"b\"","x,y","{z}","back\\slash","NULL",""])");
  EXPECT_EQ(J(oid::kVarcharArray, R"({"  padded  ",null,Null})"), R"(["  padded  ",null,null])");
  EXPECT_EQ(J(oid::kTextArray, "{\"tab\there\"}"), R"(["tab\there"])");
  EXPECT_EQ(J(oid::kUuidArray, "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11,NULL}"),
            R"(["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",null])");
  EXPECT_EQ(J(oid::kTimestamptzArray,
              R"({"2026-11-24 17:30:00.5+05:30","2026-11-24 04:00:00-08",infinity})"),
            R"(["2026-11-24T12:00:00.5Z","2026-11-24T12:00:00Z","infinity"])");
  EXPECT_EQ(J(oid::kJsonbArray, R"({"{\"a\": [1, 2]}","[]",3,"\"s\"",NULL})"),
            R"([{"a": [1, 2]},[],3,"s",null])");
  EXPECT_EQ(J(oid::kByteaArray, R"({"\\x0a0b","\\x"})"), R"(["Cgs=",""])");
  EXPECT_EQ(J(oid::kDateArray, "{2026-11-24,infinity}"), R"(["2026-11-24","infinity"])");
  // Explicit lower bounds are dropped; whitespace accepted as array_in does.
  EXPECT_EQ(J(oid::kInt4Array, "[0:2]={1,2,3}"), "[1,2,3]");
  EXPECT_EQ(J(oid::kInt4Array, "[1:1][-1:0]={{1,2}}"), "[[1,2]]");
  EXPECT_EQ(J(oid::kTextArray, " { a b , \"c\" } "), R"(["a b","c"])");
  // Element errors are reported for the element type.
  expect_error(oid::kInt4Array, "{1,x}", "int4 value: not an integer");
}

TEST(PgTypes, MalformedArraysThrow) {
  expect_error(oid::kTextArray, R"({"abc)", "unterminated quoted element");
  expect_error(oid::kTextArray, R"({"abc\)", "unterminated");
  expect_error(oid::kTextArray, "{a,b", "unterminated array");
  expect_error(oid::kTextArray, "{", "unterminated array");
  expect_error(oid::kTextArray, "", "expected '{'");
  expect_error(oid::kTextArray, "abc", "expected '{'");
  expect_error(oid::kTextArray, "{a}}", "after the closing");
  expect_error(oid::kTextArray, "{a,,b}", "empty unquoted element");
  expect_error(oid::kTextArray, "{a,}", "empty unquoted element");
  expect_error(oid::kTextArray, "{\"a\"b}", "expected ',' or '}'");
  expect_error(oid::kTextArray, "{a\"b\"}", "unquoted element");
  expect_error(oid::kInt4Array, "{{1},2}", "mixed");
  expect_error(oid::kInt4Array, "{1,{2}}", "mixed");
  expect_error(oid::kInt4Array, "{{{{{{{1}}}}}}}", "more than 6 array dimensions");
  expect_error(oid::kInt4Array, "[1:2{1,2}", "dimension decoration");
  expect_error(oid::kInt4Array, "[a]={1}", "dimension decoration");
  expect_error(oid::kTextArray, "{a\\", "trailing backslash");
  // Deep nesting never recurses unboundedly.
  expect_error(oid::kInt4Array, std::string(100000, '{'), "more than 6 array dimensions");
  // The message names the array type, the position and the text.
  try {
    (void)J(oid::kTextArray, R"({"abc)");
    FAIL();
  } catch (const pg::ValueError& e) {
    EXPECT_EQ(std::string(e.what()),
              R"(PostgreSQL _text value: unterminated quoted element at byte 5 in "{\"abc")");
  }
  // Long inputs are cut in the message.
  try {
    (void)J(oid::kInt4, std::string(1000, 'x'));
    FAIL();
  } catch (const pg::ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("first 80 of 1000 bytes"), std::string::npos) << e.what();
  }
}

// Random and mutated inputs for every known type: either valid JSON or a ValueError, never a
// crash, a hang or another exception (run under ASan/UBSan in the sanitizer build).
TEST(PgTypes, RandomInputsNeverCrashAndYieldValidJson) {
  std::mt19937 rng(20261124);
  const std::vector<std::string> seeds = {
      "{1,2,NULL}", R"({"a \"b\"","x,y",NULL,{z}})", "{{1,2},{3,4}}", "[0:1]={1,2}",
      "2026-11-24 12:00:00.123+05:30", "2026-11-24", "\\x0a0b", "a\\000\\\\", "t", "-12",
      "1.5e-07", "NaN", R"({"\\x0a","2026-11-24 17:30:00.5+05:30",infinity})", "{}", ""};
  const std::string alphabet = "{}\",\\ NULLntfx0123456789.-+:eE[]=TZ \t\x01\xc3\xa9";
  std::vector<pg::Oid> types;
  for (pg::Oid t = 0; t < 4000; ++t) {
    if (pg::is_known(t)) types.push_back(t);
  }
  types.push_back(16385);  // unknown
  int ok = 0, rejected = 0;
  for (int iter = 0; iter < 30000; ++iter) {
    std::string in = seeds[rng() % seeds.size()];
    const int edits = static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      const std::size_t at = in.empty() ? 0 : rng() % (in.size() + 1);
      switch (rng() % 3) {
        case 0: in.insert(in.begin() + static_cast<std::ptrdiff_t>(at), alphabet[rng() % alphabet.size()]); break;
        case 1: if (at < in.size()) in.erase(at, 1); break;
        default: if (at < in.size()) in[at] = alphabet[rng() % alphabet.size()]; break;
      }
    }
    const pg::Oid type = types[rng() % types.size()];
    const pg::Oid elem = pg::array_element_type(type);
    const bool verbatim_json = type == oid::kJson || type == oid::kJsonb ||
                               elem == oid::kJson || elem == oid::kJsonb;
    try {
      const std::string out = J(type, in);
      ++ok;
      if (!verbatim_json) {
        ASSERT_TRUE(JsonCheck(out).valid()) << "type " << type << " in '" << in << "' out " << out;
      }
    } catch (const pg::ValueError&) {
      ++rejected;
    }
  }
  EXPECT_GT(ok, 1000);
  EXPECT_GT(rejected, 1000);
}

TEST(PgTypes, UnknownOidsAreStrings) {
  EXPECT_FALSE(pg::is_known(16385));
  EXPECT_EQ(J(16385, "happy"), "\"happy\"");               // an enum: its label
  EXPECT_EQ(J(16390, "{happy,sad}"), "\"{happy,sad}\"");   // array of a user type: text
  EXPECT_EQ(J(600, "(1,2)"), "\"(1,2)\"");                 // point: not converted
}

TEST(PgTypes, IsKnownAndNames) {
  for (pg::Oid t : {16u, 17u, 18u, 19u, 20u, 21u, 23u, 25u, 26u, 114u, 700u, 701u, 1042u, 1043u,
                    1082u, 1083u, 1114u, 1184u, 1186u, 1266u, 1700u, 2950u, 3802u, 199u, 1000u,
                    1001u, 1002u, 1003u, 1005u, 1007u, 1009u, 1014u, 1015u, 1016u, 1021u, 1022u,
                    1028u, 1115u, 1182u, 1183u, 1185u, 1187u, 1231u, 1270u, 2951u, 3807u}) {
    EXPECT_TRUE(pg::is_known(t)) << t;
  }
  EXPECT_FALSE(pg::is_known(0));
  EXPECT_EQ(pg::array_element_type(oid::kInt4Array), oid::kInt4);
  EXPECT_EQ(pg::array_element_type(oid::kInt4), 0u);
  EXPECT_EQ(pg::type_name(oid::kJsonbArray), "_jsonb");
  EXPECT_EQ(pg::type_name(12345), "oid 12345");
}

TEST(PgTypes, AppendsToExistingOutput) {
  std::string out = R"({"a":)";
  pg::append_json(out, oid::kInt4, "1");
  out += R"(,"b":)";
  pg::append_json(out, oid::kTextArray, "{x}");
  out += "}";
  EXPECT_EQ(out, R"({"a":1,"b":["x"]})");
}

}  // namespace
