// The engine: two threads per flow. The source runs on its own thread. A batch it emits goes
// through the pipeline (transformer steps, sink writes, ack merging) on that same thread when
// the batch is small or the source or the pipeline is cheap, and otherwise to the flow's
// pipeline thread, so the source reads its next batch while the pipeline works on the last one.
// Whoever runs the pipeline holds pipeline_mutex_; the pipeline thread also serves acks from
// sink threads and retries. The source sees its acks on its own thread (inside emit/poll), so it
// keeps its ack bookkeeping without locks and commits only what every sink (or the dead letter)
// resolved.
#pragma once

#include "disk_buffer.hpp"
#include "flow_config.hpp"
#include "loader.hpp"
#include "metrics.hpp"
#include "tap.hpp"

#include <edgeflow/host/message.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace edgeflow {

class Flow;
struct SinkBuffer;

struct InjectCall;

struct Origin {
  uint64_t token = 0;
  InjectCall* injected = nullptr;  // not the source's: a message Flow::inject() brought in
  uint64_t bytes = 0;
  uint32_t pending = 0;  // messages derived from it (splits) not yet resolved
  std::chrono::steady_clock::time_point emitted_at{};
  uint8_t status = EF_ACK_DELIVERED;
  bool in_use = false;
};

struct FlowMessage : host::Message {
  Origin* origin = nullptr;
  FlowMessage* dlq_of = nullptr;  // set on dead-letter envelopes: the message they carry
  uint64_t seq = 0;               // emission order, kept under retries
  uint32_t pending = 0;           // sinks (or the dead letter) still to answer for it
  uint32_t attempts = 0;
  uint8_t status = EF_ACK_DELIVERED;  // worst answer so far
  enum Fate : uint8_t { keep, drop, reject };
  Fate fate = keep;    // what the current transformer step decided
  std::string reason;  // why it was rejected
  bool in_use = false;
  // A record of a sink's buffer (it has no origin): removed from there once resolved.
  SinkBuffer* buffer = nullptr;
  int64_t buffer_seq = 0;
  uint64_t buffer_bytes = 0;
};

// A sink's durable buffer while its flow runs (see flow_buffer.cpp).
struct SinkBuffer {
  std::unique_ptr<DiskBuffer> disk;
  BufferStats* stats = nullptr;
  int64_t read_seq = 0;   // the last record handed to the sink
  size_t out = 0;         // records at the sink (or the dead letter), not resolved yet
  uint64_t out_bytes = 0;
  std::vector<int64_t> done;          // resolved: to remove
  std::vector<FlowMessage*> blocked;  // when_full: block — waiting for room, in order
  std::string encoded;                // scratch for appends: the records one after the other
  std::vector<std::string_view> bodies;  // ... and each of them
};

// A message brought into a running flow from outside its source (a dead letter replayed).
struct Injection {
  uint64_t id = 0;      // reported back with its outcome
  size_t first_step = 0;
  int sink = -1;        // >= 0: straight to this sink alone, past the steps
  std::string payload, key, content_type;
  std::vector<std::pair<std::string, std::string>> headers, meta;
};
// Where the outcomes of one inject() call go: done(id, ack status) on the flow's pipeline thread,
// once per injection (retry: the flow stopped before it was resolved).
struct InjectCall {
  std::function<void(uint64_t, uint8_t)> done;
  size_t open = 0;
};

// One plugin instance in one flow: what ef_ctx points to.
struct Instance {
  Flow* flow = nullptr;
  const InstanceSpec* spec = nullptr;
  const ef_component* comp = nullptr;
  void* self = nullptr;
  int sink = -1;        // index into the flow's sinks; kDeadLetter for the dead letter
  std::string name;     // "<flow>/<key>[:<type>]"
  std::string state_dir;
  std::string last_error;
  bool started = false;
};

enum class FlowState { created, starting, running, draining, backoff, finished, stopped, failed };
const char* state_name(FlowState s);

