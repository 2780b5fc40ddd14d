#include "redact.cpp"

#include <edgeflow/testing/harness.hpp>

#include <gtest/gtest.h>

using edgeflow::testing::ConfigError;
using edgeflow::testing::Harness;

namespace {

const char* kKey = "key: 0123456789abcdef-site7\n";

std::string error_of(const std::string& yaml) {
  try {
    Harness<Redact> h(yaml);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

// The payload after one rule set, or "rejected: <reason>".
std::string redact(const std::string& yaml, const std::string& payload) {
  Harness<Redact> h(yaml);
  auto r = h.transform({{.payload = payload}});
  if (!r.rejected.empty()) return "rejected: " + r.rejected[0].reason;
  return r.kept.at(0).payload;
}

}  // namespace

TEST(Redact, MaskReplacesValuesWithTheMaskText) {
  std::string rules = "rules: [ { path: a, action: mask }, { path: b, action: mask }, { path: c, action: mask },"
                      " { path: d, action: mask, mask_with: '[gone]' }, { path: e, action: mask } ]";
  EXPECT_EQ(redact(rules, R"({"a":"secret","b":4111,"c":{"x":[1]},"d":"x","e":null,"f":"kept"})"),
            R"({"a":"***","b":"***","c":"***","d":"[gone]","e":null,"f":"kept"})");
}

TEST(Redact, KeepLastCountsCharactersNotBytes) {
  std::string rules = "rules: [ { path: city, action: mask, keep_last: 4 }, { path: pin, action: mask, keep_last: 4 },"
                      " { path: card, action: mask, keep_last: 4, mask_with: '**** ' } ]";
  // "Łódź" is 4 characters in 7 bytes. A value no longer than keep_last is masked entirely:
  // keeping its "last 4" would keep all of it.
  EXPECT_EQ(redact(rules, R"({"city":"Grüße aus Łódź","pin":"1234","card":"4111 1111 1111 1234","n":5})"),
            R"({"city":"***Łódź","pin":"***","card":"**** 1234","n":5})");
}

TEST(Redact, TruncateKeepsTheFirstCharactersOfStrings) {
  std::string rules = "rules: [ { path: name, action: truncate, length: 3 }, { path: short, action: truncate, length: 3 },"
                      " { path: n, action: truncate, length: 1 } ]";
  EXPECT_EQ(redact(rules, R"({"name":"Łódź Kaliska","short":"ab","n":12345})"), R"({"name":"Łód","short":"ab","n":12345})");
}

TEST(Redact, DropRemovesFieldsMembersAndElements) {
  EXPECT_EQ(redact("rules: [ { path: customer.phone, action: drop } ]", R"({"customer":{"name":"ada","phone":"+49","x":1}})"),
            R"({"customer":{"name":"ada","x":1}})");
  EXPECT_EQ(redact("rules: [ { path: 'tags[1]', action: drop } ]", R"({"tags":["a",{"b":[1]},"c"]})"),
            R"({"tags":["a","c"]})");
  EXPECT_EQ(redact("rules: [ { path: 'tags[*]', action: drop } ]", R"({"tags":["a","b"],"x":1})"), R"({"tags":[],"x":1})");
  EXPECT_EQ(redact("rules: [ { path: 'secrets.*', action: drop } ]", R"({"secrets":{"a":1,"b":2},"x":1})"),
            R"({"secrets":{},"x":1})");
}

TEST(Redact, HashIsAKeyedPseudonymStableAcrossMessagesAndDifferentPerKey) {
  std::string rules = "rules: [ { path: customer.email, action: hash }, { path: customer.id, action: hash } ]\n";
  const char* doc = R"({"customer":{"email":"ada@example.org","id":42}})";
  // HMAC-SHA256 test values computed independently (Python's hmac module).
  const std::string site7 = R"({"customer":{"email":"23434acf6c9cf9644f83e491c87ac1097acfea99cbb9e81715ba8a94222fa251",)"
                            R"("id":"5b242f242a5eee4e9fbb6eef8dfe85fbe3dfa4ca85bce82614fc900f4b7953e4"}})";
  const std::string site8 = R"({"customer":{"email":"e440fc3889cb58a81ac0a7729d1a21f34fb46d60adfc1b1bb878b271e95cc420",)"
                            R"("id":"f44c08f35c9585d51243cca0957a412cd0b468187f9ecf49198de482283bab66"}})";
  Harness<Redact> h(kKey + rules);
  auto first = h.transform({{.payload = doc}, {.payload = doc}});
  auto later = h.transform({{.payload = doc}});
  ASSERT_EQ(first.kept.size(), 2u);
  EXPECT_EQ(first.kept[0].payload, site7);
  EXPECT_EQ(first.kept[1].payload, site7);
  EXPECT_EQ(later.kept.at(0).payload, site7);
  EXPECT_EQ(redact("key: fedcba9876543210-site8\n" + rules, doc), site8);
}

TEST(Redact, WildcardsCoverEveryArrayElementAndObjectMember) {
  std::string rules = R"(
rules:
  - { path: 'payments[*].card', action: mask, keep_last: 4 }
  - { path: customers.*.email, action: mask }
  - { path: 'orders[*].lines[*].note', action: drop }
  - { path: '*.internal', action: drop }
)";
  EXPECT_EQ(redact(rules, R"({"payments":[{"card":"4111111111111234","amount":5},{"amount":7},{"card":null}],)"
                          R"("customers":{"c1":{"email":"a@x","name":"a"},"c2":{"name":"b"},"c3":"not an object"},)"
                          R"("orders":[{"lines":[{"note":"n1","sku":1},{"sku":2,"note":"n2"}]},{"lines":[]},{}],)"
                          R"("meta":{"internal":true,"v":1},"list":[{"internal":1}]})"),
            R"({"payments":[{"card":"***1234","amount":5},{"amount":7},{"card":null}],)"
            R"("customers":{"c1":{"email":"***","name":"a"},"c2":{"name":"b"},"c3":"not an object"},)"
            R"("orders":[{"lines":[{"sku":1},{"sku":2}]},{"lines":[]},{}],)"
            R"("meta":{"v":1},"list":[{"internal":1}]})");
}

TEST(Redact, MissingFieldsAndMismatchedShapesAreNotErrors) {
  std::string rules = "rules: [ { path: 'a.b[0].c', action: mask }, { path: 'x[*]', action: drop }, { path: 'y.*', action: mask } ]";
  // Nothing matched, so the payload is passed on byte for byte, spacing and all.
  const char* doc = R"({ "a": {"b": {"c": 1}}, "x": {"0": 1}, "y": [1, 2] })";
  EXPECT_EQ(redact(rules, doc), doc);
  EXPECT_EQ(redact(rules, "[1,2]"), "[1,2]");
}

TEST(Redact, RulesApplyInOrderAndANonJsonPayloadIsRejected) {
  Harness<Redact> h("rules: [ { path: a, action: truncate, length: 2 }, { path: a, action: mask, keep_last: 1 } ]");
  auto r = h.transform({{.payload = R"({"a":"hello"})"}, {.payload = "plain text"}, {.payload = R"({"a":"bye"})"}});
  ASSERT_EQ(r.kept.size(), 2u);
  EXPECT_EQ(r.kept[0].payload, R"({"a":"***e"})");
  EXPECT_EQ(r.kept[1].payload, R"({"a":"***y"})");
  ASSERT_EQ(r.rejected.size(), 1u);
  EXPECT_EQ(r.rejected[0].reason, "redact: payload is not JSON at byte 0: Invalid value.");
  EXPECT_EQ(r.rejected[0].payload, "plain text");
}

TEST(Redact, AMemberNameTwiceIsRejectedNotHalfMasked) {
  // Masking the first "email" while a consumer keeps the last would leak the secret.
  Harness<Redact> h("rules: [ { path: email, action: mask } ]");
  auto r = h.transform({{.payload = R"({"email":"a@x.io","email":"SECRET@x.io"})"}});
  ASSERT_EQ(r.rejected.size(), 1u);
  EXPECT_EQ(r.rejected[0].reason,
            "redact: payload is not I-JSON: the member name \"email\" appears twice in one object (RFC 7493: "
            "readers disagree on which one counts)");
  EXPECT_TRUE(r.kept.empty());
}

TEST(Redact, LoadTimeErrorsPointAtTheRule) {
  EXPECT_EQ(error_of(kKey), "<harness>:1:1: rules: required option missing; add `rules: [{ path: customer.email, action: "
                          "hash }, { path: payments[*].card, action: mask, keep_last: 4 }]` (Ordered list of { path, action: "
                          "mask|hash|drop|truncate } with, for mask, optional mask_with (default \"***\") and keep_last "
                          "(characters kept at the end), and for truncate, length. In a path, [*] is every array element and a "
                          "* segment every member of an object.)");
  EXPECT_EQ(error_of("rules: []"),
            "<harness>:1:8: rules: expected a list of rules like { path: customer.email, action: mask }");
  EXPECT_EQ(error_of("rules:\n  - customer.email\n"),
            "<harness>:2:5: rules[0]: expected a map like { path: customer.email, action: mask }");
  EXPECT_EQ(error_of("rules:\n  - { path: a, action: mask }\n  - { path: b, action: hash }\n"),
            "<harness>:3:24: rules[1].action: hash needs the `key` option (an HMAC key): a plain hash of an email or phone "
            "number is undone by hashing every candidate; add `key: ${env:REDACT_KEY}`");
  EXPECT_EQ(error_of("key: short\nrules: [ { path: a, action: hash } ]"),
            "<harness>:1:6: key: too short (5 bytes) to resist guessing; use at least 16 random bytes, e.g. the output "
            "of `openssl rand -hex 32`");
  EXPECT_EQ(error_of("rules:\n  - path: a\n    action: hide\n"),
            "<harness>:3:13: rules[0].action: 'hide' is not one of: mask, hash, drop, truncate");
  EXPECT_EQ(error_of("rules:\n  - path: a\n"),
            "<harness>:2:5: rules[0]: missing `action:`, one of mask, hash, drop, truncate");
  EXPECT_EQ(error_of("rules:\n  - action: drop\n"),
            "<harness>:2:5: rules[0]: missing `path:`, the field to redact, like customer.email");
  EXPECT_EQ(error_of("rules:\n  - path: a\n    action: mask\n    keep: 4\n"),
            "<harness>:4:11: rules[0].keep: unknown field; a rule has path, action, mask_with, keep_last and length");
  EXPECT_EQ(error_of("rules:\n  - path: a\n    action: drop\n    keep_last: 4\n"),
            "<harness>:4:16: rules[0].keep_last: only used with action: mask; remove it or change the action");
  EXPECT_EQ(error_of("rules:\n  - path: a\n    action: mask\n    mask_with: 0000\n"),
            "<harness>:4:16: rules[0].mask_with: expected a string; quote it, like mask_with: \"0000\"");
  EXPECT_EQ(error_of("rules:\n  - path: a\n    action: mask\n    keep_last: -1\n"),
            "<harness>:4:16: rules[0].keep_last: expected a whole number of characters, at least 0");
  EXPECT_EQ(error_of("rules:\n  - path: a\n    action: truncate\n"),
            "<harness>:2:5: rules[0]: action truncate needs `length:`, the characters to keep");
  EXPECT_EQ(error_of("rules:\n  - path: a\n    action: truncate\n    length: 0\n"),
            "<harness>:4:13: rules[0].length: expected a whole number of characters, at least 1");
}

TEST(Redact, MalformedPathsAreLoadTimeErrors) {
  auto path_error = [](const std::string& path) {
    return error_of("rules:\n  - action: drop\n    path: \"" + path + "\"\n");
  };
  const std::string tail = "; write paths like customer.email, items[*].card or customers.*.email";
  EXPECT_EQ(path_error("a..b"), "<harness>:3:11: rules[0].path: 'a..b': empty field name" + tail);
  EXPECT_EQ(path_error(".a"), "<harness>:3:11: rules[0].path: '.a': empty field name" + tail);
  EXPECT_EQ(path_error("a."), "<harness>:3:11: rules[0].path: 'a.': ends with '.'" + tail);
  EXPECT_EQ(path_error("items[x].card"), "<harness>:3:11: rules[0].path: 'items[x].card': [x] is not an array index; use [0] or [*]" + tail);
  EXPECT_EQ(path_error("items[0"), "<harness>:3:11: rules[0].path: 'items[0': '[' without ']'" + tail);
  EXPECT_EQ(path_error("items]"), "<harness>:3:11: rules[0].path: 'items]': ']' without '['" + tail);
  EXPECT_EQ(path_error("items[0]card"), "<harness>:3:11: rules[0].path: 'items[0]card': expected '.' or '[' after ']'" + tail);
  EXPECT_EQ(path_error("pass*"),
            "<harness>:3:11: rules[0].path: 'pass*': '*' stands for a whole segment (every member), not part of a name" + tail);
  EXPECT_EQ(path_error(""), "<harness>:3:11: rules[0].path: '': empty path" + tail);
}
