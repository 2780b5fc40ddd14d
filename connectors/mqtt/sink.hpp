// MQTT egress: publishes each message (QoS 0, 1 or 2) to a topic computed from a template; the
// broker's acknowledgement resolves the message's end-to-end ack.
//
// Statuses: delivered when QoS 0 bytes are written to the socket, at the PUBACK (QoS 1) or the
// PUBCOMP (QoS 2). Rejected (to the dead letter, with the reason) when the message can never be
// published as it is: a topic that does not evaluate, is empty, holds a wildcard, NUL or a control
// character, is not UTF-8 or is over 65535 bytes; a user property that is not UTF-8; a packet over
// the broker's maximum; an MQTT 5 reason code that says so (not authorized, topic name invalid,
// payload format invalid...). Retry for everything transient: not connected, a connection lost
// before the acknowledgement, quota exceeded.
//
// In flight: at most max_inflight QoS 1/2 publishes wait for their acknowledgement (and never more
// than the broker's Receive Maximum); write() waits for room, which is the flow's backpressure.
// A lost connection fails every unacknowledged publish as a retry (the runtime writes them again
// in order after its backoff) instead of keeping them for a resend with DUP: the runtime's retry
// already keeps order and backs off, the sink needs no session state, and the duplicates are the
// same either way.
//
// Threads: write() and flush() run on the flow's thread and only queue bytes; one I/O thread per
// sink owns the socket (an OpenSSL session is not safe from two threads), reads the broker's
// acknowledgements, reconnects with backoff, keeps the connection alive and sends the acks.
#pragma once

#include "client.hpp"

#include <edgeflow/sdk/expr.hpp>

#include <sys/eventfd.h>

#include <atomic>
#include <deque>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace edgeflow::mqtt {

namespace expr = sdk::expr;
using sdk::Batch;
using sdk::Json;
using sdk::Message;

class MqttSink : public sdk::Sink {
 public:
  struct Config : ClientOptions {
    std::string topic;
    int64_t qos = 1;
    bool retain = false;
    Json user_properties;
    bool forward_headers = true;
    int64_t max_inflight = 1000;
  };
  static constexpr const char* type = "mqtt";
  static constexpr const char* description =
      "Publishes each message to an MQTT broker (QoS 0/1/2, MQTT 5 or 3.1.1); a message counts as "
      "delivered when the broker acknowledged it.";
  static void describe(sdk::Spec<Config>& s) {
    describe_client(s);
    s.option("topic", &Config::topic)
        .required()
        .doc("Topic: text, or a template with ${expression} parts evaluated per message. A result that "
             "is empty, holds + # or a control character, is not UTF-8 or is too long goes to the dead letter.")
        .example("plant/${site}/orders/${id}");
    s.option("qos", &Config::qos).range(0, 2).doc("QoS of every publish.").example("2");
    s.option("retain", &Config::retain).doc("Publish with the retain flag.").example("true");
    s.option("user_properties", &Config::user_properties)
        .doc("MQTT 5 user properties to add: name: expression.")
        .example("{ source: \"'edge-7'\", kind: op }");
    s.option("forward_headers", &Config::forward_headers)
        .doc("MQTT 5: also send the message's headers as user properties (e.g. those an MQTT or Kafka source received).")
        .example("false");
    s.option("max_inflight", &Config::max_inflight)
        .range(1, 65535)
        .doc("QoS 1/2 publishes waiting for the broker's acknowledgement, at most (and never more "
             "than the broker's Receive Maximum).")
        .example("100");
  }

  MqttSink(sdk::Context c, Config cfg)
      : Sink(c), cfg_(std::move(cfg)), session_(setup_client(c, cfg_, true), cfg_), backoff_(cfg_.reconnect_backoff, cfg_.reconnect_max_backoff) {
    topic_ = expr::compile_template(c, "topic", cfg_.topic);
    // A template whose own text starts with $ may publish there; a value never makes a $ topic
    // ("${x}/..." starts with a value, "$${..." with a literal "${").
    dollar_ok_ = cfg_.topic.rfind('$', 0) == 0 && cfg_.topic.rfind("${", 0) != 0;
    if (auto* o = cfg_.user_properties.object()) {
      if (session_.version() != Version::v5)
        throw Error(c.where("user_properties") + ": user_properties: MQTT 3.1.1 has no user properties; set protocol: 5");
      for (auto& [name, v] : *o) {
        std::string k = "user_properties." + name;
        if (!v.string()) throw Error(c.where(k) + ": " + k + ": expected an expression");
        if (auto why = utf8_problem(name)) throw Error(c.where(k) + ": " + k + ": the name is " + *why);
        props_.push_back({name, expr::compile_option(c, k, *v.string())});
      }
    } else if (!cfg_.user_properties.is_null()) {
      throw Error(c.where("user_properties") + ": user_properties: expected a map of name: expression");
    }
    inflight_.resize(65536);
  }
  ~MqttSink() override { close(); }

