#include "flow_test_file.hpp"

#include <rapidjson/writer.h>

#include <edgeflow/sdk/expr/builtins.hpp>

#include <filesystem>
#include <set>

namespace edgeflow::flowtest {
namespace {

namespace fs = std::filesystem;
using host::JValue;

struct Reader {
  const std::string& file;
  host::Diagnostics& diag;
  // What the file's values may add up to once YAML aliases are expanded: an alias of a large
  // scalar costs one node in the YAML guard, but a copy here.
  uint64_t budget = kMaxExpandedBytes;
  bool spent = false;

  bool spend(const YAML::Node& n, const std::string& key, size_t bytes) {
    if (bytes <= budget) {
      budget -= bytes;
      return true;
    }
    if (!spent) error(n, key, "the test file's values add up to more than " + std::to_string(kMaxExpandedBytes >> 20) +
                                  " MiB once its aliases are expanded; write fewer or smaller ones");
    spent = true;
    return false;
  }

  void error(const YAML::Node& n, const std::string& key, const std::string& msg) { diag.add(file, n.Mark(), key, msg); }

  // Refuses keys outside `known`, with the nearest known one.
  void keys(const YAML::Node& n, const std::string& key, const std::vector<std::string>& known) {
    for (auto it = n.begin(); it != n.end(); ++it) {
      std::string k = it->first.Scalar();
      if (std::find(known.begin(), known.end(), k) == known.end())
        error(it->first, host::join_key(key, k),
              "unknown key; expected one of " + host::list_names(known) + "." + host::suggest(k, known));
    }
  }

  bool map(const YAML::Node& n, const std::string& key) {
    if (n.IsMap()) return true;
    error(n, key, "expected a mapping");
    return false;
  }

  std::optional<std::string> text(const YAML::Node& n, const std::string& key) {
    if (!n) return std::nullopt;
    if (!n.IsScalar()) {
      error(n, key, "expected a text value");
      return std::nullopt;
    }
    std::string out, why;
    if (!host::interpolate(n.Scalar(), out, why)) {
      error(n, key, why);
      return std::nullopt;
    }
    if (!spend(n, key, out.size())) return std::nullopt;
    return out;
  }

  // `name: value` pairs of text, in file order.
  Pairs pairs(const YAML::Node& n, const std::string& key) {
    Pairs out;
    if (!n) return out;
    if (!map(n, key)) return out;
    for (auto it = n.begin(); it != n.end(); ++it) {
      std::string k = it->first.Scalar();
      if (auto v = text(it->second, host::join_key(key, k))) out.emplace_back(k, *v);
    }
    return out;
  }

  // YAML as JSON text: plain scalars keep their YAML type, quoted ones are strings.
  std::optional<std::string> json(const YAML::Node& n, const std::string& key) {
    host::Doc doc;
    host::Locations locations;
    host::ConfigBuilder b{file, diag, locations};
    size_t before = diag.errors.size();
    b.to_json(n, key, doc.GetAllocator(), doc, false);
    if (diag.errors.size() != before) return std::nullopt;
    rapidjson::StringBuffer s;
    rapidjson::Writer<rapidjson::StringBuffer> w(s);
    doc.Accept(w);
    if (!spend(n, key, s.GetSize())) return std::nullopt;
    return std::string(s.GetString(), s.GetSize());
  }

  // A payload given as a mapping or list (JSON) or as text (the exact bytes).
  void payload(const YAML::Node& n, const std::string& key, std::string& out_text, bool& is_json) {
    is_json = n.IsMap() || n.IsSequence();
    if (is_json) {
      if (auto j = json(n, key)) out_text = *j;
    } else if (auto t = text(n, key)) {
      out_text = *t;
    }
  }

  int64_t timestamp(const YAML::Node& n, const std::string& key) {
    auto t = text(n, key);
    if (!t) return 0;
    char* end = nullptr;
    errno = 0;
    long long ms = std::strtoll(t->c_str(), &end, 10);
    if (!t->empty() && *end == '\0' && !errno && ms >= 0) return ms;
    try {
      return sdk::expr::builtin::parse_iso8601(*t);
    } catch (const std::exception&) {
      error(n, key, "expected epoch milliseconds or an ISO 8601 time like 2026-12-01T09:00:00Z, got '" + *t + "'");
      return 0;
    }
  }

