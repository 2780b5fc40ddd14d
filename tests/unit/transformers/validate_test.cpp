// The validate transformer through the SDK harness: what passes unchanged, the reasons a message
// is rejected with (each failing place in it), drop mode, payloads that are not I-JSON, numbers
// compared exactly, formats, schema files and $ref across files, and the load-time errors (with
// their <harness>:line:col). The official test suite runs in validate_suite_test.cpp.
#include "validate.cpp"

#include <edgeflow/testing/harness.hpp>

#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>

using edgeflow::testing::ConfigError;
using edgeflow::testing::Harness;
using edgeflow::testing::TransformResult;

namespace {

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "edgeflow-validate-XXXXXX").string();
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string write(const std::string& name, const std::string& content) const {
    std::filesystem::path p = path_ / name;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p) << content;
    return p.string();
  }
  std::string path() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

// The config error a YAML gives (empty when it loads).
std::string load_error(const std::string& yaml) {
  try {
    Harness<Validate> h(yaml);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

// The one reason a single payload is rejected with (empty when it is kept).
std::string reason(Harness<Validate>& h, const std::string& payload) {
  TransformResult r = h.transform({{.payload = payload}});
  EXPECT_EQ(r.dropped, 0u);
  EXPECT_TRUE(r.error.empty()) << r.error;
  if (r.rejected.empty()) {
    EXPECT_EQ(r.kept.size(), 1u);
    return "";
  }
  return r.rejected[0].reason;
}

bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

const char* kOrders = R"(schema:
  type: object
  required: [id, total]
  additionalProperties: false
  properties:
    id: {type: integer, minimum: 1}
    total: {type: number}
    status: {enum: [new, paid, shipped]}
    code: {type: string, pattern: '^[A-Z]{3}-\d+$'}
    note: {type: string, maxLength: 5}
    customer:
      type: object
      required: [name]
      properties:
        name: {type: string}
    items:
      type: array
      minItems: 1
      items:
        type: object
        properties:
          qty: {type: integer, minimum: 1}
)";

}  // namespace

TEST(Validate, ValidMessagesPassByteForByte) {
  Harness<Validate> h(kOrders);
  const std::string a = R"({ "total": 12.5,  "id": 7, "status": "paid", "code": "ABC-42" })";
  const std::string b = R"({"id":1,"total":0,"customer":{"name":"Ada"},"items":[{"qty":2},{"qty":1}],"note":"héllo"})";
  auto r = h.transform({{.payload = a, .key = "k1", .headers = {{"h", "v"}}}, {.payload = b}});
  ASSERT_TRUE(r.rejected.empty()) << r.rejected[0].reason;
  ASSERT_EQ(r.kept.size(), 2u);
  EXPECT_EQ(r.kept[0].payload, a);
  EXPECT_EQ(r.kept[0].key, "k1");
  EXPECT_EQ(r.kept[0].headers, (edgeflow::testing::Pairs{{"h", "v"}}));
  EXPECT_EQ(r.kept[1].payload, b);
  EXPECT_EQ(r.dropped, 0u);
}

TEST(Validate, EachViolationNamesThePlaceAndWhy) {
  Harness<Validate> h(kOrders);
  EXPECT_EQ(reason(h, R"({"id":1,"total":"12.5"})"), R"(schema: /total: expected type number, got string "12.5")");
  EXPECT_EQ(reason(h, R"({"id":1})"), R"(schema: (root): the required property "total" is missing)");
  EXPECT_EQ(reason(h, R"({})"),
            R"(schema: (root): the required property "id" is missing; (root): the required property "total" is missing)");
  EXPECT_EQ(reason(h, R"({"id":0,"total":1})"), "schema: /id: 0 is less than the minimum 1");
  EXPECT_EQ(reason(h, R"({"id":1.5,"total":1})"), "schema: /id: expected type integer, got number 1.5");
  EXPECT_EQ(reason(h, R"({"id":1,"total":1,"status":"lost"})"),
            R"(schema: /status: "lost" is not one of ["new","paid","shipped"])");
  EXPECT_EQ(reason(h, R"({"id":1,"total":1,"code":"AB-1"})"),
            R"(schema: /code: "AB-1" does not match the pattern "^[A-Z]{3}-\\d+$")");
  EXPECT_EQ(reason(h, R"({"id":1,"total":1,"extra":true})"),
            R"(schema: /extra: the property "extra" is not allowed (additionalProperties))");
  EXPECT_EQ(reason(h, R"({"id":1,"total":1,"note":"abcdef"})"),
            "schema: /note: the string of 6 characters is longer than the maximum 5");
  EXPECT_EQ(reason(h, R"({"id":1,"total":1,"items":[]})"), "schema: /items: the array has 0 items, fewer than the minimum 1");
  // Nested objects and array items: the pointers go all the way down.
  EXPECT_EQ(reason(h, R"({"id":1,"total":1,"customer":{}})"), R"(schema: /customer: the required property "name" is missing)");
  EXPECT_EQ(reason(h, R"({"id":1,"total":1,"customer":{"name":5}})"),
            "schema: /customer/name: expected type string, got integer 5");
  EXPECT_EQ(reason(h, R"({"id":1,"total":1,"items":[{"qty":1},{"qty":0}]})"),
            "schema: /items/1/qty: 0 is less than the minimum 1");
  EXPECT_EQ(reason(h, R"({"id":1,"total":1,"items":{"qty":1}})"), "schema: /items: expected type array, got object");
  EXPECT_EQ(reason(h, R"([1,2])"), "schema: (root): expected type object, got array");
}

