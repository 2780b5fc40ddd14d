// Flow files: every mistake is reported with file:line:col, the key path and a fix.
#include "engine.hpp"
#include "test_support.hpp"

#include <gtest/gtest.h>

#include <cstdlib>

#include <sys/stat.h>

using namespace edgeflow;
using edgeflow::test::TempDir;

namespace {

class Config : public ::testing::Test {
 protected:
  TempDir dir;
  Runtime rt{RuntimeOptions{{EDGEFLOW_PLUGIN_DIR, EDGEFLOW_TEST_PLUGIN_DIR}, dir.file("state"), {}}};

  // Loads the given flow text; returns all errors joined, empty when it loaded.
  std::string errors(const std::string& yaml, const std::string& name = "flow.yaml") {
    host::Diagnostics diag;
    rt.load({dir.write(name, yaml)}, diag);
    return edgeflow::test::join(diag.errors);
  }
  std::string at(const std::string& where) { return dir.file("flow.yaml") + ":" + where; }
};

const char* kGood = R"(flow: good
source: { type: sequence, count: 5 }
sinks:
  out: { type: flaky }
dead_letter: { type: flaky }
)";

}  // namespace

TEST_F(Config, AValidFlowLoads) {
  EXPECT_EQ(errors(kGood), "");
  ASSERT_EQ(rt.flows().size(), 1u);
  EXPECT_EQ(rt.flows()[0]->spec().source.config->operator[]("count").GetInt64(), 5);
  // Defaults are filled in from the plugin's spec.
  EXPECT_EQ(rt.flows()[0]->spec().source.config->operator[]("batch_size").GetInt64(), 10);
}

TEST_F(Config, UnknownOptionNamesLineColumnKeyAndSuggestsTheRightOne) {
  std::string e = errors("flow: f\nsource: { type: sequence, cout: 5 }\nsinks: { out: { type: flaky } }\n");
  EXPECT_NE(e.find(at("2:27: source.cout: unknown option 'cout' for source 'sequence'. Did you mean 'count'?")),
            std::string::npos) << e;
  EXPECT_NE(e.find("Known options: count, batch_size, tags"), std::string::npos) << e;
}

TEST_F(Config, WrongTypeSaysWhatWasExpected) {
  std::string e = errors("flow: f\nsource:\n  type: sequence\n  count: many\nsinks: { out: { type: flaky } }\n");
  EXPECT_NE(e.find(at("4:10: source.count: expected integer, got 'many'")), std::string::npos) << e;
}

TEST_F(Config, OutOfRangeValuesAreRefused) {
  std::string e = errors("flow: f\nsource: { type: sequence, batch_size: 0 }\nsinks: { out: { type: flaky } }\n");
  EXPECT_NE(e.find("source.batch_size: must be at least 1, got 0"), std::string::npos) << e;
}

TEST_F(Config, MissingRequiredOptionSaysHowToAddIt) {
  std::string e = errors("flow: f\nsource: { type: sequence }\nsinks:\n  out:\n    type: file\n");
  EXPECT_NE(e.find(at("5:5: sinks.out.path: required option missing; add `path: ")), std::string::npos) << e;
  EXPECT_NE(e.find("add `path: "), std::string::npos) << e;
}

TEST_F(Config, UnknownPluginTypeListsTheKnownOnes) {
  std::string e = errors("flow: f\nsource: { type: sequence }\nsinks:\n  out: { type: flakey }\n");
  EXPECT_NE(e.find(at("4:16: sinks.out.type: unknown sink type 'flakey'. Did you mean 'flaky'?")),
            std::string::npos) << e;
  EXPECT_NE(e.find("Known sink types: "), std::string::npos) << e;
  EXPECT_NE(e.find("flaky"), std::string::npos) << e;
}

