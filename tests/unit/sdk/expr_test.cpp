// The expression language, evaluated on real host documents through the SDK harness: every
// operator and function, load-time errors with their offsets, and run-time failures.
#include <edgeflow/sdk/expr.hpp>
#include <edgeflow/sdk/plugin.hpp>
#include <edgeflow/testing/harness.hpp>

#include <gtest/gtest.h>

using namespace edgeflow::sdk;
using edgeflow::testing::Harness;

namespace {

// Evaluates `expr` (or renders `template`) on each message and stores the result as JSON text
// in the header "result"; evaluation errors become rejections.
class Probe : public Transformer {
 public:
  struct Config {
    std::string expr;
    std::string tmpl;
    bool test = false;
    Json lookups;
  };
  static constexpr const char* type = "probe";
  static constexpr const char* description = "test probe";
  static void describe(Spec<Config>& s) {
    s.option("expr", &Config::expr);
    s.option("template", &Config::tmpl);
    s.option("test", &Config::test);
    s.option("lookups", &Config::lookups);
  }
  Probe(Context c, Config cfg) : Transformer(c), cfg_(std::move(cfg)), tables_(expr::tables_from(c, cfg_.lookups)) {
    expr::Env env{&tables_};
    if (!cfg_.tmpl.empty()) tmpl_ = expr::compile_template(c, "template", cfg_.tmpl, env);
    else e_ = expr::compile_option(c, "expr", cfg_.expr, env);
  }
  void transform(Batch b) override {
    for (size_t i = 0; i < b.size(); ++i) {
      Message m = b[i];
      try {
        std::string out;
        if (!cfg_.tmpl.empty()) out = tmpl_.render(m);
        else if (cfg_.test) out = e_.test(m) ? "true" : "false";
        else expr::append_json(out, e_.eval(m));
        m.set_header("result", out);
      } catch (const expr::EvalError& e) {
        b.reject(i, e.what());
      }
    }
  }

 private:
  Config cfg_;
  expr::Tables tables_;
  expr::Expr e_;
  expr::Template tmpl_;
};

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("''") : std::string(1, c);
  return q + "'";
}

const char* kDoc = R"({"id":7,"total":12.34,"name":" Ada Lovelace ","tags":["a","b"],"op":"u",
  "after":{"customer":{"id":42,"email":"ada@example.org"},"region":"eu","qty":3,"nothing":null},
  "when":"2026-11-24T12:00:00.5+01:00","big":9223372036854775807,"nested":"{\"x\":[1,2.5,true,null]}"})";

// The result as JSON text, or "error: <reason>".
std::string run(const std::string& expression, const std::string& payload = kDoc, const std::string& extra = "") {
  Harness<Probe> h("expr: " + quote(expression) + "\n" + extra);
  auto r = h.transform({{.payload = payload, .key = "k-1", .headers = {{"x-trace", "t-9"}},
                         .meta = {{"topic", "orders"}}, .content_type = "application/json", .timestamp_ms = 1000}});
  if (!r.rejected.empty()) return "error: " + r.rejected[0].reason;
  for (auto& [k, v] : r.kept.at(0).headers)
    if (k == "result") return v;
  return "(no result)";
}

std::string compile_error(const std::string& expression, const std::string& extra = "") {
  try {
    Harness<Probe> h("expr: " + quote(expression) + "\n" + extra);
  } catch (const edgeflow::testing::ConfigError& e) {
    return e.what();
  }
  return "(compiled)";
}

}  // namespace

TEST(Expr, PathsIntoTheDocument) {
  EXPECT_EQ(run("id"), "7");
  EXPECT_EQ(run("after.customer.id"), "42");
  EXPECT_EQ(run("tags[1]"), "\"b\"");
  EXPECT_EQ(run("tags[-1]"), "\"b\"");  // via a dynamic index: negative counts from the end
  EXPECT_EQ(run("after[\"region\"]"), "\"eu\"");
  EXPECT_EQ(run("after.missing.deeper"), "null");
  EXPECT_EQ(run("tags[5]"), "null");
  EXPECT_EQ(run("after.customer"), R"({"id":42,"email":"ada@example.org"})");
  EXPECT_EQ(run("doc.id"), "7");
  EXPECT_EQ(run("doc[\"op\"]"), "\"u\"");
}