TEST(Validate, EveryFailingPlaceIsNamedUpToMaxErrors) {
  Harness<Validate> h(std::string(kOrders) + "max_errors: 3\n");
  EXPECT_EQ(reason(h, R"({"id":0,"total":"x","items":[{"qty":0},{"qty":-1}],"extra":1})"),
            R"(schema: /id: 0 is less than the minimum 1; /total: expected type number, got string "x"; )"
            R"(/items/0/qty: 0 is less than the minimum 1)");
  Harness<Validate> all(kOrders);
  EXPECT_EQ(reason(all, R"({"id":0,"total":"x","items":[{"qty":0},{"qty":-1}]})"),
            R"(schema: /id: 0 is less than the minimum 1; /total: expected type number, got string "x"; )"
            R"(/items/0/qty: 0 is less than the minimum 1; /items/1/qty: -1 is less than the minimum 1)");
}

TEST(Validate, TheValidatorIsReusedAcrossMessagesAndBatches) {
  Harness<Validate> h(kOrders);
  const std::string good = R"({"id":1,"total":2})";
  auto r = h.transform({{.payload = R"({"id":1,"total":"x"})"},
                        {.payload = good},
                        {.payload = R"({"id":1,"total":1,"customer":{"name":{"deep":[1,2]}}})"},
                        {.payload = "{\"id\":"},
                        {.payload = good}});
  ASSERT_EQ(r.rejected.size(), 3u);
  ASSERT_EQ(r.kept.size(), 2u);
  EXPECT_EQ(r.rejected[1].reason, "schema: /customer/name: expected type string, got object");
  for (int round = 0; round < 3; ++round) EXPECT_EQ(reason(h, good), "");
}

