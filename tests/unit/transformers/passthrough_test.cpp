#include "passthrough.cpp"

#include <edgeflow/testing/harness.hpp>

#include <gtest/gtest.h>

using edgeflow::testing::Harness;

TEST(Passthrough, KeepsEverythingUnchanged) {
  Harness<Passthrough> h("");
  auto r = h.transform({{.payload = "not json", .key = "k"}, {.payload = "{\"a\":1}"}});
  ASSERT_EQ(r.kept.size(), 2u);
  EXPECT_EQ(r.kept[0].payload, "not json");
  EXPECT_EQ(r.kept[0].key, "k");
  EXPECT_TRUE(r.rejected.empty());
}

TEST(Passthrough, ParseRejectsWhatIsNotJson) {
  Harness<Passthrough> h("parse: true");
  auto r = h.transform({{.payload = "{\"a\":1}"}, {.payload = "{\"a\":"}});
  ASSERT_EQ(r.kept.size(), 1u);
  EXPECT_EQ(r.kept[0].payload, "{\"a\":1}");
  ASSERT_EQ(r.rejected.size(), 1u);
  EXPECT_EQ(r.rejected[0].reason, "payload is not JSON at byte 5: Invalid value.");
}

TEST(Passthrough, ParseRejectsAMemberNameTwiceWhateverTheStep) {
  Harness<Passthrough> h("parse: true");
  auto r = h.transform({{.payload = R"({"a":{"b":1,"b":2}})"}, {.payload = R"({"a":[{"x":1},{"x":1}]})"}});
  ASSERT_EQ(r.kept.size(), 1u);
  ASSERT_EQ(r.rejected.size(), 1u);
  EXPECT_EQ(r.rejected[0].reason,
            "payload is not I-JSON: the member name \"b\" appears twice in one object (RFC 7493: readers disagree on "
            "which one counts)");
  // Past 64 members the check is a hash set, never quadratic.
  std::string many = "{";
  for (int i = 0; i < 5000; ++i) many += "\"k" + std::to_string(i) + "\":" + std::to_string(i) + ",";
  auto big = h.transform({{.payload = many + "\"k0\":0}"}, {.payload = many + "\"end\":0}"}});
  ASSERT_EQ(big.rejected.size(), 1u);
  EXPECT_EQ(big.rejected[0].reason.substr(0, 47), "payload is not I-JSON: the member name \"k0\" app");
  EXPECT_EQ(big.kept.size(), 1u);
}

TEST(Passthrough, APayloadNestedTooDeeplyIsRejectedNotParsed) {
  // Parsing, serialising and copying recurse per level: a million '[' must not reach them.
  Harness<Passthrough> h("parse: true");
  std::string deep(1000000, '['), ok = std::string(999, '[') + std::string(999, ']');
  auto r = h.transform({{.payload = deep}, {.payload = ok}, {.payload = R"({"s":"[[[[ in a string ]"})"}});
  ASSERT_EQ(r.rejected.size(), 1u);
  EXPECT_EQ(r.rejected[0].payload.size(), deep.size());
  ASSERT_EQ(r.kept.size(), 2u);
  EXPECT_EQ(r.kept[0].payload, ok);
}