  void input(const YAML::Node& n, const std::string& key, Input& in) {
    in.where = host::where(file, n.Mark());
    if (!map(n, key)) return;
    keys(n, key, {"payload", "cdc", "key", "headers", "meta", "content_type", "timestamp"});
    if (n["payload"] && n["cdc"]) error(n, key, "give either payload or cdc, not both");
    if (n["cdc"]) {
      cdc_fixture(n["cdc"], file, key + ".cdc", diag, in);
    } else if (n["payload"]) {
      bool is_json = false;
      payload(n["payload"], key + ".payload", in.payload, is_json);
      if (is_json) in.content_type = "application/json";
    } else {
      error(n, key, "an input needs payload (a mapping, a list or text) or cdc (a change event fixture)");
    }
    if (auto k = text(n["key"], key + ".key")) in.key = *k;
    if (auto c = text(n["content_type"], key + ".content_type")) in.content_type = *c;
    in.headers = pairs(n["headers"], key + ".headers");
    in.meta = pairs(n["meta"], key + ".meta");
    if (n["timestamp"]) in.timestamp_ms = timestamp(n["timestamp"], key + ".timestamp");
  }

  void conditions(const YAML::Node& n, const std::string& key, std::vector<Condition>& out) {
    if (!n) return;
    auto one = [&](const YAML::Node& c, const std::string& k) {
      auto t = text(c, k);
      if (!t) return;
      try {
        out.push_back({*t, sdk::expr::Expr::compile(*t)});
      } catch (const sdk::expr::CompileError& e) {
        error(c, k, sdk::expr::explain(e, *t));
      }
    };
    if (n.IsSequence()) {
      for (size_t i = 0; i < n.size(); ++i) one(n[i], key + "[" + std::to_string(i) + "]");
    } else {
      one(n, key);
    }
  }

  void expected(const YAML::Node& n, const std::string& key, bool dead_letter, Expected& e) {
    e.where = host::where(file, n.Mark());
    if (!map(n, key)) return;
    std::vector<std::string> known = {"payload", "key", "headers", "meta", "content_type", "when"};
    if (dead_letter) known.insert(known.end(), {"stage", "reason"});
    keys(n, key, known);
    if (n["payload"]) {
      std::string p;
      bool is_json = false;
      payload(n["payload"], key + ".payload", p, is_json);
      (is_json ? e.payload_json : e.payload_text) = p;
    }
    e.key = text(n["key"], key + ".key");
    e.content_type = text(n["content_type"], key + ".content_type");
    e.headers = pairs(n["headers"], key + ".headers");
    e.meta = pairs(n["meta"], key + ".meta");
    conditions(n["when"], key + ".when", e.when);
    if (dead_letter) {
      e.stage = text(n["stage"], key + ".stage");
      e.reason = text(n["reason"], key + ".reason");
    }
  }

  void expecteds(const YAML::Node& n, const std::string& key, bool dead_letter, std::vector<Expected>& out) {
    if (!n.IsSequence()) {
      error(n, key, "expected a list of messages (`[]` for none)");
      return;
    }
    if (n.size() > kMaxInputs) error(n, key, "at most " + std::to_string(kMaxInputs) + " messages");
    for (size_t i = 0; i < n.size() && i < kMaxInputs; ++i) {
      out.emplace_back();
      expected(n[i], key + "[" + std::to_string(i) + "]", dead_letter, out.back());
    }
  }

