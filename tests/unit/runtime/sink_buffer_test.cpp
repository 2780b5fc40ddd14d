// A sink's durable buffer in a running flow: the source acked once a message is on disk, the
// sink fed in order from memory or disk, retries, a backlog kept across runs, a damaged record
// set aside, and when_full exact at a small max_size.
#include "buffer_record.hpp"
#include "engine_fixture.hpp"

#include <fstream>
#include <iterator>

using namespace edgeflow;
using namespace std::chrono_literals;
using edgeflow::test::Engine;
using edgeflow::test::open_gates;
using edgeflow::test::read_lines;

namespace {

class Buffered : public Engine {
 protected:
  const BufferStats& buffer(Flow& f, const std::string& stage = "sinks.out") {
    return *f.stages()[size_t(f.stage_index(stage))]->buffer;
  }
  // The numbers the sequence source gave, in the order a file holds them.
  std::vector<int> numbers(const std::string& file) {
    std::vector<int> out;
    for (auto& line : read_lines(dir.file(file))) out.push_back(n_of(line));
    return out;
  }
  static std::vector<int> range(int from, int to) {
    std::vector<int> out;
    for (int i = from; i < to; ++i) out.push_back(i);
    return out;
  }
  // A second runtime on the same state directory: the daemon started again.
  void run_again(const std::string& yaml_in) {
    std::string yaml = yaml_in;
    for (size_t at; (at = yaml.find("$DIR")) != std::string::npos;) yaml.replace(at, 4, dir.path().string());
    Runtime again{RuntimeOptions{{EDGEFLOW_PLUGIN_DIR, EDGEFLOW_TEST_PLUGIN_DIR}, dir.file("state"), {}}};
    host::Diagnostics diag;
    ASSERT_TRUE(again.load({dir.write("flow2.yaml", yaml)}, diag)) << edgeflow::test::join(diag.errors);
    again.start();
    again.wait();
    ASSERT_EQ(again.flow("f")->state(), FlowState::finished) << again.flow("f")->last_error();
    EXPECT_EQ(buffer(*again.flow("f")).records.load(), 0u);
  }
  // How many of the sequence source's first messages fit in max_bytes, one after the other.
  static size_t fitting(uint64_t max_bytes) {
    uint64_t used = 0;
    for (size_t n = 0;; ++n) {
      host::Message m;
      std::string p = "{\"n\":" + std::to_string(n) + ",\"tag\":\"a\"}";
      m.set_payload(p.data(), p.size());
      m.key = "a";
      used += buffer::encode(m).size() + DiskBuffer::kFraming;
      if (used > max_bytes) return n;
    }
  }
};

}  // namespace

TEST_F(Buffered, TheSourceIsAckedOnceOnDiskAndTheSinkGetsEverythingInOrderLater) {
  start(R"(flow: f
source: { type: sequence, count: 300, batch_size: 20, acks_file: $DIR/acks.txt }
sinks:
  out: { type: flaky, async: true, gated: true, record: $DIR/out.txt, buffer: { type: disk } }
dead_letter: { type: flaky, record: $DIR/dlq.txt }
)");
  // The sink has answered nothing, and the source has every ack.
  ASSERT_TRUE(flow().wait_for([&] { return flow().stats().delivered.load() == 300; }, 20s));
  EXPECT_EQ(buffer(flow()).records.load(), 300u);
  EXPECT_GT(buffer(flow()).bytes.load(), 300u * 17);
  EXPECT_GT(buffer(flow()).oldest_ms.load(), 0);
  EXPECT_TRUE(read_lines(dir.file("out.txt")).empty());
  open_gates();
  rt.wait();
  EXPECT_EQ(flow().state(), FlowState::finished);
  EXPECT_EQ(numbers("out.txt"), range(0, 300));
  EXPECT_EQ(buffer(flow()).records.load(), 0u);
  EXPECT_EQ(buffer(flow()).oldest_ms.load(), 0);
  EXPECT_EQ(buffer(flow()).appended.get(), 300u);
  EXPECT_EQ(buffer(flow()).drained.get(), 300u);
  auto a = acks();
  ASSERT_EQ(a.size(), 300u);
  for (auto& [token, statuses] : a) EXPECT_EQ(statuses, std::vector<int>{EF_ACK_DELIVERED}) << token;
}

