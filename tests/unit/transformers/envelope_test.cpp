#include "envelope.cpp"

#include "test_support.hpp"

#include <edgeflow/testing/harness.hpp>

#include <gtest/gtest.h>

#include <fstream>

using edgeflow::testing::ConfigError;
using edgeflow::testing::Harness;
using edgeflow::testing::Output;
using edgeflow::testing::Pairs;

namespace {

const char* kCdc = R"({"op":"c","after":{"id":7,"total":12.5},"source":{"table":"orders","lsn":42}})";
constexpr int64_t kTs = 1764000000123;  // 2025-11-24T16:00:00.123Z

const char* kWrap = R"(
source: /edge/site-7/${source.table}
event_type: com.example.order.${op}
id: concat(source.table, ':', after.id)
subject: string(after.id)
extensions: { tenant: "'acme'", seq: source.lsn, sampled: true }
)";

// Every event a test makes with wrap is judged by the official CloudEvents SDK when the test
// program ends (tests/tools/cloudevents.js; ctest runs each test in its own program).
std::vector<std::string>& made() {
  static std::vector<std::string> events;
  return events;
}
edgeflow::testing::TransformResult judged(edgeflow::testing::TransformResult r) {
  for (auto& o : r.kept)
    if (o.content_type == "application/cloudevents+json") made().push_back(o.payload);
  return r;
}

class SdkJudge : public ::testing::Environment {
 public:
  void TearDown() override {
    if (made().empty()) return;
    edgeflow::test::TempDir dir;
    std::ofstream out(dir.file("made.jsonl"));
    for (auto& e : made()) out << e << "\n";
    out.close();
    auto [status, said] = edgeflow::test::run_capture(std::string("node ") + EDGEFLOW_TEST_TOOLS +
                                                      "/cloudevents.js check " + dir.file("made.jsonl"));
    EXPECT_EQ(status, 0) << said << "(run `npm ci` in tests/tools if the cloudevents module is missing)";
  }
};
const auto* const kJudge = ::testing::AddGlobalTestEnvironment(new SdkJudge);

