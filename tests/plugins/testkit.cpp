// Components that misbehave on cue, so engine tests can drive every ack path through the real
// ABI: rejections, retries, throws, failing writes, out-of-order and held-back acks.
#include <edgeflow/sdk/plugin.hpp>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <ctime>
#include <deque>
#include <fstream>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace edgeflow::sdk;

namespace {

// Gated sinks hold their acks until the test opens the gates (see testkit_open_gates).
std::mutex g_gate_mutex;
std::condition_variable g_gate_cv;
bool g_gates_open = false;

bool contains(std::string_view hay, const std::string& needle) {
  return !needle.empty() && hay.find(needle) != std::string_view::npos;
}

// Burns this thread's CPU for `us` microseconds (CPU time, so a busy machine does not shorten it).
void spin_cpu(int64_t us) {
  auto cpu = [] {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return int64_t(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
  };
  for (int64_t until = cpu() + us; cpu() < until;) {
  }
}

class Sequence : public Source {
 public:
  struct Config {
    int64_t count = 100;
    int64_t batch_size = 10;
    std::vector<std::string> tags{"a"};
    std::string acks_file;
    int64_t fail_after = 0;
    bool hold_open = false;
    std::string metric;
    std::string ack_thread_metric;
    int64_t work_us = 0;
  };
  static constexpr const char* type = "sequence";
  static constexpr const char* description = "Emits {\"n\":i,\"tag\":...} with token i.";
  static void describe(Spec<Config>& s) {
    s.option("count", &Config::count).min(0).doc("Messages to emit.");
    s.option("batch_size", &Config::batch_size).range(1, 100000).doc("Messages per emit.");
    s.option("tags", &Config::tags).doc("Tags cycled over the messages.");
    s.option("acks_file", &Config::acks_file).doc("Where stop() writes 'token status' per ack.");
    s.option("fail_after", &Config::fail_after).min(0).doc("run() throws after this many (0: never).");
    s.option("hold_open", &Config::hold_open).doc("After the last message, wait for a stop.");
    s.option("metric", &Config::metric).doc("Counts emitted messages in this counter metric, and their last n in a gauge <metric>_last.");
    s.option("work_us", &Config::work_us).min(0).doc("CPU time spent before each emit (a source that costs CPU).");
    s.option("ack_thread_metric", &Config::ack_thread_metric)
        .doc("Gauges <name>_during_run (acks that came while run() ran) and <name>_off_thread (those "
             "of them that came on another thread than run()'s), set when run() returns.");
  }
  Sequence(Context c, Config cfg) : Source(c), cfg_(std::move(cfg)) {
    if (cfg_.tags.empty()) throw Error(c.where("tags") + ": tags: give at least one tag, e.g. [a]");
  }

  void run() override {
    run_thread_ = std::this_thread::get_id();
    running_ = true;
    struct Done {
      Sequence* self;
      ~Done() {
        self->running_ = false;
        if (self->cfg_.ack_thread_metric.empty()) return;
        self->context().gauge(self->cfg_.ack_thread_metric + "_during_run", double(self->during_run_));
        self->context().gauge(self->cfg_.ack_thread_metric + "_off_thread", double(self->off_thread_));
      }
    } done{this};
    std::vector<ef_message*> batch;
    for (int64_t n = 0; n < cfg_.count;) {
      if (cfg_.fail_after && n >= cfg_.fail_after) throw Error("sequence: failing on purpose after " + std::to_string(n));
      batch.clear();
      for (int64_t k = 0; k < cfg_.batch_size && n < cfg_.count; ++k, ++n) {
        Message m = new_message();
        const std::string& tag = cfg_.tags[size_t(n) % cfg_.tags.size()];
        m.set_payload("{\"n\":" + std::to_string(n) + ",\"tag\":\"" + tag + "\"}");
        m.set_key(tag);
        m.set_token(uint64_t(n));
        batch.push_back(m.raw());
      }
      if (cfg_.work_us > 0) spin_cpu(cfg_.work_us);
      if (emit(batch) != EF_OK) {
        for (auto* m : batch) free_message(Message(m));
        return;
      }
      if (!cfg_.metric.empty()) {
        context().counter(cfg_.metric, double(n));
        context().gauge(cfg_.metric + "_last", double(n - 1));
      }
    }
    while (cfg_.hold_open && poll(1000)) {
    }
  }
  void on_ack(std::span<const ef_ack> acks) override {
    if (running_) {
      during_run_ += acks.size();
      if (std::this_thread::get_id() != run_thread_) off_thread_ += acks.size();
    }
    acks_.insert(acks_.end(), acks.begin(), acks.end());
  }
  void stop() override {
    if (cfg_.acks_file.empty()) return;
    std::ofstream out(cfg_.acks_file, std::ios::app);
    for (auto& a : acks_) out << a.token << ' ' << a.status << '\n';
  }

 private:
  Config cfg_;
  std::vector<ef_ack> acks_;
  std::atomic<bool> running_{false};
  std::thread::id run_thread_;
  uint64_t during_run_ = 0, off_thread_ = 0;
};

class Script : public Transformer {
 public:
  struct Config {
    std::string reject, drop, throw_on, split, route_field;
  };
  static constexpr const char* type = "script";
  static constexpr const char* description = "Rejects, drops, throws on, splits or routes messages by payload substring.";
  static void describe(Spec<Config>& s) {
    s.option("reject", &Config::reject).doc("Reject messages whose payload contains this.");
    s.option("drop", &Config::drop).doc("Drop messages whose payload contains this.");
    s.option("throw_on", &Config::throw_on).doc("Throw when a batch holds a payload containing this.");
    s.option("split", &Config::split).doc("Duplicate messages whose payload contains this.");
    s.option("route_field", &Config::route_field).doc("Route to the sink named by this document field.");
  }
  Script(Context c, Config cfg) : Transformer(c), cfg_(std::move(cfg)) {}
  void transform(Batch b) override {
    size_t n = b.size();
    for (size_t i = 0; i < n; ++i) {
      Message m = b[i];
      std::string p(m.payload());
      if (contains(p, cfg_.throw_on)) throw Error("script: cannot handle " + p);
      if (contains(p, cfg_.reject)) b.reject(i, "script: refused " + p);
      else if (contains(p, cfg_.drop)) b.drop(i);
      else if (contains(p, cfg_.split)) b.split(i);
      if (!cfg_.route_field.empty()) {
        Value v = m.get(cfg_.route_field);
        int32_t idx = v.is_string() ? context().sink_index(v.as_string()) : -1;
        if (idx >= 0) m.route(uint32_t(idx));
      }
    }
  }

 private:
  Config cfg_;
};

// The SDK's ergonomics in one step: an exclusive bound, a semantic config error, try_put().
class Stamp : public Transformer {
 public:
  struct Config {
    std::string field;
    double factor = 1;
  };
  static constexpr const char* type = "stamp";
  static constexpr const char* description = "Writes factor at a document path, never over a value in the way.";
  static void describe(Spec<Config>& s) {
    s.option("field", &Config::field).required().doc("Where to write factor.");
    s.option("factor", &Config::factor).greater_than(0).less_than(10).doc("The number written.");
  }
  Stamp(Context c, Config cfg) : Transformer(c), cfg_(std::move(cfg)) {
    if (cfg_.field.find("..") != std::string::npos)
      throw c.config_error("field", "'" + cfg_.field + "' is not a document path; write it like a.b");
  }
  void transform(Batch b) override {
    for (size_t i = 0; i < b.size(); ++i) {
      Message m = b[i];
      Value v = m.try_put(cfg_.field);
      if (!v) b.reject(i, cfg_.field + ": a value on the way is not an object or array");
      else m.set(v, cfg_.factor);
    }
  }

 private:
  Config cfg_;
};

class Flaky : public Sink {
 public:
  struct Config {
    int64_t retry_first = 0;
    bool retry_always = false;
    std::string reject;
    bool fail_write = false;
    bool async = false;
    bool reverse = false;
    bool gated = false;
    int64_t gate_from = 1;
    int64_t work_us = 0;
    std::string record;
    std::string token;
    int64_t ack_every = 0;
  };
  static constexpr const char* type = "flaky";
  static constexpr const char* description = "A sink that retries, rejects, fails or delays on cue.";
  static void describe(Spec<Config>& s) {
    s.option("retry_first", &Config::retry_first).min(0).doc("Answer retry to the first N writes.");
    s.option("retry_always", &Config::retry_always).doc("Answer retry to everything.");
    s.option("reject", &Config::reject).doc("Reject payloads containing this.");
    s.option("fail_write", &Config::fail_write).doc("write() throws: the flow fails.");
    s.option("async", &Config::async).doc("Ack from a worker thread.");
    s.option("reverse", &Config::reverse).doc("With async: ack each batch last message first.");
    s.option("gated", &Config::gated)
        .doc("With async: hold acks until testkit_open_gates(); without: write() itself waits for them (a slow sink).");
    s.option("gate_from", &Config::gate_from).min(1).doc("Without async: the first write() that waits for the gates.");
    s.option("work_us", &Config::work_us).min(0).doc("Each write() spends this much CPU time first (a sink that costs CPU).");
    s.option("record", &Config::record).doc("Append delivered payloads to this file, in ack order.");
    s.option("token", &Config::token).secret().doc("A secret; the value 'wrong' is refused in create().");
    s.option("ack_every", &Config::ack_every)
        .min(0)
        .doc("Without async: hold acks across writes, answering them on every Nth write() and on flush() (a sink "
             "that batches, fsyncs every N).");
  }
  Flaky(Context c, Config cfg) : Sink(c), cfg_(std::move(cfg)) {
    // Echoes the secret on purpose: the runtime must scrub it from what it prints.
    if (cfg_.token == "wrong") throw Error("flaky: token '" + cfg_.token + "' refused");
  }

  void start() override {
    if (!cfg_.record.empty()) {
      record_.open(cfg_.record, std::ios::app);
      if (!record_) throw Error("flaky: cannot open " + cfg_.record);
    }
    if (cfg_.async) worker_ = std::thread([this] { work(); });
  }
  void stop() override {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    cv_.notify_all();
    g_gate_cv.notify_all();
    if (worker_.joinable()) worker_.join();
  }
  void write(Batch b) override {
    if (cfg_.fail_write) throw Error("flaky: write failed on purpose");
    if (cfg_.work_us > 0) spin_cpu(cfg_.work_us);
    if (cfg_.gated && !cfg_.async && ++sync_writes_ >= cfg_.gate_from) {
      std::unique_lock lock(g_gate_mutex);
      g_gate_cv.wait(lock, [&] { return g_gates_open; });
    }
    bool retry = cfg_.retry_always || writes_++ < cfg_.retry_first;
    // The worker gets copies of the payloads: only acks may come from other threads.
    std::vector<std::pair<ef_message*, std::string>> msgs;
    for (size_t i = 0; i < b.size(); ++i) msgs.emplace_back(b[i].raw(), std::string(b[i].payload()));
    if (!cfg_.async && cfg_.ack_every > 0) {
      for (auto& mp : msgs) held_.push_back({mp.first, std::move(mp.second), retry});
      if (writes_ % cfg_.ack_every == 0) flush(0);
      return;
    }
    if (!cfg_.async) {
      for (auto& [m, p] : msgs) answer(Message(m), p, retry);
      return;
    }
    if (cfg_.reverse) std::reverse(msgs.begin(), msgs.end());
    {
      std::lock_guard lock(mutex_);
      queue_.push_back({std::move(msgs), retry});
    }
    cv_.notify_all();
  }

  void flush(int32_t) override {
    for (auto& h : held_) answer(Message(h.m), h.payload, h.retry);
    held_.clear();
  }

 private:
  struct Held {
    ef_message* m;
    std::string payload;
    bool retry;
  };
  void answer(Message m, std::string_view p, bool retry) {
    if (retry) return ack(m, EF_ACK_RETRY, "flaky: try again later");
    if (contains(p, cfg_.reject)) return ack(m, EF_ACK_REJECTED, "flaky: refused " + std::string(p));
    if (record_.is_open()) {
      record_ << p << '\n';
      record_.flush();
    }
    ack(m, EF_ACK_DELIVERED);
  }
  void work() {
    for (;;) {
      std::pair<std::vector<std::pair<ef_message*, std::string>>, bool> item;
      {
        std::unique_lock lock(mutex_);
        cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (stopping_) return;
        item = std::move(queue_.front());
        queue_.pop_front();
      }
      if (cfg_.gated) {
        std::unique_lock lock(g_gate_mutex);
        g_gate_cv.wait(lock, [&] { return g_gates_open || is_stopping(); });
        if (!g_gates_open) return;
      }
      for (auto& [m, p] : item.first) answer(Message(m), p, item.second);
    }
  }
  bool is_stopping() {
    std::lock_guard lock(mutex_);
    return stopping_;
  }

  Config cfg_;
  int64_t writes_ = 0;
  int64_t sync_writes_ = 0;
  std::vector<Held> held_;
  std::ofstream record_;
  std::thread worker_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::pair<std::vector<std::pair<ef_message*, std::string>>, bool>> queue_;
  bool stopping_ = false;
};

}  // namespace

extern "C" EF_EXPORT void testkit_open_gates() {
  {
    std::lock_guard lock(g_gate_mutex);
    g_gates_open = true;
  }
  g_gate_cv.notify_all();
}

// The gates are process-wide: a test that opened them closes them for the next one in the process.
extern "C" EF_EXPORT void testkit_close_gates() {
  std::lock_guard lock(g_gate_mutex);
  g_gates_open = false;
}

EDGEFLOW_PLUGIN("testkit", "1.0.0", Sequence, Script, Stamp, Flaky)