struct FlowStats {
  std::atomic<uint64_t> emitted{0};
  std::atomic<uint64_t> delivered{0};      // source messages resolved as delivered
  std::atomic<uint64_t> dead_lettered{0};  // messages written to the dead letter
  std::atomic<uint64_t> retries{0};        // retry answers from sinks
  std::atomic<uint64_t> restarts{0};
  std::atomic<uint64_t> backpressure_waits{0};
  std::atomic<uint64_t> backpressure_ns{0};  // time emit() waited for room
  std::atomic<int64_t> in_flight{0};
  std::atomic<int64_t> peak_in_flight{0};
  std::atomic<uint64_t> in_flight_bytes{0};
  std::atomic<uint64_t> peak_in_flight_bytes{0};
  std::atomic<uint64_t> unresolved_at_stop{0};  // left open for redelivery by a drain timeout
  LatencyHistogram latency;                     // emit → end-to-end ack
};

struct RuntimeOptions {
  std::vector<std::string> plugin_dirs;
  std::string state_dir;  // empty: no positions kept, dead letters under ./edgeflow-state
  YamlLimits yaml;        // what a flow file may hold
};

// A number a plugin instance exports (ef_host_api.metric_set).
struct PluginMetric {
  std::string instance;  // "<flow>/source", ...
  std::string name;
  ef_metric_kind kind;
  double value;
};

class Flow {
 public:
  static constexpr int kDeadLetter = -2;

  Flow(FlowSpec spec, std::string state_dir);
  ~Flow();
  Flow(const Flow&) = delete;
  Flow& operator=(const Flow&) = delete;

  const FlowSpec& spec() const { return spec_; }
  const std::string& name() const { return spec_.name; }
  // Runs the flow on its own thread; on_end is called from it when it has ended for good.
  void start(std::function<void()> on_end = {});
  void request_stop();
  void force_stop();  // a second signal: skip the rest of the drain
  void join();
  bool ended() const;  // its thread is through (finished, stopped or failed for good)
  FlowState state() const { return state_.load(); }
  std::string last_error() const;
  const FlowStats& stats() const { return stats_; }
  // source, steps..., sinks..., dead_letter; fixed for the flow's life (they outlive restarts).
  const std::vector<std::unique_ptr<StageStats>>& stages() const { return stages_; }
  // A stage by key ("source", "steps[0]", "sinks.out", "dead_letter"), or -1.
  int stage_index(std::string_view key) const;
  TapHub& taps() { return taps_; }
  // What its plugins reported, by instance then name; kept across restarts of the flow.
  std::vector<PluginMetric> plugin_metrics() const;
  void set_metric(const Instance& inst, std::string_view name, uint32_t kind, double value);
  // Waits until pred() holds, re-checked on every state change, backpressure and ack progress.
  bool wait_for(const std::function<bool()>& pred, std::chrono::milliseconds timeout);

  // Runs messages through the running flow as if its source had emitted them, from a step or
  // straight to one sink; their outcomes go to done(id, status), not to the source. False, with
  // nothing taken, when the flow is not running.
  bool inject(std::vector<Injection> items, std::function<void(uint64_t, uint8_t)> done);

  // Hands an operator's command to the running source's signal hook (ABI 1.5). `refused` with the
  // source's reason; `unavailable` when its type takes no signals or its run() is not running.
  enum class SignalResult { taken, refused, unavailable };
  SignalResult signal(const host::Doc& command, std::string& reason);

  // Creates and destroys every instance once, without starting: plugin-level config errors.
  bool check(std::vector<std::string>& errors);

  // --- called through the host API ---
  FlowMessage* new_message();
  void free_message(FlowMessage* m);
  ef_status emit(ef_message* const* msgs, size_t n, int32_t timeout_ms);
  ef_status poll(int32_t timeout_ms);
  void sink_ack(int sink, FlowMessage* m, uint32_t status, std::string_view reason);
  size_t sink_count() const { return sinks_.size(); }
  int32_t sink_index(std::string_view name) const;
  std::string_view sink_name(size_t i) const { return sink_names_[i]; }
  void log(ef_log_level level, const Instance& inst, std::string_view text) const;

  struct Batch {
    Flow* flow;
    std::vector<FlowMessage*>* msgs;
    bool step;  // a transformer's batch: drop, reject and split are allowed
  };
  FlowMessage* split(Batch& b, size_t index);

