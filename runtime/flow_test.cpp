#include "flow_test.hpp"

#include "engine_internal.hpp"

#include <edgeflow/sdk/expr.hpp>

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <optional>
#include <set>
#include <unordered_map>

namespace edgeflow::flowtest {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using edgeflow::detail::C;
using edgeflow::detail::FM;
using edgeflow::detail::I;

// Iterative: whatever nesting a payload has, parsing it cannot exhaust the stack.
constexpr unsigned kParse = rapidjson::kParseFullPrecisionFlag | rapidjson::kParseIterativeFlag;

// What one capture received.
struct Got {
  std::string payload, key, content_type;
  Pairs headers, meta;
  bool payload_json = false;  // dead letters: the envelope kept the payload as JSON
  std::string stage, reason;  // dead letters
  std::vector<std::string> when_failed;
};

// One test while it runs: what its input source and captures share with the runner.
struct Run {
  const Case* test = nullptr;
  std::mutex mutex;
  std::map<std::string, std::vector<Got>> sinks;
  std::vector<Got> dead_letter;
  size_t acked = 0;
};

std::mutex g_runs_mutex;
std::unordered_map<const Flow*, Run*> g_runs;

Run& run_of(ef_ctx* ctx) {
  std::lock_guard lock(g_runs_mutex);
  return *g_runs.at(I(ctx)->flow);
}

const ef_host_api& H() { return *runtime_host_api(); }

std::string_view view(const char* p, size_t n) { return p ? std::string_view(p, n) : std::string_view(); }

// --- the test input: the source every test's flow gets ----------------------------------------

struct Input {
  ef_ctx* ctx;
};

ef_status input_run(void* self) {
  ef_ctx* ctx = static_cast<Input*>(self)->ctx;
  Run& run = run_of(ctx);
  const auto& inputs = run.test->input;
  // Batches of at most 100, so a test with more inputs than the flow's max_in_flight still fits.
  for (size_t at = 0; at < inputs.size();) {
    std::vector<ef_message*> batch;
    for (; at < inputs.size() && batch.size() < 100; ++at) {
      const auto& in = inputs[at];
      ef_message* m = H().message_new(ctx);
      H().message_set_payload(m, in.payload.data(), in.payload.size());
      H().message_set_key(m, in.key.data(), in.key.size());
      H().message_set_content_type(m, in.content_type.data(), in.content_type.size());
      H().message_set_timestamp_ms(m, in.timestamp_ms);
      H().message_set_token(m, at);
      for (auto& [k, v] : in.headers) H().message_set_header(m, k.data(), k.size(), v.data(), v.size());
      for (auto& [k, v] : in.meta) H().message_set_meta(m, k.data(), k.size(), v.data(), v.size());
      batch.push_back(m);
    }
    if (H().emit(ctx, batch.data(), batch.size(), -1) != EF_OK) {
      for (auto* m : batch) H().message_free(ctx, m);
      return EF_OK;
    }
  }
  for (;;) {
    {
      std::lock_guard lock(run.mutex);
      if (run.acked == inputs.size()) return EF_OK;
    }
    if (H().poll(ctx, 100) == EF_STOPPING) return EF_OK;
  }
}

void input_on_ack(void* self, const ef_ack*, size_t n) {
  Run& run = run_of(static_cast<Input*>(self)->ctx);
  std::lock_guard lock(run.mutex);
  run.acked += n;
}

// --- the capture: every sink's and the dead letter's stand-in ----------------------------------

struct Capture {
  ef_ctx* ctx;
  std::string sink;  // the sink's name; empty for the dead letter
};

Got capture_message(ef_message* msg, bool dead_letter) {
  Got g;
  size_t n = 0;
  const char* p = H().message_payload(msg, &n);
  g.payload.assign(view(p, n));
  FlowMessage* m = FM(msg);
  g.key = m->key;
  g.content_type = m->content_type;
  g.headers = m->headers;
  g.meta = m->meta;
  if (!dead_letter) return g;
  // The envelope the engine wrote (Flow::dead_letter): what the flow rejected, and why.
  rapidjson::Document d;
  d.Parse<kParse>(g.payload.data(), g.payload.size());
  if (!d.IsObject()) return g;
  auto str = [&](const char* k) {
    auto it = d.FindMember(k);
    return it != d.MemberEnd() && it->value.IsString() ? std::string(it->value.GetString(), it->value.GetStringLength())
                                                       : std::string();
  };
  auto pairs = [&](const char* k) {
    Pairs out;
    auto it = d.FindMember(k);
    if (it != d.MemberEnd() && it->value.IsObject())
      for (auto& e : it->value.GetObject())
        if (e.value.IsString()) out.emplace_back(e.name.GetString(), e.value.GetString());
    return out;
  };
  g.stage = str("stage");
  g.reason = str("reason");
  g.key = str("key");
  g.content_type = str("content_type");
  g.headers = pairs("headers");
  g.meta = pairs("meta");
  auto payload = d.FindMember("payload");
  if (payload != d.MemberEnd() && payload->value.IsString()) {
    g.payload.assign(payload->value.GetString(), payload->value.GetStringLength());
  } else if (payload != d.MemberEnd()) {
    rapidjson::StringBuffer s;
    rapidjson::Writer<rapidjson::StringBuffer> w(s);
    payload->value.Accept(w);
    g.payload.assign(s.GetString(), s.GetSize());
    g.payload_json = true;
  } else {
    g.payload = "(base64) " + str("payload_base64");
  }
  return g;
}

ef_status capture_write(void* self, ef_batch* batch) {
  auto* c = static_cast<Capture*>(self);
  Run& run = run_of(c->ctx);
  bool dead_letter = c->sink.empty();
  const std::vector<Expected>* expected = nullptr;
  if (dead_letter) {
    expected = &run.test->dead_letter;
  } else if (auto it = run.test->sinks.find(c->sink); it != run.test->sinks.end()) {
    expected = &it->second;
  }
  for (size_t i = 0; i < H().batch_size(batch); ++i) {
    ef_message* m = H().batch_at(batch, i);
    Got g = capture_message(m, dead_letter);
    std::lock_guard lock(run.mutex);
    auto& list = dead_letter ? run.dead_letter : run.sinks[c->sink];
    // Conditions are checked here, while the message is the engine's: the expectation at the
    // same position is the one it is compared with.
    if (expected && list.size() < expected->size())
      for (auto& cond : (*expected)[list.size()].when) {
        try {
          if (!cond.expr.test(sdk::Message(m))) g.when_failed.push_back("`" + cond.text + "` is not true");
        } catch (const std::exception& e) {
          g.when_failed.push_back("`" + cond.text + "` failed: " + e.what());
        }
      }
    list.push_back(std::move(g));
    H().ack(c->ctx, m, EF_ACK_DELIVERED, nullptr, 0);
  }
  return EF_OK;
}

// A component table of the runtime's own, never registered: no flow file can name it.
ef_component builtin(ef_kind kind, const char* type, const char* description) {
  ef_component c{};
  c.struct_size = sizeof c;
  c.kind = kind;
  c.type = type;
  c.description = description;
  return c;
}

const ef_component& input_component() {
  static const ef_component c = [] {
    ef_component c = builtin(EF_KIND_SOURCE, "test-input", "The messages of a flow test's input.");
    c.create = [](ef_ctx* ctx, const ef_value*, void** self) {
      *self = new Input{ctx};
      return EF_OK;
    };
    c.destroy = [](void* self) { delete static_cast<Input*>(self); };
    c.run = input_run;
    c.on_ack = input_on_ack;
    return c;
  }();
  return c;
}

const ef_component& capture_component() {
  static const ef_component c = [] {
    ef_component c = builtin(EF_KIND_SINK, "test-capture", "Keeps what a flow test's sink receives.");
    c.create = [](ef_ctx* ctx, const ef_value*, void** self) {
      const std::string& key = I(ctx)->spec->key;
      *self = new Capture{ctx, key == "dead_letter" ? std::string() : key.substr(6)};
      return EF_OK;
    };
    c.destroy = [](void* self) { delete static_cast<Capture*>(self); };
    c.write = capture_write;
    return c;
  }();
  return c;
}

// --- comparing ---------------------------------------------------------------------------------

std::string shown(std::string_view s) {
  std::string t = sdk::expr::valid_utf8(s.substr(0, 400));
  return s.size() > 400 ? t + "... (" + std::to_string(s.size()) + " bytes)" : t;
}

std::string json_of(const rapidjson::Value& v) {
  rapidjson::StringBuffer s;
  rapidjson::Writer<rapidjson::StringBuffer> w(s);
  v.Accept(w);
  return std::string(s.GetString(), s.GetSize());
}

bool numbers_equal(const rapidjson::Value& a, const rapidjson::Value& b) {
  if (a.IsInt64() && b.IsInt64()) return a.GetInt64() == b.GetInt64();
  if (a.IsUint64() && b.IsUint64()) return a.GetUint64() == b.GetUint64();
  return a.GetDouble() == b.GetDouble();
}

// The places where `got` differs from `want` (members in any order), at most a few.
void json_diff(const rapidjson::Value& want, const rapidjson::Value& got, const std::string& path,
               std::vector<std::string>& out) {
  if (out.size() >= 5) return;
  auto differs = [&] { out.push_back(path + ": expected " + shown(json_of(want)) + ", got " + shown(json_of(got))); };
  if (want.IsNumber() && got.IsNumber()) {
    if (!numbers_equal(want, got)) differs();
    return;
  }
  if (want.GetType() != got.GetType()) return differs();
  if (want.IsObject()) {
    for (auto& m : want.GetObject()) {
      std::string p = path + "." + std::string(m.name.GetString(), m.name.GetStringLength());
      auto it = got.FindMember(m.name);
      if (it == got.MemberEnd()) out.push_back(p + ": missing (expected " + shown(json_of(m.value)) + ")");
      else json_diff(m.value, it->value, p, out);
    }
    for (auto& m : got.GetObject())
      if (!want.HasMember(m.name))
        out.push_back(path + "." + std::string(m.name.GetString(), m.name.GetStringLength()) + ": not expected (got " +
                      shown(json_of(m.value)) + ")");
  } else if (want.IsArray()) {
    if (want.Size() != got.Size()) {
      out.push_back(path + ": expected " + std::to_string(want.Size()) + " elements, got " + std::to_string(got.Size()));
      return;
    }
    for (rapidjson::SizeType i = 0; i < want.Size(); ++i) json_diff(want[i], got[i], path + "[" + std::to_string(i) + "]", out);
  } else if (want != got) {
    differs();
  }
}

// What differs between one expectation and what arrived, one line each.
std::vector<std::string> compare(const Expected& e, const Got& g) {
  std::vector<std::string> d;
  if (e.payload_json) {
    rapidjson::Document want, got;
    want.Parse<kParse>(e.payload_json->data(), e.payload_json->size());
    // Compared and printed recursively: a payload nested deeper than any message the engine parses is text here.
    bool shallow = host::Message::nesting_depth(g.payload) <= host::Message::kMaxDepth;
    if (shallow) got.Parse<kParse>(g.payload.data(), g.payload.size());
    if (!shallow || got.HasParseError()) {
      d.push_back("payload: expected JSON " + shown(*e.payload_json) + ", got text that is not JSON: " + shown(g.payload));
    } else {
      std::vector<std::string> places;
      json_diff(want, got, "payload", places);
      if (!places.empty()) {
        d.insert(d.end(), places.begin(), places.end());
        d.push_back("  expected payload: " + shown(*e.payload_json));
        d.push_back("  got payload:      " + shown(g.payload));
      }
    }
  }
  if (e.payload_text && *e.payload_text != g.payload)
    d.push_back("payload: expected " + shown(*e.payload_text) + ", got " + shown(g.payload));
  if (e.key && *e.key != g.key) d.push_back("key: expected '" + shown(*e.key) + "', got '" + shown(g.key) + "'");
  if (e.content_type && *e.content_type != g.content_type)
    d.push_back("content_type: expected '" + *e.content_type + "', got '" + shown(g.content_type) + "'");
  auto pairs = [&](const char* what, const Pairs& want, const Pairs& got) {
    for (auto& [k, v] : want) {
      auto it = std::find_if(got.begin(), got.end(), [&](auto& p) { return p.first == k; });
      if (it == got.end()) d.push_back(std::string(what) + "." + k + ": missing (expected '" + shown(v) + "')");
      else if (it->second != v)
        d.push_back(std::string(what) + "." + k + ": expected '" + shown(v) + "', got '" + shown(it->second) + "'");
    }
  };
  pairs("headers", e.headers, g.headers);
  pairs("meta", e.meta, g.meta);
  if (e.stage && *e.stage != g.stage) d.push_back("stage: expected " + *e.stage + ", got " + g.stage);
  if (e.reason && g.reason.find(*e.reason) == std::string::npos)
    d.push_back("reason: expected it to contain '" + *e.reason + "', got '" + shown(g.reason) + "'");
  for (auto& w : g.when_failed) d.push_back("when: " + w);
  return d;
}

std::string describe(const Got& g, bool dead_letter) {
  std::string s = dead_letter ? "stage " + g.stage + ", reason '" + shown(g.reason) + "', payload " : "";
  s += shown(g.payload);
  if (!g.key.empty()) s += " (key '" + shown(g.key) + "')";
  return s;
}

// One sink's (or the dead letter's) expectations against what it received.
void compare_list(const std::string& what, const std::vector<Expected>& want, const std::vector<Got>& got,
                  bool dead_letter, std::vector<std::string>& out) {
  if (want.size() != got.size())
    out.push_back(what + ": expected " + std::to_string(want.size()) + " message(s), got " + std::to_string(got.size()));
  for (size_t i = 0; i < std::min(want.size(), got.size()); ++i) {
    auto d = compare(want[i], got[i]);
    if (d.empty()) continue;
    out.push_back(what + "[" + std::to_string(i) + "] (" + want[i].where + "):");
    for (auto& line : d) out.push_back("  " + line);
  }
  for (size_t i = want.size(); i < got.size(); ++i)
    out.push_back("  not expected [" + std::to_string(i) + "]: " + describe(got[i], dead_letter));
  for (size_t i = got.size(); i < want.size(); ++i) out.push_back("  missing [" + std::to_string(i) + "] (" + want[i].where + ")");
}

// --- running -----------------------------------------------------------------------------------

struct TempDir {
  std::string path;
  TempDir() {
    std::string t = (fs::temp_directory_path() / "edgeflow-test-XXXXXX").string();
    if (mkdtemp(t.data())) path = t;
  }
  ~TempDir() {
    std::error_code ec;
    if (!path.empty()) fs::remove_all(path, ec);
  }
};

// The flow of the test, its source and sinks swapped for the test's own.
FlowSpec test_flow(const FlowSpec& flow) {
  static const ComponentRef input{&input_component(), nullptr};
  static const ComponentRef capture{&capture_component(), nullptr};
  FlowSpec spec = flow;
  auto swap = [](InstanceSpec& is, const ComponentRef& ref) {
    is.type = ref.component->type;
    is.component = &ref;
    is.config = std::make_shared<host::Doc>();
    is.config->SetObject();
    is.buffer.reset();
  };
  swap(spec.source, input);
  for (auto& s : spec.sinks) swap(s, capture);
  spec.dead_letter.key = "dead_letter";
  swap(spec.dead_letter, capture);
  return spec;
}

std::vector<std::string> run_case(const FlowSpec& flow, const Case& test) {
  std::vector<std::string> out;
  TempDir state;
  auto f = std::make_shared<Flow>(test_flow(flow), state.path);
  std::vector<std::string> errors;
  if (!f->check(errors)) return errors;
  Run run;
  run.test = &test;
  struct Registered {
    const Flow* flow;
    Registered(const Flow* f, Run* r) : flow(f) {
      std::lock_guard lock(g_runs_mutex);
      g_runs[f] = r;
    }
    ~Registered() {
      std::lock_guard lock(g_runs_mutex);
      g_runs.erase(flow);
    }
  } registered(f.get(), &run);
  f->start();
  bool ended = f->wait_for([&] { return f->ended() || f->state() == FlowState::backoff; }, test.timeout);
  if (!ended) {
    std::lock_guard lock(run.mutex);
    out.push_back("did not finish within " + std::to_string(test.timeout.count()) + "ms: " + std::to_string(run.acked) +
                  " of " + std::to_string(test.input.size()) + " input message(s) resolved (raise the test's timeout:?)");
  } else if (f->state() == FlowState::backoff || f->state() == FlowState::failed) {
    out.push_back("the flow failed: " + f->last_error());
  }
  f->request_stop();
  if (!ended) f->force_stop();
  f->join();
  if (!out.empty()) return out;
  for (size_t i = 0; i < flow.sinks.size(); ++i) {
    std::string name = flow.sink_name(i);
    auto want = test.sinks.find(name);
    static const std::vector<Expected> none;
    compare_list("sinks." + name, want == test.sinks.end() ? none : want->second, run.sinks[name], false, out);
  }
  compare_list("dead_letter", test.dead_letter, run.dead_letter, true, out);
  return out;
}

// Sinks a test names that the flow does not have.
std::vector<std::string> check_names(const FlowSpec& flow, const File& file) {
  std::vector<std::string> errors, names;
  for (size_t i = 0; i < flow.sinks.size(); ++i) names.push_back(flow.sink_name(i));
  for (auto& c : file.cases)
    for (auto& [sink, where] : c.sink_where)
      if (std::find(names.begin(), names.end(), sink) == names.end())
        errors.push_back(where + ": flow " + flow.name + " has no sink named '" + sink + "'; its sinks are: " +
                         host::list_names(names) + "." + host::suggest(sink, names));
  return errors;
}

std::string join_lines(const std::vector<std::string>& lines) {
  std::string s;
  for (auto& l : lines) s += l + "\n";
  return s;
}

std::string indent(const std::string& text) {
  std::string s = "    ";
  for (char c : text) {
    s += c;
    if (c == '\n') s += "    ";
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\n')) s.pop_back();
  return s + "\n";
}

std::string xml(std::string_view s) {
  std::string out;
  for (char ch : sdk::expr::valid_utf8(s)) {
    auto c = static_cast<unsigned char>(ch);
    if (c == '&') out += "&amp;";
    else if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '"') out += "&quot;";
    else if (c < 0x20 && c != '\n' && c != '\t' && c != '\r') out += "?";  // not allowed in XML 1.0
    else out += ch;
  }
  return out;
}

}  // namespace

