// The validate transformer through the SDK harness: what passes unchanged, the reason each kind
// of violation gets, drop mode, payloads that are not JSON, schema files, and the load-time
// errors (with their <harness>:line:col) for schemas RapidJSON 1.1 would silently misread.
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
    std::string p = (path_ / name).string();
    std::ofstream(p) << content;
    return p;
  }

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

TEST(Validate, EachViolationNamesTheKeywordAndThePlace) {
  Harness<Validate> h(kOrders);
  EXPECT_EQ(reason(h, R"({"id":1,"total":"12.5"})"),
            R"(schema: #/properties/total: expected type number, got string "12.5" at /total)");
  EXPECT_EQ(reason(h, R"({"id":1})"), R"(schema: #: missing required property "total" at the root)");
  EXPECT_EQ(reason(h, R"({})"), R"(schema: #: missing required properties "id", "total" at the root)");
  EXPECT_EQ(reason(h, R"({"id":0,"total":1})"), "schema: #/properties/id: 0 is less than the minimum 1 at /id");
  EXPECT_EQ(reason(h, R"({"id":1.5,"total":1})"),
            "schema: #/properties/id: expected type integer, got number 1.5 at /id");
  EXPECT_EQ(reason(h, R"({"id":1,"total":1,"status":"lost"})"),
            R"(schema: #/properties/status: "lost" is not one of ["new","paid","shipped"] at /status)");
  EXPECT_EQ(reason(h, R"({"id":1,"total":1,"code":"AB-1"})"),
            R"(schema: #/properties/code: "AB-1" does not match the pattern "^[A-Z]{3}-\d+$" at /code)");
  EXPECT_EQ(reason(h, R"({"id":1,"total":1,"code":"ABC-x1"})"),
            R"(schema: #/properties/code: "ABC-x1" does not match the pattern "^[A-Z]{3}-\d+$" at /code)");
  EXPECT_EQ(reason(h, R"({"id":1,"total":1,"extra":true})"),
            R"(schema: #: property "extra" is not allowed (additionalProperties: false) at /extra)");
  EXPECT_EQ(reason(h, R"({"id":1,"total":1,"note":"abcdef"})"),
            "schema: #/properties/note: string of 6 characters is longer than maxLength 5 at /note");
  EXPECT_EQ(reason(h, R"({"id":1,"total":1,"items":[]})"),
            "schema: #/properties/items: array has 0 items, fewer than minItems 1 at /items");
  // Nested objects and array items: the pointers go all the way down.
  EXPECT_EQ(reason(h, R"({"id":1,"total":1,"customer":{}})"),
            R"(schema: #/properties/customer: missing required property "name" at /customer)");
  EXPECT_EQ(reason(h, R"({"id":1,"total":1,"customer":{"name":5}})"),
            "schema: #/properties/customer/properties/name: expected type string, got integer 5 at /customer/name");
  EXPECT_EQ(reason(h, R"({"id":1,"total":1,"items":[{"qty":1},{"qty":0}]})"),
            "schema: #/properties/items/items/properties/qty: 0 is less than the minimum 1 at /items/1/qty");
  EXPECT_EQ(reason(h, R"({"id":1,"total":1,"items":{"qty":1}})"),
            "schema: #/properties/items: expected type array, got object at /items");
  EXPECT_EQ(reason(h, R"([1,2])"), "schema: #: expected type object, got array at the root");
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
  EXPECT_EQ(r.rejected[1].reason,
            "schema: #/properties/customer/properties/name: expected type string, got object at /customer/name");
  for (int round = 0; round < 3; ++round) EXPECT_EQ(reason(h, good), "");
}

