#include "route.cpp"

#include <edgeflow/testing/harness.hpp>

#include <gtest/gtest.h>

using edgeflow::testing::ConfigError;
using edgeflow::testing::Harness;
using edgeflow::testing::Options;

namespace {

const Options kSinks{.sinks = {"orders", "deletions", "audit", "unmatched"}, .file = "flow.yaml"};

std::vector<std::string> routes(const std::string& yaml, const std::string& payload) {
  Harness<Route> h(yaml, kSinks);
  auto r = h.transform({{.payload = payload}});
  if (r.kept.empty()) return {r.rejected.empty() ? "(dropped)" : "rejected: " + r.rejected[0].reason};
  return r.kept[0].routes;
}

std::string error_of(const std::string& yaml) {
  try {
    Harness<Route> h(yaml, kSinks);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

const char* kRoutes = R"(
routes:
  - when: op == "d"
    to: [deletions]
  - when: after.total >= 100
    to: [audit, orders]
  - to: orders
)";

}  // namespace

TEST(Route, FirstMatchWins) {
  EXPECT_EQ(routes(kRoutes, R"({"op":"d"})"), std::vector<std::string>{"deletions"});
  EXPECT_EQ(routes(kRoutes, R"({"op":"c","after":{"total":150}})"), (std::vector<std::string>{"orders", "audit"}));
  EXPECT_EQ(routes(kRoutes, R"({"op":"c","after":{"total":5}})"), std::vector<std::string>{"orders"});
}

TEST(Route, AllModeUnitesEveryMatch) {
  std::string yaml = std::string(kRoutes) + "mode: all\n";
  EXPECT_EQ(routes(yaml, R"({"op":"d","after":{"total":500}})"),
            (std::vector<std::string>{"orders", "deletions", "audit"}));
}

TEST(Route, UnmatchedMessagesGoToTheDefaultOrAreRejectedOrDropped) {
  std::string only = "routes: [ { when: op == 'd', to: deletions } ]\n";
  EXPECT_EQ(routes(only + "default: [unmatched]\n", R"({"op":"c"})"), std::vector<std::string>{"unmatched"});
  EXPECT_EQ(routes(only, R"({"op":"c"})"),
            std::vector<std::string>{"rejected: route: no route matched and there is no default"});
  EXPECT_EQ(routes(only + "unrouted: drop\n", R"({"op":"c"})"), std::vector<std::string>{"(dropped)"});
}

TEST(Route, AConditionThatFailsRejectsTheMessageNamingTheRoute) {
  EXPECT_EQ(routes(kRoutes, R"({"op":"c","after":{"total":"lots"}})"),
            std::vector<std::string>{"rejected: route: routes[1].when: `after.total >= 100`: cannot compare string >= int"});
  EXPECT_EQ(routes(kRoutes, "not json"),
            std::vector<std::string>{"rejected: route: routes[0].when: `op == \"d\"`: payload is not JSON at byte 1: Invalid value."});
}

TEST(Route, EarlierRoutesOfAMessageAreReplaced) {
  Harness<Route> h("routes: [ { to: audit } ]", kSinks);
  auto r = h.transform({{.payload = "{}"}});
  ASSERT_EQ(r.kept.size(), 1u);
  EXPECT_EQ(r.kept[0].routes, std::vector<std::string>{"audit"});
}

TEST(Route, LoadTimeErrors) {
  std::string e = error_of("routes:\n  - when: op = 'd'\n    to: [deletions]\n");
  EXPECT_NE(e.find("flow.yaml:2:11: routes[0].when: unexpected character '='"), std::string::npos) << e;
  e = error_of("routes:\n  - to: [delections]\n");
  EXPECT_NE(e.find("flow.yaml:2:9: routes[0].to: no sink named 'delections' in this flow; its sinks are: orders, "
                   "deletions, audit, unmatched"), std::string::npos) << e;
  e = error_of("routes:\n  - when: op == 'd'\n");
  EXPECT_NE(e.find("flow.yaml:2:5: routes[0]: missing `to:`"), std::string::npos) << e;
  e = error_of("routes:\n  - { when: true, to: orders, then: audit }\n");
  EXPECT_NE(e.find("routes[0].then: unknown key; a route has `when` and `to`"), std::string::npos) << e;
  e = error_of("routes: []\n");
  EXPECT_NE(e.find("routes: expected a list"), std::string::npos) << e;
  e = error_of("mode: first\n");
  EXPECT_NE(e.find("routes: required option missing; add `routes: "), std::string::npos) << e;
  e = error_of("routes: [ { to: orders } ]\ndefault: [nowhere]\n");
  EXPECT_NE(e.find("default: no sink named 'nowhere'"), std::string::npos) << e;
}