// The window at the sink (max_in_flight) is far smaller than what comes: most messages wait on
// disk and are read back, behind a sink that answers retry to its first five writes.
TEST_F(Buffered, ARetryingSinkGetsEverythingOnceInOrderFromDisk) {
  run(R"(flow: f
source: { type: sequence, count: 2000, batch_size: 50, acks_file: $DIR/acks.txt }
max_in_flight: 100
sinks:
  out: { type: flaky, retry_first: 5, record: $DIR/out.txt, buffer: { type: disk } }
dead_letter: { type: flaky, record: $DIR/dlq.txt }
retry: { initial_backoff: 1ms, max_backoff: 5ms }
)");
  EXPECT_EQ(flow().state(), FlowState::finished) << flow().last_error();
  EXPECT_EQ(numbers("out.txt"), range(0, 2000));
  EXPECT_GE(flow().stats().retries.load(), 5u);
  EXPECT_TRUE(read_lines(dir.file("dlq.txt")).empty());
  EXPECT_EQ(buffer(flow()).drained.get(), 2000u);
  EXPECT_EQ(buffer(flow()).records.load(), 0u);
  EXPECT_EQ(acks().size(), 2000u);
}

// What the sink had not delivered when the daemon stopped is delivered by the next run, from
// the buffer alone; one record damaged on disk in between goes to the dead letter with the reason.
TEST_F(Buffered, ABacklogOutlivesTheProcessAndADamagedRecordIsSetAside) {
  start(R"(flow: f
source: { type: sequence, count: 200, batch_size: 20, acks_file: $DIR/acks.txt }
drain_timeout: 50ms
sinks:
  out: { type: flaky, async: true, gated: true, record: $DIR/out.txt, buffer: { type: disk } }
dead_letter: { type: flaky, record: $DIR/dlq.txt }
)");
  ASSERT_TRUE(flow().wait_for([&] { return flow().stats().delivered.load() == 200; }, 20s));
  rt.request_stop();
  rt.wait();
  EXPECT_EQ(buffer(flow()).records.load(), 200u);
  EXPECT_EQ(flow().stats().unresolved_at_stop.load(), 0u);  // the source owes nothing

  std::string path = dir.file("state/buffer/f/out.sqlite");
  std::string bytes;
  {
    std::ifstream in(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  size_t at = bytes.find("{\"n\":7,");
  ASSERT_NE(at, std::string::npos);
  ASSERT_EQ(bytes.find("{\"n\":7,", at + 1), std::string::npos);
  bytes[at + 2] ^= 0x01;
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;

  run_again(R"(flow: f
source: { type: sequence, count: 0 }
sinks:
  out: { type: flaky, record: $DIR/out.txt, buffer: { type: disk } }
dead_letter: { type: flaky, record: $DIR/dlq.txt }
)");
  auto expected = range(0, 200);
  expected.erase(expected.begin() + 7);
  EXPECT_EQ(numbers("out.txt"), expected);
  auto dlq = read_lines(dir.file("dlq.txt"));
  ASSERT_EQ(dlq.size(), 1u);
  EXPECT_NE(dlq[0].find("\"stage\":\"sinks.out\""), std::string::npos) << dlq[0];
  EXPECT_NE(dlq[0].find("is damaged: checksum"), std::string::npos) << dlq[0];
  EXPECT_NE(dlq[0].find("the record was set aside and the rest of the buffer delivered"), std::string::npos) << dlq[0];
}

TEST_F(Buffered, WhenFullRejectDeadLettersExactlyWhatDoesNotFit) {
  start(R"(flow: f
source: { type: sequence, count: 100, batch_size: 10, acks_file: $DIR/acks.txt }
sinks:
  out:
    type: flaky
    async: true
    gated: true
    record: $DIR/out.txt
    buffer: { type: disk, max_size: 1KiB, when_full: reject }
dead_letter: { type: flaky, record: $DIR/dlq.txt }
)");
  const size_t fit = fitting(1024);
  ASSERT_GT(fit, 5u);
  ASSERT_LT(fit, 50u);
  auto& s = flow().stats();
  ASSERT_TRUE(flow().wait_for([&] { return s.delivered.load() + s.dead_lettered.load() == 100; }, 20s));
  EXPECT_EQ(s.delivered.load(), fit);
  EXPECT_EQ(buffer(flow()).refused.get(), 100 - fit);
  EXPECT_LE(buffer(flow()).bytes.load(), 1024u);
  auto dlq = read_lines(dir.file("dlq.txt"));
  ASSERT_EQ(dlq.size(), 100 - fit);
  for (auto& line : dlq) EXPECT_NE(line.find("buffer full (max_size 1KiB, "), std::string::npos) << line;
  EXPECT_EQ(n_of(dlq[0].substr(dlq[0].find("\"payload\":"))), int(fit));
  open_gates();
  rt.wait();
  EXPECT_EQ(numbers("out.txt"), range(0, int(fit)));
  auto a = acks();
  ASSERT_EQ(a.size(), 100u);
  for (auto& [token, statuses] : a)
    EXPECT_EQ(statuses, std::vector<int>{token < fit ? EF_ACK_DELIVERED : EF_ACK_REJECTED}) << token;
}

TEST_F(Buffered, WhenFullBlockHoldsTheSourceUntilTheSinkDrains) {
  start(R"(flow: f
source: { type: sequence, count: 100, batch_size: 10, acks_file: $DIR/acks.txt }
sinks:
  out:
    type: flaky
    async: true
    gated: true
    record: $DIR/out.txt
    buffer: { type: disk, max_size: 1KiB, when_full: block }
dead_letter: { type: flaky, record: $DIR/dlq.txt }
)");
  const size_t fit = fitting(1024);
  ASSERT_TRUE(flow().wait_for([&] { return buffer(flow()).blocked.load() > 0; }, 20s));
  EXPECT_EQ(flow().stats().delivered.load(), fit);  // no more acks until the sink drains
  EXPECT_GT(flow().stats().in_flight.load(), 0);
  open_gates();
  rt.wait();
  EXPECT_EQ(flow().state(), FlowState::finished);
  EXPECT_EQ(numbers("out.txt"), range(0, 100));
  EXPECT_TRUE(read_lines(dir.file("dlq.txt")).empty());
  EXPECT_EQ(buffer(flow()).refused.get(), 0u);
  EXPECT_EQ(buffer(flow()).blocked.load(), 0u);
  EXPECT_EQ(acks().size(), 100u);
}

// Even when it would wait for room: a message the whole buffer cannot hold goes to the dead
// letter, and the ones around it are delivered.
TEST_F(Buffered, AMessageLargerThanTheBufferIsDeadLetteredEvenWhenBlocking) {
  run(R"(flow: f
source: { type: sequence, count: 5, batch_size: 5, acks_file: $DIR/acks.txt }
steps:
  - type: map
    set: { pad: "n == 2 ? ')" + std::string(1100, 'x') + R"(' : ''" }
sinks:
  out: { type: flaky, record: $DIR/out.txt, buffer: { type: disk, max_size: 1KiB, when_full: block } }
dead_letter: { type: flaky, record: $DIR/dlq.txt }
)");
  EXPECT_EQ(flow().state(), FlowState::finished) << flow().last_error();
  EXPECT_EQ(numbers("out.txt"), (std::vector<int>{0, 1, 3, 4}));
  auto dlq = read_lines(dir.file("dlq.txt"));
  ASSERT_EQ(dlq.size(), 1u);
  EXPECT_NE(dlq[0].find("bytes is larger than the buffer (max_size 1KiB)"), std::string::npos) << dlq[0];
  EXPECT_EQ(buffer(flow()).refused.get(), 1u);
}

TEST_F(Buffered, TheDeadLetterTakesNoBuffer) {
  host::Diagnostics diag;
  EXPECT_FALSE(rt.load({dir.write("flow.yaml", R"(flow: f
source: { type: sequence }
sinks:
  out: { type: flaky, buffer: { type: disk, max_size: 1KiB, when_full: sometimes } }
dead_letter: { type: flaky, buffer: { type: disk } }
)")},
                       diag));
  auto all = edgeflow::test::join(diag.errors);
  EXPECT_NE(all.find("sinks.out.buffer.when_full"), std::string::npos) << all;
  EXPECT_NE(all.find("dead_letter.buffer: the dead letter takes no buffer"), std::string::npos) << all;
}