 private:
  struct AckEvent {
    int sink;
    FlowMessage* msg;
    uint32_t status;
    std::string reason;
  };
  struct SinkState {
    Instance inst;
    std::vector<FlowMessage*> held;  // waiting for a retry, or behind one (order per sink)
    uint32_t failures = 0;
    std::chrono::steady_clock::time_point next_attempt{};
    std::chrono::milliseconds flush_interval{1000};
    // Written since its last flush(): when the next one is due.
    std::chrono::steady_clock::time_point flush_due = std::chrono::steady_clock::time_point::max();
    std::unique_ptr<SinkBuffer> buffer;  // while the flow runs, when the sink has `buffer:`
  };

  void thread_main();
  bool run_once();
  bool create_instances(std::vector<std::string>* errors);
  bool start_instances();
  void teardown();
  void set_state(FlowState s);
  void fail(const Instance& inst, std::string_view what);
  bool stopping() const { return stop_.load() || failed_; }

  // Source thread.
  bool admit(size_t n, uint64_t bytes, int32_t timeout_ms);
  void take_acks();
  // Pipeline thread.
  struct Handoff {
    std::vector<FlowMessage*> msgs;
    uint64_t bytes = 0;
    std::chrono::steady_clock::time_point at{};  // when emit() admitted it
  };
  void serve_source();
  void accept(Handoff& h);
  void publish_acks();
  // `bytes`: the batch's message_bytes, as emit() counted them; each step passes on what it kept.
  void run_pipeline(std::vector<FlowMessage*>& batch, uint64_t bytes, size_t first_step = 0);
  void run_injections();
  void injected_resolved(Origin* o);
  // At teardown: what was injected and not resolved is answered retry.
  void abandon_injections();
  uint64_t run_step(size_t step, std::vector<FlowMessage*>& batch, uint64_t bytes_in);
  void dispatch(std::vector<FlowMessage*>& batch);
  void write(int sink, std::vector<FlowMessage*>& batch);
  void pump();
  bool wait_inbox(std::chrono::steady_clock::time_point deadline);
  void handle_ack(int sink, FlowMessage* m, uint32_t status, std::string_view reason);
  void sink_done(FlowMessage* m, uint8_t status);
  void release(FlowMessage* m);
  // An origin one of its messages has answered for with `status`; acked when all have.
  void resolve(Origin* o, uint8_t status);
  // Buffered sinks (flow_buffer.cpp).
  bool open_buffers();
  void close_buffers();
  void buffer_in(int sink, std::vector<FlowMessage*>& msgs);
  void append_to_buffer(int sink, std::vector<FlowMessage*>& msgs);
  FlowMessage* own_for_buffer(FlowMessage* m);
  // Removes what the sinks resolved, retries blocked appends, and hands each sink what it has
  // room for from disk.
  void drain_buffers();
  // Forgets the records the sinks resolved: what a crash now would deliver twice.
  void remove_delivered();
  void buffer_released(FlowMessage* m, uint8_t status);
  void update_buffer_stats(SinkBuffer& b);
  // A buffer has records to hand to its sink now, or resolved ones to remove.
  bool buffer_work() const;
  // Records at a sink not resolved yet, or (with `backlog`) any record still on disk.
  bool buffers_busy(bool backlog) const;
  size_t buffer_window() const;
  void dead_letter(FlowMessage* m, const std::string& stage, std::string_view reason);
  void run_due_retries();
  // The earliest retry or flush the pipeline thread must wake for.
  std::chrono::steady_clock::time_point next_timer() const;
  // Flushes the sinks whose flush is due, or, with `all`, every sink written since its last one.
  void flush_sinks(bool all);
  std::chrono::steady_clock::time_point next_retry() const;
  std::chrono::steady_clock::time_point next_flush() const;
  void deliver_acks();
  void drain();
  std::chrono::milliseconds backoff(uint32_t attempt, std::chrono::milliseconds initial,
                                    std::chrono::milliseconds cap);
  Origin* new_origin();
  Instance& sink_instance(int sink) { return sink == kDeadLetter ? dlq_.inst : sinks_[size_t(sink)].inst; }
  StageStats& sink_stage(int sink) {
    return *stages_[sink == kDeadLetter ? stages_.size() - 1 : 1 + steps_.size() + size_t(sink)];
  }
  size_t sink_stage_index(int sink) const {
    return sink == kDeadLetter ? stages_.size() - 1 : 1 + steps_.size() + size_t(sink);
  }
  // What a tap shows of a message: one JSON object (secrets scrubbed).
  std::string tap_event(size_t stage, FlowMessage* m);
  void tap(size_t stage, const std::vector<FlowMessage*>& batch) {
    if (taps_.active())
      taps_.offer(stage, batch.data(), batch.size(), [&](FlowMessage* m) { return tap_event(stage, m); });
  }

