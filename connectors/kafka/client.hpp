// What the Kafka source and sink share: the connection options, and turning them into a
// librdkafka configuration at load time, so a wrong or unknown property is a config error with
// its file:line:col (`edgeflow validate` reports it), not a failure at start.
#pragma once

#include <edgeflow/sdk/plugin.hpp>

#include <librdkafka/rdkafka.h>

#include <cmath>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace edgeflow::kafka {

using sdk::Context;
using sdk::Error;
using sdk::Json;

// Members every Kafka component's Config has (it derives from this).
struct ClientOptions {
  std::string brokers;
  std::string security_protocol = "plaintext";
  std::string sasl_mechanism;
  std::string sasl_username;
  std::string sasl_password;
  std::string ssl_ca_location;
  std::string ssl_certificate_location;
  std::string ssl_key_location;
  std::string ssl_key_password;
  Json properties;
};

template <class Cfg>
void describe_client(sdk::Spec<Cfg>& s) {
  auto m = [](auto ClientOptions::*p) { return static_cast<std::remove_reference_t<decltype(std::declval<ClientOptions>().*p)> Cfg::*>(p); };
  s.option("brokers", m(&ClientOptions::brokers))
      .required()
      .doc("Bootstrap brokers, host:port[,host:port...] (librdkafka bootstrap.servers).")
      .example("kafka-1:9092,kafka-2:9092");
  s.option("security_protocol", m(&ClientOptions::security_protocol))
      .one_of("plaintext|ssl|sasl_plaintext|sasl_ssl")
      .doc("How to reach the brokers.")
      .example("sasl_ssl");
  s.option("sasl_mechanism", m(&ClientOptions::sasl_mechanism))
      .doc("With sasl_*: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER.")
      .example("SCRAM-SHA-512");
  s.option("sasl_username", m(&ClientOptions::sasl_username)).doc("SASL user name.").example("edge-site-7");
  s.option("sasl_password", m(&ClientOptions::sasl_password))
      .secret()
      .doc("SASL password; never logged.")
      .example("${file:/run/credentials/edgeflow.service/kafka}");
  s.option("ssl_ca_location", m(&ClientOptions::ssl_ca_location)).doc("CA certificate file (PEM).").example("/etc/ssl/certs/kafka-ca.pem");
  s.option("ssl_certificate_location", m(&ClientOptions::ssl_certificate_location))
      .doc("Client certificate (PEM), for TLS client authentication.")
      .example("/etc/edgeflow/kafka.crt");
  s.option("ssl_key_location", m(&ClientOptions::ssl_key_location)).doc("Client key (PEM).").example("/etc/edgeflow/kafka.key");
  s.option("ssl_key_password", m(&ClientOptions::ssl_key_password)).secret().doc("Password of the client key.");
  s.option("properties", m(&ClientOptions::properties))
      .secret()
      .doc("Any other librdkafka property, name: value (see librdkafka's CONFIGURATION.md); unknown "
           "names and bad values are config errors. Redacted in logs and prints: they may hold credentials.")
      .example("{ socket.keepalive.enable: true, sasl.oauthbearer.config: \"principal=edge\" }");
}

struct ConfDeleter {
  void operator()(rd_kafka_conf_t* c) const { rd_kafka_conf_destroy(c); }
};
using Conf = std::unique_ptr<rd_kafka_conf_t, ConfDeleter>;

// Sets one property; `key` names the config key for the error (file:line:col from ctx).
inline void set(const Context& ctx, rd_kafka_conf_t* conf, const std::string& name, const std::string& value,
                const std::string& key, bool secret = false) {
  char err[512];
  switch (rd_kafka_conf_set(conf, name.c_str(), value.c_str(), err, sizeof err)) {
    case RD_KAFKA_CONF_OK: return;
    case RD_KAFKA_CONF_UNKNOWN:
      throw Error(ctx.where(key) + ": " + key + ": librdkafka has no property '" + name +
                  "' (see https://github.com/confluentinc/librdkafka/blob/master/CONFIGURATION.md)");
    default:
      throw Error(ctx.where(key) + ": " + key + ": " + (secret ? std::string("invalid value") : std::string(err)));
  }
}

// The text librdkafka wants for a YAML scalar.
inline std::string property_text(const Json& v) {
  if (auto* s = v.string()) return *s;
  if (auto* b = std::get_if<bool>(&v.v)) return *b ? "true" : "false";
  if (auto* i = std::get_if<int64_t>(&v.v)) return std::to_string(*i);
  if (auto* d = std::get_if<double>(&v.v)) {
    if (std::floor(*d) == *d) return std::to_string(int64_t(*d));
    return std::to_string(*d);
  }
  return "";
}