std::vector<std::string> find_test_files(const std::vector<std::string>& paths, host::Diagnostics& diag) {
  std::vector<std::string> files;
  for (auto& p : paths) {
    std::error_code ec;
    if (fs::is_directory(p, ec)) {
      std::vector<std::string> found;
      fs::recursive_directory_iterator it(p, fs::directory_options::skip_permission_denied, ec), end;
      for (; !ec && it != end; it.increment(ec))
        if (it->is_regular_file(ec) && is_test_file(it->path().string())) found.push_back(it->path().string());
      if (ec) diag.errors.push_back(p + ": cannot read directory: " + ec.message());
      else if (found.empty()) diag.errors.push_back(p + ": no flow tests (*.test.yaml) under this directory");
      std::sort(found.begin(), found.end());
      files.insert(files.end(), found.begin(), found.end());
    } else if (!fs::exists(p, ec)) {
      diag.errors.push_back(p + ": no such file or directory");
    } else if (is_test_file(p)) {
      files.push_back(p);
    } else {
      // A flow file: its tests beside it.
      fs::path flow(p);
      fs::path test = flow.parent_path() / (flow.stem().string() + ".test" + flow.extension().string());
      if (fs::exists(test, ec)) files.push_back(test.string());
      else diag.errors.push_back(p + ": no tests for this flow file (expected them in " + test.string() + ")");
    }
  }
  return files;
}

