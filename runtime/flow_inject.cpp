// Messages brought into a running flow from outside its source: dead letters replayed by the
// repair station. They enter at the step that rejected them (or at a sink, alone), count as in
// flight like the source's, and report their outcome to the caller instead of the source.
#include "engine_internal.hpp"

namespace edgeflow {

using namespace detail;

bool Flow::inject(std::vector<Injection> items, std::function<void(uint64_t, uint8_t)> done) {
  if (items.empty()) return true;
  auto call = std::make_shared<InjectCall>();
  call->done = std::move(done);
  call->open = items.size();
  {
    std::lock_guard lock(inbox_mutex_);
    if (stopping() || state_.load() != FlowState::running) return false;
    injections_.push_back({std::move(call), std::move(items)});
    retries_changed_ = true;  // wakes the pipeline thread
  }
  inbox_cv_.notify_all();
  return true;
}

void Flow::run_injections() {
  std::vector<PendingInjection> work;
  {
    std::lock_guard lock(inbox_mutex_);
    work.swap(injections_);
  }
  auto now = Clock::now();
  for (auto& p : work) {
    inject_calls_.push_back(p.call);
    std::vector<FlowMessage*> batch;
    uint64_t bytes = 0;
    size_t step = 0;
    int sink = -1;
    auto run = [&] {
      if (batch.empty() || failed_) return;
      if (sink >= 0) dispatch(batch);
      else run_pipeline(batch, bytes, step);
      batch.clear();
      bytes = 0;
    };
    for (auto& it : p.items) {
      size_t first = std::min(it.first_step, steps_.size());
      int to = it.sink >= 0 && size_t(it.sink) < sinks_.size() ? it.sink : -1;
      if (first != step || to != sink) {
        run();
        step = first;
        sink = to;
      }
      FlowMessage* m = new_message();
      m->set_payload(it.payload.data(), it.payload.size());
      m->key = std::move(it.key);
      m->content_type = std::move(it.content_type);
      m->headers = std::move(it.headers);
      m->meta = std::move(it.meta);
      m->timestamp_ms =
          std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
      if (sink >= 0) {
        m->routed = true;
        m->routes = 1ull << sink;
      }
      Origin* o = new_origin();
      o->token = it.id;
      o->pending = 1;
      o->injected = p.call.get();
      o->emitted_at = now;
      o->bytes = message_bytes(m);
      m->origin = o;
      m->seq = ++seq_;
      stats_.in_flight.fetch_add(1, std::memory_order_relaxed);
      stats_.in_flight_bytes.fetch_add(o->bytes, std::memory_order_relaxed);
      bytes += o->bytes;
      batch.push_back(m);
    }
    run();
  }
}

void Flow::injected_resolved(Origin* o) {
  InjectCall* call = o->injected;
  call->done(o->token, o->status);
  if (--call->open == 0)
    std::erase_if(inject_calls_, [&](const std::shared_ptr<InjectCall>& c) { return c.get() == call; });
}

void Flow::abandon_injections() {
  std::vector<PendingInjection> untaken;
  {
    std::lock_guard lock(inbox_mutex_);
    untaken.swap(injections_);
  }
  for (auto& p : untaken)
    for (auto& it : p.items) p.call->done(it.id, EF_ACK_RETRY);
  inject_calls_.clear();
}

}  // namespace edgeflow