  FlowSpec spec_;
  std::string state_dir_;
  std::vector<std::string> sink_names_;
  FlowStats stats_;
  std::vector<std::unique_ptr<StageStats>> stages_;
  TapHub taps_;
  mutable std::mutex metrics_mutex_;
  struct MetricValue {
    ef_metric_kind kind;
    double value;     // what is reported
    double last = 0;  // a counter's last total from the plugin
  };
  std::map<std::pair<std::string, std::string>, MetricValue> metrics_;
  std::set<std::string> rejected_metrics_;  // logged once each
  std::atomic<FlowState> state_{FlowState::created};
  std::atomic<bool> stop_{false};
  std::atomic<bool> force_{false};
  std::atomic<bool> failed_{false};  // this run failed (set by the pipeline thread)
  bool stop_seen_ = false;  // wait_inbox has woken for the stop request already
  bool delivering_ = false; // inside the source's on_ack
  std::thread thread_;          // the pipeline thread
  std::thread source_thread_;   // the source's run(), while the flow runs
  bool source_running_ = false; // pipeline thread's view: acks go through acks_out_

  Instance source_;
  std::vector<Instance> steps_;
  std::vector<SinkState> sinks_;
  SinkState dlq_;

  // Pipeline-thread-only pools and queues (messages_ grows under inbox_mutex_: both threads add).
  std::vector<std::unique_ptr<FlowMessage>> messages_;
  std::vector<FlowMessage*> free_messages_;
  std::vector<FlowMessage*> source_free_;  // the source thread's own free list
  std::vector<FlowMessage*> next_batch_;   // source thread: the vector its next emit fills
  std::vector<ef_ack> source_acks_;        // source thread: acks being delivered
  std::vector<std::unique_ptr<Origin>> origins_;
  std::vector<Origin*> free_origins_;
  std::vector<ef_ack> ready_;
  std::vector<FlowMessage*> dlq_queue_;
  std::vector<FlowMessage*> scratch_;
  std::vector<FlowMessage*> isolated_;
  std::vector<std::vector<FlowMessage*>> per_sink_;
  std::vector<uint64_t> masks_;
  std::vector<FlowMessage*> buffer_out_;  // records on their way from a buffer to its sink
  bool buffered_ = false;                  // some sink has a buffer
  uint64_t seq_ = 0;
  std::mt19937_64 rng_;
  // When the current round of acks resolved (for the latency histogram): read once per batch or
  // inbox round, not once per message.
  std::optional<std::chrono::steady_clock::time_point> resolved_at_;

  // Between threads, under inbox_mutex_: acks from sink threads and batches from the source
  // (the pipeline thread waits on inbox_cv_); acks and free messages for the source (it waits on
  // source_cv_).
  std::mutex inbox_mutex_;
  std::condition_variable inbox_cv_;
  std::vector<AckEvent> inbox_;
  std::vector<AckEvent> inbox_work_;
  std::vector<Handoff> handoff_;
  std::vector<Handoff> handoff_work_;
  struct PendingInjection {
    std::shared_ptr<InjectCall> call;
    std::vector<Injection> items;
  };
  std::vector<PendingInjection> injections_;           // taken by the pipeline thread
  std::vector<std::shared_ptr<InjectCall>> inject_calls_;  // pipeline thread: calls with open injections
  std::vector<std::vector<FlowMessage*>> spare_batches_;  // handed-off vectors, for their capacity
  bool source_done_ = false;
  bool retries_changed_ = false;    // the source thread left a retry or flush the pipeline thread must time
  bool flush_wanted_ = false;       // the source waits for room: flush every sink now
  bool source_waits_room_ = false;  // emit() waits for the pipeline to take a batch
  // Whoever runs the pipeline (steps, sinks, acks, retries) holds it: the pipeline thread, or the
  // source thread for a batch it runs itself.
  std::mutex pipeline_mutex_;
  std::atomic<size_t> queued_batches_{0};  // handed to the pipeline thread and not through yet
  std::atomic<uint64_t> pipeline_ns_{0};   // the pipeline's cost per message, smoothed
  std::atomic<uint64_t> source_ns_{0};     // the source's own CPU per message, smoothed
  uint64_t source_cpu_mark_ = 0;           // source thread: its CPU clock when emit() returned
  std::atomic<bool> acks_ready_{false};  // acks_out_ has acks: the source takes the lock only then
  ef_status source_status_ = EF_OK;
  std::condition_variable source_cv_;
  std::vector<ef_ack> acks_out_;
  std::vector<FlowMessage*> returned_;