TEST(Validate, Draft07Keywords) {
  Harness<Validate> h(R"(schema:
  type: object
  dependencies: {card: [billing]}
  properties:
    tags: {type: array, uniqueItems: true, items: [{type: string}], additionalItems: false, contains: {const: a}}
    size: {type: [integer, "null"], exclusiveMaximum: 10, multipleOf: 2}
    kind: {oneOf: [{type: string}, {type: integer}]}
    meta: {type: object, minProperties: 1, propertyNames: {pattern: '^[a-z]+$'}}
    legacy: false
    version: {const: v1}
    level: {exclusiveMinimum: 0}
    ref: {$ref: '#/definitions/positive'}
    shipping: {if: {properties: {country: {const: FR}}}, then: {required: [postcode]}, else: {required: [zip]}}
  definitions:
    positive: {type: number, exclusiveMinimum: 0}
)");
  EXPECT_EQ(reason(h, R"({"tags":["a"],"size":null,"kind":"x","version":"v1","level":1,"ref":0.5})"), "");
  EXPECT_EQ(reason(h, R"({"card":"1234"})"), R"(schema: (root): property "card" requires property "billing" (dependencies))");
  EXPECT_EQ(reason(h, R"({"tags":["a","b"]})"), "schema: /tags: the array has 2 items; only 1 are allowed (additionalItems)");
  EXPECT_EQ(reason(h, R"({"tags":["b"]})"), "schema: /tags: no item matches the schema of contains");
  EXPECT_EQ(reason(h, R"({"size":10})"), "schema: /size: 10 is not less than the exclusive maximum 10");
  EXPECT_EQ(reason(h, R"({"size":3})"), "schema: /size: 3 is not a multiple of 2");
  EXPECT_EQ(reason(h, R"({"size":"3"})"), R"(schema: /size: expected type null or integer, got string "3")");
  EXPECT_EQ(reason(h, R"({"kind":true})"), "schema: /kind: true matches none of the 2 schemas of oneOf");
  EXPECT_EQ(reason(h, R"({"meta":{}})"), "schema: /meta: the object has 0 properties, fewer than the minimum 1");
  EXPECT_EQ(reason(h, R"({"meta":{"A":1}})"),
            R"(schema: /meta/A: the property name "A" does not match the schema of propertyNames)");
  EXPECT_EQ(reason(h, R"({"legacy":1})"), "schema: /legacy: nothing is allowed here (the schema at schema#/properties/legacy is false)");
  EXPECT_EQ(reason(h, R"({"version":"v2"})"), R"(schema: /version: "v2" is not the allowed value "v1")");
  EXPECT_EQ(reason(h, R"({"level":0})"), "schema: /level: 0 is not more than the exclusive minimum 0");
  EXPECT_EQ(reason(h, R"({"ref":0})"), "schema: /ref: 0 is not more than the exclusive minimum 0");
  EXPECT_EQ(reason(h, R"({"shipping":{"country":"FR","zip":"1"}})"), R"(schema: /shipping: the required property "postcode" is missing)");
  EXPECT_EQ(reason(h, R"({"shipping":{"country":"DE"}})"), R"(schema: /shipping: the required property "zip" is missing)");

  Harness<Validate> unique("schema: {type: array, uniqueItems: true}");
  EXPECT_EQ(reason(unique, R"([1,{"a":2},3,{"a":2.0}])"), "schema: (root): items 1 and 3 are equal, and uniqueItems is set");
  EXPECT_EQ(reason(unique, R"([[1,"a"],["a",1]])"), "");
  Harness<Validate> objects_enum("schema: {enum: [{a: 1}, [b]]}");
  EXPECT_EQ(reason(objects_enum, R"({"a":1.0})"), "");
  EXPECT_EQ(reason(objects_enum, R"({"a":1,"b":2})"), R"(schema: (root): an object is not one of [{"a":1},["b"]])");
}

TEST(Validate, Draft04IsSelectedBySchema) {
  Harness<Validate> h(R"(schema:
  $schema: 'http://json-schema.org/draft-04/schema#'
  properties:
    size: {maximum: 10, exclusiveMaximum: true}
    n: {type: integer}
)");
  EXPECT_EQ(reason(h, R"({"size":9.99,"n":3})"), "");
  EXPECT_EQ(reason(h, R"({"size":10})"), "schema: /size: 10 is not less than the exclusive maximum 10");
  EXPECT_EQ(reason(h, R"({"n":3.0})"), "schema: /n: expected type integer, got integer 3.0");  // draft-04: 3.0 is written as a float
  std::string e = load_error("schema: {$schema: 'https://json-schema.org/draft/2020-12/schema'}");
  EXPECT_TRUE(starts_with(e, "<harness>:1:19: schema.$schema: $schema \"https://json-schema.org/draft/2020-12/schema\" is not a "
                             "draft this validator implements")) << e;
}

TEST(Validate, NumbersAreComparedAsWritten) {
  Harness<Validate> h("schema: {properties: {a: {maximum: 9007199254740990}, b: {multipleOf: 0.01}, c: {type: integer}, "
                      "d: {minimum: 1e300}}}");
  EXPECT_EQ(reason(h, R"({"a":9007199254740990})"), "");
  EXPECT_EQ(reason(h, R"({"a":9007199254740991.0})"), "schema: /a: 9007199254740991.0 is more than the maximum 9007199254740990");
  EXPECT_EQ(reason(h, R"({"b":19.99,"c":12345678901234567890123,"d":2e300})"), "");
  EXPECT_EQ(reason(h, R"({"b":0.075})"), "schema: /b: 0.075 is not a multiple of 0.01");
  EXPECT_EQ(reason(h, R"({"d":9e299})"), "schema: /d: 9e299 is less than the minimum 1e+300");
  // Beyond a double's range a number is refused, with that reason.
  EXPECT_EQ(reason(h, R"({"d":2e400})"), "payload is not JSON at byte 5: Number too big to be stored in double.");

  // YAML reads 12345678901234567890 as text; a schema file keeps it a number.
  TempDir dir;
  std::string path = dir.write("big.json", R"({"const": 12345678901234567890})");
  Harness<Validate> big("schema_file: " + path);
  EXPECT_EQ(reason(big, "12345678901234567890.0"), "");
  EXPECT_EQ(reason(big, "12345678901234567891"), "schema: (root): 12345678901234567891 is not the allowed value 12345678901234567890");
}