TEST(Expr, MetadataHeadersAndMessageAttributes) {
  EXPECT_EQ(run("meta.topic"), "\"orders\"");
  EXPECT_EQ(run("meta.partition"), "null");
  EXPECT_EQ(run("headers[\"x-trace\"]"), "\"t-9\"");
  EXPECT_EQ(run("msg.key"), "\"k-1\"");
  EXPECT_EQ(run("msg.timestamp"), "1000");
  EXPECT_EQ(run("msg.content_type"), "\"application/json\"");
}

TEST(Expr, Literals) {
  EXPECT_EQ(run("'it\\'s'"), "\"it's\"");
  EXPECT_EQ(run("\"tab\\there\""), "\"tab\\there\"");
  EXPECT_EQ(run("1.5e3"), "1500");
  EXPECT_EQ(run("-4"), "-4");
  EXPECT_EQ(run("[1, 'a', null, true]"), "[1,\"a\",null,true]");
  EXPECT_EQ(run("{a: 1, \"b c\": id}"), R"({"a":1,"b c":7})");
}

TEST(Expr, Arithmetic) {
  EXPECT_EQ(run("id + 3"), "10");
  EXPECT_EQ(run("id - 10"), "-3");
  EXPECT_EQ(run("id * after.qty"), "21");
  EXPECT_EQ(run("id / 2"), "3.5");
  EXPECT_EQ(run("id % 4"), "3");
  EXPECT_EQ(run("total * 100"), "1234");
  EXPECT_EQ(run("'a' + 'b'"), "\"ab\"");
  EXPECT_EQ(run("-(id)"), "-7");
  EXPECT_EQ(run("2 + 3 * 4 - 1"), "13");
  EXPECT_EQ(run("(2 + 3) * 4"), "20");
}

TEST(Expr, ArithmeticFailuresRejectTheMessage) {
  EXPECT_EQ(run("after.nothing * 2"), "error: cannot multiply null and int");
  EXPECT_EQ(run("id / 0"), "error: division by zero");
  EXPECT_EQ(run("id % 0"), "error: remainder by zero");
  EXPECT_EQ(run("big + 1"), "error: integer overflow: cannot add 9223372036854775807 and 1");
  EXPECT_EQ(run("name - 1"), "error: cannot subtract string and int");
  EXPECT_EQ(run("1e308 * 10"), "error: cannot multiply 1e+308 and 10: out of range");
}

TEST(Expr, Comparisons) {
  EXPECT_EQ(run("id == 7"), "true");
  EXPECT_EQ(run("id == 7.0"), "true");
  EXPECT_EQ(run("op != 'd'"), "true");
  EXPECT_EQ(run("total > 12"), "true");
  EXPECT_EQ(run("total >= 12.34"), "true");
  EXPECT_EQ(run("id < 7"), "false");
  EXPECT_EQ(run("id <= 7"), "true");
  EXPECT_EQ(run("'abc' < 'abd'"), "true");
  EXPECT_EQ(run("after.nothing == null"), "true");
  EXPECT_EQ(run("after.missing == null"), "true");
  EXPECT_EQ(run("id == '7'"), "false");  // no silent conversions
  EXPECT_EQ(run("tags == ['a', 'b']"), "true");
  EXPECT_EQ(run("after.missing > 1"), "error: cannot compare null with '>'; use ?? to give a default");
  EXPECT_EQ(run("name > 1"), "error: cannot compare string > int");
}

TEST(Expr, BooleanLogicShortCircuitsAndTreatsNullAsFalse) {
  EXPECT_EQ(run("id == 7 and op == 'u'"), "true");
  EXPECT_EQ(run("id == 1 && (1 / 0 > 1)"), "false");
  EXPECT_EQ(run("id == 7 or 1 / 0 > 1"), "true");
  EXPECT_EQ(run("id == 1 || op == 'u'"), "true");
  EXPECT_EQ(run("not (id == 7)"), "false");
  EXPECT_EQ(run("!after.missing"), "true");
  EXPECT_EQ(run("name and true"), "error: 'and' needs a bool, got string");
}

TEST(Expr, InAndNotIn) {
  EXPECT_EQ(run("op in ['c', 'u']"), "true");
  EXPECT_EQ(run("op not in ['c', 'u']"), "false");
  EXPECT_EQ(run("'a' in tags"), "true");
  EXPECT_EQ(run("'Love' in name"), "true");
  EXPECT_EQ(run("'email' in after.customer"), "true");
  EXPECT_EQ(run("'phone' in after.customer"), "false");
  EXPECT_EQ(run("id in after.missing"), "false");
}

