#include "admin.hpp"
#include "console_assets.hpp"
#include "repair.hpp"

#include "log.hpp"

#include <http_server.hpp>


#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cstdio>
#include <map>
#include <stdexcept>

namespace edgeflow {

namespace {

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

void str(Writer& w, std::string_view s) { w.String(s.data(), rapidjson::SizeType(s.size())); }

// "<flow>/<key>[:<type>]" → key and type.
std::pair<std::string, std::string> stage_of(const std::string& instance) {
  size_t slash = instance.find('/');
  std::string rest = slash == std::string::npos ? instance : instance.substr(slash + 1);
  size_t colon = rest.find(':');
  if (colon == std::string::npos) return {rest, ""};
  return {rest.substr(0, colon), rest.substr(colon + 1)};
}

void flow_summary(Writer& w, const Flow& f) {
  const FlowStats& s = f.stats();
  w.Key("name");
  str(w, f.name());
  w.Key("state");
  w.String(state_name(f.state()));
  w.Key("last_error");
  str(w, f.last_error());
  w.Key("restarts");
  w.Uint64(s.restarts.load());
  w.Key("emitted");
  w.Uint64(s.emitted.load());
  w.Key("delivered");
  w.Uint64(s.delivered.load());
  w.Key("dead_lettered");
  w.Uint64(s.dead_lettered.load());
  w.Key("retries");
  w.Uint64(s.retries.load());
  w.Key("in_flight");
  w.Int64(s.in_flight.load());
  w.Key("in_flight_bytes");
  w.Uint64(s.in_flight_bytes.load());
  // What the plugins report: a source's position and lag among them.
  w.Key("plugin_metrics");
  w.StartArray();
  for (auto& m : f.plugin_metrics()) {
    auto [stage, type] = stage_of(m.instance);
    w.StartObject();
    w.Key("stage");
    str(w, stage);
    w.Key("type");
    str(w, type);
    w.Key("name");
    str(w, m.name);
    w.Key("kind");
    w.String(m.kind == EF_METRIC_COUNTER ? "counter" : "gauge");
    w.Key("value");
    w.Double(m.value);
    w.EndObject();
  }
  w.EndArray();
}

// Prometheus label values: backslash, double quote and newline escaped.
std::string label(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    if (c == '\\' || c == '"') out += '\\';
    out += c;
  }
  return out;
}

std::string number(double v) {
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

// One metric family: HELP and TYPE once, then its samples.
struct Family {
  std::string help, type;
  std::vector<std::string> samples;
};

class Exposition {
 public:
  Family& family(const std::string& name, const std::string& type, const std::string& help) {
    auto [it, fresh] = families_.try_emplace(name);
    if (fresh) {
      order_.push_back(name);
      it->second.type = type;
      it->second.help = help;
    }
    return it->second;
  }
  void sample(const std::string& name, const std::string& type, const std::string& help, const std::string& labels,
              double value, const std::string& suffix = "") {
    family(name, type, help).samples.push_back(name + suffix + (labels.empty() ? "" : "{" + labels + "}") + " " +
                                               number(value));
  }
  std::string text() const {
    std::string out;
    for (auto& name : order_) {
      const Family& f = families_.at(name);
      out += "# HELP " + name + " " + f.help + "\n# TYPE " + name + " " + f.type + "\n";
      for (auto& s : f.samples) out += s + "\n";
    }
    return out;
  }

 private:
  std::map<std::string, Family> families_;
  std::vector<std::string> order_;
};

bool constant_time_equal(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ (i < b.size() ? b[i] : 0));
  return diff == 0;
}

}  // namespace

std::optional<AdminOptions> parse_admin_address(const std::string& text) {
  if (text == "off") return std::nullopt;
  AdminOptions o;
  std::string port = text;
  if (size_t colon = text.rfind(':'); colon != std::string::npos) {
    o.host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (o.host.size() > 2 && o.host.front() == '[' && o.host.back() == ']') o.host = o.host.substr(1, o.host.size() - 2);
    if (o.host.empty()) throw std::invalid_argument("--admin " + text + ": the host before ':' is empty");
  }
  unsigned value = 0;
  auto r = std::from_chars(port.data(), port.data() + port.size(), value);
  if (r.ec != std::errc() || r.ptr != port.data() + port.size() || value > 65535)
    throw std::invalid_argument("--admin " + text + ": expected [HOST:]PORT (e.g. 127.0.0.1:9464) or off");
  o.port = uint16_t(value);
  return o;
}