TEST(Validate, NulAndEveryCharacterAreChecked) {
  Harness<Validate> h(R"(schema: {properties: {code: {pattern: '^[a-z]+$'}, note: {maxLength: 3}}})");
  EXPECT_EQ(reason(h, R"({"code":"abc"})"), "");
  EXPECT_EQ(reason(h, R"({"code":"abc\u0000; DROP TABLE"})"),
            R"(schema: /code: "abc\u0000; DROP TABLE" does not match the pattern "^[a-z]+$")");
  // A surrogate pair is one character; an unpaired surrogate is not I-JSON.
  EXPECT_EQ(reason(h, R"({"note":"\uD83D\uDE00ab"})"), "");
  EXPECT_EQ(reason(h, R"({"note":"\uD83D\uDE00abcd"})"), "schema: /note: the string of 5 characters is longer than the maximum 3");
  EXPECT_EQ(reason(h, R"({"note":"\uDC00abc"})"),
            "payload is not JSON at byte 19: a string holds an unpaired UTF-16 surrogate (\\uD800-\\uDFFF), which "
            "is not Unicode text (I-JSON, RFC 7493)");
  EXPECT_EQ(reason(h, R"({"note":"\uD800"})"), "payload is not JSON at byte 9: The surrogate pair in string is invalid.");
  // \d is ASCII as in ECMA-262; $ only at the very end.
  Harness<Validate> digits(R"(schema: {pattern: '^\d+$'})");
  EXPECT_EQ(reason(digits, R"("123")"), "");
  EXPECT_NE(reason(digits, "\"\xd9\xa3\""), "");  // ARABIC-INDIC DIGIT THREE
  EXPECT_NE(reason(digits, R"("123\n")"), "");
}

TEST(Validate, APatternThatBacktracksWithoutEndGivesUp) {
  Harness<Validate> h(R"(schema: {pattern: '^(a+)+$'})");
  std::string evil = "\"" + std::string(40, 'a') + "!\"";
  EXPECT_EQ(reason(h, evil).rfind("schema: (root): \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...\" ", 0), 0u) << reason(h, evil);
  EXPECT_EQ(reason(h, "\"aaa\""), "");
}

TEST(Validate, DropModeDropsMismatchesButStillRejectsWhatIsNotJson) {
  Harness<Validate> h(std::string(kOrders) + "on_invalid: drop\n");
  auto r = h.transform({{.payload = R"({"id":1,"total":2})"},
                        {.payload = R"({"id":"x","total":2})"},
                        {.payload = "{bad"},
                        {.payload = "[1,"}});
  ASSERT_EQ(r.kept.size(), 1u);
  EXPECT_EQ(r.kept[0].payload, R"({"id":1,"total":2})");
  EXPECT_EQ(r.dropped, 1u);
  ASSERT_EQ(r.rejected.size(), 2u);
  EXPECT_EQ(r.rejected[0].reason, "payload is not JSON at byte 1: Missing a name for object member.");
  EXPECT_EQ(r.rejected[1].reason, "payload is not JSON at byte 3: Invalid value.");
  auto logs = h.logs();
  ASSERT_EQ(logs.size(), 1u);
  EXPECT_EQ(logs[0], R"(dropped: schema: /id: expected type integer, got string "x")");
}