  void test_case(const YAML::Node& n, const std::string& key, Case& c) {
    c.where = host::where(file, n.Mark());
    if (!map(n, key)) return;
    keys(n, key, {"name", "input", "expect", "timeout"});
    auto name = text(n["name"], key + ".name");
    if (!name || name->empty()) error(n["name"] ? n["name"] : n, key + ".name", "a test needs a name");
    c.name = name.value_or("");
    if (auto t = text(n["timeout"], key + ".timeout")) {
      int64_t ms = 0;
      if (!host::parse_duration(*t, ms) || ms < 1 || ms > 3600000)
        error(n["timeout"], key + ".timeout", "expected a duration from 1ms to 1h, like 10s, got '" + *t + "'");
      else
        c.timeout = std::chrono::milliseconds(ms);
    }
    const YAML::Node in = n["input"];
    if (!in || !in.IsSequence() || in.size() == 0) {
      error(in ? in : n, key + ".input", "expected a list of input messages");
    } else if (in.size() > kMaxInputs) {
      error(in, key + ".input", "at most " + std::to_string(kMaxInputs) + " input messages in one test");
    } else {
      c.input.resize(in.size());
      for (size_t i = 0; i < in.size(); ++i) input(in[i], key + ".input[" + std::to_string(i) + "]", c.input[i]);
    }
    const YAML::Node ex = n["expect"];
    if (!ex) {
      error(n, key + ".expect", "a test needs expect: (sinks: and/or dead_letter:); `expect: {}` expects nothing at all");
      return;
    }
    if (!map(ex, key + ".expect")) return;
    keys(ex, key + ".expect", {"sinks", "dead_letter"});
    if (const YAML::Node s = ex["sinks"]) {
      if (map(s, key + ".expect.sinks"))
        for (auto it = s.begin(); it != s.end(); ++it) {
          std::string sink = it->first.Scalar();
          c.sink_where[sink] = host::where(file, it->first.Mark());
          expecteds(it->second, key + ".expect.sinks." + sink, false, c.sinks[sink]);
        }
    }
    if (const YAML::Node d = ex["dead_letter"]) expecteds(d, key + ".expect.dead_letter", true, c.dead_letter);
  }