TEST(Validate, MoreKeywords) {
  Harness<Validate> h(R"(schema:
  type: object
  dependencies: {card: [billing]}
  properties:
    tags: {type: array, uniqueItems: true, items: [{type: string}], additionalItems: false}
    size: {type: [integer, "null"], maximum: 10, exclusiveMaximum: true, multipleOf: 2}
    kind: {oneOf: [{type: string}, {type: integer}]}
    meta: {type: object, minProperties: 1}
    legacy: false
    version: {const: v1}
    level: {exclusiveMinimum: 0}
    ref: {$ref: '#/definitions/positive'}
  definitions:
    positive: {type: number, minimum: 0, exclusiveMinimum: true}
)");
  EXPECT_EQ(reason(h, R"({"tags":["a"],"size":null,"kind":"x","version":"v1","level":1,"ref":0.5})"), "");
  EXPECT_EQ(reason(h, R"({"card":"1234"})"), R"(schema: #: property "card" requires property "billing" at the root)");

  Harness<Validate> deps(R"(schema: {dependencies: {a: {required: [x]}, b: [c]}})");
  EXPECT_EQ(reason(deps, R"({"a":1,"x":1,"b":1})"), R"(schema: #: property "b" requires property "c" at the root)");
  EXPECT_EQ(reason(deps, R"({"a":1,"b":1,"c":1})"), R"(schema: #: property "a" requires the object to match #/dependencies/a at the root)");
  EXPECT_EQ(reason(h, R"({"tags":["a","b"]})"),
            "schema: #/properties/tags: array has more than 1 item (items is a list and additionalItems is false) at /tags/1");
  EXPECT_EQ(reason(h, R"({"size":10})"), "schema: #/properties/size: 10 is not less than the exclusive maximum 10 at /size");
  EXPECT_EQ(reason(h, R"({"size":3})"), "schema: #/properties/size: 3 is not a multiple of 2 at /size");
  EXPECT_EQ(reason(h, R"({"size":"3"})"), R"(schema: #/properties/size: expected type integer or null, got string "3" at /size)");
  EXPECT_EQ(reason(h, R"({"kind":true})"), "schema: #/properties/kind: matches none, or more than one, of the schemas in oneOf at /kind");
  EXPECT_EQ(reason(h, R"({"meta":{}})"), "schema: #/properties/meta: object has 0 properties, fewer than minProperties 1 at /meta");
  // Draft-06 forms RapidJSON 1.1 would skip are rewritten: a false subschema, const, a numeric
  // exclusiveMinimum.
  EXPECT_EQ(reason(h, R"({"legacy":1})"), "schema: #/properties/legacy: no value is allowed here (the schema is false) at /legacy");
  EXPECT_EQ(reason(h, R"({"version":"v2"})"), R"(schema: #/properties/version: "v2" is not the allowed value "v1" at /version)");
  EXPECT_EQ(reason(h, R"({"level":0})"), "schema: #/properties/level: 0 is not greater than the exclusive minimum 0 at /level");
  EXPECT_EQ(reason(h, R"({"ref":0})"), "schema: #/definitions/positive: 0 is not greater than the exclusive minimum 0 at /ref");

  Harness<Validate> patterns(R"(schema: {patternProperties: {'^n_\d+$': {type: integer}}, additionalProperties: false})");
  EXPECT_EQ(reason(patterns, R"({"n_1":1,"n_22":2})"), "");
  EXPECT_EQ(reason(patterns, R"({"n_1":"x"})"),
            R"(schema: patternProperties: the value of property "n_1" does not match the schema of its matching pattern at /n_1)");
  EXPECT_EQ(reason(patterns, R"({"n_x":1})"), R"(schema: #: property "n_x" is not allowed (additionalProperties: false) at /n_x)");
  EXPECT_EQ(reason(patterns, R"({"n_1":1,"zz":{}})"), R"(schema: #: property "zz" is not allowed (additionalProperties: false) at /zz)");

  // Names in required and dependencies are not declared properties: additionalProperties
  // still applies to them (RapidJSON 1.1 alone would accept both of these).
  Harness<Validate> closed(R"(schema: {additionalProperties: false, properties: {a: {}}, dependencies: {a: [b]}})");
  EXPECT_EQ(reason(closed, R"({"a":1,"b":2})"), R"(schema: #: property "b" is not allowed (additionalProperties: false) at /b)");
  Harness<Validate> typed(R"(schema: {additionalProperties: {type: integer}, required: [n]})");
  EXPECT_EQ(reason(typed, R"({"n":1})"), "");
  EXPECT_EQ(reason(typed, R"({"n":"x"})"), R"(schema: #/properties/n: expected type integer, got string "x" at /n)");

  Harness<Validate> unique("schema: {type: array, uniqueItems: true}");
  EXPECT_EQ(reason(unique, R"([1,{"a":2},3,{"a":2}])"), "schema: #: item 3 repeats item 1 (uniqueItems) at /3");
  EXPECT_EQ(reason(unique, R"([[1,"a"],["a",1],[1,"a"]])"), "schema: #: item 2 repeats item 0 (uniqueItems) at /2");
  Harness<Validate> arrays_enum("schema: {enum: [[1, a], [b]]}");
  EXPECT_EQ(reason(arrays_enum, R"([1,"a"])"), "");
  EXPECT_EQ(reason(arrays_enum, R"(["a",1])"), R"(schema: #: ["a",1] is not one of [[1,"a"],["b"]] at the root)");
}