std::string error_of(const std::string& yaml) {
  try {
    Harness<Envelope> h(yaml);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

// The one rejection's reason, or what happened instead.
std::string reason_of(const std::string& yaml, const std::string& payload, int64_t ts = kTs) {
  Harness<Envelope> h(yaml);
  auto r = judged(h.transform({{.payload = payload, .timestamp_ms = ts}}));
  if (r.rejected.size() != 1) return "(kept: " + (r.kept.empty() ? std::string("nothing") : r.kept[0].payload) + ")";
  return r.rejected[0].reason;
}

std::string header(const Output& o, const std::string& name) {
  for (auto& [k, v] : o.headers)
    if (k == name) return v;
  return "(absent)";
}

}  // namespace

TEST(Envelope, WrapsTheDocumentAsTheDataOfACloudEvent) {
  Harness<Envelope> h(kWrap);
  auto r = judged(h.transform({{.payload = kCdc, .content_type = "application/json", .timestamp_ms = kTs}}));
  ASSERT_EQ(r.kept.size(), 1u) << (r.rejected.empty() ? "" : r.rejected[0].reason);
  EXPECT_EQ(r.kept[0].payload,
            R"({"specversion":"1.0","id":"orders:7","source":"/edge/site-7/orders","type":"com.example.order.c",)"
            R"("subject":"7","time":"2025-11-24T16:00:00.123Z","datacontenttype":"application/json",)"
            R"("tenant":"acme","seq":42,"sampled":true,"data":)" +
                std::string(kCdc) + "}");
  EXPECT_EQ(r.kept[0].content_type, "application/cloudevents+json");
}

TEST(Envelope, DefaultsAreAUuidAndTheMessageTimeOrNow) {
  Harness<Envelope> h("source: /edge\nevent_type: t");
  int64_t before = edgeflow::sdk::expr::builtin::now_ms();
  auto r = judged(h.transform({{.payload = "[1]", .timestamp_ms = kTs}, {.payload = "\"x\""}}));
  int64_t after = edgeflow::sdk::expr::builtin::now_ms();
  ASSERT_EQ(r.kept.size(), 2u);
  // Parsed rather than matched: ids and one time are random, the rest must be exact.
  using edgeflow::sdk::expr::JsonReader;
  auto e0 = JsonReader(r.kept[0].payload).read(), e1 = JsonReader(r.kept[1].payload).read();
  auto text = [](const edgeflow::sdk::expr::Val& e, const char* name) { return edgeflow::sdk::expr::to_text(e.member(name)); };
  for (auto* e : {&e0, &e1}) {
    ASSERT_TRUE(e->is_object()) << r.kept[0].payload;
    EXPECT_EQ(text(*e, "specversion"), "1.0");
    EXPECT_EQ(text(*e, "source"), "/edge");
    EXPECT_EQ(text(*e, "type"), "t");
    EXPECT_EQ(text(*e, "datacontenttype"), "application/json");
    std::string id = text(*e, "id");
    ASSERT_EQ(id.size(), 36u) << id;
    EXPECT_EQ(id[14], '4') << id;  // a version 4 UUID
  }
  EXPECT_NE(text(e0, "id"), text(e1, "id"));  // every event its own id
  EXPECT_EQ(text(e0, "time"), "2025-11-24T16:00:00.123Z");
  EXPECT_EQ(text(e0, "data"), "[1]");
  int64_t now = edgeflow::sdk::expr::builtin::parse_iso8601(text(e1, "time"));  // timestamp 0: now()
  EXPECT_GE(now, before);
  EXPECT_LE(now, after);
  EXPECT_EQ(text(e1, "data"), "x");
}

TEST(Envelope, TimeIsWrittenAsRfc3339UtcOrLeftOutWhenNull) {
  std::string yaml = "source: /s\nevent_type: t\nid: \"'1'\"\ntime: at\n";
  Harness<Envelope> h(yaml);
  auto r = judged(h.transform({{.payload = R"({"at":"2026-11-24 12:00:00.5+01:00"})"},
                        {.payload = R"({"at":1764000000123})"},
                        {.payload = R"({"at":1764000000123.4})"},
                        {.payload = R"({"other":1})"}}));
  ASSERT_EQ(r.kept.size(), 4u) << (r.rejected.empty() ? "" : r.rejected[0].reason);
  auto head = [](const std::string& time) {
    return R"({"specversion":"1.0","id":"1","source":"/s","type":"t",)" + time + R"("datacontenttype":"application/json",)";
  };
  EXPECT_EQ(r.kept[0].payload, head(R"("time":"2026-11-24T11:00:00.500Z",)") + R"("data":{"at":"2026-11-24 12:00:00.5+01:00"}})");
  EXPECT_EQ(r.kept[1].payload, head(R"("time":"2025-11-24T16:00:00.123Z",)") + R"("data":{"at":1764000000123}})");
  EXPECT_EQ(r.kept[2].payload, head(R"("time":"2025-11-24T16:00:00.123Z",)") + R"("data":{"at":1764000000123.4}})");
  EXPECT_EQ(r.kept[3].payload, head("") + R"("data":{"other":1}})");

  EXPECT_EQ(reason_of(yaml, R"({"at":"yesterday"})"),
            "envelope: time: `at`: 'yesterday' is neither an ISO-8601 date-time nor epoch milliseconds");
  EXPECT_EQ(reason_of(yaml, R"({"at":1764000000123000})"),
            "envelope: time: `at`: 1764000000123000 ms is outside the years 0000-9999 (microseconds instead of milliseconds?)");
  EXPECT_EQ(reason_of(yaml, R"({"at":true})"), "envelope: time: `at`: expected epoch milliseconds or an ISO-8601 text, got bool");
}

TEST(Envelope, AMissingRequiredAttributeRejectsOnlyThatMessage) {
  Harness<Envelope> h("source: /s/${after.region}\nevent_type: t\nid: after.id\nsubject: after.name");
  auto r = judged(h.transform({{.payload = R"({"after":{"id":1,"region":"eu","name":"ada"}})", .timestamp_ms = kTs},
                        {.payload = R"({"after":{"region":"eu"}})", .timestamp_ms = kTs},
                        {.payload = R"({"after":{"id":3}})", .timestamp_ms = kTs},
                        {.payload = R"({"after":{"id":"","region":"eu"}})", .timestamp_ms = kTs},
                        {.payload = "not json", .timestamp_ms = kTs},
                        {.payload = R"({"after":{"id":6,"region":"us","name":null}})", .timestamp_ms = kTs}}));
  ASSERT_EQ(r.kept.size(), 2u);
  EXPECT_EQ(r.kept[0].payload,
            R"({"specversion":"1.0","id":"1","source":"/s/eu","type":"t","subject":"ada","time":"2025-11-24T16:00:00.123Z",)"
            R"("datacontenttype":"application/json","data":{"after":{"id":1,"region":"eu","name":"ada"}}})");
  // A null subject is optional, so it is left out.
  EXPECT_EQ(r.kept[1].payload,
            R"({"specversion":"1.0","id":"6","source":"/s/us","type":"t","time":"2025-11-24T16:00:00.123Z",)"
            R"("datacontenttype":"application/json","data":{"after":{"id":6,"region":"us","name":null}}})");
  ASSERT_EQ(r.rejected.size(), 4u);
  EXPECT_EQ(r.rejected[0].reason, "envelope: id: `after.id`: the value is null; CloudEvents requires the id attribute");
  EXPECT_EQ(r.rejected[0].payload, R"({"after":{"region":"eu"}})");  // untouched
  EXPECT_EQ(r.rejected[1].reason, "envelope: source: `/s/${after.region}`: template part ${after.region} is null");
  EXPECT_EQ(r.rejected[2].reason, "envelope: id: `after.id`: the value is empty; CloudEvents requires a non-empty id");
  // Text is carried too, but these attributes read the document it does not have.
  EXPECT_EQ(r.rejected[3].reason, "envelope: id: `after.id`: payload is not JSON at byte 1: Invalid value.");
}

TEST(Envelope, ExtensionValuesMustBeCloudEventsTypes) {
  std::string yaml = "source: /s\nevent_type: t\nextensions: { region: after.region }\n";
  EXPECT_EQ(reason_of(yaml, R"({"after":{"region":{"name":"eu"}}})"),
            "envelope: extensions.region: `after.region`: a CloudEvents extension is a string, boolean or integer, got "
            "object; use string(...) or json_encode(...)");
  EXPECT_EQ(reason_of(yaml, R"({"after":{"region":2.5}})"),
            "envelope: extensions.region: `after.region`: a CloudEvents extension is a string, boolean or integer, got "
            "float; use string(...) or json_encode(...)");
  EXPECT_EQ(reason_of(yaml, R"({"after":{"region":4294967296}})"),
            "envelope: extensions.region: `after.region`: 4294967296 does not fit a CloudEvents Integer (32-bit); use "
            "string(...)");
  // A null extension is left out.
  EXPECT_EQ(reason_of(yaml + "id: \"'1'\"", R"({"after":{}})"),
            R"((kept: {"specversion":"1.0","id":"1","source":"/s","type":"t","time":"2025-11-24T16:00:00.123Z",)"
            R"("datacontenttype":"application/json","data":{"after":{}}}))");
}

TEST(Envelope, NumbersInTheDataAreCarriedExactlyBothWays) {
  Harness<Envelope> wrap(kWrap);
  Harness<Envelope> unwrap("mode: unwrap");
  const std::string data =
      R"({"op":"c","source":{"table":"t"},"after":{"id":7,"big":12345678901234567890,"amount":0.1000000000000000055511151231257827}})";
  auto w = judged(wrap.transform({{.payload = data, .timestamp_ms = kTs}}));
  ASSERT_EQ(w.kept.size(), 1u) << (w.rejected.empty() ? "" : w.rejected[0].reason);
  EXPECT_TRUE(w.kept[0].payload.ends_with(R"("data":)" + data + "}")) << w.kept[0].payload;
  auto r = judged(unwrap.transform({{.payload = w.kept[0].payload, .content_type = w.kept[0].content_type}}));
  ASSERT_EQ(r.kept.size(), 1u) << (r.rejected.empty() ? "" : r.rejected[0].reason);
  EXPECT_EQ(r.kept[0].payload, data);
}

TEST(Envelope, WrapThenUnwrapGivesBackTheDocumentAndTheAttributesAsHeaders) {
  Harness<Envelope> wrap(kWrap);
  Harness<Envelope> unwrap("mode: unwrap");
  auto w = judged(wrap.transform({{.payload = kCdc, .timestamp_ms = kTs}}));
  ASSERT_EQ(w.kept.size(), 1u);
  auto r = judged(unwrap.transform({{.payload = w.kept[0].payload, .content_type = w.kept[0].content_type}}));
  ASSERT_EQ(r.kept.size(), 1u) << (r.rejected.empty() ? "" : r.rejected[0].reason);
  EXPECT_EQ(r.kept[0].payload, kCdc);
  EXPECT_EQ(r.kept[0].content_type, "application/json");
  EXPECT_EQ(r.kept[0].headers, (Pairs{{"ce_specversion", "1.0"},
                                      {"ce_id", "orders:7"},
                                      {"ce_source", "/edge/site-7/orders"},
                                      {"ce_type", "com.example.order.c"},
                                      {"ce_subject", "7"},
                                      {"ce_time", "2025-11-24T16:00:00.123Z"},
                                      {"ce_tenant", "acme"},
                                      {"ce_seq", "42"},
                                      {"ce_sampled", "true"}}));
}

TEST(Envelope, UnwrapTakesTheContentTypeAndCarriesTextDataAsIs) {
  Harness<Envelope> h("mode: unwrap");
  auto r = judged(h.transform(
      {{.payload = R"({"specversion":"1.0","id":"a","source":"/s","type":"t","datacontenttype":"text/plain; charset=utf-8",)"
                   R"("data":"line \"one\""})"},
       {.payload = R"({"specversion":"1.0","id":"b","source":"/s","type":"t","datacontenttype":"application/vnd.x+json",)"
                   R"("data":"quoted"})"},
       {.payload = R"({"specversion":"1.0","id":"c","source":"/s","type":"t"})",
        .headers = {{"ce_subject", "stale"}, {"x-keep", "1"}}}}));
  ASSERT_EQ(r.kept.size(), 3u) << (r.rejected.empty() ? "" : r.rejected[0].reason);
  EXPECT_EQ(r.kept[0].payload, "line \"one\"");
  EXPECT_EQ(r.kept[0].content_type, "text/plain; charset=utf-8");
  EXPECT_EQ(r.kept[1].payload, "\"quoted\"");  // JSON data: a JSON string stays one
  EXPECT_EQ(r.kept[1].content_type, "application/vnd.x+json");
  // No data: the document is null; ce_* headers of another event do not survive.
  EXPECT_EQ(r.kept[2].payload, "null");
  EXPECT_EQ(header(r.kept[2], "ce_subject"), "(absent)");
  EXPECT_EQ(header(r.kept[2], "x-keep"), "1");
  EXPECT_EQ(header(r.kept[2], "ce_id"), "c");
}

