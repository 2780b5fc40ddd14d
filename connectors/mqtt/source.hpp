// MQTT ingress: subscribes to topic filters and acknowledges a QoS 1/2 message to the broker only
// once the flow resolved it end to end (delivered, or in the dead letter).
//
// Acknowledgements: the PUBACK (QoS 1) or PUBREC (QoS 2; the broker's PUBREL is answered with
// PUBCOMP) of a message is sent when its ack resolves. MQTT wants them in the order the PUBLISHes
// arrived, so the source keeps the unacknowledged messages of the connection in arrival order
// and sends the acknowledgements of the resolved prefix. With a persistent session (clean_start
// off, the default) the broker sends again whatever was not acknowledged when the connection or
// the runtime went away: at least once, nothing lost. A retry ack (the flow stopping with the
// message unfinished) stalls the prefix; the broker sends the message again after a reconnect.
//
// Tokens: bit 63 marks a QoS 0 message (nothing to acknowledge); bits 40-62 the connection
// (a number that is new at every connection) and bits 0-39 the message's sequence on it. Acks
// for an earlier connection are ignored: their packet identifiers mean nothing on the new one,
// and the broker has sent those messages again.
//
// Backpressure: while the flow does not admit the held batch the socket is not read, so the
// broker holds back (QoS 1/2: at most receive_maximum unacknowledged; QoS 0 per its own queue).
//
// Threads: the flow calls every hook, on_ack included, from one thread at a time; no locks.
#pragma once

#include "client.hpp"

#include <charconv>
#include <deque>
#include <optional>

namespace edgeflow::mqtt {

using sdk::Json;

class MqttSource : public sdk::Source {
 public:
  struct Config : ClientOptions {
    Json topics;
    int64_t qos = 1;
    bool clean_start = false;
    std::chrono::milliseconds session_expiry{std::chrono::hours(24 * 7)};
    int64_t receive_maximum = 10000;
    int64_t batch_size = 1024;
    int64_t end_after = 0;
  };
  static constexpr const char* type = "mqtt";
  static constexpr const char* description =
      "Subscribes to MQTT topic filters (MQTT 5 or 3.1.1, shared subscriptions); a QoS 1/2 message "
      "is acknowledged to the broker only once the whole flow resolved it.";
  static void describe(sdk::Spec<Config>& s) {
    describe_client(s);
    s.option("topics", &Config::topics)
        .required()
        .doc("Topic filters to subscribe to: a list of filters (each at `qos`) or of { filter, qos }. "
             "$share/<group>/<filter> shares the messages among all runtimes subscribed with that group.")
        .example("[\"plant/+/temperature\", { filter: \"$share/edge/alarms/#\", qos: 2 }]");
    s.option("qos", &Config::qos).range(0, 2).doc("QoS of the filters that do not give their own.").example("2");
    s.option("clean_start", &Config::clean_start)
        .doc("Start without the broker's stored session. Off (the default): the broker keeps the "
             "subscriptions and unacknowledged messages while the runtime is away and delivers them after.")
        .example("true");
    s.option("session_expiry", &Config::session_expiry)
        .min(0)
        .doc("MQTT 5: how long the broker keeps the session after the connection ends (whole seconds; "
             "MQTT 3.1.1 sessions last as long as the broker's persistent_client_expiration).")
        .example("24h");
    s.option("receive_maximum", &Config::receive_maximum)
        .range(1, 65535)
        .doc("MQTT 5: how many QoS 1/2 messages the broker may send before the first is acknowledged "
             "(the flow's window; MQTT 3.1.1 brokers use their own setting, mosquitto's max_inflight_messages).")
        .example("1000");
    s.option("batch_size", &Config::batch_size).range(1, 65536).doc("Messages per emitted batch, at most.").example("256");
    s.option("end_after", &Config::end_after)
        .min(0)
        .doc("End the flow after this many messages (0: never); for backlogs, tests and benchmarks.")
        .example("100000");
  }

  MqttSource(sdk::Context c, Config cfg)
      : Source(c), cfg_(std::move(cfg)), session_(setup_client(c, cfg_, false), cfg_), backoff_(cfg_.reconnect_backoff, cfg_.reconnect_max_backoff) {
    parse_topics(c);
    if (cfg_.session_expiry.count() / 1000 > 0xffffffffLL)
      throw Error(c.where("session_expiry") + ": session_expiry: at most 4294967295 s");
  }
  ~MqttSource() override { release_held(); }

  void start() override {
    connect();
  }

  void stop() override {
    if (!session_.connected()) return;
    std::string err;
    session_.write_all(std::chrono::milliseconds(2000), err);
    session_.disconnect();
    context().gauge("connected", 0);
  }

