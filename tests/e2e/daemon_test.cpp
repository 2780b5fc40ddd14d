// The daemon as operators run it: a child process, stopped with signals, restarted on files.
#include "daemon.hpp"
#include "test_support.hpp"

#include <gtest/gtest.h>

#include <csignal>
#include <cstdio>
#include <fcntl.h>
#include <set>
#include <sys/wait.h>
#include <unistd.h>

using edgeflow::test::Daemon;
using edgeflow::test::read_lines;
using edgeflow::test::TempDir;

namespace {

std::string slurp(const std::string& path) { return edgeflow::test::join(read_lines(path)); }

// The number right after `name` in text (`"id":42`, `delivered=7`), or -1.
long number_after(const std::string& text, const std::string& name) {
  size_t at = text.find(name);
  if (at == std::string::npos) return -1;
  at += name.size();
  size_t end = text.find_first_not_of("0123456789", at);
  return end == at ? -1 : std::stol(text.substr(at, end - at));
}

}  // namespace

TEST(Daemon, SigtermDrainsInFlightEventsAndLosesNone) {
  TempDir dir;
  std::string flow = dir.write("flow.yaml", R"(flow: gen
source: { type: generate, batch_size: 64 }
sinks: { out: { type: stdout } }
)");
  Daemon d({"run", "--state-dir", dir.file("state"), flow}, dir.file("stderr.log"));
  std::set<long> ids;
  std::string line;
  auto take = [&] {
    long id = number_after(line, "\"id\":");
    ASSERT_GE(id, 0) << line;
    EXPECT_TRUE(ids.insert(id).second) << "duplicate " << line;
  };
  while (ids.size() < 5000 && d.line(line)) take();
  ASSERT_EQ(ids.size(), 5000u) << slurp(dir.file("stderr.log"));
  d.signal(SIGTERM);
  while (d.line(line)) take();
  EXPECT_EQ(d.wait(), 0) << slurp(dir.file("stderr.log"));

  std::string log = slurp(dir.file("stderr.log"));
  long generated = number_after(log, "emitted=");
  ASSERT_GT(generated, 0) << log;
  EXPECT_EQ(number_after(log, "delivered="), generated) << log;
  EXPECT_EQ(number_after(log, "dead_lettered="), 0) << log;
  EXPECT_EQ(number_after(log, "unresolved="), 0) << log;
  // Every generated event reached stdout exactly once: ids 0..N-1, nothing missing.
  EXPECT_EQ(long(ids.size()), generated);
  EXPECT_EQ(*ids.begin(), 0);
  EXPECT_EQ(*ids.rbegin(), generated - 1);
  EXPECT_NE(log.find("ended stopped"), std::string::npos) << log;
}

TEST(Daemon, FileSourceResumesWhereItLeftOffAfterARestart) {
  TempDir dir;
  {
    std::ofstream in(dir.file("in.jsonl"));
    for (int i = 0; i < 100; ++i) in << "{\"i\":" << i << "}\n";
  }
  std::string flow = dir.write("flow.yaml", "flow: copy\nsource: { type: file, path: " + dir.file("in.jsonl") +
                                                 " }\nsinks: { out: { type: file, path: " + dir.file("out.jsonl") + " } }\n");
  std::string line;
  {
    Daemon d({"run", "--state-dir", dir.file("state"), flow}, dir.file("stderr1.log"));
    EXPECT_EQ(d.wait(), 0) << slurp(dir.file("stderr1.log"));
  }
  ASSERT_EQ(read_lines(dir.file("out.jsonl")).size(), 100u);
  {
    std::ofstream in(dir.file("in.jsonl"), std::ios::app);
    for (int i = 100; i < 150; ++i) in << "{\"i\":" << i << "}\n";
  }
  {
    Daemon d({"run", "--state-dir", dir.file("state"), flow}, dir.file("stderr2.log"));
    EXPECT_EQ(d.wait(), 0) << slurp(dir.file("stderr2.log"));
  }
  auto out = read_lines(dir.file("out.jsonl"));
  ASSERT_EQ(out.size(), 150u);
  for (int i = 0; i < 150; ++i) EXPECT_EQ(out[size_t(i)], "{\"i\":" + std::to_string(i) + "}");
}

