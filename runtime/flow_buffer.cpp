// A sink's durable buffer in its flow. What dispatch gives a buffered sink is appended to the
// sink's DiskBuffer, and its origin answered as delivered: the source may commit it. The sink is
// written from the buffer, in order: straight from memory while it keeps up (the records just
// appended, when nothing older waits on disk), otherwise read back from disk, as much as
// buffer_window() allows at the sink at once. A record leaves the buffer once the sink delivered
// it or the dead letter took it; whatever a crash or a stop leaves is read again by the next run.
#include "engine_internal.hpp"

#include "buffer_record.hpp"
#include "log.hpp"

#include <edgeflow/sdk/config.hpp>

#include <algorithm>

namespace edgeflow {

using namespace detail;

namespace {

// Records read from disk in one go.
constexpr size_t kReadBatch = 256;
// Records at a sink at once, at most (and at most max_in_flight): what a crash may deliver twice,
// as the sink may have sent them before their removal reached the disk.
constexpr size_t kWindow = 1024;

int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string size_text(uint64_t bytes) { return sdk::detail::default_text(sdk::Bytes{bytes}); }

}  // namespace

bool Flow::open_buffers() {
  std::string root = (state_dir_.empty() ? std::string("edgeflow-state") : state_dir_) + "/buffer/" + spec_.name + "/";
  for (size_t s = 0; s < sinks_.size(); ++s) {
    const InstanceSpec& is = spec_.sinks[s];
    if (!is.buffer) continue;
    auto b = std::make_unique<SinkBuffer>();
    try {
      b->disk = std::make_unique<DiskBuffer>(root + sink_names_[s] + ".sqlite", is.buffer->max_bytes);
    } catch (const BufferError& e) {
      fail(sinks_[s].inst, e.what());
      return false;
    }
    b->stats = stages_[sink_stage_index(int(s))]->buffer.get();
    update_buffer_stats(*b);
    if (b->disk->stats().records)
      log_info(spec_.name, is.key,
               std::to_string(b->disk->stats().records) + " buffered message(s) from the last run to deliver");
    sinks_[s].buffer = std::move(b);
  }
  return true;
}

void Flow::close_buffers() {
  for (auto& s : sinks_) {
    if (!s.buffer) continue;
    try {
      s.buffer->disk->remove(s.buffer->done);
    } catch (const BufferError& e) {
      // Not removed is delivered again: a duplicate, never a loss.
      log_warn(spec_.name, s.inst.spec->key, e.what());
    }
    s.buffer->stats->blocked = 0;
    s.buffer.reset();
  }
}

size_t Flow::buffer_window() const { return std::min(kWindow, size_t(std::max<int64_t>(spec_.max_in_flight, 1))); }

void Flow::update_buffer_stats(SinkBuffer& b) {
  auto st = b.disk->stats();
  b.stats->records = st.records;
  b.stats->bytes = st.bytes;
  b.stats->oldest_ms = st.oldest_ms;
  b.stats->blocked = b.blocked.size();
}

void Flow::buffer_in(int sink, std::vector<FlowMessage*>& msgs) {
  SinkBuffer& b = *sinks_[size_t(sink)].buffer;
  if (!b.blocked.empty()) {
    // Behind what waits for room: order is kept.
    b.blocked.insert(b.blocked.end(), msgs.begin(), msgs.end());
    b.stats->blocked = b.blocked.size();
    return;
  }
  append_to_buffer(sink, msgs);
}

// The message a buffer hands its sink: the one the pipeline gave it, when no other sink holds it
// (its origin is answered and it stays), else a copy.
FlowMessage* Flow::own_for_buffer(FlowMessage* m) {
  if (m->pending == 1) {
    Origin* o = m->origin;
    uint8_t status = std::max(m->status, uint8_t(EF_ACK_DELIVERED));
    m->origin = nullptr;
    m->status = EF_ACK_DELIVERED;
    m->attempts = 0;
    if (o) resolve(o, status);
    return m;
  }
  FlowMessage* c = new_message();
  c->copy_from(*m);
  c->pending = 1;
  sink_done(m, EF_ACK_DELIVERED);
  return c;
}

void Flow::append_to_buffer(int sink, std::vector<FlowMessage*>& msgs) {
  SinkState& ss = sinks_[size_t(sink)];
  SinkBuffer& b = *ss.buffer;
  StageStats& st = sink_stage(sink);
  const std::string& stage = ss.inst.spec->key;
  const bool reject = ss.inst.spec->buffer->reject_when_full;
  b.encoded.clear();
  std::vector<size_t> ends;
  ends.reserve(msgs.size());
  for (FlowMessage* m : msgs) {
    buffer::encode_into(b.encoded, *m);
    ends.push_back(b.encoded.size());
  }
  b.bodies.clear();
  for (size_t k = 0, at = 0; k < ends.size(); at = ends[k++])
    b.bodies.push_back(std::string_view(b.encoded).substr(at, ends[k] - at));
  buffer_out_.clear();
  const size_t window = buffer_window();
  size_t i = 0;
  std::vector<int64_t> seqs;
  while (i < msgs.size()) {
    int64_t before = b.disk->last_seq();
    size_t n;
    seqs.clear();
    try {
      n = i == 0 ? b.disk->append(b.bodies, wall_ms(), &seqs)
                 : b.disk->append(std::vector<std::string_view>(b.bodies.begin() + long(i), b.bodies.end()), wall_ms(),
                                  &seqs);
    } catch (const BufferError& e) {
      // The disk refuses (full, gone read-only): nothing of these was acknowledged; the restart
      // tries again and the source re-reads them.
      fail(ss.inst, e.what());
      return;
    }
    b.stats->appended.add(n);
    // Straight to the sink while nothing older waits on disk and it is not retrying.
    bool through = b.read_seq == before && ss.held.empty();
    for (size_t k = 0; k < n; ++k) {
      FlowMessage* m = msgs[i + k];
      if (through && b.out < window && b.out_bytes < spec_.max_in_flight_bytes) {
        FlowMessage* own = own_for_buffer(m);
        own->buffer = &b;
        own->buffer_seq = seqs[k];
        own->buffer_bytes = b.bodies[i + k].size();
        own->seq = ++seq_;
        b.read_seq = own->buffer_seq;
        b.out++;
        b.out_bytes += own->buffer_bytes;
        buffer_out_.push_back(own);
      } else {
        through = false;
        sink_done(m, EF_ACK_DELIVERED);
      }
    }
    i += n;
    if (i == msgs.size()) break;
    // What does not fit now.
    uint64_t size = b.bodies[i].size() + DiskBuffer::kFraming;
    if (size > b.disk->max_bytes() || reject) {
      b.stats->refused.add(1);
      st.rejected.add(1);
      std::string why = size > b.disk->max_bytes()
                            ? "message of " + std::to_string(size) + " bytes is larger than the buffer (max_size " +
                                  size_text(b.disk->max_bytes()) + ")"
                            : "buffer full (max_size " + size_text(b.disk->max_bytes()) + ", " +
                                  std::to_string(b.disk->stats().records) +
                                  " messages waiting for the sink); when_full: reject";
      dead_letter(msgs[i], stage, why);
      ++i;
      continue;
    }
    // when_full: block. The messages keep their origins: in flight, they hold the source back.
    b.blocked.assign(msgs.begin() + long(i), msgs.end());
    if (b.stats->blocked.load() == 0)
      log_warn(spec_.name, stage,
               "buffer full (max_size " + size_text(b.disk->max_bytes()) + "); the source waits until the sink drains it");
    break;
  }
  update_buffer_stats(b);
  if (!buffer_out_.empty()) {
    std::vector<FlowMessage*> out;
    out.swap(buffer_out_);
    write(sink, out);
    out.clear();
    buffer_out_.swap(out);
  }
}

void Flow::buffer_released(FlowMessage* m, uint8_t status) {
  SinkBuffer& b = *m->buffer;
  b.out--;
  b.out_bytes -= m->buffer_bytes;
  if (status == EF_ACK_RETRY) return;  // stays: read again
  b.done.push_back(m->buffer_seq);
  b.stats->drained.add(1);
}

void Flow::remove_delivered() {
  for (auto& ss : sinks_) {
    if (!ss.buffer || ss.buffer->done.empty() || failed_) continue;
    SinkBuffer& b = *ss.buffer;
    try {
      b.disk->remove(b.done);
    } catch (const BufferError& e) {
      fail(ss.inst, e.what());
      return;
    }
    b.done.clear();
    update_buffer_stats(b);
  }
}

void Flow::drain_buffers() {
  const size_t window = buffer_window();
  std::vector<DiskBuffer::Damaged> damaged;
  remove_delivered();
  for (size_t s = 0; s < sinks_.size() && !failed_; ++s) {
    SinkState& ss = sinks_[s];
    if (!ss.buffer) continue;
    SinkBuffer& b = *ss.buffer;
    if (!b.blocked.empty() && b.disk->stats().bytes < b.disk->max_bytes()) {
      std::vector<FlowMessage*> waiting;
      waiting.swap(b.blocked);
      append_to_buffer(int(s), waiting);
      if (failed_) return;
    }
    if (ss.held.empty() && b.out < window && b.out_bytes < spec_.max_in_flight_bytes &&
        b.read_seq < b.disk->last_seq()) {
      damaged.clear();
      std::vector<DiskBuffer::Record> records;
      try {
        records = b.disk->read(b.read_seq, std::min(window - b.out, kReadBatch), damaged);
      } catch (const BufferError& e) {
        fail(ss.inst, e.what());
        return;
      }
      if (records.empty() && damaged.empty()) b.read_seq = b.disk->last_seq();
      buffer_out_.clear();
      auto take = [&](FlowMessage* m, int64_t seq, uint64_t bytes) {
        m->buffer = &b;
        m->buffer_seq = seq;
        m->buffer_bytes = bytes;
        m->pending = 1;
        m->seq = ++seq_;
        b.out++;
        b.out_bytes += bytes;
        b.read_seq = std::max(b.read_seq, seq);
      };
      // A record that cannot be read goes to the dead letter with what was left of it; the rest
      // is delivered.
      auto set_aside = [&](int64_t seq, std::string_view body, const std::string& why) {
        FlowMessage* m = new_message();
        m->set_payload(body.data(), body.size());
        m->meta.emplace_back("buffer.sink", sink_names_[s]);
        m->meta.emplace_back("buffer.seq", std::to_string(seq));
        take(m, seq, body.size());
        b.stats->damaged.add(1);
        sink_stage(int(s)).rejected.add(1);
        dead_letter(m, ss.inst.spec->key, why + "; the record was set aside and the rest of the buffer delivered");
      };
      std::string why;
      for (auto& r : records) {
        FlowMessage* m = new_message();
        if (!buffer::decode(r.body, *m, why)) {
          free_message(m);
          set_aside(r.seq, r.body, "buffer record " + std::to_string(r.seq) + " cannot be read: " + why);
          continue;
        }
        take(m, r.seq, r.body.size());
        buffer_out_.push_back(m);
      }
      for (auto& d : damaged) set_aside(d.seq, d.body, d.reason);
      if (!buffer_out_.empty()) {
        std::vector<FlowMessage*> out;
        out.swap(buffer_out_);
        write(int(s), out);
        out.clear();
        buffer_out_.swap(out);
      }
    }
    update_buffer_stats(b);
  }
}

bool Flow::buffer_work() const {
  const size_t window = buffer_window();
  for (auto& s : sinks_) {
    if (!s.buffer) continue;
    const SinkBuffer& b = *s.buffer;
    if (!b.done.empty()) return true;
    if (s.held.empty() && b.out < window && b.out_bytes < spec_.max_in_flight_bytes &&
        b.read_seq < b.disk->last_seq())
      return true;
  }
  return false;
}

bool Flow::buffers_busy(bool backlog) const {
  for (auto& s : sinks_) {
    if (!s.buffer) continue;
    const SinkBuffer& b = *s.buffer;
    // Records held for a retry wait as well on disk as here.
    if (b.out > s.held.size() || !b.done.empty() || !b.blocked.empty() || (backlog && b.disk->stats().records > 0))
      return true;
  }
  return false;
}

}  // namespace edgeflow