std::string flows_json(const Runtime& rt) {
  rapidjson::StringBuffer out;
  Writer w(out);
  w.StartObject();
  w.Key("flows");
  w.StartArray();
  for (auto& f : rt.flows()) {
    w.StartObject();
    flow_summary(w, *f);
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return std::string(out.GetString(), out.GetSize());
}

static double buffer_age(const BufferStats& b) {
  int64_t oldest = b.oldest_ms.load();
  if (oldest == 0) return 0;
  auto now = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  return double(std::max<int64_t>(now - oldest, 0)) / 1000;
}

std::string flow_json(const Flow& f) {
  rapidjson::StringBuffer out;
  Writer w(out);
  const FlowStats& s = f.stats();
  w.StartObject();
  flow_summary(w, f);
  w.Key("backpressure_seconds");
  w.Double(double(s.backpressure_ns.load()) / 1e9);
  w.Key("latency");
  w.StartObject();
  uint64_t count = 0;
  for (size_t i = 0; i <= LatencyHistogram::kBounds.size(); ++i) count += s.latency.bucket(i);
  w.Key("count");
  w.Uint64(count);
  w.Key("sum_seconds");
  w.Double(s.latency.sum_seconds());
  w.EndObject();
  w.Key("stages");
  w.StartArray();
  for (auto& st : f.stages()) {
    w.StartObject();
    w.Key("stage");
    str(w, st->key);
    w.Key("type");
    str(w, st->type);
    for (auto [name, c] : {std::pair{"in", &st->in}, {"out", &st->out}, {"dropped", &st->dropped},
                           {"rejected", &st->rejected}, {"retried", &st->retried}, {"bytes_in", &st->bytes_in},
                           {"bytes_out", &st->bytes_out}}) {
      w.Key(name);
      w.Uint64(c->get());
    }
    if (const BufferStats* b = st->buffer.get()) {
      w.Key("buffer");
      w.StartObject();
      w.Key("records");
      w.Uint64(b->records.load());
      w.Key("bytes");
      w.Uint64(b->bytes.load());
      w.Key("max_bytes");
      w.Uint64(b->max_bytes);
      w.Key("oldest_age_seconds");
      w.Double(buffer_age(*b));
      w.Key("blocked");
      w.Uint64(b->blocked.load());
      for (auto [name, c] : {std::pair{"appended", &b->appended}, {"drained", &b->drained}, {"refused", &b->refused},
                             {"damaged", &b->damaged}}) {
        w.Key(name);
        w.Uint64(c->get());
      }
      w.EndObject();
    }
    w.EndObject();
  }
  w.EndArray();
  w.Key("config");  // the effective definition, secrets redacted
  str(w, scrub(describe_flow(f.spec()), f.spec().secrets));  // also a value that equals a secret
  w.EndObject();
  return std::string(out.GetString(), out.GetSize());
}

std::string prometheus_text(const Runtime& rt) {
  Exposition e;
  e.sample("edgeflow_build_info", "gauge", "The running edgeflow build.",
           "version=\"" + label(EDGEFLOW_VERSION) + "\",abi=\"" + std::to_string(EF_ABI_MAJOR) + "." +
               std::to_string(EF_ABI_MINOR) + "\"",
           1);
  std::vector<const LoadedPlugin*> seen;
  auto plugins = rt.lock_plugins();
  for (auto& c : rt.plugins().components()) {
    if (std::find(seen.begin(), seen.end(), c.plugin) != seen.end()) continue;
    seen.push_back(c.plugin);
    e.sample("edgeflow_plugin_info", "gauge", "A loaded plugin.",
             "plugin=\"" + label(c.plugin->info->name) + "\",version=\"" + label(c.plugin->info->version) +
                 "\",file=\"" + label(c.plugin->file) + "\"",
             1);
  }
  e.sample("edgeflow_plugins_refused", "gauge", "Plugin files found but refused at load (the log says why).", "",
           double(rt.plugins().refusals().size()));
  plugins.unlock();

  for (auto& fp : rt.flows()) {
    const Flow& f = *fp;
    const FlowStats& s = f.stats();
    std::string fl = "flow=\"" + label(f.name()) + "\"";
    for (FlowState st : {FlowState::created, FlowState::starting, FlowState::running, FlowState::draining,
                         FlowState::backoff, FlowState::finished, FlowState::stopped, FlowState::failed})
      e.sample("edgeflow_flow_state", "gauge", "1 for the state the flow is in.",
               fl + ",state=\"" + state_name(st) + "\"", f.state() == st ? 1 : 0);
    e.sample("edgeflow_flow_restarts_total", "counter", "Restarts after a failure.", fl, double(s.restarts.load()));
    e.sample("edgeflow_flow_emitted_total", "counter", "Messages the source emitted.", fl, double(s.emitted.load()));
    e.sample("edgeflow_flow_delivered_total", "counter", "Source messages acknowledged as delivered end to end.", fl,
             double(s.delivered.load()));
    e.sample("edgeflow_flow_dead_lettered_total", "counter", "Messages written to the dead letter.", fl,
             double(s.dead_lettered.load()));
    e.sample("edgeflow_flow_retries_total", "counter", "Retry answers from sinks.", fl, double(s.retries.load()));
    e.sample("edgeflow_flow_in_flight_messages", "gauge", "Messages emitted and not resolved yet.", fl,
             double(s.in_flight.load()));
    e.sample("edgeflow_flow_in_flight_bytes", "gauge", "Bytes of the messages in flight.", fl,
             double(s.in_flight_bytes.load()));
    e.sample("edgeflow_flow_backpressure_seconds_total", "counter", "Time the source waited for room in the flow.", fl,
             double(s.backpressure_ns.load()) / 1e9);
    const char* lat = "edgeflow_flow_delivery_latency_seconds";
    const char* lat_help = "From the source's emit to the end-to-end acknowledgement.";
    uint64_t cumulative = 0;
    for (size_t i = 0; i <= LatencyHistogram::kBounds.size(); ++i) {
      cumulative += s.latency.bucket(i);
      std::string le = i < LatencyHistogram::kBounds.size() ? number(LatencyHistogram::kBounds[i]) : "+Inf";
      e.sample(lat, "histogram", lat_help, fl + ",le=\"" + le + "\"", double(cumulative), "_bucket");
    }
    e.sample(lat, "histogram", lat_help, fl, s.latency.sum_seconds(), "_sum");
    e.sample(lat, "histogram", lat_help, fl, double(cumulative), "_count");

    for (auto& st : f.stages()) {
      std::string sl = fl + ",stage=\"" + label(st->key) + "\",type=\"" + label(st->type) + "\"";
      auto c = [&](const char* name, const char* help, const Counter& v) {
        e.sample(std::string("edgeflow_stage_") + name + "_total", "counter", help, sl, double(v.get()));
      };
      c("messages_in", "Messages into the stage (a sink: written, retries again).", st->in);
      c("messages_out", "Messages out of the stage (the source: emitted; a sink: delivered).", st->out);
      c("messages_dropped", "Messages a step dropped.", st->dropped);
      c("messages_rejected", "Messages the stage sent to the dead letter.", st->rejected);
      c("messages_retried", "Retry answers of a sink.", st->retried);
      c("bytes_in", "In-memory bytes of the messages into the stage.", st->bytes_in);
      c("bytes_out", "In-memory bytes of the messages out of the stage.", st->bytes_out);
      if (const BufferStats* b = st->buffer.get()) {
        e.sample("edgeflow_buffer_records", "gauge", "Messages in the sink's durable buffer.", sl, double(b->records.load()));
        e.sample("edgeflow_buffer_bytes", "gauge", "Message bytes in the sink's durable buffer.", sl, double(b->bytes.load()));
        e.sample("edgeflow_buffer_max_bytes", "gauge", "The buffer's max_size.", sl, double(b->max_bytes));
        e.sample("edgeflow_buffer_oldest_age_seconds", "gauge", "Age of the oldest message in the buffer; 0 when empty.",
                 sl, buffer_age(*b));
        e.sample("edgeflow_buffer_blocked_messages", "gauge", "Messages waiting for room in a full buffer (when_full: block).",
                 sl, double(b->blocked.load()));
        auto bc = [&](const char* name, const char* help, const Counter& v) {
          e.sample(std::string("edgeflow_buffer_") + name + "_total", "counter", help, sl, double(v.get()));
        };
        bc("appended", "Messages written to the buffer (and acknowledged to the source).", b->appended);
        bc("drained", "Messages the sink delivered (or the dead letter took) from the buffer.", b->drained);
        bc("refused", "Messages sent to the dead letter because the buffer was full or they were larger than it.", b->refused);
        bc("damaged", "Records that failed their checksum or could not be read, sent to the dead letter.", b->damaged);
      }
    }
    for (auto& m : f.plugin_metrics()) {
      auto [stage, type] = stage_of(m.instance);
      bool counter = m.kind == EF_METRIC_COUNTER;
      e.sample("edgeflow_plugin_" + m.name + (counter ? "_total" : ""), counter ? "counter" : "gauge",
               "Reported by the plugin (see its documentation).",
               fl + ",stage=\"" + label(stage) + "\",type=\"" + label(type) + "\"", m.value);
    }
  }
  return e.text();
}

// ---------------------------------------------------------------------------------------------
// The server

struct AdminServer::Impl : net::Handler {
  Runtime& rt;
  AdminOptions options;
  std::atomic<bool> stopping{false};
  std::atomic<int> taps{0};
  std::unique_ptr<net::HttpServer> server;

  Impl(Runtime& r, AdminOptions o) : rt(r), options(std::move(o)) {}

  std::optional<net::Response> head(const net::Request& req, uint64_t& max_body) override {
    // Only a signal takes a body (the command); filters are in the query.
    bool signal = req.path.rfind("/flows/", 0) == 0 && req.path.size() > 14 &&
                  req.path.compare(req.path.size() - 7, 7, "/signal") == 0;
    max_body = signal ? kMaxSignalBytes : 0;
    bool action = signal || req.path == "/dlq/replay" || req.path == "/dlq/purge" ||
                  (req.path == "/reload" && req.method == "POST");
    if (action ? req.method != "POST" : req.method != "GET" && req.method != "HEAD") {
      net::Response r = net::error_response(405, action ? "only POST is served here" : "only GET is served here");
      r.headers.push_back({"Allow", action ? "POST" : "GET, HEAD"});
      return r;
    }
    // A web page may POST a plain form to 127.0.0.1 from any origin; it cannot send JSON there
    // without a CORS preflight, which this API never answers.
    if (action) {
      const std::string* type = req.header("Content-Type");
      if (!type || type->rfind("application/json", 0) != 0)
        return net::error_response(415, "send actions with 'Content-Type: application/json' (filters go in the query)");
    }
    // The console's own files hold no data: the page loads, then asks for the token its calls need.
    bool console = req.path == "/" || req.path == "/favicon.ico" || req.path.rfind("/console/", 0) == 0;
    if (req.path != "/health" && !console && !options.token.empty()) {
      const std::string* auth = req.header("Authorization");
      if (!auth || !constant_time_equal(*auth, "Bearer " + options.token)) {
        net::Response r = net::error_response(
            401, !auth ? "this admin API needs 'Authorization: Bearer <token>'" : "wrong token");
        r.headers.push_back({"WWW-Authenticate", "Bearer"});
        return r;
      }
    }
    return std::nullopt;
  }

  void handle(net::Request req, std::shared_ptr<net::Reply> reply) override {
    const std::string& path = req.path;
    if (path == "/health") return reply->send(json(200, R"({"status":"alive"})"));
    if (path == "/ready") return reply->send(ready());
    if (path == "/metrics") {
      net::Response r = json(200, prometheus_text(rt));
      r.content_type = "text/plain; version=0.0.4; charset=utf-8";
      return reply->send(std::move(r));
    }
    if (path == "/flows") return reply->send(json(200, flows_json(rt)));
    if (path == "/" || path == "/favicon.ico" || path.rfind("/console/", 0) == 0) return reply->send(console(path));
    if (path == "/dlq" || path.rfind("/dlq/", 0) == 0) return reply->send(dlq(path, req.query));
    if (path == "/reload") {
      if (req.method == "POST") {
        ReloadResult r = rt.reload();
        return reply->send(json(r.applied ? 200 : 422, r.json()));
      }
      auto last = rt.last_reload();
      return reply->send(json(200, last ? last->json() : R"({"status":"none"})"));
    }
    if (path.rfind("/flows/", 0) == 0) {
      std::string rest = path.substr(7);
      auto ends = [&](std::string_view tail) {
        bool yes = rest.size() > tail.size() && rest.compare(rest.size() - tail.size(), tail.size(), tail) == 0;
        if (yes) rest.resize(rest.size() - tail.size());
        return yes;
      };
      bool is_tap = ends("/tap"), is_signal = !is_tap && ends("/signal");
      auto f = rt.flow(rest);
      if (!f) return reply->send(net::error_response(404, "no flow named '" + rest + "'"));
      if (is_signal) return reply->send(signal(*f, req.body));
      if (!is_tap) return reply->send(json(200, flow_json(*f)));
      return tap(*f, req.query, *reply);
    }
    reply->send(net::error_response(
        404, "no such endpoint; there are /console/, /health, /ready, /metrics, /flows, /flows/<name>, "
             "/flows/<name>/tap, /flows/<name>/signal, /dlq, /dlq/<id>, /dlq/replay, /dlq/purge and /reload"));
  }

 private:
  static constexpr int kMaxTaps = 6;  // of the 8 handler threads: two stay for everything else
  static constexpr uint64_t kMaxSignalBytes = 64 << 10;

  // The web console (runtime/console): its page, script and style, from the binary.
  static net::Response console(const std::string& path) {
    net::Response r;
    if (path == "/favicon.ico") {  // browsers ask; the console has none
      r.status = 204;
      r.content_type = "image/x-icon";
      return r;
    }
    if (path == "/") {
      r.status = 302;
      r.headers.push_back({"Location", "/console/"});
      r.content_type = "text/plain";
      return r;
    }
    std::string name = path.substr(9);
    const ConsoleAsset* a = console_asset(name.empty() ? "index.html" : name);
    if (!a) return net::error_response(404, "the console has no file '" + name + "'");
    r.body = a->body;
    r.content_type = std::string(a->content_type) + "; charset=utf-8";
    // Nothing but this daemon: no inline script, no other origin, no framing by another page.
    r.headers.push_back({"Content-Security-Policy",
                         "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
                         "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"});
    r.headers.push_back({"X-Content-Type-Options", "nosniff"});
    r.headers.push_back({"Cache-Control", "no-cache"});
    return r;
  }

  // A command for the flow's source (`edgeflow cdc snapshot` sends one): a JSON object.
  static net::Response signal(Flow& f, const std::string& body) {
    host::Doc command;
    // Iterative: a body of nested brackets cannot exhaust the stack.
    command.Parse<rapidjson::kParseIterativeFlag | rapidjson::kParseFullPrecisionFlag | rapidjson::kParseValidateEncodingFlag>(
        body.data(), body.size());
    if (command.HasParseError() || !command.IsObject())
      return net::error_response(400, "the body must be a JSON object in UTF-8, like {\"action\":\"snapshot\",\"tables\":[\"public.orders\"]}");
    std::string reason;
    switch (f.signal(command, reason)) {
      case Flow::SignalResult::taken: return json(200, R"({"accepted":true})");
      case Flow::SignalResult::refused: return net::error_response(422, reason);
      default: return net::error_response(409, reason);
    }
  }

  static net::Response json(int status, std::string body) {
    net::Response r;
    r.status = status;
    r.body = std::move(body);
    return r;
  }

  // The repair station: list, show, replay and purge dead letters (repair.hpp).
  net::Response dlq(const std::string& path, const std::string& query) {
    dlq::Filter f;
    std::string error;
    if (path == "/dlq" || path == "/dlq/replay" || path == "/dlq/purge") {
      Params params, rest;
      ReplayOptions o;
      bool all = false;
      for (auto& [k, v] : query_parameters(query)) {
        if (k == "from" && path == "/dlq/replay") {
          if (v != "source" && v != "stage") return net::error_response(400, "from: source or stage, not '" + v + "'");
          o.from_source = v == "source";
        } else if (k == "timeout" && path == "/dlq/replay") {
          int64_t ms = 0;
          if (!host::parse_duration(v, ms) || ms <= 0 || ms > 600000)
            return net::error_response(400, "timeout: a duration up to 10m, like 30s, not '" + v + "'");
          o.timeout = std::chrono::milliseconds(ms);
        } else if (k == "all" && path == "/dlq/purge") {
          all = v == "true";
        } else {
          params.emplace_back(k, v);
        }
      }
      if (!filter_from_params(params, f, error)) return net::error_response(400, error);
      try {
        dlq::LetterStore store(dead_letter_store_path(rt.options().state_dir));
        if (path == "/dlq") {
          if (f.limit == 0) f.limit = 1000;
          return json(200, letters_json(store.list(f)));
        }
        if (path == "/dlq/purge") {
          if (f.empty() && !all)
            return net::error_response(400, "purge needs a filter (flow, stage, reason, since, until, state, id), or all=true");
          return json(200, "{\"purged\":" + std::to_string(store.purge(f)) + "}");
        }
        std::unique_lock one(replay_mutex, std::try_to_lock);
        if (!one.owns_lock()) return net::error_response(409, "a replay is running; try again when it is done");
        return json(200, replay_letters(rt, store, f, o));
      } catch (const dlq::StoreError& e) {
        return net::error_response(500, e.what());
      }
    }
    int64_t id = 0;
    std::string_view tail = std::string_view(path).substr(5);
    auto r = std::from_chars(tail.data(), tail.data() + tail.size(), id);
    if (r.ec != std::errc() || r.ptr != tail.data() + tail.size() || id <= 0)
      return net::error_response(404, "no such endpoint: /dlq/<id> takes a letter id");
    try {
      dlq::LetterStore store(dead_letter_store_path(rt.options().state_dir));
      auto l = store.get(id);
      if (!l) return net::error_response(404, "no letter " + std::to_string(id));
      return json(200, dlq::to_json(*l));
    } catch (const dlq::StoreError& e) {
      return net::error_response(500, e.what());
    }
  }
  std::mutex replay_mutex;

  net::Response ready() {
    rapidjson::StringBuffer out;
    Writer w(out);
    bool all = true;
    w.StartObject();
    w.Key("not_running");
    w.StartArray();
    for (auto& f : rt.flows()) {
      if (f->state() == FlowState::running) continue;
      all = false;
      w.StartObject();
      w.Key("flow");
      str(w, f->name());
      w.Key("state");
      w.String(state_name(f->state()));
      w.EndObject();
    }
    w.EndArray();
    w.Key("ready");
    w.Bool(all);
    w.EndObject();
    return json(all ? 200 : 503, out.GetString());
  }

  // Server-Sent Events: one `message` event per sampled message (data: its JSON), a `dropped`
  // event when the subscriber fell behind, a comment every 15 s to notice a client gone.
  void tap(Flow& f, const std::string& query, net::Reply& reply) {
    std::string stage = "source";
    double rate = 10;
    for (auto& [k, v] : query_parameters(query)) {
      if (k == "stage") stage = v;
      if (k == "rate") {
        auto r = std::from_chars(v.data(), v.data() + v.size(), rate);
        if (r.ec != std::errc() || r.ptr != v.data() + v.size() || !(rate > 0) || rate > 1000)
          return reply.send(net::error_response(400, "rate: events per second, more than 0 and at most 1000"));
      }
    }
    int index = f.stage_index(stage);
    if (index < 0) {
      // A step's or sink's type names it too, when only one stage has it.
      int match = -1, matches = 0;
      for (size_t i = 0; i < f.stages().size(); ++i) {
        if (f.stages()[i]->type != stage) continue;
        match = int(i);
        ++matches;
      }
      if (matches == 1) index = match;
    }
    if (index < 0) {
      std::string known;
      for (auto& st : f.stages()) known += (known.empty() ? "" : ", ") + st->key;
      return reply.send(net::error_response(404, "flow '" + f.name() + "' has no stage '" + stage + "'; it has " + known));
    }
    if (taps.fetch_add(1) >= kMaxTaps) {
      taps.fetch_sub(1);
      return reply.send(net::error_response(503, "too many taps open; close one and try again", 5));
    }
    auto sub = f.taps().subscribe(size_t(index), rate);
    bool open = reply.stream_start(200, "text/event-stream", {{"Cache-Control", "no-cache"}});
    std::string head = ": tap of flow " + f.name() + ", stage " + f.stages()[size_t(index)]->key + ", at most " +
                       number(rate) + " events/s\n\n";
    open = open && reply.stream_write(head);
    std::vector<std::string> events;
    uint64_t dropped = 0, reported = 0;
    auto idle_since = std::chrono::steady_clock::now();
    while (open && !stopping.load() && !reply.gone()) {
      bool more = f.taps().next(*sub, events, dropped, std::chrono::milliseconds(500));
      std::string out;
      for (auto& e : events) out += "event: message\ndata: " + e + "\n\n";
      if (dropped != reported) {
        out += "event: dropped\ndata: {\"dropped\":" + std::to_string(dropped) + "}\n\n";
        reported = dropped;
      }
      auto now = std::chrono::steady_clock::now();
      if (!events.empty()) idle_since = now;
      else if (now - idle_since > std::chrono::seconds(15)) {
        out += ": keep-alive\n\n";
        idle_since = now;
      }
      if (!out.empty()) open = reply.stream_write(out);
      if (!more) break;
    }
    reply.stream_end();
    f.taps().unsubscribe(sub);
    taps.fetch_sub(1);
  }

  // "a=1&b=x%20y" → pairs, percent-decoded ('+' is a space).
  static std::vector<std::pair<std::string, std::string>> query_parameters(const std::string& query) {
    std::vector<std::pair<std::string, std::string>> out;
    auto decode = [](std::string_view s) {
      std::string r;
      for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '+') r += ' ';
        else if (s[i] == '%' && i + 2 < s.size() + 0 && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
                 std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
          r += char(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16));
          i += 2;
        } else r += s[i];
      }
      return r;
    };
    std::string_view rest = query;
    while (!rest.empty()) {
      size_t amp = rest.find('&');
      std::string_view pair = rest.substr(0, amp);
      size_t eq = pair.find('=');
      out.emplace_back(decode(pair.substr(0, eq)), eq == std::string_view::npos ? "" : decode(pair.substr(eq + 1)));
      rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
    }
    return out;
  }
};