TEST(Validate, APayloadThatIsNotIJsonIsRejectedWithTheRealReason) {
  Harness<Validate> h(kOrders);
  EXPECT_EQ(reason(h, "not json"), "payload is not JSON at byte 1: Invalid value.");
  EXPECT_EQ(reason(h, R"({"id":1,"total":2)"), "payload is not JSON at byte 17: Missing a comma or '}' after an object member.");
  EXPECT_EQ(reason(h, R"({"id":1,"total":2} {})"), "payload is not JSON at byte 19: something follows the JSON value");
  EXPECT_EQ(reason(h, ""), "payload is not JSON at byte 0: The document is empty.");
  EXPECT_EQ(reason(h, "{\"id\":1,\"total\":2,\"note\":\"\xff\"}"), "payload is not JSON at byte 26: Invalid encoding in string.");
  EXPECT_EQ(reason(h, R"({"id":1,"total":2,"id":3})"),
            "payload is not JSON at byte 24: the member name \"id\" appears twice in one object (I-JSON, RFC 7493: "
            "readers disagree on which one counts)");
}

TEST(Validate, NestingDeeperThanMaxDepthIsRejected) {
  const size_t depth = 200000;
  const std::string deep = std::string(depth, '[') + std::string(depth, ']');
  Harness<Validate> arrays("schema: {type: array}");
  EXPECT_EQ(reason(arrays, deep), "payload is not JSON at byte 256: nested deeper than 256 levels");
  const std::string at_limit = std::string(256, '[') + std::string(256, ']');
  EXPECT_EQ(reason(arrays, at_limit), "");

  Harness<Validate> shallow("schema: {type: object}\nmax_depth: 2\non_invalid: drop");
  auto r = shallow.transform({{.payload = R"({"a":{"b":1}})"}, {.payload = R"({"a":{"b":[1]}})"}});
  EXPECT_EQ(r.kept.size(), 1u);
  EXPECT_EQ(r.rejected.size(), 1u);  // too deep to read is never dropped in silence

  Harness<Validate> enums("schema: {enum: [1, 2]}\nmax_depth: 4096");
  EXPECT_EQ(reason(enums, std::string(4000, '[') + std::string(4000, ']')),
            "schema: (root): an array of 1 item is not one of [1,2]");
}

TEST(Validate, FormatIsAnAnnotationUnlessAsserted) {
  const std::string schema = "schema: {properties: {at: {format: date-time}, mail: {format: email}, ip: {format: ipv4}, "
                             "id: {format: uuid}, x: {format: made-up}}}\n";
  Harness<Validate> plain(schema);
  EXPECT_EQ(reason(plain, R"({"at":"yesterday","mail":"nobody","ip":"1.2.3.999"})"), "");
  Harness<Validate> strict(schema + "format_assertion: true\n");
  EXPECT_EQ(reason(strict, R"({"at":"2026-12-07T10:00:00.5+01:00","mail":"a.b@example.com","ip":"10.0.0.1",)"
                           R"("id":"123e4567-e89b-12d3-a456-426614174000","x":"anything"})"),
            "");
  EXPECT_EQ(reason(strict, R"({"at":"2026-02-30T10:00:00Z","mail":"a..b@x.io","ip":"01.2.3.4"})"),
            R"(schema: /at: "2026-02-30T10:00:00Z" is not a valid date-time; /mail: "a..b@x.io" is not a valid email; )"
            R"(/ip: "01.2.3.4" is not a valid ipv4)");
}

TEST(Validate, SchemaFromAFileAndRefsAcrossFiles) {
  TempDir dir;
  dir.write("types/id.json", R"({"$id": "https://schemas.example.com/id.json", "type": "string", "minLength": 2})");
  dir.write("address.json", R"({"type": "object", "required": ["city"], "definitions": {"zip": {"pattern": "^[0-9]{5}$"}}})");
  std::string path = dir.write("order.json", R"({
  "$schema": "http://json-schema.org/draft-07/schema#",
  "type": "object",
  "required": ["id"],
  "properties": {
    "id": {"$ref": "https://schemas.example.com/id.json"},
    "to": {"$ref": "address.json"},
    "zip": {"$ref": "address.json#/definitions/zip"},
    "same": {"$ref": "#item"}
  },
  "definitions": {"item": {"$id": "#item", "type": "integer"}}
})");
  Harness<Validate> h("schema_file: " + path + "\nschema_dir: " + dir.path());
  EXPECT_EQ(reason(h, R"({"id":"ab","to":{"city":"Lyon"},"zip":"69001","same":1})"), "");
  EXPECT_EQ(reason(h, R"({"id":"a","to":{},"zip":"6900","same":"1"})"),
            R"(schema: /id: the string of 1 characters is shorter than the minimum 2; )"
            R"(/to: the required property "city" is missing; /zip: "6900" does not match the pattern "^[0-9]{5}$"; )"
            R"(/same: expected type integer, got string "1")");

  // Never the network, never outside schema_dir.
  std::string e = load_error("schema: {$ref: 'https://example.com/remote.json'}\nschema_dir: " + dir.path());
  EXPECT_NE(e.find("edgeflow never fetches schemas over a network"), std::string::npos) << e;
  e = load_error("schema: {$ref: '../etc/passwd'}\nschema_dir: " + dir.path());
  EXPECT_NE(e.find("is not this schema, nor a schema file in schema_dir"), std::string::npos) << e;
}