  void start() override {
    session_.connect(true, {});
    on_connected();
    wake_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake_ < 0) throw Error(std::string("eventfd: ") + std::strerror(errno));
    running_ = true;
    io_ = std::thread([this] { io_loop(); });
  }

  void stop() override { close(); }

  void write(Batch b) override {
    std::vector<std::pair<Message, std::string>> now;  // acks to send, after the lock
    Properties props;
    std::string topic;
    for (size_t i = 0; i < b.size(); ++i) {
      Message m = b[i];
      if (auto why = prepare(m, topic, props)) {
        ack(m, EF_ACK_REJECTED, *why);
        continue;
      }
      bool v5 = session_.version() == Version::v5;
      size_t size = publish_size(session_.version(), topic.size(), m.payload().size(), qos_, v5 ? &props : nullptr);
      std::unique_lock lock(mutex_);
      if (size > max_packet_) {
        lock.unlock();
        ack(m, EF_ACK_REJECTED,
            "the message (" + std::to_string(size) + " bytes as a PUBLISH) is larger than the broker's maximum packet size (" +
                std::to_string(max_packet_) + ")");
        continue;
      }
      if (cfg_.retain && !retain_available_) {
        lock.unlock();
        ack(m, EF_ACK_REJECTED, "the broker does not support retained messages (retain: true)");
        continue;
      }
      if (qos_ > 0 && connected_ && count_ >= window_) {
        signal();  // what is queued must go out for acknowledgements to make room
        room_.wait(lock, [&] { return !connected_ || count_ < window_; });
      }
      if (!connected_) {
        lock.unlock();
        ack(m, EF_ACK_RETRY, "not connected to the MQTT broker at " + session_.where() + (last_error_.empty() ? "" : ": " + last_error_));
        continue;
      }
      uint16_t id = 0;
      if (qos_ > 0) {
        id = next_id();
        inflight_[id] = Entry{m.raw(), 1};
        ++count_;
      }
      encode_publish(pending_, session_.version(), topic, m.payload(), qos_, cfg_.retain, false, id, v5 ? &props : nullptr);
      if (qos_ == 0) queued0_.push_back({pending_.size(), m.raw()});
    }
    signal();
  }

  void flush(int32_t timeout_ms) override {
    std::unique_lock lock(mutex_);
    room_.wait_for(lock, std::chrono::milliseconds(std::max(0, timeout_ms)),
                   [&] { return !connected_ || (count_ == 0 && qos0_.empty() && queued0_.empty() && pending_.empty()); });
  }

 private:
  struct Entry {
    ef_message* m = nullptr;
    uint8_t stage = 0;  // 0 free, 1 PUBLISH sent, 2 PUBREC received (QoS 2)
  };

  // Topic and properties of one message, or why it goes to the dead letter.
  std::optional<std::string> prepare(Message m, std::string& topic, Properties& props) const {
    props.list.clear();
    try {
      topic = topic_.render(m);
    } catch (const expr::EvalError& e) {
      return std::string("topic: ") + e.what();
    }
    for (auto& [name, e] : props_) {
      std::string v;
      try {
        v = expr::required_text(expr::eval_option(e, "user_properties." + name, m), "user_properties." + name);
      } catch (const expr::EvalError& err) {
        return err.what();
      }
      // Checked like a header: a broker closes the connection on a malformed string.
      if (auto why = utf8_problem(v)) return "user_properties." + name + ": " + *why;
      props.add_user(name, std::move(v));
    }
    if (auto why = topic_name_problem(topic)) return "topic \"" + printable(topic) + "\": " + *why;
    if (topic[0] == '$' && !dollar_ok_)
      return "topic \"" + printable(topic) + "\": a topic starting with $ is reserved for the broker ($SYS)";
    if (session_.version() != Version::v5) return std::nullopt;
    if (auto ct = m.content_type(); !ct.empty()) {
      if (auto why = utf8_problem(ct)) return "content type: " + *why;
      props.add(prop::content_type, std::string(ct));
    }
    if (cfg_.forward_headers) {
      for (size_t i = 0, n = m.header_count(); i < n; ++i) {
        auto [name, value] = m.header_at(i);
        if (auto why = utf8_problem(name)) return "header \"" + printable(name) + "\" as a user property: the name is " + *why;
        if (auto why = utf8_problem(value)) return "header " + std::string(name) + " as a user property: the value is " + *why;
        props.add_user(std::string(name), std::string(value));
      }
    }
    return std::nullopt;
  }

  // For reasons: control characters shown as \xNN, at most 200 bytes.
  static std::string printable(std::string_view s) {
    std::string out;
    for (char ch : s.substr(0, 200)) {
      auto c = static_cast<unsigned char>(ch);
      if (c < 0x20 || c == 0x7f) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\x%02x", unsigned(c));
        out += buf;
      } else {
        out.push_back(ch);
      }
    }
    return s.size() > 200 ? out + "..." : out;
  }

  uint16_t next_id() {
    do last_id_ = uint16_t(last_id_ == 65535 ? 1 : last_id_ + 1);
    while (inflight_[last_id_].stage);
    return last_id_;
  }

  void signal() {
    uint64_t one = 1;
    if (wake_ >= 0) (void)!::write(wake_, &one, sizeof one);
  }

  // Under no lock, on the thread that connected: the broker's limits of this connection.
  void on_connected() {
    uint8_t qos = uint8_t(cfg_.qos);
    if (qos > session_.max_qos()) {
      context().warn("the broker allows QoS " + std::to_string(session_.max_qos()) + " at most; publishing at that instead of " +
                     std::to_string(qos));
      qos = session_.max_qos();
    }
    std::lock_guard lock(mutex_);
    qos_ = qos;
    window_ = std::min<size_t>(size_t(cfg_.max_inflight), session_.receive_max());
    max_packet_ = session_.max_packet();
    retain_available_ = session_.retain_available();
    connected_ = true;
    written_ = 0;
    last_error_.clear();
    context().gauge("connected", 1);
    context().info("connected to " + session_.where() + " as " + session_.setup().client_id + " (MQTT " +
                   (session_.version() == Version::v5 ? "5" : "3.1.1") + ", window " + std::to_string(window_) + ")");
  }

  void io_loop() {
    std::string err;
    while (running_) {
      if (!session_.connected()) {
        reconnect();
        continue;
      }
      pollfd fds[2] = {{session_.fd(), short(POLLIN | (session_.unsent() ? POLLOUT : 0)), 0}, {wake_, POLLIN, 0}};
      int timeout = int(std::min<int64_t>(1000, session_.until_keep_alive().count()));
      if (!session_.has_buffered()) ::poll(fds, 2, timeout);
      if (fds[1].revents & POLLIN) {
        uint64_t n;
        (void)!::read(wake_, &n, sizeof n);
      }
      take_pending();
      if (!running_) break;
      if ((fds[0].revents & (POLLIN | POLLERR | POLLHUP)) || session_.has_buffered()) {
        if (!session_.read(err) || !handle_frames(err)) {
          lost(err);
          continue;
        }
      }
      size_t before = session_.unsent();
      if (!session_.write(err)) {
        lost(err);
        continue;
      }
      written(before - session_.unsent());
      if (!session_.keep_alive(true, err)) lost(err);
    }
    std::string ignored;
    if (session_.connected()) {
      take_pending();
      size_t before = session_.unsent();
      if (session_.write_all(std::chrono::milliseconds(1000), ignored)) written(before);
      session_.disconnect();
    }
  }

  // Moves what write() queued to the socket's buffer; QoS 0 messages get their stream position.
  void take_pending() {
    std::lock_guard lock(mutex_);
    if (pending_.empty()) return;
    uint64_t base = written_ + session_.unsent();
    session_.out().append(pending_);
    pending_.clear();
    for (auto& [end, m] : queued0_) qos0_.push_back({base + end, m});
    queued0_.clear();
  }

  // QoS 0 messages whose bytes are all written are delivered.
  void written(size_t n) {
    std::vector<ef_message*> done;
    {
      std::lock_guard lock(mutex_);
      written_ += n;
      while (!qos0_.empty() && qos0_.front().first <= written_) {
        done.push_back(qos0_.front().second);
        qos0_.pop_front();
      }
    }
    for (auto* m : done) ack(Message(m), EF_ACK_DELIVERED);
    if (!done.empty()) room_.notify_all();
  }

  bool handle_frames(std::string& err) {
    std::vector<std::pair<ef_message*, std::pair<ef_ack_status, std::string>>> acks;
    bool ok = true;
    try {
      while (auto f = session_.frame()) {
        Version v = session_.version();
        switch (f->type()) {
          case Type::puback:
          case Type::pubrec:
          case Type::pubcomp: {
            Ack a = decode_ack(*f, v);
            std::lock_guard lock(mutex_);
            Entry& e = inflight_[a.packet_id];
            if (!e.stage) break;  // not ours (any more)
            if (a.type == Type::pubrec && a.reason < 0x80) {
              if (e.stage == 1) e.stage = 2;
              encode(session_.out(), Ack{Type::pubrel, a.packet_id, 0, {}}, v);
              break;
            }
            acks.push_back({e.m, outcome(a)});
            e = Entry{};
            --count_;
            break;
          }
          case Type::pingresp: decode_ping(*f); break;
          case Type::disconnect:
            err = disconnect_text(decode_disconnect(*f, v), session_.setup().client_id);
            ok = false;
            break;
          default:
            err = "unexpected packet type " + std::to_string(int(f->type())) + " from the broker";
            ok = false;
        }
        if (!ok) break;
      }
    } catch (const DecodeError& e) {
      err = std::string("malformed packet from the broker: ") + e.what();
      ok = false;
    }
    for (auto& [m, st] : acks) ack(Message(m), st.first, st.second);
    if (!acks.empty()) room_.notify_all();
    return ok;
  }

  // An acknowledgement's status: MQTT 5 reason codes >= 0x80 are failures.
  std::pair<ef_ack_status, std::string> outcome(const Ack& a) const {
    if (a.reason < 0x80) return {EF_ACK_DELIVERED, {}};
    std::string why = "the MQTT broker refused the message: " + reason_text(a.reason);
    if (auto r = a.props.text(prop::reason_string)) why += ": " + *r;
    switch (a.reason) {
      case 0x80:  // unspecified: maybe a passing state of the broker
      case 0x91:  // packet identifier in use
      case 0x96:  // message rate too high
      case 0x97:  // quota exceeded
        return {EF_ACK_RETRY, why};
      default:
        return {EF_ACK_REJECTED, why};
    }
  }

  // Under mutex_: marks the connection gone and takes every message the broker has not
  // acknowledged out of the window and the queues, for the caller to answer.
  std::vector<ef_message*> disconnected() {
    connected_ = false;
    std::vector<ef_message*> open;
    for (auto& e : inflight_)
      if (e.stage) {
        open.push_back(e.m);
        e = Entry{};
      }
    count_ = 0;
    for (auto& [pos, m] : qos0_) open.push_back(m);
    for (auto& [pos, m] : queued0_) open.push_back(m);
    qos0_.clear();
    queued0_.clear();
    pending_.clear();
    return open;
  }

  // Every unacknowledged message becomes a retry; the runtime writes them again.
  void lost(const std::string& why) {
    session_.close();
    std::vector<ef_message*> failed;
    {
      std::lock_guard lock(mutex_);
      last_error_ = why;
      failed = disconnected();
    }
    context().gauge("connected", 0);
    context().warn("connection to the MQTT broker at " + session_.where() + " lost: " + why + "; " +
                   std::to_string(failed.size()) + " unacknowledged messages are retried; reconnecting");
    std::string reason = "connection to the MQTT broker lost before it acknowledged the message: " + why;
    for (auto* m : failed) ack(Message(m), EF_ACK_RETRY, reason);
    room_.notify_all();
  }

  void reconnect() {
    {
      std::unique_lock lock(mutex_);
      room_.wait_for(lock, backoff_.next(), [&] { return !running_; });
    }
    if (!running_) return;
    try {
      session_.connect(true, {});
      backoff_.reset();
      on_connected();
      context().counter("reconnects", double(++reconnects_));
    } catch (const ConnectError& e) {
      std::lock_guard lock(mutex_);
      last_error_ = e.what();
      context().warn(std::string(e.what()) + "; retrying");
    }
  }

  void close() {
    if (io_.joinable()) {
      {
        std::lock_guard lock(mutex_);
        running_ = false;
      }
      room_.notify_all();
      signal();
      io_.join();
    } else if (session_.connected()) {
      session_.disconnect();
    }
    std::vector<ef_message*> left;
    {
      std::lock_guard lock(mutex_);
      left = disconnected();
    }
    for (auto* m : left) ack(Message(m), EF_ACK_RETRY, "the sink stopped before the broker acknowledged the message");
    if (wake_ >= 0) {
      ::close(wake_);
      wake_ = -1;
    }
  }

  Config cfg_;
  Session session_;
  Backoff backoff_;
  expr::Template topic_;
  bool dollar_ok_ = false;
  std::vector<std::pair<std::string, expr::Expr>> props_;
  std::thread io_;
  std::atomic<bool> running_{false};
  int wake_ = -1;
  uint64_t reconnects_ = 0;

  std::mutex mutex_;  // guards what follows
  std::condition_variable room_;
  bool connected_ = false;
  std::string last_error_;
  std::vector<Entry> inflight_;  // by packet identifier
  size_t count_ = 0;
  size_t window_ = 1;
  uint16_t last_id_ = 0;
  uint8_t qos_ = 1;
  uint32_t max_packet_ = kMaxRemainingLength + 5;
  bool retain_available_ = true;
  std::string pending_;                                    // PUBLISH bytes write() queued for the I/O thread
  std::deque<std::pair<uint64_t, ef_message*>> queued0_;  // QoS 0 messages in pending_, and the offset after each
  std::deque<std::pair<uint64_t, ef_message*>> qos0_;     // QoS 0 messages being sent, and the stream position after each
  uint64_t written_ = 0;                                  // bytes written on this connection
};

}  // namespace edgeflow::mqtt