AdminServer::AdminServer(Runtime& rt, AdminOptions options) : impl_(std::make_unique<Impl>(rt, std::move(options))) {
  const AdminOptions& o = impl_->options;
  std::string where = (o.host.find(':') != std::string::npos ? "[" + o.host + "]" : o.host) + ":" + std::to_string(o.port);
  if (!net::is_loopback(o.host) && o.token.empty())
    throw std::runtime_error("admin API: " + where +
                             " is not a loopback address, and the API is never exposed without a token: give one "
                             "with --admin-token-file FILE (or $EDGEFLOW_ADMIN_TOKEN), or bind to 127.0.0.1");
  net::ServerSettings s;
  s.listen = where;
  s.threads = 8;
  s.max_connections = 256;
  s.max_connections_per_client = 64;
  try {
    impl_->server = std::make_unique<net::HttpServer>(s, *impl_);
  } catch (const std::exception& e) {
    throw std::runtime_error("admin API: " + std::string(e.what()) +
                             " (choose another address with --admin HOST:PORT, or --admin off)");
  }
}

AdminServer::~AdminServer() { stop(); }

uint16_t AdminServer::port() const { return impl_->server->port(); }

void AdminServer::stop() {
  if (!impl_->server || impl_->stopping.exchange(true)) return;
  for (auto& f : impl_->rt.flows()) f->taps().close_all();
  impl_->server->stop();
}

}  // namespace edgeflow
