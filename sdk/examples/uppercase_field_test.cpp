// The plugin's own unit tests: the component runs in the SDK's test harness, no daemon needed.
#include "uppercase_field.cpp"

#include <edgeflow/testing/harness.hpp>

#include <gtest/gtest.h>

using edgeflow::testing::ConfigError;
using edgeflow::testing::Harness;

TEST(UppercaseField, UpperCasesAndRejectsNonStrings) {
  Harness<UppercaseField> h("field: customer.name\non_missing: drop");
  auto r = h.transform({{.payload = R"({"customer":{"name":"ada"}})", .key = "k1"},
                        {.payload = R"({"customer":{"name":42}})"},
                        {.payload = R"({"other":1})"}});
  ASSERT_EQ(r.kept.size(), 1u);
  EXPECT_EQ(r.kept[0].payload, R"({"customer":{"name":"ADA"}})");
  EXPECT_EQ(r.kept[0].key, "k1");
  ASSERT_EQ(r.rejected.size(), 1u);
  EXPECT_EQ(r.rejected[0].reason, "customer.name is a number, not a string");
  EXPECT_EQ(r.dropped, 1u);
}

TEST(UppercaseField, PayloadsThatAreNotJsonAreRejectedNotFailed) {
  Harness<UppercaseField> h("field: name");
  auto r = h.transform({{.payload = "{nope"}, {.payload = R"({"name":"x"})"}});
  EXPECT_EQ(r.error, "");
  ASSERT_EQ(r.rejected.size(), 1u);
  EXPECT_EQ(r.rejected[0].reason, "payload is not JSON at byte 1: Missing a name for object member.");
  ASSERT_EQ(r.kept.size(), 1u);
  EXPECT_EQ(r.kept[0].payload, R"({"name":"X"})");
}

TEST(UppercaseField, ABadPathIsAConfigErrorAtItsLocation) {
  try {
    Harness<UppercaseField> h("on_missing: keep\nfield: a..b", {.file = "flow.yaml"});
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()).rfind("flow.yaml:2:8: field: 'a..b' is not a document path", 0), 0u) << e.what();
  }
}