TEST_F(Config, EveryErrorIsReportedNotJustTheFirst) {
  std::string e = errors("flow: f\nsource: { type: sequence, count: x }\nsteps:\n  - type: nope\nsinks: {}\n");
  EXPECT_NE(e.find("source.count: expected integer"), std::string::npos) << e;
  EXPECT_NE(e.find("steps[0].type: unknown transformer type 'nope'"), std::string::npos) << e;
  EXPECT_NE(e.find("sinks: a flow needs at least one named sink"), std::string::npos) << e;
}

TEST_F(Config, UnknownTopLevelKeyIsAnError) {
  std::string e = errors(std::string(kGood) + "sink: {}\n");
  EXPECT_NE(e.find(at("6:1: sink: unknown key 'sink' at the top of a flow. Did you mean 'sinks'?")),
            std::string::npos) << e;
}

TEST_F(Config, YamlSyntaxErrorsHaveTheirLine) {
  std::string e = errors("flow: f\nsource: { type: sequence\nsinks: [\n");
  EXPECT_NE(e.find(dir.file("flow.yaml") + ":"), std::string::npos) << e;
  EXPECT_NE(e.find("YAML syntax error"), std::string::npos) << e;
}

TEST_F(Config, FlowSettingsAreCheckedToo) {
  std::string e = errors(std::string(kGood) + "retry: { initial_backof: 1s }\nmax_in_flight: 0\n");
  EXPECT_NE(e.find("retry.initial_backof: unknown option 'initial_backof' for section 'retry'. Did you mean "
                   "'initial_backoff'?"), std::string::npos) << e;
  EXPECT_NE(e.find("max_in_flight: must be at least 1, got 0"), std::string::npos) << e;
  EXPECT_EQ(errors(std::string(kGood) + "retry: { initial_backoff: 250ms, max_attempts: 3 }\n"
                                        "max_in_flight_bytes: 1MiB\ndrain_timeout: 2s\n", "ok.yaml"), "");
  auto& spec = rt.flows()[0]->spec();
  EXPECT_EQ(spec.retry.initial.count(), 250);
  EXPECT_EQ(spec.retry.max_attempts, 3);
  EXPECT_EQ(spec.max_in_flight_bytes, 1u << 20);
  EXPECT_EQ(spec.drain_timeout.count(), 2000);
}

TEST_F(Config, DurationsAndSizesNeedUnitsItUnderstands) {
  std::string e = errors(std::string(kGood) + "drain_timeout: 5 minutes\nmax_in_flight_bytes: 3 apples\n");
  EXPECT_NE(e.find("drain_timeout: expected a duration like 250ms, 5s, 2m or 1h, got '5 minutes'"), std::string::npos) << e;
  EXPECT_NE(e.find("max_in_flight_bytes: expected a size like 512, 64KiB, 10MB or 1GiB, got '3 apples'"),
            std::string::npos) << e;
}

TEST_F(Config, EnvAndFileInterpolation) {
  setenv("EDGEFLOW_TEST_COUNT", "42", 1);
  std::string tagfile = dir.write("tag.txt", "from-file\n");
  EXPECT_EQ(errors("flow: f\nsource: { type: sequence, count: \"${env:EDGEFLOW_TEST_COUNT}\", tags: [\"${file:" +
                   tagfile + "}\"] }\nsinks: { out: { type: flaky } }\ndead_letter: { type: flaky }\n"), "");
  auto& cfg = *rt.flows()[0]->spec().source.config;
  EXPECT_EQ(cfg["count"].GetInt64(), 42);
  EXPECT_STREQ(cfg["tags"][0].GetString(), "from-file");
}

TEST_F(Config, MissingEnvironmentVariableIsAnErrorAtItsLocation) {
  unsetenv("EDGEFLOW_TEST_UNSET");
  std::string e = errors("flow: f\nsource: { type: sequence }\nsinks:\n  out: { type: flaky, record: \"${env:EDGEFLOW_TEST_UNSET}\" }\n");
  EXPECT_NE(e.find(at("4:31: sinks.out.record: environment variable EDGEFLOW_TEST_UNSET is not set")),
            std::string::npos) << e;
}