// A dead letter holds the payload that reached the failing step: the bytes that arrived, or the
// document an earlier step rewrote, numbers exact either way; base64 when it is not UTF-8.
TEST(Daemon, ADeadLetterCarriesThePayloadExactly) {
  TempDir dir;
  const std::string raw = R"({ "n" : 3, "big": 12345678901234567890, "s":"caf\u00e9" })";
  const std::string rewritten = R"({"n": 1.50, "big": 12345678901234567891})";
  const std::string not_utf8 = "{\"n\":0,\"s\":\"\xff\"}";
  {
    std::ofstream in(dir.file("in.jsonl"));
    in << raw << "\n" << rewritten << "\n" << not_utf8 << "\n" << R"({"n":1})" << "\n";
  }
  std::string flow = dir.write("flow.yaml", R"(flow: exact
source: { type: file, path: )" + dir.file("in.jsonl") + R"( }
steps:
  - type: validate
    schema: { properties: { n: { maximum: 2 } } }
  - type: map
    set: { checked: true }
  - type: validate
    schema: { properties: { n: { maximum: 1 } } }
sinks:
  out: { type: file, path: )" + dir.file("out.jsonl") + R"( }
dead_letter: { type: file, path: )" + dir.file("dlq.jsonl") + R"( }
)");
  Daemon d({"run", "--state-dir", dir.file("state"), flow}, dir.file("stderr.log"));
  EXPECT_EQ(d.wait(), 0) << slurp(dir.file("stderr.log"));
  EXPECT_EQ(read_lines(dir.file("out.jsonl")), std::vector<std::string>{R"({"n":1,"checked":true})"});
  auto dlq = read_lines(dir.file("dlq.jsonl"));
  ASSERT_EQ(dlq.size(), 3u);
  EXPECT_TRUE(dlq[0].ends_with(R"(,"payload":{"n":3,"big":12345678901234567890,"s":"caf\u00e9"}})")) << dlq[0];
  EXPECT_TRUE(dlq[2].ends_with(R"(,"payload":{"n":1.5,"big":12345678901234567891,"checked":true}})")) << dlq[2];
  // The first validate step refuses it (a batch's dead letters leave step by step).
  EXPECT_TRUE(dlq[1].ends_with(R"(,"payload_base64":"eyJuIjowLCJzIjoi/yJ9"})")) << dlq[1];
}

// The daemon with a plugin sink that answers only every 50th write, 10 messages in flight: the
// run ends by itself (the source's end), every message delivered, no stop needed.
TEST(Daemon, ASinkThatAcksEveryFiftyWritesFinishesTheFlow) {
  TempDir dir;
  std::string flow = dir.write("flow.yaml", R"(flow: batching
source: { type: generate, count: 500, batch_size: 1 }
sinks: { out: { type: flaky, ack_every: 50, record: )" + dir.file("out.jsonl") + R"( } }
max_in_flight: 10
)");
  Daemon d({"run", "--plugin-dir", EDGEFLOW_TEST_PLUGIN_DIR, "--state-dir", dir.file("state"), flow},
           dir.file("stderr.log"));
  EXPECT_EQ(d.wait(), 0) << slurp(dir.file("stderr.log"));
  EXPECT_EQ(read_lines(dir.file("out.jsonl")).size(), 500u);
  EXPECT_NE(slurp(dir.file("stderr.log")).find("emitted=500 delivered=500 dead_lettered=0 unresolved=0"),
            std::string::npos) << slurp(dir.file("stderr.log"));
}

TEST(Daemon, PluginsInspectSuggestsTheNearestType) {
  TempDir dir;
  Daemon d({"plugins", "inspect", "mqqt"}, dir.file("stderr.log"));
  EXPECT_EQ(d.wait(), 1);
  std::string log = slurp(dir.file("stderr.log"));
  EXPECT_NE(log.find("edgeflow: no component of type 'mqqt'. Did you mean 'mqtt'? See `edgeflow plugins list`."),
            std::string::npos) << log;
}