  void run() override {
    auto next_metrics = Clock::now();
    std::string err;
    for (;;) {
      if (fatal_) throw Error(*fatal_);
      if (ack_write_failed_) {
        lost(*ack_write_failed_);
        ack_write_failed_.reset();
      }
      if (!session_.connected()) {
        if (!reconnect()) return;
        continue;
      }
      bool room = held_.size() < size_t(cfg_.batch_size) && !ended();
      if (room) {
        if (!take_frames()) continue;
        room = held_.size() < size_t(cfg_.batch_size) && !ended();
        if (room) {
          // With messages in the flow, their acks are what the broker waits for: the socket and
          // the flow are watched in turns (poll() returns as soon as an ack arrives).
          bool acks_due = held_.empty() && !window_.empty();
          int wait = held_.empty() && !acks_due ? int(std::min<int64_t>(kReadWaitMs, session_.until_keep_alive().count())) : 0;
          if (session_.has_buffered() || session_.wait_readable(wait)) {
            if (!session_.read(err)) {
              lost(err);
              continue;
            }
            if (!take_frames()) continue;
          } else if (acks_due && !poll(kAckWaitMs)) {
            return;
          }
        }
      }
      if (!session_.keep_alive(room, err) || !session_.write(err)) {
        lost(err);
        continue;
      }
      if (auto now = Clock::now(); now >= next_metrics) {
        publish_metrics();
        next_metrics = now + std::chrono::seconds(1);
      }
      if (!held_.empty()) {
        ef_status st = emit(held_, kEmitTimeoutMs);
        if (st == EF_OK) {
          held_.clear();
          held_qos_.clear();
        } else if (st == EF_STOPPING) {
          release_held();
          return;
        }
        continue;
      }
      if (ended()) {
        context().info("read " + std::to_string(taken_) + " messages; end_after ends the flow");
        publish_metrics();
        return;
      }
      if (!poll(0)) return;
    }
  }

  void on_ack(std::span<const ef_ack> acks) override {
    for (auto& a : acks) {
      if (a.token & kNoAck) continue;
      if ((a.token >> kSeqBits) != conn_gen_) continue;  // an earlier connection: the broker resends it
      uint64_t seq = a.token & kSeqMask;
      if (seq < base_ || seq >= base_ + window_.size()) continue;
      if (a.status == EF_ACK_RETRY) {
        stalled_ = true;
        continue;
      }
      window_[seq - base_].done = true;
    }
    if (stalled_) return;
    size_t acked = 0;
    while (!window_.empty() && window_.front().done) {
      const Pending& p = window_.front();
      encode(session_.out(), Ack{p.qos == 1 ? Type::puback : Type::pubrec, p.packet_id, 0, {}}, session_.version());
      window_.pop_front();
      ++base_;
      ++acked;
    }
    // A failed write is handled by run(): on_ack may come inside emit(), whose batch lost()
    // would free under it.
    if (acked && session_.connected()) {
      std::string err;
      if (!session_.write(err) && !ack_write_failed_) ack_write_failed_ = err;
    }
  }

 private:
  static constexpr int32_t kEmitTimeoutMs = 200;
  static constexpr int kReadWaitMs = 100;
  static constexpr int32_t kAckWaitMs = 1;
  static constexpr unsigned kSeqBits = 40;
  static constexpr uint64_t kSeqMask = (uint64_t(1) << kSeqBits) - 1;
  static constexpr uint64_t kNoAck = uint64_t(1) << 63;
  static constexpr uint64_t kGenMask = (uint64_t(1) << 23) - 1;

  struct Pending {
    uint16_t packet_id;
    uint8_t qos;
    bool done;
  };

