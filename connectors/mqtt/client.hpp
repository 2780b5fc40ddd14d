// What the MQTT source and sink share: the connection options (checked at load, so a bad uri, will
// topic or protocol is a config error with its file:line:col), and Session, the client side of
// one MQTT connection: CONNECT/CONNACK with errors that say what to fix, buffered reads and
// writes of whole packets, keep-alive (PINGREQ, and a dead connection noticed), and the
// reconnect backoff. A Session is used by one thread at a time.
//
// Why not Paho: Paho C acknowledges a QoS 1 PUBLISH (PUBACK) before the application has even
// seen it, and has no manual-acknowledgement mode, so it cannot hold the acknowledgement until the
// message is delivered end to end (docs/architecture.md, "MQTT").
#pragma once

#include "codec.hpp"
#include "topic.hpp"
#include "transport.hpp"

#include <edgeflow/sdk/backoff.hpp>
#include <edgeflow/sdk/plugin.hpp>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <optional>
#include <random>
#include <string>

namespace edgeflow::mqtt {

using sdk::Context;
using sdk::Error;
using Clock = std::chrono::steady_clock;

// Members every MQTT component's Config has (it derives from this).
struct ClientOptions {
  std::string uri;
  std::string client_id;
  std::string protocol = "5";
  std::string username;
  std::string password;
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  std::string key_password;
  std::string server_name;
  std::chrono::milliseconds keep_alive{30000};
  std::chrono::milliseconds connect_timeout{10000};
  std::chrono::milliseconds reconnect_backoff{100};
  std::chrono::milliseconds reconnect_max_backoff{30000};
  std::string will_topic;
  std::string will_payload;
  int64_t will_qos = 0;
  bool will_retain = false;
};

template <class Cfg>
void describe_client(sdk::Spec<Cfg>& s) {
  auto m = [](auto ClientOptions::*p) {
    return static_cast<std::remove_reference_t<decltype(std::declval<ClientOptions>().*p)> Cfg::*>(p);
  };
  s.option("uri", m(&ClientOptions::uri))
      .required()
      .doc("The broker: mqtt://host[:port] (plain TCP, port 1883 by default) or mqtts://host[:port] "
           "(TLS, 8883); tcp:// and ssl:// are accepted too.")
      .example("mqtts://broker.plant-7.local:8883");
  s.option("client_id", m(&ClientOptions::client_id))
      .doc("MQTT client identifier. The broker keeps a persistent session under it: it must be the same "
           "after a restart and different for every runtime (two clients with one id throw each other out). "
           "Default: edgeflow-<flow>-<stage> for a source, the same plus a random suffix for a sink.")
      .example("edge-site-7-${env:HOSTNAME}");
  s.option("protocol", m(&ClientOptions::protocol)).one_of("5|3.1.1").doc("MQTT protocol version.").example("3.1.1");
  s.option("username", m(&ClientOptions::username)).doc("User name for the broker.").example("edge-site-7");
  s.option("password", m(&ClientOptions::password))
      .secret()
      .doc("Password; never logged nor shown in errors.")
      .example("${file:/run/credentials/edgeflow.service/mqtt}");
  s.option("ca_file", m(&ClientOptions::ca_file))
      .doc("With mqtts://: CA certificates (PEM) the broker's certificate must chain to; default: the system's.")
      .example("/etc/edgeflow/mqtt-ca.pem");
  s.option("cert_file", m(&ClientOptions::cert_file))
      .doc("Client certificate (PEM), for brokers that authenticate clients by certificate.")
      .example("/etc/edgeflow/mqtt.crt");
  s.option("key_file", m(&ClientOptions::key_file)).doc("The client certificate's key (PEM).").example("/etc/edgeflow/mqtt.key");
  s.option("key_password", m(&ClientOptions::key_password)).secret().doc("Password of key_file, if it is encrypted.");
  s.option("server_name", m(&ClientOptions::server_name))
      .doc("Name (or IP address) the broker's certificate must be for; default: the uri's host.")
      .example("broker.plant-7.local");
  s.option("keep_alive", m(&ClientOptions::keep_alive))
      .range(1000, 65535000)
      .doc("MQTT keep-alive: a PINGREQ is sent after this long without sending anything, and a "
           "connection that answers nothing for this long after it is given up and re-established.")
      .example("10s");
  s.option("connect_timeout", m(&ClientOptions::connect_timeout))
      .min(1)
      .doc("How long connecting (TCP, TLS, CONNECT until CONNACK) may take.")
      .example("5s");
  s.option("reconnect_backoff", m(&ClientOptions::reconnect_backoff))
      .min(1)
      .doc("First wait before reconnecting after a lost connection; it doubles per failed attempt up "
           "to reconnect_max_backoff, and each wait is drawn at random below that (full jitter).")
      .example("500ms");
  s.option("reconnect_max_backoff", m(&ClientOptions::reconnect_max_backoff)).min(1).doc("Longest reconnect wait.").example("1m");
  s.option("will_topic", m(&ClientOptions::will_topic))
      .doc("Last will: the broker publishes will_payload here when the connection is lost without a DISCONNECT.")
      .example("edge/site-7/status");
  s.option("will_payload", m(&ClientOptions::will_payload)).doc("Last will payload.").example("offline");
  s.option("will_qos", m(&ClientOptions::will_qos)).range(0, 2).doc("Last will QoS.").example("1");
  s.option("will_retain", m(&ClientOptions::will_retain)).doc("Last will retain flag.").example("true");
}

// The options, checked and resolved (the constructor's work).
struct Setup {
  Endpoint endpoint;
  Version version = Version::v5;
  std::string client_id;
  TlsFiles tls;
};

inline std::string sanitized(const std::string& s) {
  std::string out;
  for (char c : s) out.push_back(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' ? c : '-');
  return out;
}

inline Setup setup_client(const Context& c, const ClientOptions& o, bool unique_default_id) {
  Setup s;
  if (auto why = parse_uri(o.uri, s.endpoint); !why.empty()) throw Error(c.where("uri") + ": uri: \"" + o.uri + "\": " + why);
  s.version = o.protocol == "3.1.1" ? Version::v311 : Version::v5;
  s.client_id = o.client_id;
  if (s.client_id.empty()) {
    s.client_id = "edgeflow-" + sanitized(c.name());
    if (unique_default_id) {
      std::random_device rd;
      char suffix[12];
      std::snprintf(suffix, sizeof suffix, "-%08x", unsigned(rd()));
      s.client_id += suffix;
    }
  } else if (auto why = utf8_problem(s.client_id)) {
    throw Error(c.where("client_id") + ": client_id: " + *why);
  }
  if (!o.will_topic.empty()) {
    if (auto why = topic_name_problem(o.will_topic)) throw Error(c.where("will_topic") + ": will_topic: " + *why);
  } else if (!o.will_payload.empty()) {
    throw Error(c.where("will_payload") + ": will_payload: a last will needs will_topic too");
  }
  bool tls_files = !o.ca_file.empty() || !o.cert_file.empty() || !o.key_file.empty();
  if (tls_files && !s.endpoint.tls)
    throw Error(c.where("uri") + ": uri: ca_file, cert_file and key_file are for TLS: use mqtts://" + s.endpoint.text());
  if (o.cert_file.empty() != o.key_file.empty())
    throw Error(c.where(o.cert_file.empty() ? "key_file" : "cert_file") + ": cert_file and key_file go together");
  if (!o.password.empty() && o.username.empty())
    throw Error(c.where("password") + ": password: set username too (MQTT sends a password only with a user name)");
  s.tls = {o.ca_file, o.cert_file, o.key_file, o.key_password, o.server_name};
  return s;
}

using sdk::Backoff;

// Why the broker refused a connection, and what to do about it.
inline std::string connack_error(uint8_t reason, Version v, const std::string& client_id, const std::string& server_reason) {
  std::string text = "the MQTT broker refused the connection: " + reason_text(v == Version::v5 ? reason : v5_connack_reason(reason)) +
                     (v == Version::v5 ? " (reason 0x" : " (3.1.1 return code ");
  char code[8];
  std::snprintf(code, sizeof code, v == Version::v5 ? "%02x" : "%u", unsigned(reason));
  text += std::string(code) + ")";
  if (!server_reason.empty()) text += ": " + server_reason;
  switch (v == Version::v5 ? reason : v5_connack_reason(reason)) {
    case 0x84: return text + "; the broker does not speak this MQTT version: set protocol: 3.1.1";
    case 0x85: return text + "; the broker does not accept the client id \"" + client_id + "\": set client_id";
    case 0x86: return text + "; check username and password";
    // mosquitto answers a wrong password with "not authorized" too.
    case 0x87: return text + "; check username and password, and that the broker's ACL allows this client";
    case 0x88: case 0x89: return text + "; the broker is not ready: it is retried with backoff";
    default: return text;
  }
}

// The client side of one connection.
class Session {
 public:
  Session(Setup setup, const ClientOptions& o) : setup_(std::move(setup)), opts_(o) {}

  // TLS files are read here (start()), not at load.
  void prepare() {
    if (setup_.endpoint.tls && !tls_) tls_ = make_tls_context(setup_.tls);
  }

  // Connects and waits for the CONNACK; throws ConnectError saying what is wrong.
  Connack connect(bool clean_start, const Properties& props) {
    prepare();
    close();
    auto deadline = Clock::now() + opts_.connect_timeout;
    conn_.open(setup_.endpoint, tls_, setup_.tls.server_name, deadline);
    Connect c;
    c.version = setup_.version;
    c.client_id = setup_.client_id;
    c.clean_start = clean_start;
    c.keep_alive = uint16_t(std::min<int64_t>(65535, std::max<int64_t>(1, opts_.keep_alive.count() / 1000)));
    if (setup_.version == Version::v5) c.props = props;
    if (!opts_.will_topic.empty()) c.will = Will{opts_.will_topic, opts_.will_payload, uint8_t(opts_.will_qos), opts_.will_retain, {}};
    if (!opts_.username.empty()) c.username = opts_.username;
    if (!opts_.password.empty()) c.password = opts_.password;
    std::string bytes;
    encode(bytes, c);
    std::string err;
    if (!conn_.write_all(bytes, deadline, err)) fail_connect(err);
    for (;;) {
      if (auto f = frame()) {
        if (f->type() != Type::connack) fail_connect("the broker answered CONNECT with packet type " + std::to_string(int(f->type())));
        Connack a;
        try {
          a = decode_connack(*f, setup_.version);
        } catch (const DecodeError& e) {
          fail_connect(std::string("malformed CONNACK: ") + e.what());
        }
        if (a.reason != 0) {
          close();
          throw ConnectError(connack_error(a.reason, setup_.version, setup_.client_id, a.props.text(prop::reason_string).value_or("")));
        }
        keep_alive_ = std::chrono::seconds(a.props.number(prop::server_keep_alive).value_or(c.keep_alive));
        receive_max_ = uint16_t(a.props.number(prop::receive_maximum).value_or(65535));
        max_packet_ = a.props.number(prop::maximum_packet_size).value_or(kMaxRemainingLength + 5);
        max_qos_ = uint8_t(a.props.number(prop::maximum_qos).value_or(2));
        retain_available_ = a.props.number(prop::retain_available).value_or(1) != 0;
        last_tx_ = last_rx_ = Clock::now();
        ping_sent_.reset();
        return a;
      }
      if (!conn_.wait_readable(int(std::max<int64_t>(0, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count()))))
        fail_connect(Clock::now() >= deadline ? "no CONNACK within connect_timeout (" + std::to_string(opts_.connect_timeout.count()) + "ms)"
                                              : "waiting for the CONNACK failed");
      if (!conn_.read_some(in_, err)) {
        // mosquitto closes without a CONNACK for some refusals (a 3.1.1 client it will not serve).
        fail_connect(err + " before answering CONNECT (does the broker accept protocol " +
                     std::string(setup_.version == Version::v5 ? "5" : "3.1.1") + ", and this client?)");
      }
    }
  }

  bool connected() const { return conn_.is_open(); }
  void close() {
    conn_.close();
    in_.clear();
    in_pos_ = 0;
    out_.clear();
    out_pos_ = 0;
  }
  // Sends DISCONNECT and waits (bounded) until the broker closes the connection: only then has it
  // read everything before, the last acknowledgements included. Closing at once races with a
  // reconnect under the same client id, whose takeover can drop what the broker had not read yet.
  void disconnect(std::chrono::milliseconds within = std::chrono::milliseconds(2000)) {
    if (!connected()) return;
    auto deadline = Clock::now() + within;
    encode(out_, Disconnect{}, setup_.version);
    std::string err;
    if (conn_.write_all(std::string_view(out_).substr(out_pos_), deadline, err)) {
      while (Clock::now() < deadline &&
             conn_.wait_readable(int(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count())) &&
             conn_.read_some(in_, err))
        in_.clear();
    }
    close();
  }

  // The next whole packet received, if one is buffered; DecodeError if it is malformed.
  std::optional<Frame> frame() {
    auto f = next_frame(std::string_view(in_).substr(in_pos_));
    if (!f) {
      if (in_pos_ == in_.size()) {
        in_.clear();
        in_pos_ = 0;
      } else if (in_pos_ > (1 << 20)) {
        in_.erase(0, in_pos_);
        in_pos_ = 0;
      }
      return std::nullopt;
    }
    in_pos_ += f->second;
    last_rx_ = Clock::now();
    ping_sent_.reset();
    return f->first;
  }
  // Reads what the socket has; false (with `error`) when the connection is gone.
  bool read(std::string& error) { return conn_.read_some(in_, error); }
  bool wait_readable(int ms) const { return conn_.wait_readable(ms); }
  bool has_buffered() const { return conn_.pending(); }

  // Bytes to send; write() sends what the socket takes.
  std::string& out() { return out_; }
  bool write(std::string& error) {
    if (out_pos_ >= out_.size()) return true;
    ssize_t n = conn_.write_some(std::string_view(out_).substr(out_pos_), error);
    if (n < 0) return false;
    if (n > 0) last_tx_ = Clock::now();
    out_pos_ += size_t(n);
    if (out_pos_ == out_.size()) {
      out_.clear();
      out_pos_ = 0;
    }
    return true;
  }
  bool write_all(std::chrono::milliseconds within, std::string& error) {
    bool ok = conn_.write_all(std::string_view(out_).substr(out_pos_), Clock::now() + within, error);
    if (ok) {
      out_.clear();
      out_pos_ = 0;
      last_tx_ = Clock::now();
    }
    return ok;
  }
  size_t unsent() const { return out_.size() - out_pos_; }

  // Keep-alive: queues a PINGREQ when nothing was sent for keep_alive; false (with `error`) when
  // nothing came back within keep_alive of the PINGREQ. `reading`: whether the caller reads the
  // socket at all now (while it does not, silence proves nothing).
  bool keep_alive(bool reading, std::string& error) {
    auto now = Clock::now();
    if (!reading) {
      last_rx_ = now;
      ping_sent_.reset();
    }
    if (ping_sent_ && now - *ping_sent_ > keep_alive_) {
      error = "no answer from the broker within keep_alive (" + std::to_string(keep_alive_.count()) + "s) of a PINGREQ";
      return false;
    }
    if (!ping_sent_ && (now - last_tx_ >= keep_alive_ || now - last_rx_ >= keep_alive_)) {
      encode_ping(out_, Type::pingreq);
      ping_sent_ = now;
    }
    return true;
  }
  // Until the next keep-alive action is due, for poll timeouts.
  std::chrono::milliseconds until_keep_alive() const {
    auto due = ping_sent_ ? *ping_sent_ + keep_alive_ : std::min(last_tx_, last_rx_) + keep_alive_;
    return std::max(std::chrono::milliseconds(0), std::chrono::duration_cast<std::chrono::milliseconds>(due - Clock::now()));
  }

  int fd() const { return conn_.fd(); }
  Version version() const { return setup_.version; }
  const Setup& setup() const { return setup_; }
  const ClientOptions& options() const { return opts_; }
  uint16_t receive_max() const { return receive_max_; }
  uint32_t max_packet() const { return max_packet_; }
  uint8_t max_qos() const { return max_qos_; }
  bool retain_available() const { return retain_available_; }
  std::string where() const { return setup_.endpoint.text(); }

 private:
  [[noreturn]] void fail_connect(const std::string& why) {
    close();
    throw ConnectError("connecting to the MQTT broker at " + where() + " failed: " + why);
  }

  Setup setup_;
  const ClientOptions& opts_;
  SslCtx tls_;
  Connection conn_;
  std::string in_;
  size_t in_pos_ = 0;
  std::string out_;
  size_t out_pos_ = 0;
  Clock::time_point last_tx_{}, last_rx_{};
  std::optional<Clock::time_point> ping_sent_;
  std::chrono::seconds keep_alive_{30};
  uint16_t receive_max_ = 65535;
  uint32_t max_packet_ = kMaxRemainingLength + 5;
  uint8_t max_qos_ = 2;
  bool retain_available_ = true;
};

// Text of an MQTT 5 DISCONNECT from the broker, with the fix where there is one.
inline std::string disconnect_text(const Disconnect& d, const std::string& client_id) {
  std::string text = "the broker disconnected: " + reason_text(d.reason);
  if (auto r = d.props.text(prop::reason_string)) text += ": " + *r;
  if (d.reason == 0x8E)
    text += "; another client connected with client_id \"" + client_id + "\": give every runtime its own client_id";
  return text;
}

}  // namespace edgeflow::mqtt