// The projects it writes are built, tested and run by tests/sdk_install; here, what it refuses.
TEST(Daemon, PluginNewRefusesABadNameAKindAndADirectoryInUse) {
  TempDir dir;
  auto refusal = [&](std::vector<std::string> args) {
    Daemon d(args, dir.file("stderr.log"));
    EXPECT_EQ(d.wait(), 2);
    return slurp(dir.file("stderr.log"));
  };
  std::string log = refusal({"plugin", "new", "Modbus-Poller", "--kind", "source", "--dir", dir.file("p1")});
  EXPECT_NE(log.find("edgeflow: plugin name 'Modbus-Poller': use lowercase letters, digits and _"), std::string::npos)
      << log;
  log = refusal({"plugin", "new", "poller", "--kind", "connector", "--dir", dir.file("p2")});
  EXPECT_NE(log.find("edgeflow: --kind is source, transformer or sink, not 'connector'"), std::string::npos) << log;
  log = refusal({"plugin", "new", "poller", "--dir", dir.file("p3")});
  EXPECT_NE(log.find("plugin new needs --kind source, transformer or sink"), std::string::npos) << log;
  log = refusal({"plugin", "new", "stdout", "--kind", "sink", "--dir", dir.file("p4")});
  EXPECT_NE(log.find("edgeflow: type 'stdout' is taken: the sink of plugin stdout ("), std::string::npos) << log;
  EXPECT_FALSE(std::filesystem::exists(dir.file("p4")));
  std::filesystem::create_directory(dir.file("used"));
  dir.write("used/keep.txt", "mine");
  log = refusal({"plugin", "new", "poller", "--kind", "sink", "--dir", dir.file("used")});
  EXPECT_NE(log.find(dir.file("used") + " already exists and is not an empty directory"), std::string::npos) << log;
  EXPECT_EQ(slurp(dir.file("used/keep.txt")).substr(0, 4), "mine");  // untouched
  EXPECT_FALSE(std::filesystem::exists(dir.file("p1")));
  EXPECT_FALSE(std::filesystem::exists(dir.file("p2")));

  Daemon ok({"plugin", "new", "poller", "--kind", "sink", "--dir", dir.file("fresh")}, dir.file("stderr.log"));
  EXPECT_EQ(ok.wait(), 0);
  for (const char* f : {"CMakeLists.txt", "src/poller.hpp", "src/poller.cpp", "test/poller_test.cpp",
                        "examples/flow.yaml", "README.md"})
    EXPECT_TRUE(std::filesystem::exists(dir.file("fresh/") + f)) << f;
  EXPECT_NE(slurp(dir.file("fresh/src/poller.hpp")).find("class Poller : public edgeflow::sdk::Sink"), std::string::npos);
}

TEST(Daemon, ValidateReportsConfigErrorsAndStartsNothing) {
  TempDir dir;
  std::string flow = dir.write("flow.yaml", "flow: bad\nsource: { type: generate, count: lots }\nsinks: { out: { type: stdout } }\n");
  Daemon d({"validate", flow}, dir.file("stderr.log"));
  EXPECT_EQ(d.wait(), 1);
  std::string log = slurp(dir.file("stderr.log"));
  EXPECT_NE(log.find(flow + ":2:34: source.count: expected integer, got 'lots'"), std::string::npos) << log;
  EXPECT_NE(log.find("nothing was started"), std::string::npos) << log;
}

TEST(Daemon, ValidatePrintShowsTheEffectiveConfigWithSecretsRedacted) {
  TempDir dir;
  std::string flow = dir.write("flow.yaml", "flow: ok\nsource: { type: generate, count: 1 }\n"
                                            "sinks: { out: { type: flaky, token: hunter2-secret } }\n");
  Daemon d({"validate", "--print", "--plugin-dir", EDGEFLOW_TEST_PLUGIN_DIR, flow}, dir.file("stderr.log"));
  std::string all, line;
  while (d.line(line)) all += line + "\n";
  EXPECT_EQ(d.wait(), 0) << slurp(dir.file("stderr.log"));
  EXPECT_NE(all.find("source: generate {\"count\":1"), std::string::npos) << all;
  EXPECT_NE(all.find("\"token\":\"<redacted>\""), std::string::npos) << all;
  EXPECT_EQ(all.find("hunter2"), std::string::npos) << all;
  EXPECT_NE(all.find("ok: 1 flow(s) valid"), std::string::npos) << all;
}