  void parse_topics(const sdk::Context& c) {
    auto* list = cfg_.topics.array();
    if (!list || list->empty())
      throw Error(c.where("topics") + ": topics: expected a list of topic filters, for example [\"plant/+/temperature\"]");
    for (size_t i = 0; i < list->size(); ++i) {
      std::string key = "topics[" + std::to_string(i) + "]";
      const Json& e = (*list)[i];
      Subscription s;
      int64_t qos = cfg_.qos;
      if (auto* text = e.string()) {
        s.filter = *text;
      } else if (auto* obj = e.object()) {
        for (auto& [name, v] : *obj) {
          if (name == "filter" && v.string()) {
            s.filter = *v.string();
          } else if (name == "qos" && std::get_if<int64_t>(&v.v) && *std::get_if<int64_t>(&v.v) >= 0 &&
                     *std::get_if<int64_t>(&v.v) <= 2) {
            qos = *std::get_if<int64_t>(&v.v);
          } else {
            throw Error(c.where(key + "." + name) + ": " + key + "." + name +
                        (name == "filter" || name == "qos" ? ": expected " + std::string(name == "filter" ? "a topic filter" : "0, 1 or 2")
                                                           : ": unknown key; an entry is a filter or { filter, qos }"));
          }
        }
        if (s.filter.empty()) throw Error(c.where(key) + ": " + key + ": give the entry a filter: { filter: \"a/#\", qos: 1 }");
        key += ".filter";
      } else {
        throw Error(c.where(key) + ": " + key + ": expected a topic filter or { filter, qos }");
      }
      if (auto why = topic_filter_problem(s.filter)) throw Error(c.where(key) + ": " + key + ": \"" + s.filter + "\": " + *why);
      // Retain handling 1: retained messages only for a subscription the session did not have,
      // so resubscribing after a reconnect does not deliver them again (MQTT 5).
      s.options = uint8_t(qos) | (session_.version() == Version::v5 ? 0x10 : 0);
      subs_.topics.push_back(std::move(s));
    }
  }

  bool ended() const { return cfg_.end_after > 0 && taken_ >= uint64_t(cfg_.end_after); }

  // Connects, and sends the SUBSCRIBE (its SUBACK is read with the messages).
  void connect() {
    Properties props;
    if (session_.version() == Version::v5) {
      props.add(prop::session_expiry, cfg_.clean_start ? 0u : uint32_t(cfg_.session_expiry.count() / 1000));
      props.add(prop::receive_maximum, uint32_t(cfg_.receive_maximum));
    }
    Connack a = session_.connect(cfg_.clean_start, props);
    conn_gen_ = (conn_gen_ + 1) & kGenMask;
    window_.clear();
    base_ = 0;
    stalled_ = false;
    subs_.packet_id = 1;
    encode(session_.out(), subs_, session_.version());
    context().gauge("connected", 1);
    context().info("connected to " + session_.where() + " as " + session_.setup().client_id + " (MQTT " +
                   (session_.version() == Version::v5 ? "5" : "3.1.1") + ", " +
                   (a.session_present ? "resuming its session" : "new session") + ")");
    std::string err;
    if (!session_.write(err)) lost(err);
  }

  // After a lost connection: waits a backoff (serving acks and retries meanwhile) and connects
  // again; false once the flow is stopping.
  bool reconnect() {
    auto wait = backoff_.next();
    auto until = Clock::now() + wait;
    while (Clock::now() < until)
      if (!poll(int32_t(std::min<int64_t>(100, std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now()).count()))))
        return false;
    try {
      connect();
      backoff_.reset();
      ++reconnects_;
      context().counter("reconnects", double(reconnects_));
    } catch (const ConnectError& e) {
      warn_limited(std::string(e.what()) + " (attempt " + std::to_string(backoff_.attempts()) + ", retrying)");
    }
    return true;
  }

  void lost(const std::string& why) {
    if (!session_.connected()) return;
    session_.close();
    context().gauge("connected", 0);
    context().warn("connection to the MQTT broker at " + session_.where() + " lost: " + why + "; reconnecting");
    // Not emitted yet: QoS 1/2 ones come again (unacknowledged); QoS 0 ones are kept.
    size_t kept = 0;
    for (size_t i = 0; i < held_.size(); ++i) {
      if (held_qos_[i] == 0) held_[kept++] = held_[i];
      else free_message(sdk::Message(held_[i]));
    }
    held_.resize(kept);
    held_qos_.assign(kept, 0);
    window_.clear();
  }

  // Handles every buffered packet while the batch has room; false when the connection was lost.
  bool take_frames() {
    try {
      while (held_.size() < size_t(cfg_.batch_size) && !ended()) {
        auto f = session_.frame();
        if (!f) return true;
        handle(*f);
        if (!session_.connected()) return false;
      }
    } catch (const DecodeError& e) {
      lost(std::string("malformed packet from the broker: ") + e.what());
      return false;
    }
    return true;
  }

  void handle(const Frame& f) {
    Version v = session_.version();
    switch (f.type()) {
      case Type::publish: take(decode_publish(f, v)); break;
      case Type::pubrel: {
        Ack rel = decode_ack(f, v);
        encode(session_.out(), Ack{Type::pubcomp, rel.packet_id, 0, {}}, v);
        break;
      }
      case Type::suback: subscribed(decode_suback(f, v)); break;
      case Type::pingresp: decode_ping(f); break;
      case Type::disconnect: lost(disconnect_text(decode_disconnect(f, v), session_.setup().client_id)); break;
      default:
        lost("unexpected packet type " + std::to_string(int(f.type())) + " from the broker");
    }
  }