TEST_F(Config, DuplicateFlowNamesAcrossFilesAreRefused) {
  dir.write("a.yaml", kGood);
  dir.write("b.yaml", kGood);
  dir.write("notes.txt", "not a flow");
  host::Diagnostics diag;
  rt.load({dir.path().string()}, diag);
  std::string e = edgeflow::test::join(diag.errors);
  EXPECT_NE(e.find(dir.file("b.yaml") + ":1:7: flow: flow 'good' is already defined at " + dir.file("a.yaml") + ":1:7"),
            std::string::npos) << e;
}

TEST_F(Config, ADirectoryLoadsEveryFlowFileInIt) {
  dir.write("a.yaml", kGood);
  std::string other = kGood;
  other.replace(other.find("good"), 4, "other");
  dir.write("b.yml", other);
  dir.write("README.md", "# not a flow");
  host::Diagnostics diag;
  ASSERT_TRUE(rt.load({dir.path().string()}, diag)) << edgeflow::test::join(diag.errors);
  ASSERT_EQ(rt.flows().size(), 2u);
  EXPECT_EQ(rt.flows()[0]->name(), "good");
  EXPECT_EQ(rt.flows()[1]->name(), "other");
}

TEST_F(Config, PluginCreateErrorsPointIntoTheYaml) {
  std::string e = errors("flow: f\nsource:\n  type: sequence\n  tags: []\nsinks: { out: { type: flaky } }\n");
  EXPECT_NE(e.find(at("4:9: tags: give at least one tag")), std::string::npos) << e;
}

TEST_F(Config, SecretsNeverAppearInErrorsOrPrintedConfig) {
  setenv("EDGEFLOW_TEST_TOKEN", "wrong", 1);
  std::string e = errors("flow: f\nsource: { type: sequence }\nsinks:\n  out: { type: flaky, token: \"${env:EDGEFLOW_TEST_TOKEN}\" }\n");
  EXPECT_NE(e.find("flaky: token '<redacted>' refused"), std::string::npos) << e;
  EXPECT_EQ(e.find("wrong"), std::string::npos) << e;

  setenv("EDGEFLOW_TEST_TOKEN", "s3cr3t-value", 1);
  ASSERT_EQ(errors("flow: f\nsource: { type: sequence }\nsinks:\n  out: { type: flaky, token: \"${env:EDGEFLOW_TEST_TOKEN}\" }\n"
                   "dead_letter: { type: flaky }\n", "ok.yaml"), "");
  std::string printed = describe_flow(rt.flows()[0]->spec());
  EXPECT_EQ(printed.find("s3cr3t-value"), std::string::npos) << printed;
  EXPECT_NE(printed.find("\"token\":\"<redacted>\""), std::string::npos) << printed;
}

TEST_F(Config, ABufferIsReadAndShown) {
  ASSERT_EQ(errors("flow: f\nsource: { type: sequence }\nsinks:\n  a: { type: flaky, buffer: { type: disk, max_size: 2MiB, "
                   "when_full: reject } }\n  b: { type: flaky }\n", "ok.yaml"), "");
  auto& spec = rt.flows()[0]->spec();
  ASSERT_TRUE(spec.sinks[0].buffer);
  EXPECT_EQ(spec.sinks[0].buffer->max_bytes, 2u << 20);
  EXPECT_TRUE(spec.sinks[0].buffer->reject_when_full);
  EXPECT_FALSE(spec.sinks[1].buffer);
  std::string printed = describe_flow(spec);
  EXPECT_NE(printed.find("buffer: disk, max_size 2097152 bytes, when_full reject"), std::string::npos) << printed;
  EXPECT_NE(errors("flow: f\nsource: { type: sequence }\nsinks:\n  a: { type: flaky, buffer: { max_size: 1 } }\n", "bad.yaml")
                .find("sinks.a.buffer"),
            std::string::npos);
}