  // Signals reach the source only while its run() runs: set and cleared under signal_mutex_.
  std::mutex signal_mutex_;
  bool signals_open_ = false;

  mutable std::mutex observe_mutex_;
  std::condition_variable observe_cv_;
  std::string last_error_;
  bool ended_ = false;
  bool started_ = false;
  std::function<void()> on_end_;
};

// What a reload did, or why it changed nothing.
struct ReloadResult {
  bool applied = false;
  std::string at;  // when, ISO 8601
  std::vector<std::string> errors, started, stopped, restarted, unchanged, plugins_loaded;
  std::string json() const;
};

class Runtime {
 public:
  explicit Runtime(RuntimeOptions options);
  ~Runtime();

  const PluginRegistry& plugins() const { return plugins_; }
  const RuntimeOptions& options() const { return options_; }
  // Parses and checks the flows (spec, then each plugin's own create()), collecting every error.
  // The paths are kept for reload().
  bool load(const std::vector<std::string>& paths, host::Diagnostics& diag);
  // After load: unloads the plugins no loaded flow uses (`run` only).
  void unload_unused_plugins();
  void start();
  void request_stop();
  // Blocks until every flow has ended (finished, stopped or failed for good) and no reload runs.
  void wait();
  // Reads the flow files again and loads new plugin files. When anything is invalid nothing
  // changes. Otherwise flows whose definition is the same keep running untouched; removed ones
  // drain and stop; changed ones drain and start again from their new definition; new ones
  // start. One reload at a time; none once the daemon is stopping.
  ReloadResult reload();
  std::optional<ReloadResult> last_reload() const;
  // 0: every flow finished or stopped with nothing left open; 1 otherwise.
  int exit_code() const;
  std::shared_ptr<Flow> flow(std::string_view name) const;
  // The flows now; a reload may replace them after this returns (the pointers stay valid).
  std::vector<std::shared_ptr<Flow>> flows() const;
  // Guards what admin reads of the plugin registry against a reload loading new plugins.
  std::unique_lock<std::mutex> lock_plugins() const { return std::unique_lock(plugins_mutex_); }

 private:
  // The flows of the paths, parsed, not started (nor checked by their plugins).
  bool build(host::Diagnostics& diag, std::vector<std::shared_ptr<Flow>>& out);
  void start(Flow& f);

  RuntimeOptions options_;
  PluginRegistry plugins_;
  mutable std::mutex plugins_mutex_;
  std::vector<std::string> paths_;
  mutable std::mutex mutex_;  // flows_, reloading_, stopping_, last_reload_
  std::condition_variable cv_;
  std::vector<std::shared_ptr<Flow>> flows_;
  bool reloading_ = false;
  int stop_requests_ = 0;
  std::optional<ReloadResult> last_reload_;
  std::mutex reload_mutex_;  // one reload at a time
};

// The last log lines of a flow: its counts (the end-of-run summary) and its plugins' metrics.
void log_summary(const Flow& f);

// Where the default dead letter (the dlq_store sink) keeps its letters.
std::string dead_letter_store_path(const std::string& state_dir);

// The runtime's host callback table (one per process).
const ef_host_api* runtime_host_api();

}  // namespace edgeflow
