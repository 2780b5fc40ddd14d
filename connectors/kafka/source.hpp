// Kafka ingress: a consumer-group member whose commits follow the end-to-end acknowledgements.
// In standalone mode it joins no group and reads every partition itself (assign instead of
// subscribe), committing under group_id all the same.
//
// Offsets are never committed by librdkafka on its own (enable.auto.commit and
// enable.auto.offset.store are off and cannot be turned on). Each assigned partition has a
// CommitTracker; a message's ack token names the partition's assignment (a slot number that is
// new at every assignment) and the message's sequence in it, and the source commits offset + 1
// of the contiguous acknowledged prefix: asynchronously every commit_interval, synchronously when
// partitions are revoked and at stop. A retry ack stalls its partition for the rest of the run.
// Acks for an assignment that was revoked meanwhile are ignored: the new owner reads again from
// the committed offset, so a rebalance duplicates at most the unacknowledged window and loses
// nothing.
//
// Backpressure: emit() waits at most kEmitTimeoutMs; while the flow is full the assigned
// partitions are paused and the consumer is still polled, so the group does not consider this
// member dead (max.poll.interval.ms); the messages not admitted yet are held, never dropped.
//
// Messages: payload = value (a tombstone's is empty), key, timestamp and headers as Kafka has them
// (a header name that repeats keeps its last value: a message has one value per header name), meta
// kafka.topic, kafka.partition and kafka.offset; no content type, as Kafka does not say.
//
// Threads: librdkafka serves the rebalance, commit and error callbacks from the consumer queue
// (rd_kafka_poll_set_consumer), which only run() and stop() read; on_ack comes on run()'s thread
// too, or after run() has returned. Never two at once, so no locks are needed.
#pragma once

#include "client.hpp"

#include <edgeflow/sdk/commit_tracker.hpp>

#include <regex.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace edgeflow::kafka {

class KafkaSource : public sdk::Source, public Handler {
 public:
  struct Config : ClientOptions {
    std::string group_id;
    std::string mode = "group";
    std::vector<std::string> topics;
    std::string start_from = "earliest";
    int64_t batch_size = 1024;
    std::chrono::milliseconds commit_interval{1000};
    bool end_at_eof = false;
    std::chrono::milliseconds session_timeout{45000};
    std::chrono::milliseconds max_poll_interval{300000};
  };
  static constexpr const char* type = "kafka";
  static constexpr const char* description =
      "Consumes Kafka topics as a member of a consumer group; offsets are committed only past "
      "messages the whole flow acknowledged.";
  static void describe(sdk::Spec<Config>& s) {
    describe_client(s);
    s.option("group_id", &Config::group_id)
        .required()
        .doc("Consumer group: runtimes with the same group share the partitions, and the group's "
             "committed offsets are where a restart resumes.")
        .example("edge-site-7-orders");
    s.option("mode", &Config::mode)
        .one_of("group|standalone")
        .doc("group: join the consumer group, which shares the partitions among its members. "
             "standalone: read every partition of the topics without joining (no rebalances, no "
             "wait for the group to form, and a restart resumes at once); offsets are still "
             "committed under group_id, which must then be used by this flow alone.")
        .example("standalone");
    s.option("topics", &Config::topics)
        .required()
        .doc("Topics to subscribe to; an entry starting with ^ is a regular expression (POSIX "
             "extended) matched against all topic names.")
        .example("[orders, \"^sensors\\\\..*\"]");
    s.option("start_from", &Config::start_from)
        .one_of("earliest|latest")
        .doc("Where a partition without a committed offset for the group starts (auto.offset.reset).")
        .example("latest");
    s.option("batch_size", &Config::batch_size).range(1, 65536).doc("Messages per emitted batch, at most.").example("1024");
    s.option("commit_interval", &Config::commit_interval)
        .min(1)
        .doc("How often acknowledged offsets are committed (and always on revocation and at stop); "
             "after a crash at most this much more is read again.")
        .example("1s");
    s.option("end_at_eof", &Config::end_at_eof)
        .doc("End the flow once every assigned partition was read to its end (like kcat -e); for "
             "backlogs, tests and benchmarks.")
        .example("true");
    s.option("session_timeout", &Config::session_timeout)
        .min(1)
        .doc("How long the group waits for a silent member before giving its partitions to others "
             "(session.timeout.ms).")
        .example("10s");
    s.option("max_poll_interval", &Config::max_poll_interval)
        .min(1)
        .doc("Longest time between two polls of the consumer before the member leaves the group "
             "(max.poll.interval.ms); the source polls every few hundred ms even while the flow is full.")
        .example("5m");
  }