TEST(Validate, UnknownKeywordsAreWarnedAbout) {
  Harness<Validate> h("schema: {properties: {n: {type: integer, minimun: 1}}, x-owner: team-a, $comment: hi}");
  auto logs = h.logs();
  ASSERT_EQ(logs.size(), 1u);
  EXPECT_EQ(logs[0], "schema: 'minimun' at schema#/properties/n/minimun is not a keyword of this draft, so it checks "
                     "nothing; did you mean 'minimum'?");
}

// --- load-time errors: each points at the YAML (or the file and its pointer) ------------------

TEST(ValidateConfig, ExactlyOneOfSchemaAndSchemaFile) {
  std::string neither = load_error("on_invalid: drop");
  EXPECT_TRUE(starts_with(neither, "<harness>:1:1: schema: missing; give the JSON Schema inline")) << neither;
  std::string both = load_error("schema: {type: object}\nschema_file: /etc/s.json");
  EXPECT_EQ(both, "<harness>:2:14: schema_file: give either schema or schema_file, not both; remove one");
  std::string empty = load_error("schema: null\non_invalid: reject");
  EXPECT_TRUE(starts_with(empty, "<harness>:1:9: schema: missing")) << empty;
}

TEST(ValidateConfig, TheSchemaMustBeASchema) {
  EXPECT_EQ(load_error("schema: [1, 2]"), "<harness>:1:9: schema: expected a schema: an object or true/false");
  std::string quoted = load_error("on_invalid: drop\nschema: '{\"type\": \"object\"}'");
  EXPECT_EQ(quoted, "<harness>:2:9: schema: expected a schema: an object or true/false");
  EXPECT_EQ(load_error("schema: {$schema: 'http://json-schema.org/draft-04/schema#', properties: {a: true}}"),
            "<harness>:1:78: schema.properties.a: expected a schema: an object (draft-04 has no boolean schemas; "
            "write {} for true, {\"not\": {}} for false)");
}

TEST(ValidateConfig, SchemaFileErrors) {
  TempDir dir;
  std::string missing = load_error("schema_file: /nonexistent/dir/order.json");
  EXPECT_EQ(missing,
            "<harness>:1:14: schema_file: cannot read /nonexistent/dir/order.json: No such file or directory; "
            "give the path of a readable JSON Schema file (relative paths start at the daemon's working directory)");
  std::string broken = dir.write("broken.json", "{\n  \"type\": \"object\",\n  \"properties\": {\n}");
  EXPECT_EQ(load_error("schema_file: " + broken),
            "<harness>:1:14: schema_file: " + broken + ": not JSON at byte 41: Missing a comma or '}' after an object member.");
  std::string bad = dir.write("bad.json", R"({"properties": {"tags": {"type": "array", "minItems": -1}}})");
  EXPECT_EQ(load_error("on_invalid: drop\nschema_file: " + bad),
            "<harness>:2:14: schema_file: " + bad + "#/properties/tags/minItems: minItems must be a non-negative integer");
}