TEST(Validate, StringsTheChecksCannotSeeThroughAreRejected) {
  // RapidJSON's pattern matcher stops at U+0000 and its length count gives up on an unpaired
  // surrogate: unchecked, both would let these through.
  Harness<Validate> h(R"(schema: {properties: {code: {pattern: '^[a-z]+$'}, note: {maxLength: 3}}})");
  EXPECT_EQ(reason(h, R"({"code":"abc"})"), "");
  EXPECT_EQ(reason(h, R"({"code":"abc\u0000; DROP TABLE"})"),
            "schema: cannot check the string at /code: it holds U+0000 or an unpaired UTF-16 surrogate "
            "(\\uDC00-\\uDFFF), where pattern and length checks would stop early");
  EXPECT_TRUE(starts_with(reason(h, R"({"note":"\uDC00abcdefgh"})"), "schema: cannot check the string at /note: "));
  EXPECT_TRUE(starts_with(reason(h, R"({"a\u0000b":1})"), "schema: cannot check the string at /a\\u0000b: "));
  // A proper surrogate pair is one character.
  EXPECT_EQ(reason(h, R"({"note":"\uD83D\uDE00ab"})"), "");

  // Without patterns, U+0000 cannot fool anything and passes.
  Harness<Validate> lengths(R"(schema: {properties: {note: {maxLength: 3}}})");
  EXPECT_EQ(reason(lengths, R"({"note":"a\u0000b"})"), "");
  EXPECT_TRUE(starts_with(reason(lengths, R"({"note":"abcd\uDC00"})"), "schema: cannot check the string at /note: "));
}

TEST(Validate, DropModeDropsMismatchesButStillRejectsWhatIsNotJson) {
  Harness<Validate> h(std::string(kOrders) + "on_invalid: drop\n");
  auto r = h.transform({{.payload = R"({"id":1,"total":2})"}, {.payload = R"({"id":"x","total":2})"}, {.payload = "nope"}});
  ASSERT_EQ(r.kept.size(), 1u);
  EXPECT_EQ(r.kept[0].payload, R"({"id":1,"total":2})");
  EXPECT_EQ(r.dropped, 1u);
  ASSERT_EQ(r.rejected.size(), 1u);
  EXPECT_TRUE(starts_with(r.rejected[0].reason, "payload is not JSON: ")) << r.rejected[0].reason;
  auto logs = h.logs();
  ASSERT_EQ(logs.size(), 1u);
  EXPECT_EQ(logs[0], R"(dropped: schema: #/properties/id: expected type integer, got string "x" at /id)");
}

TEST(Validate, APayloadThatIsNotJsonIsRejectedWithTheParseErrorAndOffset) {
  Harness<Validate> h(kOrders);
  EXPECT_EQ(reason(h, "not json"), "payload is not JSON: Invalid value. at offset 1");
  EXPECT_EQ(reason(h, R"({"id":1,"total":2)"), "payload is not JSON: Missing a comma or '}' after an object member. at offset 17");
  EXPECT_EQ(reason(h, R"({"id":1,"total":2} {})"), "payload is not JSON: The document root must not be followed by other values. at offset 19");
  EXPECT_EQ(reason(h, ""), "payload is not JSON: The document is empty. at offset 0");
  EXPECT_EQ(reason(h, "{\"id\":1,\"total\":2,\"note\":\"\xff\"}"), "payload is not JSON: Invalid encoding in string. at offset 26");
}

