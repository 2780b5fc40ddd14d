// The engine end to end through real plugins (testkit): ack merging, retries, dead letters,
// backpressure, drains, restarts and isolation between flows.
#include "engine_fixture.hpp"

#include <set>

using namespace edgeflow;
using namespace std::chrono_literals;
using edgeflow::test::Engine;
using edgeflow::test::open_gates;
using edgeflow::test::read_lines;


TEST_F(Engine, RetryThenSuccessDeliversEverythingInOrder) {
  run(R"(flow: f
source: { type: sequence, count: 200, batch_size: 20, acks_file: $DIR/acks.txt }
sinks:
  out: { type: flaky, retry_first: 3, record: $DIR/out.txt }
dead_letter: { type: flaky, record: $DIR/dlq.txt }
retry: { initial_backoff: 1ms, max_backoff: 5ms }
)");
  auto out = read_lines(dir.file("out.txt"));
  ASSERT_EQ(out.size(), 200u);
  for (int i = 0; i < 200; ++i) EXPECT_EQ(n_of(out[size_t(i)]), i);
  EXPECT_GE(flow().stats().retries.load(), 60u);  // three failed writes, 20+ messages each
  EXPECT_EQ(flow().stats().delivered.load(), 200u);
  EXPECT_TRUE(read_lines(dir.file("dlq.txt")).empty());
  auto a = acks();
  ASSERT_EQ(a.size(), 200u);
  for (auto& [token, statuses] : a) EXPECT_EQ(statuses, std::vector<int>{EF_ACK_DELIVERED}) << token;
  EXPECT_EQ(flow().state(), FlowState::finished);
}

// The sink answers from its worker, so every message is still in flight after its batch was
// written; the engine has handed the parsed document back by then, and a retry and the dead
// letter must still carry the event as the step changed it.
TEST_F(Engine, AChangedEventSurvivesRetriesAndReachesTheDeadLetterAfterItsDocumentIsLetGo) {
  run(R"(flow: f
source: { type: sequence, count: 200, batch_size: 20, tags: [a, b], acks_file: $DIR/acks.txt }
steps:
  - type: map
    set: { doubled: n * 2 }
sinks:
  out: { type: flaky, async: true, retry_first: 2, reject: '"tag":"b"', record: $DIR/out.txt }
dead_letter: { type: flaky, record: $DIR/dlq.txt }
retry: { initial_backoff: 1ms, max_backoff: 5ms }
)");
  auto doubled = [](const std::string& json) {
    auto at = json.find("\"doubled\":");
    return at == std::string::npos ? -1 : std::stoi(json.substr(at + 10));
  };
  // An async sink's retry answers arrive after later batches were written: ack order is not n.
  auto out = read_lines(dir.file("out.txt"));
  EXPECT_EQ(out.size(), 100u);
  std::set<int> delivered;
  for (auto& line : out) {
    EXPECT_EQ(doubled(line), 2 * n_of(line)) << line;
    EXPECT_EQ(n_of(line) % 2, 0) << line;
    delivered.insert(n_of(line));
  }
  EXPECT_EQ(delivered.size(), 100u);
  // Two writes answered retry: the first a whole batch of 20, the second whatever was due then.
  EXPECT_GT(flow().stats().retries.load(), 20u);
  auto dlq = read_lines(dir.file("dlq.txt"));
  ASSERT_EQ(dlq.size(), 100u);
  for (auto& line : dlq) {
    auto payload = line.substr(line.find("\"payload\":"));
    EXPECT_EQ(doubled(payload), 2 * n_of(payload)) << line;
    EXPECT_NE(line.find("flaky: refused"), std::string::npos) << line;
  }
  auto a = acks();
  ASSERT_EQ(a.size(), 200u);
  for (auto& [token, statuses] : a)
    EXPECT_EQ(statuses, std::vector<int>{token % 2 ? EF_ACK_REJECTED : EF_ACK_DELIVERED}) << token;
}