TEST(Expr, NullCoalescingAndConditionals) {
  EXPECT_EQ(run("after.missing ?? 'none'"), "\"none\"");
  EXPECT_EQ(run("after.nothing ?? after.missing ?? 3"), "3");
  EXPECT_EQ(run("id ?? 1 / 0"), "7");
  EXPECT_EQ(run("op == 'd' ? 'deleted' : 'live'"), "\"live\"");
  EXPECT_EQ(run("after.missing ? 1 : 2"), "2");
  EXPECT_EQ(run("id ? 1 : 2"), "error: the condition of ?: needs a bool, got int");
}

TEST(Expr, StringFunctions) {
  EXPECT_EQ(run("lower('AbC')"), "\"abc\"");
  EXPECT_EQ(run("upper(after.region)"), "\"EU\"");
  EXPECT_EQ(run("trim(name)"), "\"Ada Lovelace\"");
  EXPECT_EQ(run("concat(after.region, '-', id, '-', true)"), "\"eu-7-true\"");
  EXPECT_EQ(run("concat('x', after.missing)"), "error: concat: argument 2 is null");
  EXPECT_EQ(run("substr('zoë lovelace', 0, 3)"), "\"zoë\"");
  EXPECT_EQ(run("substr('abcdef', 2)"), "\"cdef\"");
  EXPECT_EQ(run("substr('abcdef', -2)"), "\"ef\"");
  EXPECT_EQ(run("substr('abc', 9100000000000000000, 9100000000000000000)"), "\"\"");
  EXPECT_EQ(run("replace('a-b-c', '-', '+')"), "\"a+b+c\"");
  EXPECT_EQ(run("split('a,b,,c', ',')"), R"(["a","b","","c"])");
  EXPECT_EQ(run("length('zoë')"), "3");
  EXPECT_EQ(run("length(tags)"), "2");
  EXPECT_EQ(run("starts_with(after.customer.email, 'ada@')"), "true");
  EXPECT_EQ(run("ends_with(after.customer.email, '.com')"), "false");
  EXPECT_EQ(run("contains(name, 'Love')"), "true");
  EXPECT_EQ(run("string(12.5)"), "\"12.5\"");
  EXPECT_EQ(run("string(tags)"), R"("[\"a\",\"b\"]")");
  EXPECT_EQ(run("upper(id)"), "error: upper: argument 1 must be a string, got int");
}

TEST(Expr, RegularExpressions) {
  EXPECT_EQ(run("regex_match(after.customer.email, '^[a-z]+@example\\\\.org$')"), "true");
  EXPECT_EQ(run("regex_match(name, '^[0-9]+$')"), "false");
  EXPECT_EQ(run("regex_extract(after.customer.email, '@(.*)$', 1)"), "\"example.org\"");
  EXPECT_EQ(run("regex_extract(after.customer.email, '[a-z]+')"), "\"ada\"");
  EXPECT_EQ(run("regex_extract(name, '[0-9]+')"), "null");
}

TEST(Expr, NumericFunctions) {
  EXPECT_EQ(run("int(total * 100)"), "1234");
  EXPECT_EQ(run("int(-2.7)"), "-2");
  EXPECT_EQ(run("int('42')"), "42");
  EXPECT_EQ(run("int(' 12.9 ')"), "12");
  EXPECT_EQ(run("int(true)"), "1");
  EXPECT_EQ(run("int('forty')"), "error: int: 'forty' is not a number");
  EXPECT_EQ(run("float('2.5')"), "2.5");
  EXPECT_EQ(run("float(id)"), "7");
  EXPECT_EQ(run("round(total)"), "12");
  EXPECT_EQ(run("round(total, 1)"), "12.3");
  EXPECT_EQ(run("round(2.5)"), "3");
}

TEST(Expr, TimeFunctions) {
  EXPECT_EQ(run("parse_time(when)"), "1795518000500");
  EXPECT_EQ(run("parse_time('2026-11-24')"), "1795478400000");
  EXPECT_EQ(run("parse_time('2026-11-24 12:00:00.123456+00')"), "1795521600123");
  EXPECT_EQ(run("format_time(1795518000500)"), "\"2026-11-24T11:00:00.500Z\"");
  EXPECT_EQ(run("format_time(when)"), "\"2026-11-24T11:00:00.500Z\"");
  EXPECT_EQ(run("format_time(-1)"), "\"1969-12-31T23:59:59.999Z\"");
  EXPECT_EQ(run("parse_time('24/11/2026')"), "error: parse_time: '24/11/2026' is not an ISO-8601 date-time");
  EXPECT_EQ(run("parse_time('2026-02-29')"), "error: parse_time: '2026-02-29' is not an ISO-8601 date-time");
  EXPECT_EQ(run("parse_time('2028-02-29')"), "1835395200000");
  EXPECT_EQ(run("now() > 1795000000000"), "true");
}

TEST(Expr, HashingAndIds) {
  EXPECT_EQ(run("sha256('abc')"), "\"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\"");
  EXPECT_EQ(run("sha256('')"), "\"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\"");
  // RFC 4231 test case 2.
  EXPECT_EQ(run("hmac_sha256('Jefe', 'what do ya want for nothing?')"),
            "\"5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843\"");
  std::string u = run("uuid()");
  ASSERT_EQ(u.size(), 38u) << u;
  EXPECT_EQ(u[15], '4') << u;
  EXPECT_NE(run("uuid()"), u);
}

TEST(Expr, JsonEncodeAndDecode) {
  EXPECT_EQ(run("json_encode(after.customer)"), R"("{\"id\":42,\"email\":\"ada@example.org\"}")");
  EXPECT_EQ(run("json_decode(nested).x[1]"), "2.5");
  EXPECT_EQ(run("json_decode(nested)"), R"({"x":[1,2.5,true,null]})");
  EXPECT_EQ(run("json_decode('[1,')"), "error: json_decode: unexpected end at offset 3");
  EXPECT_EQ(run("json_decode('01')"), "error: json_decode: bad number '01' at offset 2");
  EXPECT_EQ(run("json_decode('-.5')"), "error: json_decode: bad number '-.5' at offset 3");
}

TEST(Expr, CoalesceExistsAndTypeChecks) {
  EXPECT_EQ(run("coalesce(after.missing, after.nothing, after.region)"), "\"eu\"");
  EXPECT_EQ(run("coalesce(after.missing)"), "null");
  EXPECT_EQ(run("exists(after.nothing)"), "true");  // present, even though null
  EXPECT_EQ(run("exists(after.missing)"), "false");
  EXPECT_EQ(run("exists(headers[\"x-trace\"])"), "true");
  EXPECT_EQ(run("exists(meta.offset)"), "false");
  EXPECT_EQ(run("type(total)"), "\"float\"");
  EXPECT_EQ(run("type(after)"), "\"object\"");
  EXPECT_EQ(run("is_null(after.missing)"), "true");
  EXPECT_EQ(run("is_string(name)"), "true");
  EXPECT_EQ(run("is_number(id)"), "true");
  EXPECT_EQ(run("is_int(total)"), "false");
  EXPECT_EQ(run("is_bool(id == 7)"), "true");
  EXPECT_EQ(run("is_array(tags)"), "true");
  EXPECT_EQ(run("is_object(after)"), "true");
}

TEST(Expr, LookupTables) {
  std::string tables = "lookups:\n  regions: { eu: Europe, us: Americas }\n  codes: { '7': seven }\n";
  EXPECT_EQ(run("lookup('regions', after.region)", kDoc, tables), "\"Europe\"");
  EXPECT_EQ(run("lookup('regions', 'apac', 'elsewhere')", kDoc, tables), "\"elsewhere\"");
  EXPECT_EQ(run("lookup('regions', 'apac')", kDoc, tables), "null");
  EXPECT_EQ(run("lookup('codes', id)", kDoc, tables), "\"seven\"");
}

TEST(Expr, ThePayloadMustBeJsonOnlyWhenTheDocumentIsRead) {
  EXPECT_EQ(run("meta.topic", "not json"), "\"orders\"");
  EXPECT_EQ(run("id", "not json"), "error: payload is not JSON at byte 1: Invalid value.");
}

TEST(Expr, Templates) {
  Harness<Probe> h("template: 'orders/${after.region}/${id + 1}/${upper(op)}'");
  auto r = h.transform({{.payload = kDoc}, {.payload = R"({"id":1,"op":"c"})"}});
  ASSERT_EQ(r.kept.size(), 1u);
  EXPECT_EQ(r.kept[0].headers.back().second, "orders/eu/8/U");
  ASSERT_EQ(r.rejected.size(), 1u);
  EXPECT_EQ(r.rejected[0].reason, "template part ${after.region} is null");
}

TEST(ExprErrors, SyntaxErrorsPointAtTheOffsetWithACaret) {
  std::string e = compile_error("after.total *");
  EXPECT_NE(e.find("<harness>:1:7: expr: expected a value but the expression ends\n    after.total *\n                 ^"),
            std::string::npos) << e;
  e = compile_error("(id + 1");
  EXPECT_NE(e.find("expected ')' but the expression ends"), std::string::npos) << e;
  e = compile_error("id = 7");
  EXPECT_NE(e.find("unexpected character '='"), std::string::npos) << e;
  e = compile_error("'open");
  EXPECT_NE(e.find("unterminated string"), std::string::npos) << e;
  e = compile_error("after..id");
  EXPECT_NE(e.find("expected a field name after '.', found '.'"), std::string::npos) << e;
  e = compile_error("id 7");
  EXPECT_NE(e.find("unexpected '7' after the expression"), std::string::npos) << e;
  e = compile_error("");
  EXPECT_NE(e.find("the expression is empty"), std::string::npos) << e;
}

TEST(ExprErrors, UnknownFunctionsAndArity) {
  std::string e = compile_error("lowr(name)");
  EXPECT_NE(e.find("unknown function 'lowr'; did you mean 'lower'?"), std::string::npos) << e;
  e = compile_error("substr(name)");
  EXPECT_NE(e.find("substr() takes 2 to 3 arguments, got 1"), std::string::npos) << e;
  e = compile_error("now(1)");
  EXPECT_NE(e.find("now() takes 0 arguments, got 1"), std::string::npos) << e;
}

TEST(ExprErrors, LiteralTypeErrors) {
  EXPECT_NE(compile_error("'a' * 2").find("'*' needs int or float, not string"), std::string::npos);
  EXPECT_NE(compile_error("upper(3)").find("upper() argument 1 must be string, not int"), std::string::npos);
  EXPECT_NE(compile_error("1 and true").find("'and' needs bool or null, not int"), std::string::npos);
  EXPECT_NE(compile_error("id in 3").find("the right side of 'in' needs string or array or object, not int"),
            std::string::npos);
  EXPECT_NE(compile_error("1 ? 2 : 3").find("the condition of ?: needs bool or null, not int"), std::string::npos);
}

TEST(ExprErrors, SpecialFormsAreCheckedAtLoad) {
  EXPECT_NE(compile_error("exists(1 + 2)").find("exists() takes a field path"), std::string::npos);
  EXPECT_NE(compile_error("regex_match(name, pattern)").find("takes the pattern as a string literal"), std::string::npos);
  EXPECT_NE(compile_error("regex_match(name, '(')").find("bad regular expression '('"), std::string::npos);
  EXPECT_NE(compile_error("regex_extract(name, '(a)', 2)").find("the group must be an int literal from 0 to 1"),
            std::string::npos);
  EXPECT_NE(compile_error("lookup('nope', id)").find("no lookup table 'nope'; declare it under `lookups:`"),
            std::string::npos);
  EXPECT_NE(compile_error("meta").find("meta, headers and msg take a name"), std::string::npos);
  EXPECT_NE(compile_error("msg.size").find("msg has key, timestamp and content_type, not 'size'"), std::string::npos);
}

TEST(ExprErrors, TemplateErrors) {
  try {
    Harness<Probe> h("template: 'a/${after.x'");
    FAIL();
  } catch (const edgeflow::testing::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("expected '}' to close ${"), std::string::npos) << e.what();
  }
}

TEST(Expr, NestingIsBoundedAtCompileTime) {
  // Found by fuzz_expr: a few thousand '(' overflowed the parser's stack.
  EXPECT_NE(compile_error(std::string(3000, '(') + "1" + std::string(3000, ')')).find("nests deeper than 64 levels"),
            std::string::npos);
  EXPECT_NE(compile_error(std::string(3000, '!') + "true").find("nests deeper than 64 levels"), std::string::npos);
  EXPECT_NE(compile_error(std::string(3000, '-') + "1").find("nests deeper than 64 levels"), std::string::npos);
  EXPECT_EQ(run(std::string(20, '(') + "1 + 2" + std::string(20, ')')), "3");
}
