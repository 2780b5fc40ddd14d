// What the engine's files share: the thread-local "whose pipeline is this" markers and the
// casts between the C ABI's opaque handles and the engine's types. Not for outside runtime/.
#pragma once

#include "engine.hpp"

#include <chrono>

namespace edgeflow::detail {

using Clock = std::chrono::steady_clock;

// The flow whose pipeline this thread runs now (its pipeline thread, or its source thread during
// a batch it runs itself): acks raised here are handled at once, not queued.
extern thread_local Flow* t_flow;
// The flow whose pipeline thread this is (t_flow is also set on the source thread while it runs
// a batch itself). Each thread makes and frees messages from its own list.
extern thread_local Flow* t_pipeline_thread;

// Set while Flow::signal() calls a source's hook: host->fail() writes the reason here.
extern thread_local std::string* t_fail_reason;

inline Instance* I(ef_ctx* c) { return reinterpret_cast<Instance*>(c); }
inline ef_ctx* C(Instance* i) { return reinterpret_cast<ef_ctx*>(i); }
inline FlowMessage* FM(ef_message* m) { return static_cast<FlowMessage*>(host::M(m)); }
inline Flow::Batch* B(ef_batch* b) { return reinterpret_cast<Flow::Batch*>(b); }
inline const Flow::Batch* B(const ef_batch* b) { return reinterpret_cast<const Flow::Batch*>(b); }

// What a message holds in memory: its payload and its parsed document's pool.
inline uint64_t message_bytes(FlowMessage* m) {
  return m->payload.size() + (m->doc_valid && m->doc ? m->doc->GetAllocator().Size() : 0);
}

}  // namespace edgeflow::detail