TEST_F(Engine, PluginMetricsAreKeptPerInstance) {
  run(R"(flow: f
source: { type: sequence, count: 50, batch_size: 20, metric: sent }
sinks:
  out: { type: flaky }
)");
  auto m = flow().plugin_metrics();
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[0].instance, "f/source:sequence");
  EXPECT_EQ(m[0].name, "sent");
  EXPECT_EQ(m[0].kind, EF_METRIC_COUNTER);
  EXPECT_EQ(m[0].value, 50.0);
  EXPECT_EQ(m[1].name, "sent_last");
  EXPECT_EQ(m[1].kind, EF_METRIC_GAUGE);
  EXPECT_EQ(m[1].value, 49.0);
}

TEST_F(Engine, ACounterKeepsRisingAcrossRestartsOfTheFlow) {
  start(R"(flow: f
source: { type: sequence, count: 50, batch_size: 10, fail_after: 30, metric: sent }
sinks: { out: { type: flaky } }
restart: { initial_backoff: 1ms, max_backoff: 5ms }
)");
  ASSERT_TRUE(flow().wait_for([&] { return flow().stats().restarts.load() >= 2; }, 30s));
  rt.request_stop();
  rt.wait();
  // Each run counted 10, 20, 30 and failed; the instances were new, the total is not.
  auto runs = double(flow().stats().restarts.load() + 1);
  auto m = flow().plugin_metrics();
  ASSERT_FALSE(m.empty());
  EXPECT_EQ(m[0].name, "sent");
  EXPECT_GE(m[0].value, 30.0 * (runs - 1));
  EXPECT_LE(m[0].value, 30.0 * runs);
}

TEST_F(Engine, AMetricWithABadNameIsRefused) {
  run(R"(flow: f
source: { type: sequence, count: 5, metric: Bad-Name }
sinks:
  out: { type: flaky }
)");
  EXPECT_TRUE(flow().plugin_metrics().empty());
}