TEST_F(Config, WithoutADeadLetterTheLocalStoreIsUsed) {
  ASSERT_EQ(errors("flow: f\nsource: { type: sequence }\nsinks: { out: { type: flaky } }\n"), "");
  auto& dl = rt.flows()[0]->spec().dead_letter;
  EXPECT_EQ(dl.type, "dlq_store");
  EXPECT_EQ(std::string((*dl.config)["path"].GetString()), dir.file("state") + "/dead_letters.sqlite");
}

// Hostile or careless flow files: refused fast, with file:line and the fix, never expanded.

TEST_F(Config, AnAliasBombIsRefusedWithItsLineAndTheLimit) {
  std::string bomb = "flow: f\nsource: { type: sequence }\nsinks: { out: { type: flaky } }\n"
                     "description:\n  a: &a [x, x, x, x, x, x, x, x, x, x]\n";
  for (char c = 'b'; c <= 'j'; ++c)
    bomb += std::string("  ") + c + ": &" + c + " [*" + char(c - 1) + ", *" + char(c - 1) + ", *" + char(c - 1) +
            ", *" + char(c - 1) + ", *" + char(c - 1) + ", *" + char(c - 1) + ", *" + char(c - 1) + ", *" +
            char(c - 1) + ", *" + char(c - 1) + ", *" + char(c - 1) + "]\n";
  std::string e = errors(bomb);
  EXPECT_NE(e.find(at("")), std::string::npos) << e;
  EXPECT_NE(e.find("aliases expand to more than 100000 nodes in this file"), std::string::npos) << e;
  EXPECT_TRUE(rt.flows().empty());
  // A few shared blocks are fine.
  EXPECT_EQ(errors("flow: f\nsource: { type: sequence }\nsinks:\n  out: &s { type: flaky }\n  copy: *s\n"
                   "dead_letter: *s\n", "ok.yaml"), "");
}

TEST_F(Config, DuplicateKeysAreErrorsNamingBothLines) {
  std::string e = errors("flow: f\nsource: { type: sequence }\nsinks:\n  out: { type: flaky }\n"
                         "  out: { type: flaky, reject: x }\n");
  EXPECT_NE(e.find(at("5:3: duplicate key 'out' (first at line 4)")), std::string::npos) << e;
  e = errors("flow: f\nsource: { type: sequence, count: 1, count: 2 }\nsinks: { out: { type: flaky } }\n");
  EXPECT_NE(e.find(at("2:37: duplicate key 'count' (first at line 2)")), std::string::npos) << e;
  e = errors("flow: f\nflow: g\nsource: { type: sequence }\nsinks: { out: { type: flaky } }\n");
  EXPECT_NE(e.find(at("2:1: duplicate key 'flow' (first at line 1)")), std::string::npos) << e;
}

TEST_F(Config, AnAliasInsideItsOwnAnchorIsRefused) {
  // Found by fuzz_flow: yaml-cpp builds a node that contains itself, and reading it never ends.
  std::string e = errors("flow: f\nsource: { type: sequence }\nsinks: { out: { type: flaky } }\ndescription: &a [x, *a]\n");
  EXPECT_NE(e.find(at("4:21: this alias refers to a node that contains it (a cycle)")), std::string::npos) << e;
}

TEST_F(Config, TextThatYamlCppReadsAsEndlessDocumentsIsRefused) {
  // Found by fuzz_flow: yaml-cpp 0.7 reports an empty document after an empty document here.
  std::string e = errors(", *a: &a [*a]\nc: n*b,*b, *b]\n");
  EXPECT_NE(e.find("more than 1000 YAML documents in one file"), std::string::npos) << e;
}

TEST_F(Config, KeysAreText) {
  // Found by fuzz_flow: a list as a key made yaml-cpp's conversion throw past the loader.
  std::string e = errors("flow: f\nsource: { type: sequence }\nsinks: { out: { type: flaky } }\nsteps:\n  - type: map\n"
                         "?   unmapped: drop\n    set: { a: b }\n");
  EXPECT_NE(e.find("a key must be text, not a list, a map, an alias or empty"), std::string::npos) << e;
  e = errors("flow: f\n? [a, b]\n: x\nsource: { type: sequence }\nsinks: { out: { type: flaky } }\n");
  EXPECT_NE(e.find(at("2:3: a key must be text")), std::string::npos) << e;
}