  KafkaSource(sdk::Context c, Config cfg) : Source(c), cfg_(std::move(cfg)) {
    if (cfg_.group_id.empty()) throw Error(c.where("group_id") + ": group_id: must not be empty");
    if (cfg_.topics.empty()) throw Error(c.where("topics") + ": topics: list at least one topic or ^regex");
    for (size_t i = 0; i < cfg_.topics.size(); ++i) check_topic(c, "topics[" + std::to_string(i) + "]", cfg_.topics[i]);
    if (cfg_.max_poll_interval < cfg_.session_timeout)
      throw Error(c.where("max_poll_interval") + ": max_poll_interval: must be at least session_timeout (" +
                  std::to_string(cfg_.session_timeout.count()) + "ms)");
    conf_ = client_conf(c, cfg_,
                        {"group.id", "enable.auto.commit", "enable.auto.offset.store", "auto.commit.enable",
                         "auto.offset.reset", "enable.partition.eof", "session.timeout.ms", "max.poll.interval.ms"});
    set(c, conf_.get(), "group.id", cfg_.group_id, "group_id");
    set(c, conf_.get(), "enable.auto.commit", "false", "");
    set(c, conf_.get(), "enable.auto.offset.store", "false", "");
    set(c, conf_.get(), "auto.offset.reset", cfg_.start_from, "start_from");
    set(c, conf_.get(), "enable.partition.eof", cfg_.end_at_eof ? "true" : "false", "end_at_eof");
    set(c, conf_.get(), "session.timeout.ms", std::to_string(cfg_.session_timeout.count()), "session_timeout");
    set(c, conf_.get(), "max.poll.interval.ms", std::to_string(cfg_.max_poll_interval.count()), "max_poll_interval");
    // Defaults of edgeflow's own, for what `properties` leaves unset.
    auto fallback = [&](const char* name, const std::string& value, const char* option) {
      auto* props = cfg_.properties.object();
      if (!props || std::none_of(props->begin(), props->end(), [&](auto& p) { return p.first == name; }))
        set(c, conf_.get(), name, value, option);
    };
    // A broker may hold a fetch that finds nothing for fetch.wait.max.ms (500 ms) before it
    // answers, and only that answer tells a partition's end: a flow that ends there hears sooner.
    if (cfg_.end_at_eof) fallback("fetch.wait.max.ms", "100", "end_at_eof");
    // librdkafka 2.0 checks its prefetch against the one queue all partitions share and, once
    // it holds more than queued.min.messages (100000) or queued.max.messages.kbytes (64 MiB),
    // waits a fixed second before the next fetch: a flow that drains the queue in less idles.
    // A million messages and 256 MiB outlast that second at the rates a flow reaches (small
    // messages at 900000/s, 1 KiB ones at 250000/s); a box short of memory lowers them
    // through `properties`.
    fallback("queued.min.messages", "1000000", "");
    fallback("queued.max.messages.kbytes", "262144", "");
    // A fetch response is one buffer; librdkafka's 50 MiB ceiling puts a large one past what
    // malloc keeps in its heap (32 MiB, see the daemon's main), and each was faulted in afresh.
    fallback("fetch.max.bytes", "16777216", "");
    // librdkafka's heartbeat default (3s) must stay below a short session timeout.
    if (cfg_.session_timeout.count() < 10000)
      fallback("heartbeat.interval.ms", std::to_string(std::max<int64_t>(1, cfg_.session_timeout.count() / 3)),
               "session_timeout");
  }
  ~KafkaSource() override { destroy(); }

  const sdk::Context& log_context() const override { return context(); }

