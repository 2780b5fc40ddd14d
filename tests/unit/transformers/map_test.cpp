#include "map.cpp"

#include <edgeflow/testing/harness.hpp>

#include <gtest/gtest.h>

using edgeflow::testing::ConfigError;
using edgeflow::testing::Harness;

namespace {

const char* kCdc = R"({"op":"u","before":{"id":7,"total":10.0},"after":{"id":7,"customer_id":"c-42","name":"ada",)"
                   R"("total":12.34,"region":"eu","tags":["a","b"]},"source":{"table":"orders","txid":991}})";

std::string error_of(const std::string& yaml) {
  try {
    Harness<Map> h(yaml, {.file = "flow.yaml"});
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST(Map, BuildsACanonicalEventFromACdcRecord) {
  Harness<Map> h(R"(
unmapped: drop
set:
  id: after.id
  customer.id: after.customer_id
  customer.name: upper(after.name)
  total_cents: int(after.total * 100)
  currency: "'EUR'"
  version: 2
  deleted: false
  region: lookup('regions', after.region)
  shape: { table: source.table, tags: after.tags, fixed: [1, "'x'"] }
key: after.customer_id
headers: { x-source: source.table, x-op: op }
lookups: { regions: { eu: Europe } }
)");
  auto r = h.transform({{.payload = kCdc}});
  ASSERT_EQ(r.kept.size(), 1u) << (r.rejected.empty() ? "" : r.rejected[0].reason);
  EXPECT_EQ(r.kept[0].payload,
            R"({"id":7,"customer":{"id":"c-42","name":"ADA"},"total_cents":1234,"currency":"EUR","version":2,)"
            R"("deleted":false,"region":"Europe","shape":{"table":"orders","tags":["a","b"],"fixed":[1,"x"]}})");
  EXPECT_EQ(r.kept[0].key, "c-42");
  EXPECT_EQ(r.kept[0].headers, (edgeflow::testing::Pairs{{"x-source", "orders"}, {"x-op", "u"}}));
}

TEST(Map, KeepsUnmappedFieldsAndRenamesAndRemoves) {
  Harness<Map> h(R"(
rename: { after.customer_id: customer, source.table: table, after.nope: never }
remove: [before, source]
set: { after.total: round(after.total) }
)");
  auto r = h.transform({{.payload = kCdc}});
  ASSERT_EQ(r.kept.size(), 1u);
  EXPECT_EQ(r.kept[0].payload,
            R"({"op":"u","after":{"id":7,"name":"ada","total":12,"region":"eu","tags":["a","b"]},)"
            R"("customer":"c-42","table":"orders"})");
}

TEST(Map, ExpressionsReadTheIncomingDocumentNotTheHalfBuiltOne) {
  // Swapping two fields only works when every value is read before anything is written.
  Harness<Map> h("set: { a: b, b: a }");
  auto r = h.transform({{.payload = R"({"a":1,"b":{"x":[2]}})"}});
  ASSERT_EQ(r.kept.size(), 1u);
  EXPECT_EQ(r.kept[0].payload, R"({"a":{"x":[2]},"b":1})");
}

TEST(Map, NumbersAreCopiedExactlyAndComputedAsDoubles) {
  // A copy keeps what arrived; arithmetic needs a double and says so in its result.
  Harness<Map> h("set: { copy: big, dec: price, nested: [big], twice: big * 2, text: string(big) }");
  auto r = h.transform({{.payload = R"({"big":12345678901234567890,"price":9007199254740991.5})"}});
  ASSERT_EQ(r.kept.size(), 1u) << (r.rejected.empty() ? "" : r.rejected[0].reason);
  EXPECT_EQ(r.kept[0].payload,
            R"({"big":12345678901234567890,"price":9007199254740991.5,"copy":12345678901234567890,)"
            R"("dec":9007199254740991.5,"nested":[12345678901234567890],"twice":2.4691357802469134e+19,)"
            R"("text":"12345678901234567890"})");
}

TEST(Map, AnEvaluationErrorRejectsOnlyThatMessage) {
  Harness<Map> h("set: { cents: int(after.total * 100) }");
  auto r = h.transform({{.payload = R"({"after":{"total":1.5}})"},
                        {.payload = R"({"after":{}})"},
                        {.payload = "not json"},
                        {.payload = R"({"after":{"total":2}})"}});
  ASSERT_EQ(r.kept.size(), 2u);
  EXPECT_EQ(r.kept[0].payload, R"({"after":{"total":1.5},"cents":150})");
  EXPECT_EQ(r.kept[1].payload, R"({"after":{"total":2},"cents":200})");
  ASSERT_EQ(r.rejected.size(), 2u);
  EXPECT_EQ(r.rejected[0].reason, "map: set.cents: `int(after.total * 100)`: cannot multiply null and int");
  EXPECT_EQ(r.rejected[1].reason, "map: payload is not JSON at byte 1: Invalid value.");
}

TEST(Map, ANullKeyIsRejected) {
  Harness<Map> h("key: after.id");
  auto r = h.transform({{.payload = R"({"after":{}})"}});
  ASSERT_EQ(r.rejected.size(), 1u);
  EXPECT_EQ(r.rejected[0].reason, "map: key is null");
}

TEST(Map, LoadTimeErrorsPointIntoTheYaml) {
  EXPECT_NE(error_of("set:\n  total: int(after.total *)\n").find("flow.yaml:2:10: set.total: expected a value, found ')'"),
            std::string::npos) << error_of("set:\n  total: int(after.total *)\n");
  EXPECT_NE(error_of("set: { a: lowr(b) }").find("flow.yaml:1:11: set.a: unknown function 'lowr'; did you mean 'lower'?"),
            std::string::npos) << error_of("set: { a: lowr(b) }");
  EXPECT_NE(error_of("rename: { 'a + 1': b }").find("rename.a + 1: 'a + 1' is not a field path"), std::string::npos)
      << error_of("rename: { 'a + 1': b }");
  EXPECT_NE(error_of("remove: [a, 'b..c']").find("flow.yaml:1:13: remove[1]: expected a field name after '.'"),
            std::string::npos) << error_of("remove: [a, 'b..c']");
  EXPECT_NE(error_of("unmapped: keep").find("map does nothing"), std::string::npos);
  EXPECT_NE(error_of("set: [a]").find("set: expected a map of target: expression"), std::string::npos);
  EXPECT_NE(error_of("unmapped: sometimes\nset: {a: b}").find("flow.yaml:1:11: unmapped: 'sometimes' is not one of: keep, drop"),
            std::string::npos);
  // Quoted: inside a YAML flow map, the comma would end the value.
  EXPECT_NE(error_of("set: { a: \"lookup('nope', b)\" }").find("flow.yaml:1:11: set.a: no lookup table 'nope'"),
            std::string::npos) << error_of("set: { a: \"lookup('nope', b)\" }");
}