  void subscribed(const Suback& s) {
    if (s.reasons.size() != subs_.topics.size()) {
      lost("SUBACK with " + std::to_string(s.reasons.size()) + " codes for " + std::to_string(subs_.topics.size()) + " filters");
      return;
    }
    std::string list;
    for (size_t i = 0; i < s.reasons.size(); ++i) {
      const auto& t = subs_.topics[i];
      if (s.reasons[i] >= 0x80) {
        std::string why = session_.version() == Version::v5 ? reason_text(s.reasons[i]) : "Failure";
        fatal_ = "the MQTT broker at " + session_.where() + " refused the subscription to \"" + t.filter + "\": " + why +
                 (s.reasons[i] == 0x87 || s.reasons[i] == 0x80 ? " (check the broker's ACL for this user)" : "");
        return;
      }
      if (s.reasons[i] < (t.options & 3))
        context().warn("the broker granted \"" + t.filter + "\" only QoS " + std::to_string(s.reasons[i]) + ", not " +
                       std::to_string(t.options & 3));
      list += (list.empty() ? "" : ", ") + t.filter + " (QoS " + std::to_string(s.reasons[i]) + ")";
    }
    context().info("subscribed to " + list);
  }

  void take(const Publish& p) {
    sdk::Message m = new_message();
    m.set_payload(p.payload);
    m.set_meta("mqtt.topic", p.topic);
    m.set_meta("mqtt.qos", p.qos == 0 ? "0" : p.qos == 1 ? "1" : "2");
    m.set_meta("mqtt.retain", p.retain ? "true" : "false");
    if (p.dup) m.set_meta("mqtt.dup", "true");
    for (auto& pr : p.props.list) {
      switch (pr.id) {
        case prop::user_property: m.set_header(pr.text, pr.value); break;
        case prop::content_type:
          m.set_content_type(pr.text);
          m.set_meta("mqtt.content_type", pr.text);
          break;
        case prop::response_topic: m.set_meta("mqtt.response_topic", pr.text); break;
        case prop::correlation_data: m.set_meta("mqtt.correlation_data", pr.text); break;
        case prop::payload_format: m.set_meta("mqtt.payload_format", pr.number ? "utf-8" : "bytes"); break;
        case prop::message_expiry: m.set_meta("mqtt.message_expiry", number(pr.number)); break;
        case prop::subscription_id: m.set_meta("mqtt.subscription_id", number(pr.number)); break;
        default: break;
      }
    }
    if (p.qos == 0) {
      m.set_token(kNoAck | taken_);
    } else {
      m.set_token(conn_gen_ << kSeqBits | ((base_ + window_.size()) & kSeqMask));
      window_.push_back(Pending{p.packet_id, p.qos, false});
    }
    held_.push_back(m.raw());
    held_qos_.push_back(p.qos);
    ++taken_;
    ++events_;
  }

  static std::string number(uint64_t v) {
    char buf[24];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    return std::string(buf, r.ptr);
  }

  void release_held() {
    for (auto* m : held_) free_message(sdk::Message(m));
    held_.clear();
    held_qos_.clear();
  }

  void publish_metrics() {
    context().counter("events", double(events_));
    context().gauge("unacknowledged", double(window_.size()));
  }

  // The same connect error at most once every 30 s: a broker that is down is reported, not logged per attempt.
  void warn_limited(const std::string& text) {
    auto now = Clock::now();
    if (text == last_warning_ && now - last_warned_ < std::chrono::seconds(30)) return;
    last_warning_ = text;
    last_warned_ = now;
    context().warn(text);
  }

  Config cfg_;
  Session session_;
  Backoff backoff_;
  Subscribe subs_;
  uint64_t conn_gen_ = 0;
  std::deque<Pending> window_;  // unacknowledged QoS 1/2 messages of this connection, in arrival order
  uint64_t base_ = 0;           // sequence of window_.front()
  bool stalled_ = false;
  std::vector<ef_message*> held_;  // read, not admitted by the flow yet
  std::optional<std::string> ack_write_failed_;  // on_ack's PUBACK write failed: run() reconnects
  std::vector<uint8_t> held_qos_;  // their QoS
  uint64_t taken_ = 0;
  uint64_t events_ = 0;
  uint64_t reconnects_ = 0;
  std::optional<std::string> fatal_;
  std::string last_warning_;
  Clock::time_point last_warned_{};
};

}  // namespace edgeflow::mqtt