TEST(Envelope, UnwrapRejectsWhatIsNotACloudEventSayingWhatIsMissing) {
  const std::string u = "mode: unwrap";
  EXPECT_EQ(reason_of(u, R"({"specversion":"1.0","type":"t","data":{}})"), "envelope: not a CloudEvent: missing id, source");
  EXPECT_EQ(reason_of(u, R"({"id":1})"), "envelope: not a CloudEvent: missing specversion, source, type");
  EXPECT_EQ(reason_of(u, R"([1,2])"), "envelope: not a CloudEvent: the document is array, not an object");
  EXPECT_EQ(reason_of(u, R"({"specversion":"0.3","id":"a","source":"/s","type":"t"})"),
            "envelope: specversion \"0.3\" is not supported; only CloudEvents 1.0");
  EXPECT_EQ(reason_of(u, R"({"specversion":"1.0","id":7,"source":"/s","type":"t"})"),
            "envelope: not a CloudEvent: id must be a non-empty string, got 7");
  EXPECT_EQ(reason_of(u, R"({"specversion":"1.0","id":"a","source":"/s","type":"t","datacontenttype":"text/plain","data":{}})"),
            "envelope: data is object but datacontenttype is text/plain; structured mode carries non-JSON data as a string");
  EXPECT_EQ(reason_of(u, "{"), "envelope: payload is not JSON at byte 1: Missing a name for object member.");
}