// The connection part of a configuration; the component adds its own properties after.
// `fixed` are properties the component sets itself and the passthrough map may not override.
inline Conf client_conf(const Context& ctx, const ClientOptions& o, const std::vector<std::string>& fixed) {
  Conf conf(rd_kafka_conf_new());
  set(ctx, conf.get(), "bootstrap.servers", o.brokers, "brokers");
  set(ctx, conf.get(), "client.id", "edgeflow-" + ctx.name(), "");
  set(ctx, conf.get(), "security.protocol", o.security_protocol, "security_protocol");
  if (!o.sasl_mechanism.empty()) set(ctx, conf.get(), "sasl.mechanisms", o.sasl_mechanism, "sasl_mechanism");
  if (!o.sasl_username.empty()) set(ctx, conf.get(), "sasl.username", o.sasl_username, "sasl_username");
  if (!o.sasl_password.empty()) set(ctx, conf.get(), "sasl.password", o.sasl_password, "sasl_password", true);
  if (!o.ssl_ca_location.empty()) set(ctx, conf.get(), "ssl.ca.location", o.ssl_ca_location, "ssl_ca_location");
  if (!o.ssl_certificate_location.empty())
    set(ctx, conf.get(), "ssl.certificate.location", o.ssl_certificate_location, "ssl_certificate_location");
  if (!o.ssl_key_location.empty()) set(ctx, conf.get(), "ssl.key.location", o.ssl_key_location, "ssl_key_location");
  if (!o.ssl_key_password.empty()) set(ctx, conf.get(), "ssl.key.password", o.ssl_key_password, "ssl_key_password", true);
  if (auto* props = o.properties.object()) {
    for (auto& [name, value] : *props) {
      std::string key = "properties." + name;
      for (auto& f : fixed)
        if (name == f)
          throw Error(ctx.where(key) + ": " + key + ": edgeflow sets " + name +
                      " itself (it is what makes delivery safe); use the connector's own options");
      if (value.object() || value.array() || value.is_null())
        throw Error(ctx.where(key) + ": " + key + ": expected a text, number or boolean");
      set(ctx, conf.get(), name, property_text(value), key, true);
    }
  } else if (!o.properties.is_null()) {
    throw Error(ctx.where("properties") + ": properties: expected a map of librdkafka property: value");
  }
  return conf;
}

// What a librdkafka handle's opaque points to: the component owning the handle.
struct Handler {
  virtual ~Handler() = default;
  virtual const Context& log_context() const = 0;
  // The last error librdkafka reported (a refused connection, a name that does not resolve).
  void note_error(const char* reason) {
    std::lock_guard lock(error_mutex_);
    last_error_ = reason;
  }
  std::string last_error() const {
    std::lock_guard lock(error_mutex_);
    return last_error_;
  }

 private:
  mutable std::mutex error_mutex_;
  std::string last_error_;
};

// Throws unless a broker answers within timeout_ms. A flow whose brokers cannot be reached fails
// its start, so it shows as not ready with librdkafka's reason (and is started again with
// backoff) instead of running while nothing moves.
inline void check_reachable(rd_kafka_t* rk, const Handler& h, const std::string& brokers, int timeout_ms) {
  const rd_kafka_metadata_t* md = nullptr;
  rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, nullptr, &md, timeout_ms);
  if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
    rd_kafka_metadata_destroy(md);
    return;
  }
  std::string why = h.last_error();
  throw Error("cannot reach the Kafka brokers " + brokers + " within " + std::to_string(timeout_ms / 1000) +
              " s: " + (why.empty() ? std::string(rd_kafka_err2str(e)) : why));
}

// Makes `h` the handle's opaque and sends librdkafka's own log lines to the instance's log.
inline void attach(rd_kafka_conf_t* conf, Handler* h) {
  rd_kafka_conf_set_opaque(conf, h);
  rd_kafka_conf_set_log_cb(conf, [](const rd_kafka_t* rk, int level, const char* fac, const char* buf) {
    auto* h = static_cast<Handler*>(rd_kafka_opaque(rk));
    if (!h) return;
    const Context& c = h->log_context();
    std::string line = std::string("librdkafka ") + fac + ": " + buf;
    if (level <= 3) c.error(line);
    else if (level <= 4) c.warn(line);
    else if (level <= 6) c.info(line);
    else c.debug(line);
  });
}

}  // namespace edgeflow::kafka
