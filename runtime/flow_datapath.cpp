// A flow's data path: messages and their origins, the source's emit and admission, the
// pipeline through the steps, dispatch to the sinks, acks, retries, the dead letter and the drain.
#include "engine_internal.hpp"

#include "log.hpp"

#include <edgeflow/sdk/backoff.hpp>
#include <edgeflow/sdk/expr/value.hpp>

#include <algorithm>
#include <bit>
#include <ctime>
#include <filesystem>

namespace edgeflow {

using namespace detail;
using host::JValue;

thread_local Flow* detail::t_flow = nullptr;
thread_local std::string* detail::t_fail_reason = nullptr;
thread_local Flow* detail::t_pipeline_thread = nullptr;

namespace {

// Free messages the pipeline thread keeps for dead-letter envelopes and splits; the rest go back
// to the source thread.
constexpr size_t kPipelineSpares = 1024;

// A batch goes to the pipeline thread only when both threads would have work enough to be worth
// the hand-off: running the source and the pipeline side by side saves the smaller of the two
// costs, and the hand-off costs about 0.1 us a message on each side (the messages' cache lines
// move between cores, and a sleeping thread is woken). And only a big batch: a source keeping up
// with its input emits small ones, and then CPU matters more than overlap. Otherwise the source
// thread runs the pipeline itself.
constexpr uint64_t kHandoffMinPipelineNs = 300;  // per message
constexpr uint64_t kHandoffMinSourceNs = 200;    // per message, CPU between two emits
constexpr size_t kHandoffMinBatch = 32;

uint64_t thread_cpu_ns() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return uint64_t(ts.tv_sec) * 1000000000u + uint64_t(ts.tv_nsec);
}

// A cost per message, smoothed over batches: each moves it 1/2^shift of the way. It starts at 0,
// so a few costly batches at the start (cold files, page faults) do not decide alone.
void smooth(std::atomic<uint64_t>& avg, uint64_t ns, unsigned shift) {
  auto a = int64_t(avg.load(std::memory_order_relaxed));
  avg.store(uint64_t(a + (int64_t(ns) - a) / (int64_t(1) << shift)), std::memory_order_relaxed);
}
// Handed-off batches not through the pipeline yet, at most: the source reads ahead by a batch
// while the pipeline works on one, not by the whole in-flight bound, so what both threads touch
// stays in cache and a fast source does not fill memory with parsed messages.
constexpr size_t kQueuedBatches = 2;

// The longest a sink's flush() blocks during a drain: how soon a second SIGTERM takes effect.
constexpr std::chrono::milliseconds kDrainSlice{100};


void bump_peak(std::atomic<int64_t>& peak, int64_t v) {
  int64_t p = peak.load(std::memory_order_relaxed);
  while (v > p && !peak.compare_exchange_weak(p, v, std::memory_order_relaxed)) {
  }
}
void bump_peak(std::atomic<uint64_t>& peak, uint64_t v) {
  uint64_t p = peak.load(std::memory_order_relaxed);
  while (v > p && !peak.compare_exchange_weak(p, v, std::memory_order_relaxed)) {
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Messages

FlowMessage* Flow::new_message() {
  auto& free = t_pipeline_thread == this ? free_messages_ : source_free_;
  if (free.empty() && &free == &source_free_) {
    std::lock_guard lock(inbox_mutex_);
    source_free_.swap(returned_);
  }
  FlowMessage* m;
  if (free.empty()) {
    std::lock_guard lock(inbox_mutex_);
    messages_.push_back(std::make_unique<FlowMessage>());
    m = messages_.back().get();
  } else {
    m = free.back();
    free.pop_back();
    m->clear();
  }
  m->origin = nullptr;
  m->dlq_of = nullptr;
  m->pending = 0;
  m->attempts = 0;
  m->status = EF_ACK_DELIVERED;
  m->fate = FlowMessage::keep;
  m->reason.clear();
  m->buffer = nullptr;
  m->buffer_seq = 0;
  m->in_use = true;
  return m;
}

void Flow::free_message(FlowMessage* m) {
  if (!m || !m->in_use) return;
  m->in_use = false;
  (t_pipeline_thread == this ? free_messages_ : source_free_).push_back(m);
}

Origin* Flow::new_origin() {
  Origin* o;
  if (free_origins_.empty()) {
    origins_.push_back(std::make_unique<Origin>());
    o = origins_.back().get();
  } else {
    o = free_origins_.back();
    free_origins_.pop_back();
  }
  *o = Origin{};
  o->in_use = true;
  return o;
}

FlowMessage* Flow::split(Batch& b, size_t index) {
  FlowMessage* src = (*b.msgs)[index];
  FlowMessage* m = new_message();
  m->copy_from(*src);
  m->origin = src->origin;
  m->origin->pending++;
  m->seq = ++seq_;
  b.msgs->push_back(m);
  return m;
}

int32_t Flow::sink_index(std::string_view name) const {
  for (size_t i = 0; i < sink_names_.size(); ++i)
    if (sink_names_[i] == name) return int32_t(i);
  return -1;
}

// ---------------------------------------------------------------------------------------------
// The data path

// Source thread: admits the batch, then runs it through the pipeline itself or hands it to the
// pipeline thread (see kHandoffMinPipelineNs). Acks are delivered once the batch is taken (or
// while admission waits): a source's on_ack must not find the batch it is emitting still its own.
ef_status Flow::emit(ef_message* const* msgs, size_t n, int32_t timeout_ms) {
  // The source's own CPU per message since its last big batch was taken.
  const bool big = n >= kHandoffMinBatch;
  if (big && source_cpu_mark_) smooth(source_ns_, (thread_cpu_ns() - source_cpu_mark_) / n, 4);
  source_cpu_mark_ = 0;
  struct Mark {
    Flow* flow;
    bool big;
    ~Mark() {
      if (big) flow->source_cpu_mark_ = thread_cpu_ns();
    }
  } mark{this, big};
  if (stopping()) return EF_STOPPING;
  if (n == 0) {
    take_acks();
    return EF_OK;
  }
  uint64_t bytes = 0;
  for (size_t i = 0; i < n; ++i) bytes += message_bytes(FM(msgs[i]));
  if (!admit(n, bytes, timeout_ms)) return stopping() ? EF_STOPPING : EF_BUSY;

  bool hand_off = big && pipeline_ns_.load(std::memory_order_relaxed) >= kHandoffMinPipelineNs &&
                  source_ns_.load(std::memory_order_relaxed) >= kHandoffMinSourceNs;
  std::unique_lock pipeline(pipeline_mutex_, std::defer_lock);
  if (!hand_off) {
    pipeline.lock();
    // Only with no handed-off batch still open: the batches must reach each sink in order.
    hand_off = queued_batches_.load(std::memory_order_acquire) > 0;
    if (hand_off) pipeline.unlock();
  }
  if (hand_off) {
    std::unique_lock lock(inbox_mutex_);
    auto room = [&] { return queued_batches_.load(std::memory_order_acquire) < kQueuedBatches || stopping(); };
    if (!room()) {
      source_waits_room_ = true;
      source_cv_.wait(lock, room);
      source_waits_room_ = false;
    }
  }

  Handoff h;
  h.msgs.swap(next_batch_);  // a vector the pipeline has given back, for its capacity
  h.msgs.clear();
  for (size_t i = 0; i < n; ++i) h.msgs.push_back(FM(msgs[i]));
  h.bytes = bytes;
  h.at = Clock::now();
  int64_t in = stats_.in_flight.fetch_add(int64_t(n), std::memory_order_relaxed) + int64_t(n);
  uint64_t in_bytes = stats_.in_flight_bytes.fetch_add(bytes, std::memory_order_relaxed) + bytes;
  stats_.emitted.fetch_add(n, std::memory_order_relaxed);
  bump_peak(stats_.peak_in_flight, in);
  bump_peak(stats_.peak_in_flight_bytes, in_bytes);
  stages_[0]->out.add(n);
  stages_[0]->bytes_out.add(bytes);

  if (!hand_off) {
    Flow* outer = t_flow;
    t_flow = this;
    accept(h);
    pump();
    bool retries = next_timer() != Clock::time_point::max();
    t_flow = outer;
    pipeline.unlock();
    if (retries) {
      // The pipeline thread sleeps until the retries and flushes it knew of: it must time these too.
      {
        std::lock_guard lock(inbox_mutex_);
        retries_changed_ = true;
      }
      inbox_cv_.notify_all();
    }
    next_batch_.swap(h.msgs);
  } else {
    bool wake;
    {
      std::lock_guard lock(inbox_mutex_);
      wake = handoff_.empty();
      queued_batches_.fetch_add(1, std::memory_order_relaxed);
      handoff_.push_back(std::move(h));
      if (!spare_batches_.empty()) {
        next_batch_.swap(spare_batches_.back());
        spare_batches_.pop_back();
      }
    }
    // The pipeline thread checks for batches under the lock before it waits: only the first of
    // a run needs to wake it.
    if (wake) inbox_cv_.notify_all();
  }
  observe_cv_.notify_all();  // observers wait on emitted counts too
  take_acks();
  return EF_OK;
}

// Source thread: hands the source the acks the pipeline resolved.
void Flow::take_acks() {
  if (delivering_ || !acks_ready_.load(std::memory_order_acquire)) return;
  {
    std::lock_guard lock(inbox_mutex_);
    acks_ready_.store(false, std::memory_order_relaxed);
    if (acks_out_.empty()) return;
    source_acks_.swap(acks_out_);
  }
  delivering_ = true;
  source_.comp->on_ack(source_.self, source_acks_.data(), source_acks_.size());
  delivering_ = false;
  source_acks_.clear();
  observe_cv_.notify_all();
}

ef_status Flow::poll(int32_t timeout_ms) {
  take_acks();
  if (stopping()) return EF_STOPPING;
  if (timeout_ms > 0) {
    auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    {
      std::unique_lock lock(inbox_mutex_);
      source_cv_.wait_until(lock, deadline, [&] { return !acks_out_.empty() || stopping(); });
    }
    take_acks();
  }
  return stopping() ? EF_STOPPING : EF_OK;
}

bool Flow::admit(size_t n, uint64_t bytes, int32_t timeout_ms) {
  auto over = [&] {
    int64_t in = stats_.in_flight.load(std::memory_order_relaxed);
    return in > 0 && (in + int64_t(n) > spec_.max_in_flight ||
                      stats_.in_flight_bytes.load(std::memory_order_relaxed) + bytes > spec_.max_in_flight_bytes);
  };
  if (!over()) return true;
  stats_.backpressure_waits++;
  observe_cv_.notify_all();
  // Room may be sitting in a sink that batches across writes: the pipeline thread flushes now.
  {
    std::lock_guard lock(inbox_mutex_);
    flush_wanted_ = true;
    retries_changed_ = true;
  }
  inbox_cv_.notify_all();
  auto began = Clock::now();
  auto waited = [&] {
    stats_.backpressure_ns.fetch_add(uint64_t(std::chrono::nanoseconds(Clock::now() - began).count()),
                                     std::memory_order_relaxed);
  };
  auto deadline = timeout_ms < 0 ? Clock::time_point::max() : began + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    take_acks();
    if (!over()) break;
    if (stopping() || Clock::now() >= deadline) {
      waited();
      return false;
    }
    // Room comes with acks: the pipeline publishes them (and wakes this wait) after it lowers
    // the in-flight counts.
    std::unique_lock lock(inbox_mutex_);
    auto ready = [&] { return !acks_out_.empty() || !over() || stopping(); };
    if (deadline == Clock::time_point::max()) source_cv_.wait(lock, ready);
    else source_cv_.wait_until(lock, deadline, ready);
  }
  waited();
  return !stopping();
}

// Pipeline thread, while the source runs: every handed-off batch through the pipeline, sink
// acks and retries as they come, until the source has returned and its last batch is through.
void Flow::serve_source() {
  for (;;) {
    bool done;
    Clock::time_point next;
    bool flush_all;
    {
      std::lock_guard pipeline(pipeline_mutex_);
      next = next_timer();
    }
    {
      std::unique_lock lock(inbox_mutex_);
      // The vectors of the last round go back for the source's next batches.
      for (auto& h : handoff_work_) spare_batches_.push_back(std::move(h.msgs));
      handoff_work_.clear();
      auto ready = [&] { return !handoff_.empty() || !inbox_.empty() || source_done_ || retries_changed_; };
      if (next == Clock::time_point::max()) inbox_cv_.wait(lock, ready);
      else inbox_cv_.wait_until(lock, next, ready);
      retries_changed_ = false;
      flush_all = flush_wanted_;
      flush_wanted_ = false;
      handoff_work_.swap(handoff_);
      done = source_done_;
    }
    {
      std::lock_guard pipeline(pipeline_mutex_);
      for (auto& h : handoff_work_) accept(h);
      queued_batches_.fetch_sub(handoff_work_.size(), std::memory_order_release);
      if (flush_all) flush_sinks(true);
      pump();  // acks from other threads, dead letters, due retries and flushes; then the acks to the source
    }
    bool room;
    {
      std::lock_guard lock(inbox_mutex_);
      room = source_waits_room_;
    }
    if (room) source_cv_.notify_all();
    if (done) return;
  }
}

void Flow::accept(Handoff& h) {
  const size_t n = h.msgs.size();  // the steps may drop and split
  auto began = n >= kHandoffMinBatch ? Clock::now() : Clock::time_point{};
  resolved_at_.reset();
  for (FlowMessage* m : h.msgs) {
    Origin* o = new_origin();
    o->token = m->token;
    o->pending = 1;
    o->emitted_at = h.at;
    o->bytes = message_bytes(m);
    m->origin = o;
    m->seq = ++seq_;
  }
  tap(0, h.msgs);
  // After a failure the batch stays open: teardown answers it with retries.
  if (!failed_) run_pipeline(h.msgs, h.bytes);
  // What the pipeline costs a message, smoothed over the batches big enough to be handed off:
  // where the next one runs.
  if (n >= kHandoffMinBatch) smooth(pipeline_ns_, uint64_t(std::chrono::nanoseconds(Clock::now() - began).count()) / n, 3);
}

void Flow::run_pipeline(std::vector<FlowMessage*>& batch, uint64_t bytes, size_t first_step) {
  for (size_t i = first_step; i < steps_.size() && !batch.empty() && !failed_; ++i) bytes = run_step(i, batch, bytes);
  if (!failed_) dispatch(batch);
}

uint64_t Flow::run_step(size_t step, std::vector<FlowMessage*>& batch, uint64_t bytes_in) {
  Instance& inst = steps_[step];
  StageStats& st = *stages_[1 + step];
  Batch b{this, &batch, true};
  const size_t original = batch.size();
  st.in.add(original);
  st.bytes_in.add(bytes_in);
  if (inst.comp->transform(inst.self, reinterpret_cast<ef_batch*>(&b)) != EF_OK) {
    // One bad message must not sink its neighbours: undo the splits, run each alone, and send
    // only the ones that still fail to the dead letter.
    std::string batch_error = inst.last_error;
    for (size_t i = original; i < batch.size(); ++i) release(batch[i]);
    batch.resize(original);
    isolated_.clear();
    for (FlowMessage* m : batch) {
      m->fate = FlowMessage::keep;
      std::vector<FlowMessage*> one{m};
      Batch b1{this, &one, true};
      inst.last_error.clear();
      if (inst.comp->transform(inst.self, reinterpret_cast<ef_batch*>(&b1)) != EF_OK) {
        for (size_t k = 1; k < one.size(); ++k) release(one[k]);
        one.resize(1);
        m->fate = FlowMessage::reject;
        m->reason = inst.last_error.empty() ? batch_error : inst.last_error;
      }
      isolated_.insert(isolated_.end(), one.begin(), one.end());
    }
    batch.swap(isolated_);
  }
  size_t keep = 0, dropped = 0, rejected = 0;
  uint64_t bytes_out = 0;
  for (FlowMessage* m : batch) {
    if (m->fate == FlowMessage::keep) {
      batch[keep++] = m;
      bytes_out += message_bytes(m);
    } else if (m->fate == FlowMessage::drop) {
      ++dropped;
      release(m);
    } else {
      ++rejected;
      m->pending = 1;
      dead_letter(m, inst.spec->key, m->reason);
    }
  }
  batch.resize(keep);
  st.out.add(keep);
  st.dropped.add(dropped);
  st.rejected.add(rejected);
  st.bytes_out.add(bytes_out);
  tap(1 + step, batch);
  return bytes_out;
}

void Flow::dispatch(std::vector<FlowMessage*>& batch) {
  const uint64_t all = sinks_.size() == 64 ? ~0ull : (1ull << sinks_.size()) - 1;
  // Masks and sub-batches are fixed before any write: a sink may ack (and so release) a
  // message synchronously, after which it must not be read again.
  masks_.resize(batch.size());
  for (auto& v : per_sink_) v.clear();
  for (size_t i = 0; i < batch.size(); ++i) {
    FlowMessage* m = batch[i];
    uint64_t mask = m->routed ? (m->routes & all) : all;
    masks_[i] = mask;
    m->pending = uint32_t(std::popcount(mask));
    for (uint64_t bits = mask; bits; bits &= bits - 1) per_sink_[size_t(std::countr_zero(bits))].push_back(m);
  }
  for (size_t i = 0; i < batch.size(); ++i)
    if (masks_[i] == 0) release(batch[i]);  // routed only to sinks that do not exist
  for (size_t s = 0; s < sinks_.size() && !failed_; ++s) {
    auto& sub = per_sink_[s];
    if (sub.empty()) continue;
    if (sinks_[s].buffer) {
      buffer_in(int(s), sub);
      continue;
    }
    if (!sinks_[s].held.empty()) {
      // Behind a retry: keep this sink's order.
      sinks_[s].held.insert(sinks_[s].held.end(), sub.begin(), sub.end());
      continue;
    }
    std::vector<FlowMessage*> work;
    work.swap(sub);
    write(int(s), work);
    work.clear();
    sub.swap(work);
  }
  // The sinks have what they need from the documents (a sink that reads one later parses it
  // again). A message acked during the writes may already carry a dead-letter envelope.
  for (FlowMessage* m : batch)
    if (m->in_use && !m->dlq_of) m->retire_doc();
}

void Flow::write(int sink, std::vector<FlowMessage*>& batch) {
  if (batch.empty() || failed_) return;
  Instance& inst = sink_instance(sink);
  StageStats& st = sink_stage(sink);
  st.in.add(batch.size());
  uint64_t bytes = 0;
  for (FlowMessage* m : batch) bytes += message_bytes(m);
  st.bytes_in.add(bytes);
  tap(sink_stage_index(sink), batch);  // before the write: a sink may release what it acks at once
  Batch b{this, &batch, false};
  if (inst.comp->write(inst.self, reinterpret_cast<ef_batch*>(&b)) != EF_OK)
    fail(inst, "write failed: " + inst.last_error);
  SinkState& state = sink == kDeadLetter ? dlq_ : sinks_[size_t(sink)];
  if (inst.comp->flush && state.flush_due == Clock::time_point::max())
    state.flush_due = Clock::now() + state.flush_interval;
}

Clock::time_point Flow::next_timer() const {
  if (buffered_ && buffer_work()) return Clock::time_point::min();
  return std::min(next_retry(), next_flush());
}

Clock::time_point Flow::next_flush() const {
  auto t = dlq_.flush_due;
  for (auto& s : sinks_) t = std::min(t, s.flush_due);
  return t;
}

// Timer flushes pass no time to wait: they start what a sink holds on its way, and the acks
// come as they come. The drain is what waits.
void Flow::flush_sinks(bool all) {
  auto now = Clock::now();
  auto flush = [&](SinkState& s) {
    if (s.flush_due == Clock::time_point::max() || (!all && s.flush_due > now) || failed_) return;
    s.flush_due = Clock::time_point::max();
    if (s.inst.comp->flush(s.inst.self, 0) != EF_OK) fail(s.inst, "flush failed: " + s.inst.last_error);
  };
  for (auto& s : sinks_) flush(s);
  flush(dlq_);
}

void Flow::sink_ack(int sink, FlowMessage* m, uint32_t status, std::string_view reason) {
  if (t_flow == this) {
    handle_ack(sink, m, status, reason);
    return;
  }
  bool was_empty;
  {
    std::lock_guard lock(inbox_mutex_);
    was_empty = inbox_.empty();
    inbox_.push_back(AckEvent{sink, m, status, std::string(reason)});
  }
  // The waiter's predicate checks the inbox under the lock, so only the first ack of a run needs
  // to wake it: a wake-up (a futex call) per ack costs more than handling the ack.
  if (was_empty) inbox_cv_.notify_all();
}

void Flow::handle_ack(int sink, FlowMessage* m, uint32_t status, std::string_view reason) {
  if (!m->in_use) {
    log_error(spec_.name, sink_instance(sink).spec->key, "ack for a message that is not in flight (acked twice?)");
    return;
  }
  StageStats& st = sink_stage(sink);
  if (m->dlq_of) {
    FlowMessage* orig = m->dlq_of;
    free_message(m);
    if (status != EF_ACK_DELIVERED) {
      st.rejected.add(1);
      // Never drop: with no dead letter to hold it, the flow stops and the source keeps it.
      fail(dlq_.inst, "dead-letter write failed: " + std::string(reason.empty() ? "no reason given" : reason));
      return;
    }
    st.out.add(1);
    stats_.dead_lettered++;
    sink_done(orig, EF_ACK_REJECTED);
    return;
  }
  const std::string& stage = sink_instance(sink).spec->key;
  if (status == EF_ACK_DELIVERED) {
    st.out.add(1);
    if (sink >= 0) sinks_[size_t(sink)].failures = 0;
    sink_done(m, EF_ACK_DELIVERED);
  } else if (status == EF_ACK_RETRY && sink >= 0) {
    st.retried.add(1);
    m->attempts++;
    stats_.retries++;
    if (spec_.retry.max_attempts > 0 && m->attempts >= uint64_t(spec_.retry.max_attempts)) {
      dead_letter(m, stage, std::string(reason) + " (gave up after " + std::to_string(m->attempts) + " attempts)");
      return;
    }
    SinkState& s = sinks_[size_t(sink)];
    // The first retry answer of a round schedules the next attempt; the rest of the round
    // (the same failed write, or writes queued behind it) joins it.
    bool first = s.held.empty();
    s.held.push_back(m);
    if (!first) return;
    s.failures++;
    auto delay = backoff(s.failures, spec_.retry.initial, spec_.retry.max);
    s.next_attempt = Clock::now() + delay;
    if (s.failures <= 3 || s.failures % 10 == 0)
      log_warn(spec_.name, stage, scrub("delivery failed, retrying in " + std::to_string(delay.count()) +
                                            "ms (failure " + std::to_string(s.failures) + "): " + std::string(reason),
                                        spec_.secrets));
  } else {
    st.rejected.add(1);
    dead_letter(m, stage, reason.empty() ? "rejected (no reason given)" : reason);
  }
}

void Flow::sink_done(FlowMessage* m, uint8_t status) {
  m->status = std::max(m->status, status);
  if (--m->pending == 0) release(m);
}

void Flow::release(FlowMessage* m) {
  Origin* o = m->origin;
  uint8_t status = m->status;
  if (m->buffer) buffer_released(m, status);
  free_message(m);
  if (o) resolve(o, status);
}

void Flow::resolve(Origin* o, uint8_t status) {
  o->status = std::max(o->status, status);
  if (--o->pending > 0) return;
  if (o->injected) injected_resolved(o);
  else ready_.push_back(ef_ack{sizeof(ef_ack), o->status, o->token});
  if (o->status == EF_ACK_DELIVERED && !o->injected) stats_.delivered.fetch_add(1, std::memory_order_relaxed);
  if (o->status != EF_ACK_RETRY && !o->injected) {
    if (!resolved_at_) resolved_at_ = Clock::now();
    stats_.latency.observe(*resolved_at_ - o->emitted_at);
  }
  stats_.in_flight.fetch_sub(1, std::memory_order_relaxed);
  stats_.in_flight_bytes.fetch_sub(o->bytes, std::memory_order_relaxed);
  o->in_use = false;
  free_origins_.push_back(o);
}

void Flow::dead_letter(FlowMessage* m, const std::string& stage, std::string_view reason) {
  FlowMessage* e = new_message();
  e->dlq_of = m;
  JValue* root = e->reset_doc();
  auto& a = e->alloc();
  auto str = [&](std::string_view s) { return JValue(s.data(), rapidjson::SizeType(s.size()), a); };
  // Whatever arrived, the record is valid UTF-8 JSON: text that is not UTF-8 is shown with
  // U+FFFD, and a payload that is not is kept exactly, in base64.
  auto text = [&](std::string_view s) { return sdk::expr::is_utf8(s) ? str(s) : str(sdk::expr::valid_utf8(s)); };
  root->AddMember("flow", str(spec_.name), a);
  root->AddMember("stage", str(stage), a);
  root->AddMember("reason", text(scrub(std::string(reason), spec_.secrets)), a);
  root->AddMember("attempts", JValue(m->attempts), a);
  root->AddMember("failed_at", str(iso_timestamp()), a);
  root->AddMember("key", text(m->key), a);
  if (!m->content_type.empty()) root->AddMember("content_type", text(m->content_type), a);
  JValue headers(rapidjson::kObjectType);
  for (auto& [k, v] : m->headers) headers.AddMember(text(k), text(v), a);
  root->AddMember("headers", headers, a);
  JValue meta(rapidjson::kObjectType);
  for (auto& [k, v] : m->meta) meta.AddMember(text(k), text(v), a);
  root->AddMember("meta", meta, a);
  // JSON payloads are kept as JSON so the dead letter can be replayed and read as is: the bytes
  // that arrived (whitespace between tokens aside, so the record stays one line), or the
  // document a step rewrote, its numbers exact either way.
  std::string arrived;
  JValue* doc = m->root(nullptr);
  if (doc && m->payload_stale) {
    JValue payload;
    host::deep_copy(payload, *doc, a);
    root->AddMember("payload", payload, a);
  } else if (doc && sdk::expr::is_utf8(m->payload)) {
    arrived = host::minified(m->payload);
  } else if (sdk::expr::is_utf8(m->payload)) {
    root->AddMember("payload", str(m->payload), a);
  } else {
    std::string b64;
    sdk::expr::append_base64(b64, m->payload);
    root->AddMember("payload_base64", str(b64), a);
  }
  if (!arrived.empty()) {
    std::string record = e->payload_bytes();
    record.pop_back();
    record += ",\"payload\":";
    record += arrived;
    record += '}';
    e->set_payload(record.data(), record.size());
  }
  e->content_type = "application/json";
  e->key = m->key;
  dlq_queue_.push_back(e);
  uint64_t n = stats_.dead_lettered.load() + dlq_queue_.size();
  if (n <= 10 || n % 1000 == 0)
    log_warn(spec_.name, stage,
             scrub("message sent to the dead letter (" + std::to_string(n) + " so far): " + std::string(reason),
                   spec_.secrets));
}

Clock::time_point Flow::next_retry() const {
  auto t = Clock::time_point::max();
  for (auto& s : sinks_)
    if (!s.held.empty()) t = std::min(t, s.next_attempt);
  return t;
}

void Flow::run_due_retries() {
  auto now = Clock::now();
  for (size_t s = 0; s < sinks_.size() && !failed_; ++s) {
    auto& st = sinks_[s];
    if (st.held.empty() || now < st.next_attempt) continue;
    std::sort(st.held.begin(), st.held.end(), [](auto* x, auto* y) { return x->seq < y->seq; });
    scratch_.clear();
    scratch_.swap(st.held);
    write(int(s), scratch_);
  }
}

void Flow::pump() {
  for (;;) {
    bool injected;
    {
      std::lock_guard lock(inbox_mutex_);
      inbox_work_.swap(inbox_);
      injected = !injections_.empty();
    }
    if (injected && !failed_) run_injections();
    bool progress = !inbox_work_.empty() || injected;
    resolved_at_.reset();
    for (auto& e : inbox_work_) handle_ack(e.sink, e.msg, e.status, e.reason);
    inbox_work_.clear();
    // A sink answering a steady stream keeps this loop going: what it delivered leaves the
    // buffer now, not when the stream pauses.
    if (buffered_ && progress) remove_delivered();
    if (!dlq_queue_.empty() && !failed_) {
      std::vector<FlowMessage*> q;
      q.swap(dlq_queue_);
      write(kDeadLetter, q);
      progress = true;
    }
    auto next = next_retry();
    if (next != Clock::time_point::max() && next <= Clock::now()) {
      run_due_retries();
      progress = true;
    }
    if (next_flush() <= Clock::now()) {
      flush_sinks(false);
      progress = true;
    }
    if (!progress || failed_) break;
  }
  // Once a round: a sink that acks as it is written would otherwise keep this loop (and the
  // source waiting for the pipeline) until its whole backlog is through. next_timer() brings the
  // pipeline thread back for the rest.
  if (buffered_ && !failed_) drain_buffers();
  publish_acks();
}

// While the source thread runs, its acks (and the free messages the pipeline can spare) go to
// it through the shared lists; before and after, they are delivered from here.
void Flow::publish_acks() {
  if (!source_running_) {
    deliver_acks();
    return;
  }
  if (ready_.empty() && free_messages_.size() <= kPipelineSpares) return;  // most rounds of an async sink
  bool wake = false;
  {
    std::lock_guard lock(inbox_mutex_);
    if (!ready_.empty()) {
      wake = acks_out_.empty();
      if (wake) acks_out_.swap(ready_);
      else acks_out_.insert(acks_out_.end(), ready_.begin(), ready_.end());
      acks_ready_.store(true, std::memory_order_release);
    }
    if (free_messages_.size() > kPipelineSpares) {
      returned_.insert(returned_.end(), free_messages_.begin() + kPipelineSpares, free_messages_.end());
      free_messages_.resize(kPipelineSpares);
    }
  }
  ready_.clear();
  if (wake) source_cv_.notify_all();
}

bool Flow::wait_inbox(Clock::time_point deadline) {
  std::unique_lock lock(inbox_mutex_);
  // A second signal (force_) must also wake a drain that has already seen the first.
  auto ready = [&] { return !inbox_.empty() || !injections_.empty() || stop_.load() != stop_seen_ || force_.load(); };
  bool woke = deadline == Clock::time_point::max() ? (inbox_cv_.wait(lock, ready), true)
                                                    : inbox_cv_.wait_until(lock, deadline, ready);
  stop_seen_ = stop_.load();
  return woke;
}

void Flow::deliver_acks() {
  {
    // What the source thread had not taken yet comes first.
    std::lock_guard lock(inbox_mutex_);
    if (!acks_out_.empty()) {
      acks_out_.insert(acks_out_.end(), ready_.begin(), ready_.end());
      ready_.swap(acks_out_);
      acks_out_.clear();
    }
  }
  if (ready_.empty() || !source_.self || delivering_) return;
  delivering_ = true;
  std::vector<ef_ack> acks;
  acks.swap(ready_);
  source_.comp->on_ack(source_.self, acks.data(), acks.size());
  delivering_ = false;
  acks.clear();
  if (ready_.empty()) ready_.swap(acks);  // keep the capacity
  observe_cv_.notify_all();
}

void Flow::drain() {
  set_state(FlowState::draining);
  auto deadline = stop_ ? Clock::now() + spec_.drain_timeout : Clock::time_point::max();
  // Sinks flush in slices of what is left of drain_timeout, so the drain ends on time and a second
  // stop request (force_) is heard within one slice, even while a sink waits for its server.
  auto flush_all = [&] {
    auto left = deadline == Clock::time_point::max()
                    ? spec_.drain_timeout
                    : std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    int32_t slice = int32_t(std::clamp<int64_t>(left.count(), 0, kDrainSlice.count()));
    for (auto& s : sinks_)
      if (s.inst.comp->flush && s.inst.comp->flush(s.inst.self, slice) != EF_OK) fail(s.inst, "flush failed: " + s.inst.last_error);
    if (dlq_.inst.comp->flush && dlq_.inst.comp->flush(dlq_.inst.self, slice) != EF_OK)
      fail(dlq_.inst, "flush failed: " + dlq_.inst.last_error);
  };
  flush_all();
  pump();
  // A source that finished on its own waits for its buffers to empty too; a stop only for what
  // the sinks were given: the rest stays on disk for the next run.
  auto open = [&] { return stats_.in_flight.load() > 0 || (buffered_ && buffers_busy(!stop_)); };
  while (open() && !failed_ && !force_) {
    // A stop asked for while the source finished on its own bounds the remaining wait.
    if (stop_ && deadline == Clock::time_point::max()) deadline = Clock::now() + spec_.drain_timeout;
    if (Clock::now() >= deadline) break;
    wait_inbox(std::min({deadline, next_timer(), Clock::now() + kDrainSlice}));
    pump();
    if (!failed_ && !force_) flush_all();
  }
}

}  // namespace edgeflow