TEST(Envelope, LoadTimeErrorsPointIntoTheYaml) {
  EXPECT_EQ(error_of("event_type: t"),
            "<harness>:1:1: source: required with mode: wrap; add `source: /edge/site-7/orders` (a URI-reference "
            "naming where the events come from)");
  EXPECT_EQ(error_of("source: /s"),
            "<harness>:1:1: event_type: required with mode: wrap; add `event_type: com.example.order.${op}` "
            "(reverse-DNS name of what happened)");
  EXPECT_EQ(error_of("mode: unwrap\nsource: /s"),
            "<harness>:2:9: source: only used with mode: wrap; remove it (unwrap reads every attribute from the event)");
  EXPECT_EQ(error_of("mode: unwrap\nid: after.id"),
            "<harness>:2:5: id: only used with mode: wrap; remove it (unwrap reads every attribute from the event)");
  EXPECT_EQ(error_of("mode: rewrap"), "<harness>:1:7: mode: 'rewrap' is not one of: wrap, unwrap. Did you mean 'wrap'?");
  EXPECT_EQ(error_of("source: /s\nevent_type: t\nid: after.id +"),
            "<harness>:3:5: id: expected a value but the expression ends\n    after.id +\n              ^");
  EXPECT_EQ(error_of("source: /s/${op\nevent_type: t"),
            "<harness>:1:9: source: expected '}' to close ${\n    /s/${op\n           ^");
  EXPECT_EQ(error_of("source: /s\nevent_type: t\nextensions:\n  tenant: a\n  Tenant_Id: b\n"),
            "<harness>:5:14: extensions.Tenant_Id: 'Tenant_Id' is not a CloudEvents attribute name; use only lower-case "
            "letters a-z and digits 0-9, like 'tenantid'");
  EXPECT_EQ(error_of("source: /s\nevent_type: t\nextensions: { subject: a }"),
            "<harness>:3:24: extensions.subject: 'subject' has its own option; choose another extension name");
  EXPECT_EQ(error_of("source: /s\nevent_type: t\nextensions: { type: a }"),
            "<harness>:3:21: extensions.type: 'type' is the option event_type; choose another extension name");
  EXPECT_EQ(error_of("source: /s\nevent_type: t\nextensions: { data: a }"),
            "<harness>:3:21: extensions.data: 'data' is written by envelope itself; choose another extension name");
  EXPECT_EQ(error_of("source: /s\nevent_type: t\nextensions: { ratio: 0.5 }"),
            "<harness>:3:22: extensions.ratio: expected an expression (a text literal is quoted twice: \"'eu-1'\")");
  EXPECT_EQ(error_of("source: /s\nevent_type: t\nextensions: [a]"),
            "<harness>:3:13: extensions: expected a map of name: expression");
}