TEST_F(Config, NestingIsBounded) {
  std::string deep = "flow: f\nsource: { type: sequence }\nsinks: { out: { type: flaky } }\ndescription: " +
                     std::string(200, '[') + std::string(200, ']') + "\n";
  std::string e = errors(deep);
  EXPECT_NE(e.find("nested deeper than 64 levels"), std::string::npos) << e;
}

TEST_F(Config, FlowAndSinkNamesThatStepOutOfADirectoryAreRefused) {
  for (const char* name : {".", ".."}) {
    std::string e = errors(std::string("flow: \"") + name + "\"\nsource: { type: sequence }\nsinks: { out: { type: flaky } }\n");
    EXPECT_NE(e.find(at("1:7: flow: every flow needs a name")), std::string::npos) << name << ": " << e;
    e = errors(std::string("flow: f\nsource: { type: sequence }\nsinks: { \"") + name + "\": { type: flaky } }\n");
    EXPECT_NE(e.find("sink names use letters"), std::string::npos) << name << ": " << e;
  }
}

TEST_F(Config, AFlowFileOverTheSizeLimitIsRefusedWithTheLimitAndTheFix) {
  Runtime small{RuntimeOptions{{EDGEFLOW_PLUGIN_DIR, EDGEFLOW_TEST_PLUGIN_DIR}, dir.file("state"), YamlLimits{64}}};
  host::Diagnostics diag;
  small.load({dir.write("big.yaml", std::string(kGood) + "description: \"" + std::string(100, 'x') + "\"\n")}, diag);
  std::string e = edgeflow::test::join(diag.errors);
  EXPECT_NE(e.find(dir.file("big.yaml") + ": is 223 bytes, over the limit of 64 bytes; raise it with --max-file-size"),
            std::string::npos) << e;
}

TEST_F(Config, OnlyRegularFilesAreReadAndAFifoNeverHangs) {
  ASSERT_EQ(mkfifo(dir.file("fifo.yaml").c_str(), 0600), 0);
  host::Diagnostics diag;
  rt.load({dir.path().string()}, diag);  // blocks forever if the FIFO is opened for reading
  std::string e = edgeflow::test::join(diag.errors);
  EXPECT_NE(e.find(dir.file("fifo.yaml") + ": is a FIFO, not a regular file"), std::string::npos) << e;

  for (std::string target : {dir.file("fifo.yaml"), std::string("/dev/zero"), dir.path().string()}) {
    e = errors("flow: f\nsource: { type: sequence, tags: [\"${file:" + target + "}\"] }\nsinks: { out: { type: flaky } }\n");
    EXPECT_NE(e.find(at("2:34: source.tags[0]: ${file:" + target + "}: " + target + " is a")), std::string::npos) << e;
  }
  std::string big = dir.write("big.pem", std::string((1 << 20) + 1, 'k'));
  e = errors("flow: f\nsource: { type: sequence, tags: [\"${file:" + big + "}\"] }\nsinks: { out: { type: flaky } }\n");
  EXPECT_NE(e.find("is 1048577 bytes, over the limit of 1048576 bytes; ${file:...} is for secrets and keys, not data"),
            std::string::npos) << e;
}

TEST_F(Config, ControlCharactersAreRefusedBeforeTheYamlParserSeesThem) {
  // Found by fuzz_flow: yaml-cpp 0.7 never returns from this one (NULs in a comment).
  std::string e = errors(std::string("flow: f\n# a comment\0\0 with NULs\nsource: { type: sequence }\n", 59) +
                         "sinks: { out: { type: flaky } }\n");
  EXPECT_NE(e.find(at("2:12: a control character (0x00) is not allowed in YAML")), std::string::npos) << e;
}