TEST(Validate, NestingDeeperThanMaxDepthDoesNotMatch) {
  // RapidJSON 1.1's validator costs O(depth^2): unbounded, this 400 kB payload would hold the
  // flow's thread for minutes.
  const size_t depth = 200000;
  const std::string deep = std::string(depth, '[') + std::string(depth, ']');
  Harness<Validate> arrays("schema: {type: array}");
  EXPECT_EQ(reason(arrays, deep), "schema: the payload nests objects and arrays deeper than max_depth (256)");
  const std::string at_limit = std::string(256, '[') + std::string(256, ']');
  EXPECT_EQ(reason(arrays, at_limit), "");
  EXPECT_EQ(reason(arrays, "[" + at_limit + "]"), "schema: the payload nests objects and arrays deeper than max_depth (256)");

  Harness<Validate> shallow("schema: {type: object}\nmax_depth: 2\non_invalid: drop");
  auto r = shallow.transform({{.payload = R"({"a":{"b":1}})"}, {.payload = R"({"a":{"b":[1]}})"}, {.payload = R"({"a":[{}]})"}});
  EXPECT_EQ(r.kept.size(), 1u);
  EXPECT_EQ(r.dropped, 2u);

  // Printing the offending value stays shallow.
  Harness<Validate> enums("schema: {enum: [1, 2]}\nmax_depth: 4096");
  EXPECT_EQ(reason(enums, std::string(4000, '[') + std::string(4000, ']')),
            "schema: #: a deeply nested array is not one of [1,2] at the root");
}

TEST(Validate, SchemaFromAFile) {
  TempDir dir;
  std::string path = dir.write("order.json", R"({
  "$schema": "http://json-schema.org/draft-04/schema#",
  "title": "order",
  "type": "object",
  "required": ["id"],
  "properties": {"id": {"$ref": "#/definitions/id"}},
  "definitions": {"id": {"type": "string", "minLength": 2}}
})");
  Harness<Validate> h("schema_file: " + path);
  EXPECT_EQ(reason(h, R"({"id":"ab"})"), "");
  EXPECT_EQ(reason(h, R"({"id":"a"})"), "schema: #/definitions/id: string of 1 character is shorter than minLength 2 at /id");
  EXPECT_EQ(reason(h, R"({"id":7})"), "schema: #/definitions/id: expected type string, got integer 7 at /id");
}

