// `edgeflow test` as a child process: the test files of every example flow and of every
// transformer's documented example pass; a failing test shows what differs and exits 1; an
// invalid test file is refused with its file:line:col; a flow that fails is reported as such.
#include "test_support.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <cstdio>
#include <sstream>
#include <set>

using edgeflow::test::CommandResult;
using edgeflow::test::TempDir;
using edgeflow::test::run_command;

namespace fs = std::filesystem;

namespace {

const std::string kSource = EDGEFLOW_SOURCE_DIR;

std::string read(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t\r");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

CommandResult edgeflow_test(std::vector<std::string> args) {
  args.insert(args.begin(), {EDGEFLOW_BIN, "test", "--plugin-dir", EDGEFLOW_TEST_PLUGIN_DIR});
  return run_command(args);
}

TEST(EdgeflowTest, EveryExampleFlowHasTestsAndTheyPass) {
  TempDir dir;
  std::set<std::string> flows, tested;
  for (auto& e : fs::recursive_directory_iterator(kSource + "/examples")) {
    std::string p = e.path().string();
    if (e.path().extension() != ".yaml") continue;
    if (p.size() > 10 && p.compare(p.size() - 10, 10, ".test.yaml") == 0) tested.insert(p.substr(0, p.size() - 10) + ".yaml");
    else flows.insert(p);
  }
  ASSERT_GE(flows.size(), 4u);
  for (auto& f : flows) EXPECT_TRUE(tested.count(f)) << f << " has no test file beside it";

  auto r = edgeflow_test({kSource + "/examples", "--junit", dir.file("junit.xml")});
  EXPECT_EQ(r.status, 0) << r.out << r.err;
  // "N test(s) in F file(s): P passed, 0 failed, ..."
  size_t summary = r.out.rfind('\n', r.out.size() - 2);
  unsigned tests = 0, files = 0, passed = 0, failed = 1;
  ASSERT_EQ(std::sscanf(r.out.c_str() + summary + 1, "%u test(s) in %u file(s): %u passed, %u failed", &tests, &files,
                        &passed, &failed), 4) << r.out;
  EXPECT_EQ(passed, tests);
  EXPECT_EQ(failed, 0u);
  EXPECT_EQ(files, tested.size());
  std::string xml = read(dir.file("junit.xml"));
  size_t cases = 0;
  for (size_t at = 0; (at = xml.find("<testcase ", at)) != std::string::npos; ++at) ++cases;
  EXPECT_EQ(cases, tests);
  EXPECT_EQ(xml.find("<failure"), std::string::npos) << xml;
}

// The YAML example of each transformer in docs/transformers.md is, line for line, a part of
// the flow its tests run: the docs show what is tested.
TEST(EdgeflowTest, TheDocumentedTransformerExamplesAreTheTestedFlows) {
  std::string doc = read(kSource + "/docs/transformers.md");
  size_t checked = 0;
  for (size_t at = doc.find("\n## "); at != std::string::npos; at = doc.find("\n## ", at + 1)) {
    size_t eol = doc.find('\n', at + 4);
    std::string name = doc.substr(at + 4, eol - at - 4);
    size_t start = eol + 1;
    size_t next = doc.find("\n## ", start);
    std::string body = doc.substr(start, next - start);
    size_t open = body.find("```yaml\n");
    if (open == std::string::npos) continue;
    size_t close = body.find("```", open + 8);
    std::string flow_file = kSource + "/examples/transformers/" + name + ".yaml";
    ASSERT_TRUE(fs::exists(flow_file)) << "the " << name << " example has no flow in examples/transformers/";
    EXPECT_TRUE(fs::exists(kSource + "/examples/transformers/" + name + ".test.yaml"));
    std::istringstream flow(read(flow_file)), snippet(body.substr(open + 8, close - open - 8));
    std::string want, have;
    size_t lines = 0;
    while (std::getline(snippet, want)) {
      if (trim(want).empty()) continue;
      bool found = false;
      while (!found && std::getline(flow, have)) found = trim(have) == trim(want);
      EXPECT_TRUE(found) << name << ": the documented line `" << trim(want) << "` is not in " << flow_file
                         << " (in order)";
      if (!found) break;
      ++lines;
    }
    EXPECT_GT(lines, 0u);
    ++checked;
  }
  EXPECT_GE(checked, 7u);
}

class FailingTests : public ::testing::Test {
 protected:
  TempDir dir;
  void SetUp() override {
    dir.write("orders.yaml", R"(flow: orders
source: { type: generate, count: 1 }
steps:
  - type: map
    set: { total_cents: int(total * 100) }
  - type: route
    routes:
      - when: total_cents >= 1000
        to: [large]
      - to: [small]
sinks:
  large: { type: drop }
  small: { type: drop }
)");
  }
};

TEST_F(FailingTests, ShowWhatDiffersAndExitOne) {
  dir.write("orders.test.yaml", R"(tests:
  - name: passes
    input: [ { payload: {id: 1, total: 12.5} } ]
    expect:
      sinks:
        large: [ { payload: {id: 1, total: 12.5, total_cents: 1250} } ]
  - name: wrong value, missing field and a false condition
    input: [ { payload: {id: 2, total: 20}, key: k2 } ]
    expect:
      sinks:
        large:
          - payload: {id: 2, total: 20, total_cents: 2001, currency: EUR}
            key: k9
            when: total_cents < 100
  - name: an unexpected dead letter and a missing message
    input:
      - payload: {id: 3, total: 1}
      - payload: {id: 4}
    expect:
      sinks:
        small:
          - payload: {id: 3, total: 1, total_cents: 100}
          - payload: {id: 4}
  - name: a message at a sink the test does not expect
    input: [ { payload: {id: 5, total: 99} } ]
    expect: {}
)");
  auto r = edgeflow_test({dir.file("orders.test.yaml"), "--junit", dir.file("junit.xml")});
  EXPECT_EQ(r.status, 1) << r.out << r.err;
  const std::string& o = r.out;
  EXPECT_NE(o.find("ok   " + dir.file("orders.test.yaml") + ": passes"), std::string::npos) << o;
  EXPECT_NE(o.find("FAIL " + dir.file("orders.test.yaml") + ": wrong value, missing field and a false condition"),
            std::string::npos) << o;
  EXPECT_NE(o.find("payload.total_cents: expected 2001, got 2000"), std::string::npos) << o;
  EXPECT_NE(o.find("payload.currency: missing (expected \"EUR\")"), std::string::npos) << o;
  EXPECT_NE(o.find("key: expected 'k9', got 'k2'"), std::string::npos) << o;
  EXPECT_NE(o.find("when: `total_cents < 100` is not true"), std::string::npos) << o;
  EXPECT_NE(o.find("got payload:      {\"id\":2,\"total\":20,\"total_cents\":2000}"), std::string::npos) << o;
  // Each difference points at the expectation in the test file.
  EXPECT_NE(o.find("sinks.large[0] (" + dir.file("orders.test.yaml") + ":12:13):"), std::string::npos) << o;
  EXPECT_NE(o.find("sinks.small: expected 2 message(s), got 1"), std::string::npos) << o;
  EXPECT_NE(o.find("missing [1]"), std::string::npos) << o;
  EXPECT_NE(o.find("dead_letter: expected 0 message(s), got 1"), std::string::npos) << o;
  EXPECT_NE(o.find("not expected [0]: stage steps[0], reason 'map: set.total_cents: `int(total * 100)`: cannot multiply null and int'"),
            std::string::npos) << o;
  EXPECT_NE(o.find("sinks.large: expected 0 message(s), got 1"), std::string::npos) << o;
  EXPECT_NE(o.find("4 test(s) in 1 file(s): 1 passed, 3 failed"), std::string::npos) << o;
  std::string xml = read(dir.file("junit.xml"));
  EXPECT_NE(xml.find(R"(tests="4" failures="3" errors="0")"), std::string::npos) << xml;
  EXPECT_NE(xml.find(R"(<failure message="sinks.large[0] ()"), std::string::npos) << xml;
  EXPECT_NE(xml.find("`total_cents &lt; 100`"), std::string::npos) << xml;
}

TEST_F(FailingTests, AnInvalidTestFileIsRefusedWithWhereAndTheFix) {
  dir.write("orders.test.yaml", R"(tests:
  - name: typo
    input: [ { payload: {id: 1}, kee: x } ]
    expects: {}
  - name: bad condition and unknown op
    input: [ { cdc: { op: upsert, table: orders, after: {id: 1} } } ]
    expect:
      sinks:
        large: [ { when: "total_cents >" } ]
)");
  auto r = edgeflow_test({dir.file("orders.test.yaml"), "--junit", dir.file("junit.xml")});
  EXPECT_EQ(r.status, 2) << r.out << r.err;
  const std::string f = dir.file("orders.test.yaml");
  EXPECT_NE(r.out.find(f + ":3:34: tests[0].input[0].kee: unknown key"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Did you mean 'key'?"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(f + ":4:5: tests[0].expects: unknown key"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Did you mean 'expect'?"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("tests[1].input[0].cdc.op: expected c, u, d, r or t"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("tests[1].expect.sinks.large[0].when:"), std::string::npos) << r.out;
  EXPECT_NE(read(dir.file("junit.xml")).find(R"(errors="1")"), std::string::npos);

  dir.write("orders.test.yaml", R"(tests:
  - name: a sink the flow does not have
    input: [ { payload: {id: 1, total: 1} } ]
    expect: { sinks: { smal: [] } }
)");
  r = edgeflow_test({dir.file("orders.yaml")});  // a flow file: its tests beside it
  EXPECT_EQ(r.status, 2) << r.out << r.err;
  EXPECT_NE(r.out.find(f + ":4:24: flow orders has no sink named 'smal'; its sinks are: large, small. Did you mean 'small'?"),
            std::string::npos) << r.out;

  r = edgeflow_test({dir.file("none.yaml")});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("no such file or directory"), std::string::npos) << r.err;
}

// The engine isolates a batch its step throws on: the poison message is dead-lettered with the
// step's reason, and the next test runs on a fresh flow.
TEST_F(FailingTests, AStepThatThrowsDeadLettersItsMessageAndTheNextTestRuns) {
  dir.write("boom.yaml", R"(flow: boom
source: { type: generate, count: 1 }
steps:
  - { type: script, throw_on: boom }
sinks:
  out: { type: drop }
)");
  dir.write("boom.test.yaml", R"(tests:
  - name: the step throws
    input: [ { payload: "boom" } ]
    expect: { sinks: { out: [ { payload: boom } ] } }
  - name: the step passes
    input: [ { payload: "fine" } ]
    expect: { sinks: { out: [ { payload: fine } ] } }
)");
  auto r = edgeflow_test({dir.file("boom.test.yaml")});
  EXPECT_EQ(r.status, 1) << r.out << r.err;
  EXPECT_NE(r.out.find("not expected [0]: stage steps[0], reason 'script: cannot handle boom', payload boom"),
            std::string::npos) << r.out;
  EXPECT_NE(r.out.find("ok   " + dir.file("boom.test.yaml") + ": the step passes"), std::string::npos) << r.out;
}

TEST(EdgeflowTest, FlowLoadingSkipsTestFiles) {
  TempDir dir;
  dir.write("a.yaml", "flow: a\nsource: { type: generate, count: 1 }\nsinks: { out: { type: drop } }\n");
  dir.write("a.test.yaml", "tests: []\n");
  auto r = run_command({EDGEFLOW_BIN, "validate", dir.path().string()});
  EXPECT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("ok: 1 flow(s) valid"), std::string::npos) << r.out;
}

}  // namespace