TEST(ValidateConfig, KeywordValuesAreChecked) {
  struct Case {
    const char* yaml;
    const char* error;
  } cases[] = {
      {"schema: {type: float}", "<harness>:1:16: schema.type: type \"float\" is not a JSON Schema type"},
      {"schema: {required: id}", "<harness>:1:20: schema.required: required must be an array of property names"},
      {"schema: {minimum: '5'}", "<harness>:1:19: schema.minimum: minimum must be a number"},
      {"schema: {maxLength: -1}", "<harness>:1:21: schema.maxLength: maxLength must be a non-negative integer"},
      {"schema: {minItems: 2.5}", "<harness>:1:20: schema.minItems: minItems must be a non-negative integer"},
      {"schema: {enum: []}", "<harness>:1:16: schema.enum: enum must list at least one value"},
      {"schema: {multipleOf: 0}", "<harness>:1:22: schema.multipleOf: multipleOf must be more than 0"},
      {"schema: {properties: {a: 5}}", "<harness>:1:26: schema.properties.a: expected a schema: an object or true/false"},
      {"schema: {patternProperties: 5}", "<harness>:1:29: schema.patternProperties: patternProperties must be an object of schemas"},
      {"schema: {pattern: '(a'}", "<harness>:1:19: schema.pattern: pattern \"(a\" is not a regular expression: missing closing parenthesis"},
      {"schema: {anyOf: []}", "<harness>:1:17: schema.anyOf: anyOf must be a non-empty array of schemas"},
      {"schema: {required: [a, a]}", "<harness>:1:24: schema.required[1]: required names \"a\" twice"},
  };
  for (auto& c : cases) {
    std::string e = load_error(c.yaml);
    EXPECT_TRUE(starts_with(e, c.error)) << c.yaml << "\n  got: " << e;
  }
  // A decimal count that is a whole number is one.
  EXPECT_EQ(load_error("schema: {minItems: 2.0}"), "");
}

TEST(ValidateConfig, RefsMustResolveAndNeverLoop) {
  std::string e = load_error("schema: {properties: {a: {$ref: '#/definitions/nope'}}}");
  EXPECT_TRUE(starts_with(e, "<harness>:1:33: schema.properties.a.$ref: $ref \"#/definitions/nope\": nothing at /definitions")) << e;
  e = load_error("schema: {$ref: '#foo'}");
  EXPECT_TRUE(starts_with(e, "<harness>:1:16: schema.$ref: $ref \"#foo\": no schema has the $id #foo")) << e;
  e = load_error("schema: {allOf: [{$ref: '#'}]}");
  EXPECT_NE(e.find("applies itself to the same value without end"), std::string::npos) << e;

  Harness<Validate> spaced("schema: {properties: {a: {$ref: '#/definitions/order item'}, b: {$ref: '#/definitions/order%20item'}}, "
                           "definitions: {order item: {type: integer}}}");
  EXPECT_EQ(reason(spaced, R"({"a":1,"b":2})"), "");
  EXPECT_EQ(reason(spaced, R"({"b":"x"})"), R"(schema: /b: expected type integer, got string "x")");

  // A recursive schema (a tree) is fine: the recursion follows the document.
  Harness<Validate> tree(R"(schema:
  type: object
  required: [name]
  properties:
    name: {type: string}
    children: {type: array, items: {$ref: '#'}}
)");
  EXPECT_EQ(reason(tree, R"({"name":"a","children":[{"name":"b","children":[{"name":"c"}]}]})"), "");
  EXPECT_EQ(reason(tree, R"({"name":"a","children":[{"name":"b","children":[{}]}]})"),
            R"(schema: /children/0/children/0: the required property "name" is missing)");
}

TEST(Validate, PatternsAreEcma262) {
  struct Case {
    const char* pattern;
    const char* yes;
    const char* no;
  } cases[] = {
      {"^\\d{4}-\\d{2}$", "2024-05", "2024-5x"},
      {"^\\w+$", "ab_9", "a-b"},
      {"^\\S+\\s\\S+$", "a b", "a  b"},
      {"^[\\d.]+$", "1.2", "1,2"},
      {"^(?:ab)+$", "abab", "aba"},
      {"^a+?b$", "aab", "ba"},
      {"\\bword\\b", "a word here", "swordfish"},
      {"^(?=.*x)", "axb", "ab"},
      {"^\\u0041$", "A", "B"},
      {"^\\p{L}+$", "héllo", "h3llo"},
      {"x", "axb", "ab"},
  };
  for (auto& c : cases) {
    std::string yaml = std::string("schema: {pattern: '") + c.pattern + "'}";
    Harness<Validate> h(yaml);
    EXPECT_EQ(reason(h, std::string("\"") + c.yes + "\""), "") << c.pattern;
    EXPECT_NE(reason(h, std::string("\"") + c.no + "\""), "") << c.pattern << " accepted " << c.no;
  }
}