TEST(Validate, IgnoredKeywordsAreDroppedWithAWarning) {
  Harness<Validate> h(R"(schema:
  properties:
    email: {type: string, format: email}
    site: {type: string, format: uri}
ignore_keywords: [format])");
  EXPECT_EQ(reason(h, R"({"email":"not an address"})"), "");
  EXPECT_EQ(reason(h, R"({"email":5})"), "schema: #/properties/email: expected type string, got integer 5 at /email");
  auto logs = h.logs();
  ASSERT_FALSE(logs.empty());
  EXPECT_EQ(logs[0], "schema: 'format' is not checked (ignore_keywords): 2 places, the first at #/properties/email/format");
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

TEST(ValidateConfig, TheSchemaMustBeAnObject) {
  EXPECT_TRUE(starts_with(load_error("schema: [1, 2]"), "<harness>:1:9: schema: a schema must be a JSON object")) << load_error("schema: [1, 2]");
  std::string quoted = load_error("on_invalid: drop\nschema: '{\"type\": \"object\"}'");
  EXPECT_TRUE(starts_with(quoted, "<harness>:2:9: schema: a schema must be a JSON object")) << quoted;
  EXPECT_NE(quoted.find("got string"), std::string::npos) << quoted;
  EXPECT_TRUE(starts_with(load_error("schema: true"), "<harness>:1:9: schema: a schema must be a JSON object"));
}

TEST(ValidateConfig, SchemaFileErrors) {
  TempDir dir;
  std::string missing = load_error("schema_file: /nonexistent/dir/order.json");
  EXPECT_EQ(missing,
            "<harness>:1:14: schema_file: cannot read /nonexistent/dir/order.json: No such file or directory; "
            "give the path of a readable JSON Schema file (relative paths start at the daemon's working directory)");

  std::string broken = dir.write("broken.json", "{\n  \"type\": \"object\",\n  \"properties\": {\n}");
  EXPECT_EQ(load_error("schema_file: " + broken),
            "<harness>:1:14: schema_file: " + broken + ":4:2: not JSON: Missing a comma or '}' after an object member. (offset 41)");

  std::string list = dir.write("list.json", "[{\"type\": \"object\"}]");
  EXPECT_TRUE(starts_with(load_error("schema_file: " + list), "<harness>:1:14: schema_file: " + list + ": #: a schema must be a JSON object"));

  std::string draft7 = dir.write("d7.json", R"({"properties": {"tags": {"type": "array", "contains": {"type": "string"}}}})");
  EXPECT_TRUE(starts_with(load_error("on_invalid: drop\nschema_file: " + draft7),
                          "<harness>:2:14: schema_file: " + draft7 + ": #/properties/tags/contains: 'contains' is not supported"))
      << load_error("schema_file: " + draft7);
}

TEST(ValidateConfig, UnsupportedKeywordsAreRefusedWhereTheyStand) {
  std::string e = load_error(R"(schema:
  type: object
  properties:
    tags:
      type: array
      contains: {type: string}
)");
  EXPECT_TRUE(starts_with(e, "<harness>:6:17: schema.properties.tags.contains: 'contains' is not supported (a draft-06 keyword)")) << e;
  EXPECT_NE(e.find("list it in ignore_keywords"), std::string::npos) << e;

  e = load_error("schema:\n  if: {properties: {a: {const: 1}}}\n  then: {required: [b]}\n");
  EXPECT_TRUE(starts_with(e, "<harness>:2:7: schema.if: 'if' is not supported (a draft-07 keyword;")) << e;

  e = load_error("schema:\n  properties:\n    email: {type: string, format: email}\n");
  EXPECT_TRUE(starts_with(e, "<harness>:3:35: schema.properties.email.format: 'format' is not supported")) << e;

  e = load_error("schema:\n  properties:\n    n: {type: integer, minimun: 1}\n");
  EXPECT_TRUE(starts_with(e, "<harness>:3:33: schema.properties.n.minimun: unknown keyword 'minimun'. Did you mean 'minimum'?")) << e;

  // Vendor extensions and annotations are fine; listing a supported keyword to ignore is not.
  EXPECT_EQ(load_error("schema: {x-owner: team-a, description: orders, $comment: hi, properties: {a: {title: A}}}"), "");
  e = load_error("schema: {type: object}\nignore_keywords: [format, minimum]");
  EXPECT_TRUE(starts_with(e, "<harness>:2:27: ignore_keywords: 'minimum' is a keyword this validator handles")) << e;
}

TEST(ValidateConfig, KeywordValuesRapidJsonWouldSkipAreRefused) {
  struct Case {
    const char* yaml;
    const char* error;
  } cases[] = {
      {"schema: {type: float}", "<harness>:1:16: schema.type: unknown type 'float'"},
      {"schema: {required: id}", "<harness>:1:20: schema.required: required must be a list of property names"},
      {"schema: {minimum: '5'}", "<harness>:1:19: schema.minimum: minimum must be a number, got string"},
      {"schema: {maxLength: -1}", "<harness>:1:21: schema.maxLength: maxLength must be a whole number"},
      {"schema: {enum: []}", "<harness>:1:16: schema.enum: enum must be a non-empty list"},
      {"schema: {multipleOf: 0}", "<harness>:1:22: schema.multipleOf: multipleOf must be a number greater than 0"},
      {"schema: {properties: {a: 5}}", "<harness>:1:26: schema.properties.a: expected a schema (an object, or true/false), got integer"},
      {"schema: {patternProperties: 5}", "<harness>:1:29: schema.patternProperties: patternProperties must be a map"},
      // RapidJSON compiles the properties map itself as a schema: a property named dependencies
      // whose schema holds a list of numbers crashes it.
      {"schema: {properties: {dependencies: {enum: [1, 2]}}}",
       "<harness>:1:44: schema.properties.dependencies.enum: this object would be compiled as a schema, and its 'dependencies' list"},
      {"schema: {const: a, enum: [a]}", "<harness>:1:17: schema.const: const and enum in the same schema"},
      {"schema: {properties: {k: {const: {kind: x}}}}", "<harness>:1:34: schema.properties.k.const: const with an object is not supported"},
      {"schema: {enum: [1, [2, {a: a}]]}", "<harness>:1:24: schema.enum[1][1]: enum with an object is not supported"},
      {"schema: {exclusiveMinimum: true}", "<harness>:1:28: schema.exclusiveMinimum: exclusiveMinimum: true needs minimum beside it"},
      {"schema: {pattern: '^a|^b'}", "<harness>:1:19: schema.pattern: pattern '^a|^b': ^ is supported only at the start"},
      {"schema: {pattern: '(?=x)'}", "<harness>:1:19: schema.pattern: pattern '(?=x)': lookarounds"},
      {"schema: {pattern: '\\bword'}", "<harness>:1:19: schema.pattern: pattern '\\bword': the escape \\b is not supported"},
      {"schema: {pattern: '^$'}", "<harness>:1:19: schema.pattern: pattern '^$': it is outside the supported regex subset"},
      {"schema: {patternProperties: {'[a-': {}}}", "<harness>:1:37: schema.patternProperties[a-: patternProperties key '[a-': a [ is not closed"},
      {"schema: {patternProperties: {'^n': {}}, additionalProperties: {type: string}}",
       "<harness>:1:63: schema.additionalProperties: a schema for additionalProperties beside patternProperties is not supported"},
      {"schema: {properties: {a: {$ref: '#/definitions/a', maxLength: 3}}}",
       "<harness>:1:63: schema.properties.a.maxLength: 'maxLength' beside $ref is ignored in draft-04"},
  };
  for (auto& c : cases) {
    std::string e = load_error(c.yaml);
    EXPECT_TRUE(starts_with(e, c.error)) << c.yaml << "\n  got: " << e;
  }
}

TEST(ValidateConfig, RefsMustResolveToSchemasWithoutCycles) {
  std::string e = load_error("schema: {properties: {a: {$ref: 'other.json#/definitions/a'}}}");
  EXPECT_TRUE(starts_with(e, "<harness>:1:33: schema.properties.a.$ref: 'other.json#/definitions/a' is not a local reference")) << e;
  e = load_error("schema: {properties: {a: {$ref: '#/definitions/nope'}}}");
  EXPECT_EQ(e, "<harness>:1:33: schema.properties.a.$ref: '#/definitions/nope' points at nothing in this schema");
  e = load_error("schema: {properties: {a: {$ref: '#/properties'}}}");
  EXPECT_EQ(e, "<harness>:1:33: schema.properties.a.$ref: '#/properties' points at an object that is not a schema");
  e = load_error("schema: {properties: {a: {$ref: '#/definitions/b'}}, definitions: {b: {$ref: '#/definitions/b'}}}");
  EXPECT_EQ(e, "<harness>:1:33: schema.properties.a.$ref: $ref cycle #/definitions/b -> #/definitions/b never reaches a schema");
  e = load_error("schema: {$ref: '#/x'}");
  EXPECT_TRUE(starts_with(e, "<harness>:1:16: schema.$ref: '#/x' points at nothing")) << e;
  e = load_error("schema: {$ref: '#foo'}");
  EXPECT_TRUE(starts_with(e, "<harness>:1:16: schema.$ref: '#foo' is not a JSON pointer")) << e;

  Harness<Validate> defs("schema: {properties: {a: {$ref: '#/$defs/n'}, b: {$ref: '#/definitions/no'}}, "
                         "$defs: {n: {type: integer}}, definitions: {no: false}}");
  EXPECT_EQ(reason(defs, R"({"a":1})"), "");
  EXPECT_EQ(reason(defs, R"({"a":"x"})"), R"(schema: #/$defs/n: expected type integer, got string "x" at /a)");
  EXPECT_EQ(reason(defs, R"({"b":1})"), "schema: #/definitions/no: no value is allowed here (the schema is false) at /b");
  Harness<Validate> spaced("schema: {properties: {a: {$ref: '#/definitions/order item'}, b: {$ref: '#/definitions/order%20item'}}, "
                           "definitions: {order item: {type: integer}}}");
  EXPECT_EQ(reason(spaced, R"({"a":1,"b":2})"), "");
  EXPECT_EQ(reason(spaced, R"({"b":"x"})"), R"(schema: #/definitions/order item: expected type integer, got string "x" at /b)");

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
            R"(schema: #: missing required property "name" at /children/0/children/0)");
}

TEST(Validate, PatternRewritesKeepTheirMeaning) {
  struct Case {
    const char* pattern;
    const char* yes;
    const char* no;
  } cases[] = {
      {"^\\d{4}-\\d{2}$", "2024-05", "2024-5x"},
      {"^\\w+$", "ab_9", "a-b"},
      {"^\\S+\\s\\S+$", "a b", "a  b"},
      {"^[\\d.]+$", "1.2", "1,2"},
      {"^[a\\-z]+$", "a-z", "b"},
      {"^https?:\\/\\/", "http://x", "ftp://x"},
      {"^(?:ab)+$", "abab", "aba"},
      {"^a+?b$", "aab", "ba"},
      {"^\\D+$", "ab", "a1"},
      {"x", "axb", "ab"},
  };
  for (auto& c : cases) {
    std::string yaml = std::string("schema: {pattern: '") + c.pattern + "'}";
    Harness<Validate> h(yaml);
    EXPECT_EQ(reason(h, std::string("\"") + c.yes + "\""), "") << c.pattern;
    EXPECT_NE(reason(h, std::string("\"") + c.no + "\""), "") << c.pattern << " accepted " << c.no;
  }
}