TEST_F(Engine, ASecretIsScrubbedFromDeadLetterReasonsButThePayloadIsKept) {
  run(R"(flow: f
source: { type: sequence, count: 3, tags: [zebra-key] }
sinks:
  out: { type: flaky, reject: zebra, token: zebra-key }
dead_letter: { type: flaky, record: $DIR/dlq.txt }
)");
  auto dlq = read_lines(dir.file("dlq.txt"));
  ASSERT_EQ(dlq.size(), 3u);
  for (auto& line : dlq) {
    EXPECT_NE(line.find(R"("reason":"flaky: refused {\"n\":)"), std::string::npos) << line;
    EXPECT_NE(line.find(R"(\"tag\":\"<redacted>\"})"), std::string::npos) << line;
    EXPECT_NE(line.find(R"("tag":"zebra-key")"), std::string::npos) << line;
  }
}

TEST_F(Engine, FanOutResolvesOnceWithTheWorstStatus) {
  run(R"(flow: f
source: { type: sequence, count: 30, tags: [a, b, c], acks_file: $DIR/acks.txt }
sinks:
  one: { type: flaky, record: $DIR/one.txt }
  two: { type: flaky, reject: '"c"', record: $DIR/two.txt }
dead_letter: { type: flaky, record: $DIR/dlq.txt }
)");
  EXPECT_EQ(read_lines(dir.file("one.txt")).size(), 30u);
  EXPECT_EQ(read_lines(dir.file("two.txt")).size(), 20u);
  auto dlq = read_lines(dir.file("dlq.txt"));
  ASSERT_EQ(dlq.size(), 10u);
  for (auto& line : dlq) {
    EXPECT_NE(line.find("\"stage\":\"sinks.two\""), std::string::npos) << line;
    EXPECT_NE(line.find("\"reason\":\"flaky: refused"), std::string::npos) << line;
    EXPECT_NE(line.find("\"tag\":\"c\""), std::string::npos) << line;
  }
  auto a = acks();
  ASSERT_EQ(a.size(), 30u);
  for (auto& [token, statuses] : a) {
    int want = token % 3 == 2 ? EF_ACK_REJECTED : EF_ACK_DELIVERED;
    EXPECT_EQ(statuses, std::vector<int>{want}) << token;
  }
  EXPECT_EQ(flow().stats().dead_lettered.load(), 10u);
  EXPECT_EQ(flow().stats().delivered.load(), 20u);
}

TEST_F(Engine, RoutedMessagesGoOnlyToTheirSinks) {
  run(R"(flow: f
source: { type: sequence, count: 30, tags: [a, b, c] }
steps: [ { type: script, route_field: tag } ]
sinks:
  a: { type: flaky, record: $DIR/a.txt }
  b: { type: flaky, record: $DIR/b.txt }
dead_letter: { type: flaky }
)");
  // "c" names no sink, so it is not routed and goes everywhere.
  auto a = read_lines(dir.file("a.txt")), b = read_lines(dir.file("b.txt"));
  ASSERT_EQ(a.size(), 20u);
  ASSERT_EQ(b.size(), 20u);
  for (auto& l : a) EXPECT_EQ(l.find("\"b\""), std::string::npos) << l;
  for (auto& l : b) EXPECT_EQ(l.find("\"a\""), std::string::npos) << l;
}

TEST_F(Engine, TransformerRejectionGoesToTheDeadLetterWithStageAndReason) {
  run(R"(flow: f
source: { type: sequence, count: 10, tags: [a, b], acks_file: $DIR/acks.txt }
steps: [ { type: script, reject: '"b"' } ]
sinks: { out: { type: flaky, record: $DIR/out.txt } }
dead_letter: { type: flaky, record: $DIR/dlq.txt }
)");
  EXPECT_EQ(read_lines(dir.file("out.txt")).size(), 5u);
  auto dlq = read_lines(dir.file("dlq.txt"));
  ASSERT_EQ(dlq.size(), 5u);
  EXPECT_NE(dlq[0].find("\"flow\":\"f\",\"stage\":\"steps[0]\",\"reason\":\"script: refused {\\\"n\\\":1,"),
            std::string::npos) << dlq[0];
  EXPECT_NE(dlq[0].find("\"payload\":{\"n\":1,\"tag\":\"b\"}"), std::string::npos) << dlq[0];
  for (auto& [token, statuses] : acks())
    EXPECT_EQ(statuses, std::vector<int>{token % 2 ? EF_ACK_REJECTED : EF_ACK_DELIVERED}) << token;
}

TEST_F(Engine, AThrowingTransformerDeadLettersOnlyTheMessageItChokesOn) {
  run(R"(flow: f
source: { type: sequence, count: 20, batch_size: 10 }
steps: [ { type: script, throw_on: '"n":7,' } ]
sinks: { out: { type: flaky, record: $DIR/out.txt } }
dead_letter: { type: flaky, record: $DIR/dlq.txt }
)");
  auto out = read_lines(dir.file("out.txt"));
  EXPECT_EQ(out.size(), 19u);
  for (auto& l : out) EXPECT_NE(n_of(l), 7);
  auto dlq = read_lines(dir.file("dlq.txt"));
  ASSERT_EQ(dlq.size(), 1u);
  EXPECT_NE(dlq[0].find("script: cannot handle"), std::string::npos) << dlq[0];
  EXPECT_EQ(flow().state(), FlowState::finished);
  EXPECT_EQ(flow().stats().restarts.load(), 0u);
}

TEST_F(Engine, DroppedMessagesAreAckedAsDeliveredAndSplitsShareTheirAck) {
  run(R"(flow: f
source: { type: sequence, count: 12, tags: [a, b, c], acks_file: $DIR/acks.txt }
steps: [ { type: script, drop: '"b"', split: '"c"' } ]
sinks: { out: { type: flaky, record: $DIR/out.txt } }
dead_letter: { type: flaky }
)");
  auto out = read_lines(dir.file("out.txt"));
  EXPECT_EQ(out.size(), 4u + 2 * 4u);  // a once, c twice, b never
  auto a = acks();
  ASSERT_EQ(a.size(), 12u);
  for (auto& [token, statuses] : a) EXPECT_EQ(statuses, std::vector<int>{EF_ACK_DELIVERED}) << token;
}

TEST_F(Engine, ADeadLetterFailureStopsTheFlowAndNothingIsAcked) {
  start(R"(flow: f
source: { type: sequence, count: 10, tags: [a, b], acks_file: $DIR/acks.txt }
steps: [ { type: script, reject: '"b"' } ]
sinks: { out: { type: flaky } }
dead_letter: { type: flaky, reject: flow }
restart: { initial_backoff: 1ms, max_backoff: 5ms }
)");
  ASSERT_TRUE(flow().wait_for([&] { return flow().stats().restarts.load() >= 2; }, 30s));
  rt.request_stop();
  rt.wait();
  EXPECT_NE(flow().last_error().find("dead-letter write failed"), std::string::npos) << flow().last_error();
  EXPECT_EQ(flow().stats().dead_lettered.load(), 0u);
  auto a = acks();
  for (uint64_t t = 1; t < 10; t += 2) {
    // Rejected messages never count as handled: the source heard "retry" every time.
    for (int s : a[t]) EXPECT_EQ(s, EF_ACK_RETRY) << t;
    EXPECT_FALSE(a[t].empty()) << t;
  }
  EXPECT_EQ(rt.exit_code(), 1);
}

TEST_F(Engine, RetriesGiveUpAfterMaxAttemptsIntoTheDeadLetter) {
  run(R"(flow: f
source: { type: sequence, count: 5, acks_file: $DIR/acks.txt }
sinks: { out: { type: flaky, retry_always: true } }
dead_letter: { type: flaky, record: $DIR/dlq.txt }
retry: { initial_backoff: 1ms, max_backoff: 2ms, max_attempts: 3 }
)");
  auto dlq = read_lines(dir.file("dlq.txt"));
  ASSERT_EQ(dlq.size(), 5u);
  EXPECT_NE(dlq[0].find("flaky: try again later (gave up after 3 attempts)"), std::string::npos) << dlq[0];
  EXPECT_NE(dlq[0].find("\"attempts\":3"), std::string::npos) << dlq[0];
  for (auto& [token, statuses] : acks()) EXPECT_EQ(statuses, std::vector<int>{EF_ACK_REJECTED}) << token;
}

TEST_F(Engine, BackpressureHoldsTheSourceAtTheInFlightBound) {
  start(R"(flow: f
source: { type: sequence, count: 2000, batch_size: 10 }
sinks: { out: { type: flaky, async: true, gated: true, record: $DIR/out.txt } }
dead_letter: { type: flaky }
max_in_flight: 100
)");
  // The sink acks nothing until the gate opens: the source must stop at exactly the bound.
  ASSERT_TRUE(flow().wait_for([&] {
    return flow().stats().backpressure_waits.load() > 0 && flow().stats().in_flight.load() == 100;
  }, 30s));
  EXPECT_EQ(flow().stats().emitted.load(), 100u);
  open_gates();
  rt.wait();
  EXPECT_EQ(read_lines(dir.file("out.txt")).size(), 2000u);
  EXPECT_EQ(flow().stats().peak_in_flight.load(), 100);
  EXPECT_EQ(flow().stats().delivered.load(), 2000u);
}

TEST_F(Engine, ACostlyPipelineRunsOnItsOwnThreadWhileTheSourceReadsABatchAhead) {
  start(R"(flow: f
source: { type: sequence, count: 1000, batch_size: 100, work_us: 600, hold_open: true, acks_file: $DIR/acks.txt, ack_thread_metric: acks }
sinks: { out: { type: flaky, gated: true, gate_from: 2, work_us: 400, record: $DIR/out.txt } }
dead_letter: { type: flaky }
)");
  struct OpenOnExit {
    ~OpenOnExit() { open_gates(); }  // a failed assertion must not leave a write blocked
  } opener;
  // The first batch runs on the source thread and shows that the source (6 us of CPU a message)
  // and the sink (4 us) both cost enough to run side by side, even after one batch of the
  // engine's smoothing; so the next go to the pipeline thread, whose first write waits for the
  // gates. The source reads on meanwhile, but only so far: one batch in the pipeline and one
  // queued behind it.
  ASSERT_TRUE(flow().wait_for([&] { return flow().stats().emitted.load() >= 300; }, 30s));
  EXPECT_EQ(flow().stats().emitted.load(), 300u);
  EXPECT_EQ(flow().stats().delivered.load(), 100u);
  open_gates();
  ASSERT_TRUE(flow().wait_for([&] { return flow().stats().delivered.load() == 1000; }, 30s));
  rt.request_stop();
  rt.wait();
  EXPECT_EQ(read_lines(dir.file("out.txt")).size(), 1000u);
  auto a = acks();
  ASSERT_EQ(a.size(), 1000u);
  for (auto& [token, statuses] : a) EXPECT_EQ(statuses, std::vector<int>{EF_ACK_DELIVERED}) << token;
  // The acks that came while run() ran (in its emit() and poll()) came on run()'s thread.
  std::map<std::string, double> m;
  for (auto& x : flow().plugin_metrics()) m[x.name] = x.value;
  EXPECT_GT(m["acks_during_run"], 0.0);
  EXPECT_EQ(m["acks_off_thread"], 0.0);
}

TEST_F(Engine, BackpressureAlsoBoundsBytes) {
  run(R"(flow: f
source: { type: sequence, count: 1000, batch_size: 5 }
sinks: { out: { type: flaky, async: true, record: $DIR/out.txt } }
dead_letter: { type: flaky }
max_in_flight_bytes: 1KiB
)");
  EXPECT_EQ(read_lines(dir.file("out.txt")).size(), 1000u);
  EXPECT_LE(flow().stats().peak_in_flight_bytes.load(), 1024u);
  EXPECT_GT(flow().stats().peak_in_flight_bytes.load(), 0u);
}

TEST_F(Engine, StopDrainsEverythingInFlight) {
  start(R"(flow: f
source: { type: sequence, count: 100000000, batch_size: 50, acks_file: $DIR/acks.txt }
sinks: { out: { type: flaky, async: true, reverse: true, record: $DIR/out.txt } }
dead_letter: { type: flaky }
max_in_flight: 500
)");
  ASSERT_TRUE(flow().wait_for([&] { return flow().stats().delivered.load() >= 2000; }, 30s));
  rt.request_stop();
  rt.wait();
  auto& s = flow().stats();
  EXPECT_EQ(flow().state(), FlowState::stopped);
  EXPECT_EQ(s.unresolved_at_stop.load(), 0u);
  EXPECT_EQ(s.delivered.load(), s.emitted.load());
  EXPECT_EQ(read_lines(dir.file("out.txt")).size(), s.emitted.load());
  EXPECT_EQ(acks().size(), s.emitted.load());
  EXPECT_EQ(rt.exit_code(), 0);
}

// A sink that holds acks across writes (batching, fsync every N) is flushed when the flow waits
// for room: with 10 in flight and an ack every 50 writes it would otherwise wait for ever.
TEST_F(Engine, ASinkThatAcksEveryFiftyWritesNeverHoldsTheFlowStill) {
  run(R"(flow: f
source: { type: sequence, count: 200, batch_size: 1, acks_file: $DIR/acks.txt }
sinks: { out: { type: flaky, ack_every: 50, record: $DIR/out.txt, flush_interval: 1h } }
max_in_flight: 10
)");
  EXPECT_EQ(read_lines(dir.file("out.txt")).size(), 200u);
  EXPECT_EQ(acks().size(), 200u);
  EXPECT_GT(flow().stats().backpressure_waits.load(), 0u);
  EXPECT_EQ(rt.exit_code(), 0);
}

// ... and on its flush_interval, while the source has room and stays open.
TEST_F(Engine, ASinkIsFlushedOnItsIntervalWhileTheFlowRuns) {
  start(R"(flow: f
source: { type: sequence, count: 20, batch_size: 5, acks_file: $DIR/acks.txt, hold_open: true }
sinks: { out: { type: flaky, ack_every: 50, flush_interval: 20ms } }
)");
  EXPECT_TRUE(flow().wait_for([&] { return flow().stats().delivered.load() == 20; }, 30s))
      << flow().stats().delivered.load() << " delivered before the stop";
  EXPECT_EQ(flow().state(), FlowState::running);
  rt.request_stop();
  rt.wait();
  EXPECT_EQ(acks().size(), 20u);
}

TEST_F(Engine, ADrainTimeoutLeavesMessagesUnackedForRedelivery) {
  start(R"(flow: f
source: { type: sequence, count: 40, batch_size: 10, acks_file: $DIR/acks.txt, hold_open: true }
sinks: { out: { type: flaky, async: true, gated: true } }
dead_letter: { type: flaky }
drain_timeout: 20ms
)");
  ASSERT_TRUE(flow().wait_for([&] { return flow().stats().emitted.load() == 40; }, 30s));
  rt.request_stop();
  rt.wait();
  EXPECT_EQ(flow().stats().unresolved_at_stop.load(), 40u);
  auto a = acks();
  ASSERT_EQ(a.size(), 40u);
  for (auto& [token, statuses] : a) EXPECT_EQ(statuses, std::vector<int>{EF_ACK_RETRY}) << token;
  EXPECT_EQ(rt.exit_code(), 1);
}

TEST_F(Engine, ASecondStopSkipsTheRestOfTheDrain) {
  start(R"(flow: f
source: { type: sequence, count: 40, batch_size: 10, acks_file: $DIR/acks.txt, hold_open: true }
sinks: { out: { type: flaky, async: true, gated: true } }
dead_letter: { type: flaky }
drain_timeout: 1h
)");
  ASSERT_TRUE(flow().wait_for([&] { return flow().stats().emitted.load() == 40; }, 30s));
  rt.request_stop();
  ASSERT_TRUE(flow().wait_for([&] { return flow().state() == FlowState::draining; }, 30s));
  rt.request_stop();  // without this the drain would wait the full hour for the gated sink
  rt.wait();
  EXPECT_EQ(flow().stats().unresolved_at_stop.load(), 40u);
  for (auto& [token, statuses] : acks()) EXPECT_EQ(statuses, std::vector<int>{EF_ACK_RETRY}) << token;
  EXPECT_EQ(rt.exit_code(), 1);
}

TEST_F(Engine, AFailingFlowIsRestartedWhileTheOthersRun) {
  std::string yaml = R"(flow: broken
source: { type: sequence, count: 100 }
sinks: { out: { type: flaky, fail_write: true } }
dead_letter: { type: flaky }
restart: { initial_backoff: 1ms, max_backoff: 10ms }
---
flow: healthy
source: { type: sequence, count: 5000, batch_size: 50 }
sinks: { out: { type: flaky, record: $DIR/healthy.txt } }
dead_letter: { type: flaky }
)";
  start(yaml);
  Flow& broken = flow("broken");
  Flow& healthy = flow("healthy");
  ASSERT_TRUE(healthy.wait_for([&] { return healthy.state() == FlowState::finished; }, 30s));
  ASSERT_TRUE(broken.wait_for([&] { return broken.stats().restarts.load() >= 3; }, 30s));
  rt.request_stop();
  rt.wait();
  EXPECT_EQ(read_lines(dir.file("healthy.txt")).size(), 5000u);
  EXPECT_EQ(healthy.stats().restarts.load(), 0u);
  EXPECT_NE(broken.last_error().find("write failed: flaky: write failed on purpose"), std::string::npos)
      << broken.last_error();
  EXPECT_EQ(broken.stats().delivered.load(), 0u);
}

TEST_F(Engine, ASourceThatThrowsFailsOnlyItsOwnRunAndKeepsWhatWasDelivered) {
  start(R"(flow: f
source: { type: sequence, count: 100, batch_size: 10, fail_after: 30, acks_file: $DIR/acks.txt }
sinks: { out: { type: flaky, record: $DIR/out.txt } }
dead_letter: { type: flaky }
restart: { initial_backoff: 1ms, max_backoff: 2ms }
)");
  ASSERT_TRUE(flow().wait_for([&] { return flow().stats().restarts.load() >= 1; }, 30s));
  rt.request_stop();
  rt.wait();
  EXPECT_NE(flow().last_error().find("run failed: sequence: failing on purpose after 30"), std::string::npos)
      << flow().last_error();
  // Every message emitted before the failure was delivered and acked before the restart.
  for (auto& [token, statuses] : acks()) EXPECT_EQ(statuses.front(), EF_ACK_DELIVERED) << token;
}