  void start() override {
    rd_kafka_conf_t* conf = rd_kafka_conf_dup(conf_.get());
    attach(conf, this);
    rd_kafka_conf_set_rebalance_cb(conf, [](rd_kafka_t* rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts, void*) {
      self(rk)->rebalance(err, parts);
    });
    rd_kafka_conf_set_offset_commit_cb(conf, [](rd_kafka_t* rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts, void*) {
      self(rk)->committed(err, parts);
    });
    rd_kafka_conf_set_error_cb(conf, [](rd_kafka_t* rk, int err, const char* reason, void*) {
      self(rk)->client_error(rd_kafka_resp_err_t(err), reason);
    });
    char err[512];
    rk_ = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (!rk_) {
      rd_kafka_conf_destroy(conf);
      throw Error(std::string("cannot create the Kafka consumer: ") + err);
    }
    rd_kafka_poll_set_consumer(rk_);
    queue_ = rd_kafka_queue_get_consumer(rk_);
    last_commit_ = Clock::now();
    check_reachable(rk_, *this, cfg_.brokers, kMetadataTimeoutMs);
    if (standalone()) {
      assign_all();
      return;
    }
    rd_kafka_topic_partition_list_t* topics = rd_kafka_topic_partition_list_new(int(cfg_.topics.size()));
    for (auto& t : cfg_.topics) rd_kafka_topic_partition_list_add(topics, t.c_str(), RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(rk_, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (e) throw Error(std::string("cannot subscribe to ") + topic_list() + ": " + rd_kafka_err2str(e));
    context().info("joining consumer group " + cfg_.group_id + " for " + topic_list());
  }

  void stop() override {
    if (!rk_) return;
    release_held();
    commit_sync(all_parts(), "at stop");
    publish_metrics();
    // Leaves the group; the revocation it triggers finds nothing more to commit.
    closing_ = true;
    rd_kafka_resp_err_t e = rd_kafka_consumer_close(rk_);
    if (e && e != RD_KAFKA_RESP_ERR__FATAL)
      context().warn(std::string("leaving the consumer group: ") + rd_kafka_err2str(e));
    destroy();
  }

  void run() override {
    auto next_metrics = Clock::now();
    for (;;) {
      if (fatal_) throw Error("the Kafka consumer failed and cannot go on: " + *fatal_);
      if (paused_ && held_.empty()) resume();
      if (paused_) {
        serve(0);  // rebalances and errors; the partitions stay paused
      } else if (held_.size() < size_t(cfg_.batch_size)) {
        // Block for new messages only with nothing to emit (the host wants a poll every 100 ms).
        read(held_.empty() ? kReadWaitMs : 0);
      }
      auto now = Clock::now();
      maybe_commit(now);
      if (now >= next_metrics) {
        publish_metrics();
        next_metrics = now + std::chrono::seconds(1);
      }
      if (fatal_) continue;
      if (!held_.empty()) {
        ef_status st = emit(held_, kEmitTimeoutMs);
        if (st == EF_OK) {
          events_ += held_.size();
          held_.clear();
          held_slots_.clear();
        } else if (st == EF_STOPPING) {
          release_held();
          return;
        } else if (!paused_) {
          pause();  // EF_BUSY: the flow is full
        }
        continue;
      }
      if (cfg_.end_at_eof && at_end()) {
        context().info("every assigned partition was read to its end; end_at_eof ends the flow");
        return;
      }
      if (!poll(0)) return;
    }
  }

  void on_ack(std::span<const ef_ack> acks) override {
    size_t stale = 0;
    for (auto& a : acks) {
      auto it = parts_.find(uint32_t(a.token >> kSeqBits));
      if (it == parts_.end()) {
        ++stale;  // the partition was revoked since: its new owner reads the message again
        continue;
      }
      Part& p = *it->second;
      try {
        p.tracker.resolve(a.token & kSeqMask, ef_ack_status(a.status));
      } catch (const std::out_of_range&) {
        ++stale;
        continue;
      }
      if (auto pos = p.tracker.take()) p.committable = *pos;
    }
    if (stale)
      context().debug("ignored " + std::to_string(stale) +
                      " acks for partitions revoked since they were read (their new owner reads them again)");
    maybe_commit(Clock::now());
  }

 private:
  using Clock = std::chrono::steady_clock;
  static constexpr int32_t kEmitTimeoutMs = 200;
  static constexpr int kReadWaitMs = 100;
  static constexpr size_t kReadChunk = 256;
  static constexpr int kCommitTimeoutMs = 10000;
  static constexpr int kMetadataTimeoutMs = 10000;
  // Token: the assignment's slot in the high bits, the message's sequence in that assignment below.
  static constexpr unsigned kSeqBits = 44;
  static constexpr uint64_t kSeqMask = (uint64_t(1) << kSeqBits) - 1;
  static constexpr uint32_t kSlotMask = (uint32_t(1) << (64 - kSeqBits)) - 1;

  // One partition as long as it is assigned to this member.
  struct Part {
    std::string topic;
    int32_t partition = 0;
    uint32_t slot = 0;
    sdk::CommitTracker<int64_t> tracker;  // positions: offset + 1
    int64_t committable = -1;             // offset + 1 of the acknowledged prefix
    int64_t committed = -1;               // the last position handed to a commit
    int64_t next = -1;                    // offset after the last message read
    bool eof = false;
  };
  using Key = std::pair<std::string, int32_t>;

  static KafkaSource* self(rd_kafka_t* rk) { return static_cast<KafkaSource*>(static_cast<Handler*>(rd_kafka_opaque(rk))); }

  static void check_topic(const sdk::Context& c, const std::string& key, const std::string& t) {
    if (t.empty()) throw Error(c.where(key) + ": " + key + ": a topic name must not be empty");
    if (t[0] == '^') {
      regex_t re;
      int rc = regcomp(&re, t.c_str(), REG_EXTENDED | REG_NOSUB);
      if (rc != 0) {
        char why[256];
        regerror(rc, &re, why, sizeof why);
        throw Error(c.where(key) + ": " + key + ": \"" + t + "\" is not a regular expression: " + why);
      }
      regfree(&re);
      return;
    }
    bool legal = t.size() <= 249 && std::all_of(t.begin(), t.end(), [](char ch) {
                   return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                          ch == '.' || ch == '_' || ch == '-';
                 });
    if (!legal)
      throw Error(c.where(key) + ": " + key + ": \"" + t +
                  "\" is not a Kafka topic name (letters, digits, '.', '_' and '-', at most 249); "
                  "start a regular expression with ^");
  }

  std::string topic_list() const {
    std::string s;
    for (auto& t : cfg_.topics) s += (s.empty() ? "" : ", ") + t;
    return "topics [" + s + "]";
  }

  // --- reading -----------------------------------------------------------------------------------

  // Reads until the batch is full or nothing more is there, waiting up to wait_ms for the first.
  // Many at a time: each call takes the queue's lock and reads the clock once, not per message.
  // Callbacks (rebalances, commits, errors) are served on the way, as consumer_poll does.
  void read(int wait_ms) {
    rd_kafka_message_t* got[kReadChunk];
    while (held_.size() < size_t(cfg_.batch_size) && !fatal_) {
      size_t want = std::min(kReadChunk, size_t(cfg_.batch_size) - held_.size());
      ssize_t n = rd_kafka_consume_batch_queue(queue_, wait_ms, got, want);
      if (n <= 0) return;
      wait_ms = 0;
      size_t i = 0;
      try {
        for (; i < size_t(n); ++i) {
          take(got[i]);
          rd_kafka_message_destroy(got[i]);
        }
      } catch (...) {
        for (; i < size_t(n); ++i) rd_kafka_message_destroy(got[i]);
        throw;
      }
    }
  }

  // Serves callbacks only; a message that still comes (there should be none while paused) is kept.
  void serve(int wait_ms) {
    while (rd_kafka_message_t* m = rd_kafka_consumer_poll(rk_, wait_ms)) {
      wait_ms = 0;
      take(m);
      rd_kafka_message_destroy(m);
    }
  }

  void take(const rd_kafka_message_t* m) {
    if (m->err) {
      if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        if (Part* p = part_of(m)) p->eof = true;
        return;
      }
      consumer_error(m);
      return;
    }
    Part* p = part_of(m);
    if (!p) return;  // not (or no longer) assigned: whoever owns it reads it
    p->eof = false;
    p->next = m->offset + 1;
    uint64_t token = p->tracker.track(m->offset + 1);
    if (token > kSeqMask)
      throw Error("more than 2^44 messages read from " + p->topic + "[" + std::to_string(p->partition) +
                  "] in one assignment; the restart starts numbering again");
    sdk::Message msg = new_message();
    if (m->payload) msg.set_payload(std::string_view(static_cast<const char*>(m->payload), m->len));
    if (m->key) msg.set_key(std::string_view(static_cast<const char*>(m->key), m->key_len));
    rd_kafka_timestamp_type_t tstype;
    int64_t ts = rd_kafka_message_timestamp(m, &tstype);
    if (tstype != RD_KAFKA_TIMESTAMP_NOT_AVAILABLE && ts >= 0) msg.set_timestamp_ms(ts);
    rd_kafka_headers_t* hdrs = nullptr;
    if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
      const char* name;
      const void* value;
      size_t size;
      for (size_t i = 0; rd_kafka_header_get_all(hdrs, i, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR; ++i)
        msg.set_header(name, value ? std::string_view(static_cast<const char*>(value), size) : std::string_view());
    }
    msg.set_meta("kafka.topic", p->topic);
    msg.set_meta("kafka.partition", number(p->partition));
    msg.set_meta("kafka.offset", number(m->offset));
    msg.set_token((uint64_t(p->slot) << kSeqBits) | token);
    held_.push_back(msg.raw());
    held_slots_.push_back(p->slot);
  }

  static std::string number(int64_t v) {
    char buf[24];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    return std::string(buf, r.ptr);
  }

  // The assignment a message or event belongs to; consecutive messages mostly share it.
  Part* part_of(const rd_kafka_message_t* m) {
    if (!m->rkt) return nullptr;
    if (m->rkt == last_rkt_ && m->partition == last_partition_ && last_part_) return last_part_;
    auto it = index_.find(Key(rd_kafka_topic_name(m->rkt), m->partition));
    if (it == index_.end()) return nullptr;
    last_rkt_ = m->rkt;
    last_partition_ = m->partition;
    last_part_ = parts_.at(it->second).get();
    return last_part_;
  }

  void release_held() {
    for (auto* m : held_) free_message(sdk::Message(m));
    held_.clear();
    held_slots_.clear();
  }

  // --- errors ------------------------------------------------------------------------------------

  void consumer_error(const rd_kafka_message_t* m) {
    std::string what = rd_kafka_message_errstr(m);
    std::string where = m->rkt ? std::string(rd_kafka_topic_name(m->rkt)) +
                                     (m->partition >= 0 ? "[" + std::to_string(m->partition) + "]" : "") + ": "
                               : "";
    switch (m->err) {
      case RD_KAFKA_RESP_ERR__FATAL:
        fail_fatal();
        return;
      case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
      case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
        fatal_ = where + what + " (" + rd_kafka_err2name(m->err) +
                 "): grant this principal read on the topics and the group " + cfg_.group_id;
        return;
      default:
        warn_limited(std::string(rd_kafka_err2name(m->err)) + where, "Kafka consumer: " + where + what);
    }
  }

  void client_error(rd_kafka_resp_err_t err, const char* reason) {
    note_error(reason);
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
      fail_fatal();
      return;
    }
    // Transient (a broker down, a connection refused): librdkafka retries by itself.
    warn_limited(rd_kafka_err2name(err), std::string("Kafka: ") + reason);
  }