TEST(Envelope, ALongExtensionNameIsAllowedWithAWarning) {
  Harness<Envelope> h("source: /s\nevent_type: t\nextensions: { averyveryverylongname21: \"'x'\" }");
  ASSERT_EQ(h.logs().size(), 1u);
  EXPECT_EQ(h.logs()[0], "extensions.averyveryverylongname21: CloudEvents advises attribute names of at most 20 "
                         "characters; 'averyveryverylongname21' has 23");
}

TEST(Envelope, WrapCarriesTextAndBytesAndUnwrapGivesThemBack) {
  Harness<Envelope> wrap("source: /edge/site-7\nevent_type: com.example.raw\nid: \"'r'\"");
  Harness<Envelope> unwrap("mode: unwrap");
  const std::string binary("\xff\x00\xfe" "A", 4);
  auto w = judged(wrap.transform({{.payload = "plain text", .timestamp_ms = kTs},
                           {.payload = binary, .timestamp_ms = kTs},
                           {.payload = "<a/>", .content_type = "application/xml", .timestamp_ms = kTs},
                           {.payload = "GIF89a", .content_type = "image/gif", .timestamp_ms = kTs},
                           {.payload = "{bad", .content_type = "application/json", .timestamp_ms = kTs}}));
  ASSERT_EQ(w.kept.size(), 4u);
  const std::string head = R"({"specversion":"1.0","id":"r","source":"/edge/site-7","type":"com.example.raw",)"
                           R"("time":"2025-11-24T16:00:00.123Z",)";
  EXPECT_EQ(w.kept[0].payload, head + R"("datacontenttype":"text/plain; charset=utf-8","data":"plain text"})");
  EXPECT_EQ(w.kept[1].payload, head + R"("datacontenttype":"application/octet-stream","data_base64":"/wD+QQ=="})");
  EXPECT_EQ(w.kept[2].payload, head + R"("datacontenttype":"application/xml","data":"<a/>"})");
  EXPECT_EQ(w.kept[3].payload, head + R"("datacontenttype":"image/gif","data_base64":"R0lGODlh"})");
  // A content type that says JSON is taken at its word.
  ASSERT_EQ(w.rejected.size(), 1u);
  EXPECT_EQ(w.rejected[0].reason,
            "envelope: payload is not JSON at byte 1: Missing a name for object member. (the content type is application/json)");

  std::vector<edgeflow::testing::Input> events;
  for (auto& o : w.kept) events.push_back({.payload = o.payload, .content_type = o.content_type});
  auto u = judged(unwrap.transform(events));
  ASSERT_EQ(u.kept.size(), 4u);
  EXPECT_EQ(u.kept[0].payload, "plain text");
  EXPECT_EQ(u.kept[0].content_type, "text/plain; charset=utf-8");
  EXPECT_EQ(u.kept[1].payload, binary);
  EXPECT_EQ(u.kept[1].content_type, "application/octet-stream");
  EXPECT_EQ(u.kept[2].payload, "<a/>");
  EXPECT_EQ(u.kept[3].payload, "GIF89a");
  EXPECT_EQ(u.kept[3].content_type, "image/gif");
}