  File parse(const YAML::Node& root) {
    File f;
    f.path = file;
    if (!map(root, "")) return f;
    keys(root, "", {"flow", "name", "env", "tests"});
    auto flow = text(root["flow"], "flow");
    if (!flow) {
      // orders.test.yaml tests orders.yaml
      std::string stem = fs::path(file).filename().string();
      stem = stem.substr(0, stem.rfind(".test."));
      std::string ext = fs::path(file).extension().string();
      flow = stem + ext;
    }
    fs::path p(*flow);
    f.flow_file = p.is_absolute() ? p.string() : (fs::path(file).parent_path() / p).lexically_normal().string();
    f.flow_name = text(root["name"], "name").value_or("");
    f.name_where = host::where(file, (root["name"] ? root["name"] : root).Mark());
    f.env = pairs(root["env"], "env");
    const YAML::Node tests = root["tests"];
    if (!tests || !tests.IsSequence() || tests.size() == 0) {
      error(tests ? tests : root, "tests", "expected a list of tests ({name, input, expect})");
      return f;
    }
    if (tests.size() > kMaxCases) {
      error(tests, "tests", "at most " + std::to_string(kMaxCases) + " tests in one file");
      return f;
    }
    f.cases.resize(tests.size());
    std::set<std::string> names;
    for (size_t i = 0; i < tests.size(); ++i) {
      std::string key = "tests[" + std::to_string(i) + "]";
      test_case(tests[i], key, f.cases[i]);
      if (!f.cases[i].name.empty() && !names.insert(f.cases[i].name).second)
        error(tests[i], key + ".name", "another test of this file has the name '" + f.cases[i].name + "'");
    }
    return f;
  }
};

std::string json_text(const YAML::Node& n, const std::string& file, const std::string& key, host::Diagnostics& diag) {
  Reader r{file, diag};
  return r.json(n, key).value_or("null");
}

}  // namespace

bool cdc_fixture(const YAML::Node& n, const std::string& file, const std::string& key, host::Diagnostics& diag,
                 Input& out) {
  Reader r{file, diag};
  size_t errors = diag.errors.size();
  if (!r.map(n, key)) return false;
  r.keys(n, key, {"op", "table", "before", "after", "key", "lsn", "txid", "commit_ts", "db"});
  static const std::map<std::string, std::string> ops = {
      {"c", "c"}, {"insert", "c"}, {"u", "u"}, {"update", "u"}, {"d", "d"},
      {"delete", "d"}, {"r", "r"}, {"read", "r"}, {"t", "t"}, {"truncate", "t"}};
  std::string op = r.text(n["op"], key + ".op").value_or("");
  auto found = ops.find(op);
  if (found == ops.end()) {
    r.error(n["op"] ? n["op"] : n, key + ".op", "expected c, u, d, r or t (or insert, update, delete, read, truncate)");
    return false;
  }
  op = found->second;
  std::string table = r.text(n["table"], key + ".table").value_or("");
  if (table.empty()) r.error(n, key + ".table", "expected the table, as schema.table or table (schema public)");
  std::string schema = "public";
  if (auto dot = table.find('.'); dot != std::string::npos) {
    schema = table.substr(0, dot);
    table = table.substr(dot + 1);
  }
  auto json_or_null = [&](const char* k) { return n[k] ? json_text(n[k], file, key + "." + k, diag) : std::string("null"); };
  std::string before = json_or_null("before"), after = json_or_null("after");
  if ((op == "c" || op == "u" || op == "r") && after == "null")
    r.error(n, key + ".after", "an insert, update or read event needs the row in after");
  if (op == "d" && before == "null") r.error(n, key + ".before", "a delete event needs the row's key columns in before");
  std::string row_key = "null";
  if (n["key"]) {
    row_key = json_text(n["key"], file, key + ".key", diag);
  } else if (op != "t") {
    // The default key is an `id` column, as most tables have.
    const YAML::Node row = n[op == "d" ? "before" : "after"];
    if (row && row.IsMap() && row["id"]) {
      YAML::Node k(YAML::NodeType::Map);
      k["id"] = row["id"];
      row_key = json_text(k, file, key + ".key", diag);
    } else {
      r.error(n, key + ".key", "the row has no id column: give its key columns, like key: {order_no: 7}");
    }
  }
  auto str = [](const std::string& s) {
    rapidjson::StringBuffer b;
    rapidjson::Writer<rapidjson::StringBuffer> w(b);
    w.String(s.data(), rapidjson::SizeType(s.size()));
    return std::string(b.GetString(), b.GetSize());
  };
  std::string lsn = r.text(n["lsn"], key + ".lsn").value_or("0/0");
  std::string txid = n["txid"] ? json_text(n["txid"], file, key + ".txid", diag) : "null";
  std::string commit_ts = "null";
  if (n["commit_ts"]) {
    auto ts = r.text(n["commit_ts"], key + ".commit_ts").value_or("");
    commit_ts = str(ts);
    out.timestamp_ms = r.timestamp(n["commit_ts"], key + ".commit_ts");
  }
  std::string db = r.text(n["db"], key + ".db").value_or("edgeflow");
  // The member order and spelling of the source's own events (docs/postgres-cdc.md).
  out.payload = "{\"op\":\"" + op + "\",\"before\":" + before + ",\"after\":" + after + ",\"source\":{\"db\":" + str(db) +
                ",\"schema\":" + str(schema) + ",\"table\":" + str(table) + ",\"lsn\":" + str(lsn) + ",\"txid\":" + txid +
                ",\"commit_ts\":" + commit_ts + "},\"key\":" + row_key + "}";
  out.key = row_key == "null" ? "" : row_key;
  out.content_type = "application/json";
  return diag.errors.size() == errors;
}

namespace {

File from_docs(const std::string& name, const std::vector<YAML::Node>& docs, host::Diagnostics& diag) {
  File none;
  none.path = name;
  if (!diag.ok()) return none;
  if (docs.size() != 1) {
    diag.errors.push_back(name + ": a test file holds one YAML document (flow:, tests:), not " + std::to_string(docs.size()));
    return none;
  }
  Reader r{name, diag};
  return r.parse(docs[0]);
}

}  // namespace

File parse_test_text(const std::string& name, const std::string& text, const YamlLimits& limits,
                     host::Diagnostics& diag) {
  return from_docs(name, load_yaml_text(name, text, limits, diag), diag);
}

File parse_test_file(const std::string& path, const YamlLimits& limits, host::Diagnostics& diag) {
  return from_docs(path, load_yaml_file(path, limits, diag), diag);
}

}  // namespace edgeflow::flowtest