  void fail_fatal() {
    char text[512];
    rd_kafka_resp_err_t orig = rd_kafka_fatal_error(rk_, text, sizeof text);
    fatal_ = std::string(rd_kafka_err2name(orig)) + ": " + text;
    context().error("fatal Kafka consumer error: " + *fatal_);
  }

  // The same error at most once every 30 s: a broker that is down is reported, not logged per poll.
  void warn_limited(const std::string& kind, const std::string& text) {
    auto now = Clock::now();
    auto [it, fresh] = warned_.try_emplace(kind, now);
    if (!fresh && now - it->second < std::chrono::seconds(30)) return;
    it->second = now;
    context().warn(text);
  }

  // --- standalone --------------------------------------------------------------------------------

  bool standalone() const { return cfg_.mode == "standalone"; }

  // Every partition of the topics as the cluster has them now (a regex is matched now too; topics
  // and partitions added later are read after a restart). Each starts at the group's committed
  // offset, or at start_from without one.
  void assign_all() {
    const rd_kafka_metadata_t* md = nullptr;
    if (rd_kafka_resp_err_t e = rd_kafka_metadata(rk_, 1, nullptr, &md, kMetadataTimeoutMs))
      throw Error("cannot list the topics of " + cfg_.brokers + ": " + rd_kafka_err2str(e) +
                  " (is the broker reachable?)");
    std::map<std::string, int> found;  // topic -> partitions
    std::vector<std::string> missing;
    for (auto& want : cfg_.topics) {
      bool matched = false;
      regex_t re;
      bool is_regex = want[0] == '^';
      if (is_regex) regcomp(&re, want.c_str(), REG_EXTENDED | REG_NOSUB);  // checked at load
      for (int i = 0; i < md->topic_cnt; ++i) {
        const auto& t = md->topics[i];
        if (t.err || t.partition_cnt == 0) continue;
        bool hit = is_regex ? std::strncmp(t.topic, "__", 2) != 0 && regexec(&re, t.topic, 0, nullptr, 0) == 0
                            : want == t.topic;
        if (!hit) continue;
        found[t.topic] = t.partition_cnt;
        matched = true;
      }
      if (is_regex) regfree(&re);
      if (!matched) missing.push_back(want);
    }
    rd_kafka_metadata_destroy(md);
    if (!missing.empty()) {
      std::string names;
      for (auto& m : missing) names += (names.empty() ? "" : ", ") + m;
      throw Error("no topic on " + cfg_.brokers + " is " + names +
                  ": create it first (standalone mode reads the partitions that exist when it starts)");
    }
    rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(0);
    for (auto& [topic, n] : found)
      for (int32_t i = 0; i < n; ++i) rd_kafka_topic_partition_list_add(list, topic.c_str(), i)->offset = RD_KAFKA_OFFSET_INVALID;
    assign(list);
    rd_kafka_resp_err_t e = rd_kafka_assign(rk_, list);
    rd_kafka_topic_partition_list_destroy(list);
    if (e) throw Error(std::string("cannot read the partitions of ") + topic_list() + ": " + rd_kafka_err2str(e));
    context().gauge("assigned_partitions", double(parts_.size()));
  }