TEST_F(Config, TabsInIndentationAreNamed) {
  std::string e = errors("flow: f\nsource:\n\ttype: sequence\nsinks: { out: { type: flaky } }\n");
  EXPECT_NE(e.find("line 3 is indented with a tab: YAML indents with spaces only"), std::string::npos) << e;
}

TEST_F(Config, BlankSecretsAreConfigErrorsWhereverTheyComeFrom) {
  setenv("EDGEFLOW_TEST_BLANK", "  ", 1);
  std::string blank = dir.write("blank.txt", "\n\n");
  for (std::string v : {std::string("\"\""), std::string("\"${env:EDGEFLOW_TEST_BLANK}\""), "\"${file:" + blank + "}\""}) {
    std::string e = errors("flow: f\nsource: { type: sequence }\nsinks:\n  out: { type: flaky, token: " + v + " }\n");
    EXPECT_NE(e.find(at("4:30: sinks.out.token: a secret cannot be empty or whitespace")), std::string::npos) << v << ": " << e;
  }
}

TEST_F(Config, ASecretIsScrubbedFromTheErrorsOfOtherOptionsThatUseIt) {
  setenv("EDGEFLOW_TEST_TOKEN", "s3cr3t-value", 1);
  // The source's count is read (and fails) before the sink's token makes the value a secret.
  std::string e = errors("flow: f\nsource: { type: sequence, count: \"${env:EDGEFLOW_TEST_TOKEN}\" }\n"
                         "sinks:\n  out: { type: flaky, token: \"${env:EDGEFLOW_TEST_TOKEN}\" }\n");
  EXPECT_NE(e.find("source.count: expected integer, got '<redacted>'"), std::string::npos) << e;
  EXPECT_EQ(e.find("s3cr3t-value"), std::string::npos) << e;
}

TEST_F(Config, PrintRedactsSecretOptionsAndNothingElse) {
  setenv("EDGEFLOW_TEST_TOKEN", "orders", 1);
  ASSERT_EQ(errors("flow: f\nsource: { type: sequence, tags: [orders] }\nsinks:\n"
                   "  out: { type: flaky, token: \"${env:EDGEFLOW_TEST_TOKEN}\" }\ndead_letter: { type: flaky }\n"), "");
  std::string printed = describe_flow(rt.flows()[0]->spec());
  EXPECT_NE(printed.find("\"tags\":[\"orders\"]"), std::string::npos) << printed;
  EXPECT_NE(printed.find("\"token\":\"<redacted>\""), std::string::npos) << printed;
}

TEST_F(Config, ASinksFlushIntervalIsCheckedBesideItsOptions) {
  std::string e = errors("flow: f\nsource: { type: sequence }\nsinks:\n  out: { type: flaky, flush_interval: soon }\n"
                         "dead_letter: { type: flaky, flush_interval: 0ms }\n");
  EXPECT_NE(e.find("sinks.out.flush_interval: "), std::string::npos) << e;
  EXPECT_NE(e.find("dead_letter.flush_interval: must be at least 1"), std::string::npos) << e;
  EXPECT_EQ(e.find("unknown key"), std::string::npos) << e;
}

TEST_F(Config, APluginsOwnErrorNamesTheFullKeyPath) {
  std::string e = errors("flow: f\nsource: { type: sequence }\nsteps:\n  - { type: script }\n"
                         "  - { type: stamp, field: x..y }\nsinks: { out: { type: flaky } }\n");
  EXPECT_NE(e.find(at("5:27: steps[1].field: 'x..y' is not a document path; write it like a.b")), std::string::npos)
      << e;
}

TEST_F(Config, AnExpressionErrorNamesTheOptionsFullKeyPath) {
  std::string e = errors("flow: f\nsource: { type: sequence }\nsteps:\n  - { type: filter, keep: \"a == \" }\n"
                         "sinks: { out: { type: flaky } }\n");
  EXPECT_NE(e.find(at("4:27: steps[0].keep: expected a value but the expression ends")), std::string::npos) << e;
}