TEST(Daemon, GenerateMapRouteIntoTwoFilesWritesEveryRecordExactly) {
  TempDir dir;
  std::string flow = dir.write("flow.yaml", R"(flow: canonical
source: { type: generate, count: 200, batch_size: 16, keys: 4 }
steps:
  - type: map
    unmapped: drop
    set:
      event_id: id
      account: upper(key)
      parity: "id % 2 == 0 ? 'even' : 'odd'"
      region: lookup('regions', key, 'unknown')
      doubled: id * 2
    key: concat('acct-', id % 4)
    lookups: { regions: { k-0: north, k-1: south } }
  - type: route
    routes:
      - when: parity == 'even'
        to: [even]
      - to: [odd]
sinks:
  even: { type: file, path: )" + dir.file("even.jsonl") + R"( }
  odd: { type: file, path: )" + dir.file("odd.jsonl") + R"( }
dead_letter: { type: file, path: )" + dir.file("dlq.jsonl") + R"( }
)");
  Daemon d({"run", "--state-dir", dir.file("state"), flow}, dir.file("stderr.log"));
  EXPECT_EQ(d.wait(), 0) << slurp(dir.file("stderr.log"));
  std::vector<std::string> even, odd;
  for (int i = 0; i < 200; ++i) {
    const char* region = i % 4 == 0 ? "north" : i % 4 == 1 ? "south" : "unknown";
    std::string line = "{\"event_id\":" + std::to_string(i) + ",\"account\":\"K-" + std::to_string(i % 4) +
                       "\",\"parity\":\"" + (i % 2 ? "odd" : "even") + "\",\"region\":\"" + region +
                       "\",\"doubled\":" + std::to_string(2 * i) + "}";
    (i % 2 ? odd : even).push_back(line);
  }
  EXPECT_EQ(read_lines(dir.file("even.jsonl")), even);
  EXPECT_EQ(read_lines(dir.file("odd.jsonl")), odd);
  EXPECT_TRUE(read_lines(dir.file("dlq.jsonl")).empty());
  EXPECT_NE(slurp(dir.file("stderr.log")).find("emitted=200 delivered=200 dead_lettered=0 unresolved=0"), std::string::npos);
}

// `run` keeps large buffers in malloc's heap (docs/operator-guide.md, "Memory"), unless the
// operator tuned malloc in the daemon's environment.
TEST(Daemon, KeepsLargeBuffersInTheHeapUnlessMallocIsTunedInTheEnvironment) {
  TempDir dir;
  std::string flow = dir.write("flow.yaml", "flow: one\nsource: { type: generate, count: 1 }\nsinks:\n  out: { type: file, path: " +
                                                dir.file("out.jsonl") + " }\n");
  auto run = [&](const char* tunables) {
    if (tunables) setenv("GLIBC_TUNABLES", tunables, 1);
    Daemon d({"run", "--log-level", "debug", "--state-dir", dir.file("state"), flow}, dir.file("stderr.log"));
    int code = d.wait();
    unsetenv("GLIBC_TUNABLES");
    EXPECT_EQ(code, 0) << slurp(dir.file("stderr.log"));
    return slurp(dir.file("stderr.log"));
  };
  std::string kept = run(nullptr);
  EXPECT_NE(kept.find("malloc: buffers up to 32 MiB stay in the heap"), std::string::npos) << kept;
  std::string left = run("glibc.malloc.trim_threshold=1048576");
  EXPECT_NE(left.find("malloc: left to the settings in the environment"), std::string::npos) << left;
  EXPECT_EQ(left.find("stay in the heap"), std::string::npos) << left;
  // Other tunables are not malloc's: the daemon still tunes it.
  std::string other = run("glibc.pthread.rseq=0");
  EXPECT_NE(other.find("stay in the heap"), std::string::npos) << other;
}

// `run` keeps only the plugins its flows use (with the libraries only they need): the idle
// daemon's memory (docs/benchmarks.md, bench/engine) is not every installed plugin's.
TEST(Daemon, RunUnloadsThePluginsNoFlowUses) {
  TempDir dir;
  std::string flow = dir.write("flow.yaml", "flow: gen\nsource: { type: generate, batch_size: 1 }\nsinks: { out: { type: stdout } }\n");
  Daemon d({"run", "--log-level", "debug", "--state-dir", dir.file("state"), flow}, dir.file("stderr.log"));
  std::string line;
  ASSERT_TRUE(d.line(line)) << slurp(dir.file("stderr.log"));  // running: the unloading is done
  std::string maps = slurp("/proc/" + std::to_string(d.pid()) + "/maps");
  for (const char* kept : {"/edgeflow-generate.so", "/edgeflow-stdout.so", "/edgeflow-dlq_store.so"})  // the dead letter
    EXPECT_NE(maps.find(kept), std::string::npos) << kept;
  for (const char* gone : {"/edgeflow-map.so", "/edgeflow-kafka.so", "/edgeflow-postgres_cdc.so", "/edgeflow-http.so",
                           "/edgeflow-file.so"})
    EXPECT_EQ(maps.find(gone), std::string::npos) << gone;
  d.signal(SIGTERM);
  while (d.line(line)) {
  }
  EXPECT_EQ(d.wait(), 0) << slurp(dir.file("stderr.log"));
  std::string log = slurp(dir.file("stderr.log"));
  EXPECT_NE(log.find("edgeflow-kafka.so: no flow uses it"), std::string::npos) << log;
  EXPECT_EQ(log.find("edgeflow-stdout.so: no flow uses it"), std::string::npos) << log;
}