  // A standalone commit is refused while the group has members: someone else consumes with it.
  void check_group_owned(rd_kafka_resp_err_t err) {
    if (!standalone() || (err != RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID && err != RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION))
      return;
    fatal_ = "consumer group " + cfg_.group_id + " has members, so this standalone source may not commit for it (" +
             rd_kafka_err2name(err) + "): give the flow a group_id of its own, or use mode: group";
  }

  // --- rebalances --------------------------------------------------------------------------------

  void rebalance(rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts) {
    bool cooperative = std::strcmp(rd_kafka_rebalance_protocol(rk_), "COOPERATIVE") == 0;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
      assign(parts);
      if (cooperative) {
        if (rd_kafka_error_t* e = rd_kafka_incremental_assign(rk_, parts)) {
          context().error(std::string("cannot take the assigned partitions: ") + rd_kafka_error_string(e));
          rd_kafka_error_destroy(e);
        }
      } else if (rd_kafka_resp_err_t e = rd_kafka_assign(rk_, parts)) {
        context().error(std::string("cannot take the assigned partitions: ") + rd_kafka_err2str(e));
      }
      if (paused_) rd_kafka_pause_partitions(rk_, parts);
    } else {
      if (err != RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS)
        context().warn(std::string("consumer group rebalance failed: ") + rd_kafka_err2str(err));
      revoke(err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS ? parts : nullptr);
      if (cooperative && err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        if (rd_kafka_error_t* e = rd_kafka_incremental_unassign(rk_, parts)) {
          context().error(std::string("cannot give up the revoked partitions: ") + rd_kafka_error_string(e));
          rd_kafka_error_destroy(e);
        }
      } else {
        rd_kafka_assign(rk_, nullptr);
      }
    }
    context().gauge("assigned_partitions", double(parts_.size()));
  }

  void assign(const rd_kafka_topic_partition_list_t* list) {
    std::string names;
    for (int i = 0; i < list->cnt; ++i) {
      const auto& tp = list->elems[i];
      Key key(tp.topic, tp.partition);
      if (auto old = index_.find(key); old != index_.end()) drop({parts_.at(old->second).get()});
      auto p = std::make_unique<Part>();
      p->topic = tp.topic;
      p->partition = tp.partition;
      p->slot = next_slot();
      index_[key] = p->slot;
      parts_[p->slot] = std::move(p);
      if (i < 16) names += (names.empty() ? "" : ", ") + std::string(tp.topic) + "[" + std::to_string(tp.partition) + "]";
    }
    if (list->cnt > 16) names += ", ...";
    assigned_once_ = true;
    context().info("assigned " + std::to_string(list->cnt) + " partitions" + (names.empty() ? "" : ": " + names));
  }

  // Commits what is committable of the revoked partitions (unless they are lost: another member may
  // own them already) and forgets them; later acks for them are ignored.
  void revoke(const rd_kafka_topic_partition_list_t* list) {
    std::vector<Part*> gone;
    if (!list) {
      gone = all_parts();
    } else {
      for (int i = 0; i < list->cnt; ++i) {
        auto it = index_.find(Key(list->elems[i].topic, list->elems[i].partition));
        if (it != index_.end()) gone.push_back(parts_.at(it->second).get());
      }
    }
    if (gone.empty()) return;
    if (closing_) {
      // stop() committed everything already, and no ack can arrive any more.
    } else if (rd_kafka_assignment_lost(rk_))
      context().warn("lost " + std::to_string(gone.size()) +
                     " partitions to the group (session timed out?); their unacknowledged messages are read again by the new owner");
    else
      commit_sync(gone, "on revocation");
    if (!closing_) context().info("revoked " + std::to_string(gone.size()) + " partitions");
    drop(gone);
  }

  void drop(const std::vector<Part*>& gone) {
    // Messages of these partitions not admitted yet are never emitted: the new owner reads them.
    std::vector<uint32_t> slots;
    for (Part* p : gone) slots.push_back(p->slot);
    size_t kept = 0;
    for (size_t i = 0; i < held_.size(); ++i) {
      if (std::find(slots.begin(), slots.end(), held_slots_[i]) != slots.end()) {
        free_message(sdk::Message(held_[i]));
      } else {
        held_[kept] = held_[i];
        held_slots_[kept] = held_slots_[i];
        ++kept;
      }
    }
    held_.resize(kept);
    held_slots_.resize(kept);
    for (uint32_t slot : slots) {
      auto it = parts_.find(slot);
      index_.erase(Key(it->second->topic, it->second->partition));
      parts_.erase(it);
    }
    last_part_ = nullptr;
    last_rkt_ = nullptr;
  }

  uint32_t next_slot() {
    // A slot in use is skipped: after 2^20 assignments the numbers wrap around.
    do slot_counter_ = (slot_counter_ + 1) & kSlotMask;
    while (parts_.count(slot_counter_));
    return slot_counter_;
  }

  std::vector<Part*> all_parts() const {
    std::vector<Part*> v;
    for (auto& [slot, p] : parts_) v.push_back(p.get());
    return v;
  }

  bool at_end() const {
    if (!assigned_once_ || parts_.empty()) return false;
    return std::all_of(parts_.begin(), parts_.end(), [](auto& e) { return e.second->eof; });
  }

  // --- backpressure ------------------------------------------------------------------------------

  void pause() {
    rd_kafka_topic_partition_list_t* list = nullptr;
    if (rd_kafka_assignment(rk_, &list) == RD_KAFKA_RESP_ERR_NO_ERROR) {
      rd_kafka_pause_partitions(rk_, list);
      rd_kafka_topic_partition_list_destroy(list);
    }
    paused_ = true;
    context().debug("the flow is full: partitions paused");
  }

  void resume() {
    rd_kafka_topic_partition_list_t* list = nullptr;
    if (rd_kafka_assignment(rk_, &list) == RD_KAFKA_RESP_ERR_NO_ERROR) {
      rd_kafka_resume_partitions(rk_, list);
      rd_kafka_topic_partition_list_destroy(list);
    }
    paused_ = false;
    context().debug("partitions resumed");
  }

  // --- commits -----------------------------------------------------------------------------------

  rd_kafka_topic_partition_list_t* to_commit(const std::vector<Part*>& parts, bool again) const {
    rd_kafka_topic_partition_list_t* list = nullptr;
    for (Part* p : parts) {
      if (p->committable < 0 || (!again && p->committable <= p->committed)) continue;
      if (!list) list = rd_kafka_topic_partition_list_new(int(parts.size()));
      rd_kafka_topic_partition_list_add(list, p->topic.c_str(), p->partition)->offset = p->committable;
    }
    return list;
  }

  void maybe_commit(Clock::time_point now) {
    if (!rk_ || now - last_commit_ < cfg_.commit_interval) return;
    last_commit_ = now;
    auto parts = all_parts();
    rd_kafka_topic_partition_list_t* list = to_commit(parts, false);
    if (!list) return;
    rd_kafka_resp_err_t e = rd_kafka_commit(rk_, list, 1);
    rd_kafka_topic_partition_list_destroy(list);
    if (e) {
      warn_limited("commit", std::string("cannot commit offsets: ") + rd_kafka_err2str(e));
      return;
    }
    for (Part* p : parts)
      if (p->committable > p->committed) p->committed = p->committable;
  }

  // Commits and waits (bounded) for the answer; used on revocation and at stop.
  void commit_sync(const std::vector<Part*>& parts, const char* when) {
    rd_kafka_topic_partition_list_t* list = to_commit(parts, true);
    if (!list) return;
    rd_kafka_queue_t* q = rd_kafka_queue_new(rk_);
    rd_kafka_resp_err_t e = rd_kafka_commit_queue(rk_, list, q, nullptr, nullptr);
    std::string failed;
    if (e) {
      failed = rd_kafka_err2str(e);
    } else if (rd_kafka_event_t* ev = rd_kafka_queue_poll(q, kCommitTimeoutMs)) {
      if (rd_kafka_event_error(ev)) failed = rd_kafka_event_error_string(ev);
      check_group_owned(rd_kafka_event_error(ev));
      if (const rd_kafka_topic_partition_list_t* r = rd_kafka_event_topic_partition_list(ev))
        for (int i = 0; i < r->cnt && failed.empty(); ++i) {
          const auto& tp = r->elems[i];
          if (!tp.err) continue;
          check_group_owned(tp.err);
          failed = std::string(tp.topic) + "[" + std::to_string(tp.partition) + "]: " + rd_kafka_err2str(tp.err);
        }
      rd_kafka_event_destroy(ev);
    } else {
      failed = "no answer within " + std::to_string(kCommitTimeoutMs / 1000) + "s";
    }
    rd_kafka_queue_destroy(q);
    if (failed.empty()) {
      for (Part* p : parts)
        if (p->committable >= 0) p->committed = std::max(p->committed, p->committable);
      context().debug(std::string("committed ") + std::to_string(list->cnt) + " partitions " + when);
    } else {
      context().warn(std::string("cannot commit offsets ") + when + ": " + failed +
                     "; the messages after the last committed offset are read again");
    }
    rd_kafka_topic_partition_list_destroy(list);
  }

  // Result of an asynchronous commit (served by consumer_poll).
  void committed(rd_kafka_resp_err_t err, const rd_kafka_topic_partition_list_t* list) {
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR || err == RD_KAFKA_RESP_ERR__NO_OFFSET) return;
    check_group_owned(err);
    for (int i = 0; list && i < list->cnt; ++i) check_group_owned(list->elems[i].err);
    warn_limited("commit", std::string("committing offsets failed: ") + rd_kafka_err2str(err) +
                               " (committed again at the next interval)");
    if (!list) return;
    for (int i = 0; i < list->cnt; ++i) {
      auto it = index_.find(Key(list->elems[i].topic, list->elems[i].partition));
      if (it != index_.end()) parts_.at(it->second)->committed = -1;
    }
  }

  // --- metrics -----------------------------------------------------------------------------------

  // events: messages handed to the flow; lag: messages in the assigned partitions not read yet
  // (high watermark as of the last fetch, minus the next offset to read); assigned_partitions.
  void publish_metrics() {
    context().counter("events", double(events_));
    context().gauge("assigned_partitions", double(parts_.size()));
    if (!rk_) return;
    double lag = 0;
    for (auto& [slot, p] : parts_) {
      int64_t lo = 0, hi = 0;
      if (p->next < 0 ||
          rd_kafka_get_watermark_offsets(rk_, p->topic.c_str(), p->partition, &lo, &hi) != RD_KAFKA_RESP_ERR_NO_ERROR ||
          hi < 0)
        continue;
      lag += double(std::max<int64_t>(0, hi - p->next));
    }
    context().gauge("lag", lag);
  }

  // Without stop() (a failed start) the handle is destroyed without leaving the group politely.
  void destroy() {
    if (!rk_) return;
    closing_ = true;
    if (queue_) rd_kafka_queue_destroy(queue_);
    queue_ = nullptr;
    rd_kafka_destroy_flags(rk_, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    rk_ = nullptr;
  }

  Config cfg_;
  Conf conf_;
  rd_kafka_t* rk_ = nullptr;
  rd_kafka_queue_t* queue_ = nullptr;  // the consumer queue, where every partition's messages meet
  std::unordered_map<uint32_t, std::unique_ptr<Part>> parts_;  // by slot
  std::map<Key, uint32_t> index_;                              // (topic, partition) -> slot
  uint32_t slot_counter_ = 0;
  const rd_kafka_topic_t* last_rkt_ = nullptr;
  int32_t last_partition_ = -1;
  Part* last_part_ = nullptr;
  std::vector<ef_message*> held_;     // read, not admitted by the flow yet
  std::vector<uint32_t> held_slots_;  // their partitions' slots
  bool paused_ = false;
  bool assigned_once_ = false;
  bool closing_ = false;
  Clock::time_point last_commit_{};
  std::optional<std::string> fatal_;
  std::map<std::string, Clock::time_point> warned_;
  uint64_t events_ = 0;
};

}  // namespace edgeflow::kafka
