// What the engine counts for the admin API: per-stage message counters and the delivery latency
// histogram. Written by the flow's thread only, read by the admin thread at any time.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

namespace edgeflow {

// One writer (the flow thread), any readers: a plain load and store instead of a locked
// read-modify-write on the hot path.
class Counter {
 public:
  void add(uint64_t n) { v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
  uint64_t get() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

// A stage of a flow: the source, a transformer step, a sink or the dead letter. `in` and `out`
// are messages into and out of it: for the source, out = emitted; for a step, what it was given
// and what it passed on (splits count); for a sink, messages written (retries again) and
// delivered. Bytes are the messages' in-memory size: the payload, or the parsed document's
// allocation when a step changed it (no serialisation just to count).
// A sink's durable buffer: what is on disk now, and what went through it.
struct BufferStats {
  std::atomic<uint64_t> records{0}, bytes{0};
  std::atomic<int64_t> oldest_ms{0};  // wall clock, when the oldest record was appended; 0: empty
  std::atomic<uint64_t> blocked{0};   // messages waiting for room (when_full: block)
  uint64_t max_bytes = 0;
  Counter appended, drained, refused, damaged;
};

struct StageStats {
  std::string key;   // "source", "steps[0]", "sinks.out", "dead_letter"
  std::string type;  // the component type
  Counter in, out, dropped, rejected, retried, bytes_in, bytes_out;
  std::unique_ptr<BufferStats> buffer;  // a sink with `buffer:`
};

// Source emit → end-to-end ack (delivered, or resolved by the dead letter), in seconds.
class LatencyHistogram {
 public:
  static constexpr std::array<double, 15> kBounds{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                  0.5,   1,      2.5,   5,    10,    30,   60};
  void observe(std::chrono::nanoseconds d) {
    double s = std::chrono::duration<double>(d).count();
    size_t i = 0;
    while (i < kBounds.size() && s > kBounds[i]) ++i;
    counts_[i].add(1);  // the last slot is +Inf
    sum_ns_.add(uint64_t(d.count() > 0 ? d.count() : 0));
  }
  uint64_t bucket(size_t i) const { return counts_[i].get(); }  // not cumulative; i <= kBounds.size()
  double sum_seconds() const { return double(sum_ns_.get()) / 1e9; }

 private:
  std::array<Counter, kBounds.size() + 1> counts_;
  Counter sum_ns_;
};

}  // namespace edgeflow