std::vector<CaseResult> run_test_files(const std::vector<std::string>& files, const PluginRegistry& plugins,
                                       const YamlLimits& limits, const std::function<void(const std::string&)>& print) {
  // Conditions are evaluated here, in the runtime, through the host table plugins use.
  sdk::g_host = runtime_host_api();
  std::vector<CaseResult> results;
  for (auto& path : files) {
    auto load_error = [&](const std::vector<std::string>& errors) {
      CaseResult r{path, "(load)", false, true, join_lines(errors), 0};
      print("ERROR " + path + "\n" + indent(r.failure));
      results.push_back(std::move(r));
    };
    host::Diagnostics diag;
    File file = parse_test_file(path, limits, diag);
    if (!diag.ok()) {
      load_error(diag.errors);
      continue;
    }
    // The file's env: holds for its own flow only, not for the files after it.
    std::vector<std::pair<std::string, std::optional<std::string>>> before;
    for (auto& [k, v] : file.env) {
      const char* old = std::getenv(k.c_str());
      before.emplace_back(k, old ? std::optional<std::string>(old) : std::nullopt);
      setenv(k.c_str(), v.c_str(), 1);
    }
    auto flows = load_flows({file.flow_file}, plugins, limits, diag);
    for (auto it = before.rbegin(); it != before.rend(); ++it) {
      if (it->second) setenv(it->first.c_str(), it->second->c_str(), 1);
      else unsetenv(it->first.c_str());
    }
    if (!diag.ok()) {
      diag.errors.insert(diag.errors.begin(), "flow file " + file.flow_file + " does not load:");
      load_error(diag.errors);
      continue;
    }
    const FlowSpec* flow = nullptr;
    std::vector<std::string> names;
    for (auto& f : flows) {
      names.push_back(f.name);
      if (f.name == file.flow_name || (file.flow_name.empty() && flows.size() == 1)) flow = &f;
    }
    if (!flow) {
      load_error({file.name_where + ": name: " +
                  (file.flow_name.empty() ? "the flow file holds " + std::to_string(flows.size()) + " flows; say which with name:"
                                          : "no flow named '" + file.flow_name + "'") +
                  " (" + host::list_names(names) + ")"});
      continue;
    }
    if (auto errors = check_names(*flow, file); !errors.empty()) {
      load_error(errors);
      continue;
    }
    for (auto& c : file.cases) {
      auto began = Clock::now();
      auto differences = run_case(*flow, c);
      CaseResult r{path, c.name, differences.empty(), false, join_lines(differences),
                   std::chrono::duration<double>(Clock::now() - began).count()};
      char ms[32];
      std::snprintf(ms, sizeof ms, " (%.0f ms)", r.seconds * 1000);
      print(std::string(r.passed ? "ok   " : "FAIL ") + path + ": " + c.name + ms + "\n" +
            (r.passed ? "" : "    " + c.where + "\n" + indent(r.failure)));
      results.push_back(std::move(r));
    }
  }
  return results;
}