TEST(Envelope, AttributesTheSpecForbidsAreRefusedAtLoadOrPerMessage) {
  // The same for every message: refused at load, pointing into the YAML.
  EXPECT_EQ(error_of("source: /edge site\nevent_type: t"),
            "<harness>:1:9: source: \"/edge site\" is not a URI-reference (RFC 3986); percent-encode spaces and other "
            "characters, like /edge/site%207");
  EXPECT_EQ(error_of("source: /s\nevent_type: t\nsubject: \"'line\\nbreak'\""),
            "<harness>:3:10: subject: \"line\\nbreak\" holds the control character U+000A at byte 4, which CloudEvents "
            "forbids in attributes");
  EXPECT_EQ(error_of("source: /s\nevent_type: t\nextensions: { dataschema: \"'order.json'\" }"),
            "<harness>:3:27: extensions.dataschema: \"order.json\" is not an absolute URI (RFC 3986), like "
            "https://example.com/schemas/order.json");
  // Computed: that message goes to the dead letter, the others on.
  Harness<Envelope> h("source: /edge/${site}\nevent_type: t\nid: \"'1'\"\nsubject: note\n"
                      "extensions: { dataschema: schema }");
  auto r = judged(h.transform({{.payload = R"({"site":"a b"})", .timestamp_ms = kTs},
                        {.payload = R"({"site":"a","note":"nul\u0000"})", .timestamp_ms = kTs},
                        {.payload = R"({"site":"a","note":"c1\u0085"})", .timestamp_ms = kTs},
                        {.payload = R"({"site":"a","schema":"no scheme"})", .timestamp_ms = kTs},
                        {.payload = R"({"site":"a","note":"ok","schema":"https://example.com/s.json"})", .timestamp_ms = kTs}}));
  ASSERT_EQ(r.kept.size(), 1u);
  ASSERT_EQ(r.rejected.size(), 4u);
  EXPECT_EQ(r.rejected[0].reason,
            "envelope: source: `/edge/${site}`: \"/edge/a b\" is not a URI-reference (RFC 3986); percent-encode spaces "
            "and other characters, like /edge/site%207");
  EXPECT_EQ(r.rejected[1].reason,
            "envelope: subject: `note`: \"nul\\u0000\" holds the control character U+0000 at byte 3, which CloudEvents "
            "forbids in attributes");
  EXPECT_EQ(r.rejected[2].reason,
            "envelope: subject: `note`: \"c1\u0085\" holds the control character U+0085 at byte 2, which CloudEvents "
            "forbids in attributes");
  EXPECT_EQ(r.rejected[3].reason,
            "envelope: extensions.dataschema: `schema`: \"no scheme\" is not an absolute URI (RFC 3986), like "
            "https://example.com/schemas/order.json");
}

TEST(Envelope, UnwrapRefusesNamesAndValuesTheSpecForbids) {
  const std::string u = "mode: unwrap";
  const std::string base = R"({"specversion":"1.0","id":"a","source":"/s","type":"t",)";
  EXPECT_EQ(reason_of(u, base + R"("Tenant":"x"})"),
            "envelope: not a CloudEvent: the attribute name \"Tenant\" is not allowed; CloudEvents names are lower-case "
            "letters a-z and digits 0-9");
  EXPECT_EQ(reason_of(u, base + R"("subject":"a\nb"})"),
            "envelope: not a CloudEvent: subject \"a\\nb\" holds the control character U+000A at byte 1, which "
            "CloudEvents forbids in attributes");
  EXPECT_EQ(reason_of(u, R"({"specversion":"1.0","id":"a","source":"/a b","type":"t"})"),
            "envelope: not a CloudEvent: source \"/a b\" is not a URI-reference (RFC 3986); percent-encode spaces and "
            "other characters, like /edge/site%207");
  EXPECT_EQ(reason_of(u, base + R"("time":"yesterday"})"),
            "envelope: not a CloudEvent: time \"yesterday\" is not an RFC 3339 timestamp");
  EXPECT_EQ(reason_of(u, base + R"("dataschema":"s.json"})"),
            "envelope: not a CloudEvent: dataschema \"s.json\" is not an absolute URI (RFC 3986), like "
            "https://example.com/schemas/order.json");
  EXPECT_EQ(reason_of(u, base + R"("subject":""})"), "envelope: not a CloudEvent: subject must be a non-empty string, got \"\"");
  EXPECT_EQ(reason_of(u, base + R"("tags":["a"]})"),
            "envelope: not a CloudEvent: the extension tags is [\"a\"]; CloudEvents attributes are strings, booleans or "
            "32-bit integers");
  EXPECT_EQ(reason_of(u, base + R"("seq":4294967296})"),
            "envelope: not a CloudEvent: the extension seq is 4294967296; CloudEvents attributes are strings, booleans or "
            "32-bit integers");
  EXPECT_EQ(reason_of(u, base + R"("data":1,"data_base64":"AAE="})"),
            "envelope: not a CloudEvent: it has both data and data_base64; the spec allows one");
  EXPECT_EQ(reason_of(u, base + R"("data_base64":"AAE"})"),
            "envelope: not a CloudEvent: data_base64 is not base64 (RFC 4648, with padding)");
  EXPECT_EQ(reason_of(u, base + R"("data_base64":"AAF="})"),  // unused bits set: not the one encoding
            "envelope: not a CloudEvent: data_base64 is not base64 (RFC 4648, with padding)");
  EXPECT_EQ(reason_of(u, base + R"("data_base64":"AAE="})"), std::string("(kept: ") + std::string("\0\x01", 2) + ")");
}

// Every event the wrap step makes, for JSON, text and bytes, with every optional attribute,
// is accepted by the official SDK; and the checker is shown to refuse what the spec forbids.
TEST(Envelope, TheCloudEventsSdkAcceptsEveryEventWrapWrites) {
  edgeflow::test::TempDir dir;
  Harness<Envelope> h(std::string(kWrap) + "time: at\n");
  Harness<Envelope> schema("source: urn:example:orders\nevent_type: com.example.order\n"
                           "extensions: { dataschema: \"'https://example.com/order.json'\", partitionkey: \"'k'\" }");
  auto a = judged(h.transform({{.payload = kCdc, .timestamp_ms = kTs},
                        {.payload = R"({"op":"u","after":{"id":"x y"},"source":{"table":"t"},"at":"2026-12-07T10:00:00+02:00"})"}}));
  auto b = judged(schema.transform({{.payload = "text", .timestamp_ms = kTs},
                             {.payload = std::string("\x00\xff", 2), .timestamp_ms = kTs},
                             {.payload = R"({"big":12345678901234567890})", .timestamp_ms = kTs}}));
  ASSERT_EQ(a.kept.size() + b.kept.size(), 5u);
  std::ofstream out(dir.file("events.jsonl"));
  for (auto* r : {&a, &b})
    for (auto& o : r->kept) out << o.payload << "\n";
  out.close();
  const std::string node = std::string("node ") + EDGEFLOW_TEST_TOOLS + "/cloudevents.js check ";
  auto [status, said] = edgeflow::test::run_capture(node + dir.file("events.jsonl"));
  EXPECT_EQ(status, 0) << said << "(run `npm ci` in tests/tools if the cloudevents module is missing)";
  EXPECT_NE(said.find("5 of 5 events accepted"), std::string::npos) << said;

  dir.write("bad.jsonl", R"({"specversion":"1.0","id":"1","source":"/a b","type":"t"})" "\n"
                         R"({"specversion":"1.0","id":"1","source":"/a","type":"t","subject":"x\ny"})" "\n");
  auto [bad_status, bad_said] = edgeflow::test::run_capture(node + dir.file("bad.jsonl"));
  EXPECT_EQ(bad_status, 1) << bad_said;
  EXPECT_NE(bad_said.find("0 of 2 events accepted"), std::string::npos) << bad_said;
}

TEST(Envelope, EventsTheCloudEventsSdkWritesAreUnwrapped) {
  auto [status, said] = edgeflow::test::run_capture(std::string("node ") + EDGEFLOW_TEST_TOOLS + "/cloudevents.js make");
  ASSERT_EQ(status, 0) << said << "(run `npm ci` in tests/tools if the cloudevents module is missing)";
  std::vector<edgeflow::testing::Input> events;
  std::istringstream lines(said);
  for (std::string line; std::getline(lines, line);) events.push_back({.payload = line, .content_type = "application/cloudevents+json"});
  ASSERT_EQ(events.size(), 3u) << said;
  Harness<Envelope> unwrap("mode: unwrap");
  auto r = judged(unwrap.transform(events));
  ASSERT_EQ(r.kept.size(), 3u) << (r.rejected.empty() ? "" : r.rejected[0].reason);
  EXPECT_EQ(r.kept[0].payload, std::string("\xff\x00\xfe" "A", 4));
  EXPECT_EQ(r.kept[0].content_type, "application/octet-stream");
  EXPECT_EQ(header(r.kept[0], "ce_id"), "bin-1");
  EXPECT_EQ(header(r.kept[0], "ce_tenant"), "acme");
  EXPECT_EQ(header(r.kept[0], "ce_seq"), "42");
  EXPECT_EQ(header(r.kept[0], "ce_sampled"), "true");
  EXPECT_EQ(r.kept[1].payload, R"({"id":7,"total":12.5,"tags":["a"]})");
  EXPECT_EQ(r.kept[1].content_type, "application/json");
  EXPECT_EQ(header(r.kept[1], "ce_dataschema"), "https://example.com/order.json");
  EXPECT_EQ(header(r.kept[1], "ce_region"), "eu");
  EXPECT_EQ(r.kept[2].payload, "hello, edge");
  EXPECT_EQ(r.kept[2].content_type, "text/plain");
}
