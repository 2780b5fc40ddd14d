#include "dedupe.cpp"

#include <edgeflow/testing/harness.hpp>

#include <gtest/gtest.h>

using edgeflow::testing::ConfigError;
using edgeflow::testing::Harness;
using edgeflow::testing::Input;
using edgeflow::testing::TransformResult;

namespace {

std::string error_of(const std::string& yaml) {
  try {
    Harness<Dedupe> h(yaml);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

Input event(const std::string& id, int64_t ts = 0) {
  return {.payload = R"({"id":)" + id + "}", .timestamp_ms = ts};
}

// One message per batch: "pass", "drop" or "reject: <reason>".
std::string verdict(Harness<Dedupe>& h, const Input& in) {
  auto r = h.transform({in});
  if (!r.rejected.empty()) return "reject: " + r.rejected[0].reason;
  return r.dropped ? "drop" : "pass";
}

}  // namespace

TEST(Dedupe, TheFirstOccurrencePassesAndRepeatsAreDropped) {
  Harness<Dedupe> h("key: id");
  auto r = h.transform({event("1"), event("2"), event("1"), event("3"), event("2")});
  ASSERT_EQ(r.kept.size(), 3u);
  EXPECT_EQ(r.kept[0].payload, R"({"id":1})");
  EXPECT_EQ(r.kept[1].payload, R"({"id":2})");
  EXPECT_EQ(r.kept[2].payload, R"({"id":3})");
  EXPECT_EQ(r.dropped, 2u);
  // The window outlives the batch.
  r = h.transform({event("3"), event("4")});
  ASSERT_EQ(r.kept.size(), 1u);
  EXPECT_EQ(r.kept[0].payload, R"({"id":4})");
  EXPECT_EQ(r.dropped, 1u);
}

TEST(Dedupe, KeysCompareByTheirTextForm) {
  Harness<Dedupe> h("key: concat(table, ':', id)");
  auto r = h.transform({{.payload = R"({"table":"orders","id":42})"},
                        {.payload = R"({"table":"orders","id":"42"})"},
                        {.payload = R"({"table":"lines","id":42})"}});
  ASSERT_EQ(r.kept.size(), 2u);
  EXPECT_EQ(r.kept[1].payload, R"({"table":"lines","id":42})");
  EXPECT_EQ(r.dropped, 1u);
}

TEST(Dedupe, TheWindowRunsFromTheFirstOccurrenceOnTheMessageClock) {
  Harness<Dedupe> h("key: id\nttl: 1s\nclock: message");
  EXPECT_EQ(verdict(h, event("1", 10'000)), "pass");
  EXPECT_EQ(verdict(h, event("1", 10'500)), "drop");
  EXPECT_EQ(verdict(h, event("1", 10'999)), "drop");
  // A repeat does not extend the window: 1s after the first occurrence the key passes again.
  EXPECT_EQ(verdict(h, event("1", 11'000)), "pass");
  EXPECT_EQ(verdict(h, event("1", 11'999)), "drop");
  // Message time may go backwards (a late event): still a repeat.
  EXPECT_EQ(verdict(h, event("1", 9'000)), "drop");
  EXPECT_EQ(verdict(h, event("2", 11'500)), "pass");
  EXPECT_EQ(h.component().remembered(), 2u);
  // Expired keys are forgotten, not just ignored: memory follows the window.
  EXPECT_EQ(verdict(h, event("3", 20'000)), "pass");
  EXPECT_EQ(h.component().remembered(), 1u);
}

TEST(Dedupe, AtMaxKeysTheOldestKeyIsForgottenFirst) {
  Harness<Dedupe> h("key: id\nmax_keys: 2\nclock: message");
  EXPECT_EQ(verdict(h, event("1", 1)), "pass");
  EXPECT_EQ(verdict(h, event("2", 2)), "pass");
  EXPECT_EQ(verdict(h, event("3", 3)), "pass");  // forgets 1
  EXPECT_EQ(verdict(h, event("1", 4)), "pass");  // so 1 passes again, and 2 is forgotten
  EXPECT_EQ(verdict(h, event("3", 5)), "drop");
  EXPECT_EQ(verdict(h, event("2", 6)), "pass");
  EXPECT_EQ(h.component().remembered(), 2u);
  ASSERT_EQ(h.logs().size(), 1u);  // warned once, not per eviction
  EXPECT_EQ(h.logs()[0],
            "max_keys (2) reached before keys expired: the oldest keys are forgotten early, so their repeats would "
            "pass; raise max_keys or lower ttl (warned once)");
}

TEST(Dedupe, MemoryStaysWithinMaxKeys) {
  Harness<Dedupe> h("key: id\nmax_keys: 100");
  std::vector<Input> batch;
  for (int i = 0; i < 10'000; ++i) batch.push_back(event(std::to_string(i)));
  auto r = h.transform(batch);
  EXPECT_EQ(r.kept.size(), 10'000u);
  EXPECT_EQ(h.component().remembered(), 100u);
  EXPECT_EQ(verdict(h, event("9999")), "drop");
  EXPECT_EQ(verdict(h, event("0")), "pass");
}

TEST(Dedupe, ANullKeyOrAFailingKeyRejectsOnlyThatMessage) {
  Harness<Dedupe> h("key: after.id * 1");
  auto r = h.transform({{.payload = R"({"after":{"id":1}})"},
                        {.payload = R"({"after":{"id":"x"}})"},
                        {.payload = "not json"},
                        {.payload = R"({"after":{"id":1}})"}});
  EXPECT_TRUE(r.kept.size() == 1u && r.dropped == 1u);
  ASSERT_EQ(r.rejected.size(), 2u);
  EXPECT_EQ(r.rejected[0].reason, "dedupe: key: `after.id * 1`: cannot multiply string and int");
  EXPECT_EQ(r.rejected[1].reason, "dedupe: key: `after.id * 1`: payload is not JSON at byte 1: Invalid value.");

  Harness<Dedupe> n("key: after.id");
  EXPECT_EQ(verdict(n, {.payload = R"({"after":{}})"}),
            "reject: dedupe: key: `after.id`: the key is null; a message without a key is not deduplicated");
  // Null keys are not remembered as a key of their own: the next one is rejected too.
  EXPECT_EQ(verdict(n, {.payload = R"({"after":{"id":null}})"}),
            "reject: dedupe: key: `after.id`: the key is null; a message without a key is not deduplicated");
  // An empty key is no key either: never one shared key for every keyless message.
  for (int round = 0; round < 2; ++round)
    EXPECT_EQ(verdict(n, {.payload = R"({"after":{"id":""}})"}),
              "reject: dedupe: key: `after.id`: the key is empty; a message without a key is not deduplicated");
  EXPECT_EQ(n.component().remembered(), 0u);
}

TEST(Dedupe, TheMessageClockNeedsTimestamps) {
  Harness<Dedupe> h("key: id\nclock: message");
  EXPECT_EQ(verdict(h, event("1", 0)),
            "reject: dedupe: clock: message, but the message has no timestamp; use clock: wall for this source");
}

TEST(Dedupe, LoadTimeErrorsPointIntoTheYaml) {
  EXPECT_EQ(error_of("ttl: 1s"),
            "<harness>:1:1: key: required option missing; add `key: concat(source.table, ':', after.id)` (Expression "
            "for the idempotency key, compared by its text form; a null or empty key rejects the message.)");
  EXPECT_EQ(error_of("key: id\nmax_keys: 0"), "<harness>:2:11: max_keys: must be at least 1, got 0");
  EXPECT_EQ(error_of("key: id\nttl: 0ms"), "<harness>:2:6: ttl: must be at least 1, got 0");
  EXPECT_EQ(error_of("key: id\nclock: utc"), "<harness>:2:8: clock: 'utc' is not one of: wall, message.");
  EXPECT_EQ(error_of("key: after.id +"),
            "<harness>:1:6: key: expected a value but the expression ends\n    after.id +\n              ^");
  const std::string same = "reads nothing of the message, so it is the same for every message and every message "
                           "after the first would be dropped; use the field that identifies a message, like after.id";
  EXPECT_EQ(error_of("key: \"'orders'\""), "<harness>:1:6: key: `'orders'` " + same);
  EXPECT_EQ(error_of("key: \"upper('k')\""), "<harness>:1:6: key: `upper('k')` " + same);
  EXPECT_EQ(error_of("key: \"1 + 2\""), "<harness>:1:6: key: `1 + 2` " + same);
  // Anything of the message counts: a field, meta, a header.
  EXPECT_EQ(error_of("key: \"upper(after.id)\""), "(no error)");
  EXPECT_EQ(error_of("key: meta.offset"), "(no error)");
}
