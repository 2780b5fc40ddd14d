#include "envelope.cpp"

#include <edgeflow/testing/harness.hpp>

#include <gtest/gtest.h>


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
  auto r = h.transform({{.payload = payload, .timestamp_ms = ts}});
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
  auto r = h.transform({{.payload = kCdc, .content_type = "application/json", .timestamp_ms = kTs}});
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
  auto r = h.transform({{.payload = "[1]", .timestamp_ms = kTs}, {.payload = "\"x\""}});
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
  auto r = h.transform({{.payload = R"({"at":"2026-11-24 12:00:00.5+01:00"})"},
                        {.payload = R"({"at":1764000000123})"},
                        {.payload = R"({"at":1764000000123.4})"},
                        {.payload = R"({"other":1})"}});
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
  auto r = h.transform({{.payload = R"({"after":{"id":1,"region":"eu","name":"ada"}})", .timestamp_ms = kTs},
                        {.payload = R"({"after":{"region":"eu"}})", .timestamp_ms = kTs},
                        {.payload = R"({"after":{"id":3}})", .timestamp_ms = kTs},
                        {.payload = R"({"after":{"id":"","region":"eu"}})", .timestamp_ms = kTs},
                        {.payload = "not json", .timestamp_ms = kTs},
                        {.payload = R"({"after":{"id":6,"region":"us","name":null}})", .timestamp_ms = kTs}});
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
  EXPECT_EQ(r.rejected[3].reason.rfind("envelope: payload is not JSON at byte ", 0), 0u) << r.rejected[3].reason;
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
  auto w = wrap.transform({{.payload = data, .timestamp_ms = kTs}});
  ASSERT_EQ(w.kept.size(), 1u) << (w.rejected.empty() ? "" : w.rejected[0].reason);
  EXPECT_TRUE(w.kept[0].payload.ends_with(R"("data":)" + data + "}")) << w.kept[0].payload;
  auto r = unwrap.transform({{.payload = w.kept[0].payload, .content_type = w.kept[0].content_type}});
  ASSERT_EQ(r.kept.size(), 1u) << (r.rejected.empty() ? "" : r.rejected[0].reason);
  EXPECT_EQ(r.kept[0].payload, data);
}

TEST(Envelope, WrapThenUnwrapGivesBackTheDocumentAndTheAttributesAsHeaders) {
  Harness<Envelope> wrap(kWrap);
  Harness<Envelope> unwrap("mode: unwrap");
  auto w = wrap.transform({{.payload = kCdc, .timestamp_ms = kTs}});
  ASSERT_EQ(w.kept.size(), 1u);
  auto r = unwrap.transform({{.payload = w.kept[0].payload, .content_type = w.kept[0].content_type}});
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
  auto r = h.transform(
      {{.payload = R"({"specversion":"1.0","id":"a","source":"/s","type":"t","datacontenttype":"text/plain; charset=utf-8",)"
                   R"("data":"line \"one\""})"},
       {.payload = R"({"specversion":"1.0","id":"b","source":"/s","type":"t","datacontenttype":"application/vnd.x+json",)"
                   R"("data":"quoted"})"},
       {.payload = R"({"specversion":"1.0","id":"c","source":"/s","type":"t"})",
        .headers = {{"ce_subject", "stale"}, {"x-keep", "1"}}}});
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
  EXPECT_EQ(reason_of(u, R"({"specversion":"1.0","id":"a","source":"/s","type":"t","data_base64":"AAE="})"),
            "envelope: data_base64 (binary data) is not supported; only events whose data is JSON or text");
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