std::string junit_xml(const std::vector<CaseResult>& results) {
  std::string s = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"edgeflow test\">\n";
  for (size_t i = 0; i < results.size();) {
    size_t j = i;
    size_t failures = 0, errors = 0;
    double seconds = 0;
    for (; j < results.size() && results[j].file == results[i].file; ++j) {
      failures += !results[j].passed && !results[j].error;
      errors += results[j].error;
      seconds += results[j].seconds;
    }
    char time[32];
    std::snprintf(time, sizeof time, "%.3f", seconds);
    s += "  <testsuite name=\"" + xml(results[i].file) + "\" tests=\"" + std::to_string(j - i) + "\" failures=\"" +
         std::to_string(failures) + "\" errors=\"" + std::to_string(errors) + "\" time=\"" + time + "\">\n";
    for (; i < j; ++i) {
      auto& r = results[i];
      std::snprintf(time, sizeof time, "%.3f", r.seconds);
      s += "    <testcase classname=\"" + xml(r.file) + "\" name=\"" + xml(r.name) + "\" time=\"" + time + "\"";
      if (r.passed) {
        s += "/>\n";
        continue;
      }
      const char* tag = r.error ? "error" : "failure";
      std::string first = r.failure.substr(0, r.failure.find('\n'));
      s += ">\n      <" + std::string(tag) + " message=\"" + xml(first) + "\">" + xml(r.failure) + "</" + tag +
           ">\n    </testcase>\n";
    }
    s += "  </testsuite>\n";
  }
  return s + "</testsuites>\n";
}

}  // namespace edgeflow::flowtest
