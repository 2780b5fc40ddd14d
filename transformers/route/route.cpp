// route: the content-based router. Ordered `when` clauses send each message to named sinks;
// a message no clause claims goes to `default`, or is dropped or dead-lettered as configured,
// never silently lost.
#include <edgeflow/sdk/expr.hpp>
#include <edgeflow/sdk/plugin.hpp>

#include <string>
#include <vector>

using namespace edgeflow::sdk;

namespace {

class Route : public Transformer {
 public:
  struct Config {
    Json routes;
    std::string mode = "first";
    std::vector<std::string> default_to;
    std::string unrouted = "reject";
    Json lookups;
  };
  static constexpr const char* type = "route";
  static constexpr const char* description =
      "Content-based router: ordered `when` conditions send each message to named sinks.";
  static void describe(Spec<Config>& s) {
    s.option("routes", &Config::routes)
        .required()
        .doc("Ordered list of { when: condition, to: [sinks] }; a route without `when` always matches.")
        .example("[{ when: op == \"d\", to: [deletions] }, { to: [orders] }]");
    s.option("mode", &Config::mode)
        .one_of("first|all")
        .doc("first: the first matching route wins; all: every matching route gets the message.")
        .example("all");
    s.option("default", &Config::default_to).doc("Sinks for messages no route matched.").example("[unmatched]");
    s.option("unrouted", &Config::unrouted)
        .one_of("reject|drop")
        .doc("Without a default: reject sends unmatched messages to the dead letter, drop acknowledges and discards them.")
        .example("drop");
    s.option("lookups", &Config::lookups).doc("Tables for lookup('name', key[, default]).").example("{ vip: { c-1: true } }");
  }

  Route(Context c, Config cfg) : Transformer(c), all_(cfg.mode == "all"), drop_(cfg.unrouted == "drop"), tables_(expr::tables_from(c, cfg.lookups)) {
    env_.tables = &tables_;
    auto* list = cfg.routes.array();
    if (!list || list->empty()) throw Error(c.where("routes") + ": routes: expected a list of { when: ..., to: [...] }");
    for (size_t i = 0; i < list->size(); ++i) {
      std::string k = "routes[" + std::to_string(i) + "]";
      auto* r = (*list)[i].object();
      if (!r) throw Error(c.where(k) + ": " + k + ": expected a map with `to:` and an optional `when:`");
      Clause clause;
      clause.key = k;
      for (auto& [name, v] : *r) {
        if (name == "when") {
          auto* b = std::get_if<bool>(&v.v);  // `when: true` is YAML's boolean, not a string
          if (!v.string() && !b) throw Error(c.where(k + ".when") + ": " + k + ".when: expected a condition");
          clause.when = expr::compile_option(c, k + ".when", v.string() ? *v.string() : *b ? "true" : "false", env_);
        } else if (name == "to") {
          clause.sinks = sinks(v, k + ".to");
        } else {
          throw Error(c.where(k + "." + name) + ": " + k + "." + name + ": unknown key; a route has `when` and `to`");
        }
      }
      if (clause.sinks.empty()) throw Error(c.where(k) + ": " + k + ": missing `to:`, the sinks this route sends to");
      clauses_.push_back(std::move(clause));
    }
    default_ = indexes(cfg.default_to, "default");
  }

  void transform(Batch b) override {
    for (size_t i = 0; i < b.size(); ++i) {
      Message m = b[i];
      m.clear_routes();
      bool matched = false;
      const Clause* at = nullptr;
      try {
        for (auto& c : clauses_) {
          at = &c;
          if (c.when && !c.when.test(m)) continue;
          for (uint32_t s : c.sinks) m.route(s);
          matched = true;
          if (!all_) break;
        }
      } catch (const expr::EvalError& e) {
        b.reject(i, "route: " + at->key + ".when: `" + at->when.text() + "`: " + e.what());
        continue;
      }
      if (matched) continue;
      if (!default_.empty()) {
        for (uint32_t s : default_) m.route(s);
      } else if (drop_) {
        b.drop(i);
      } else {
        b.reject(i, "route: no route matched and there is no default");
      }
    }
  }

 private:
  struct Clause {
    std::string key;
    expr::Expr when;
    std::vector<uint32_t> sinks;
  };

  std::vector<uint32_t> sinks(const Json& v, const std::string& key) {
    std::vector<std::string> names;
    if (auto* s = v.string()) names.push_back(*s);
    else if (auto* a = v.array())
      for (auto& e : *a) {
        if (!e.string()) throw Error(context().where(key) + ": " + key + ": sink names are strings");
        names.push_back(*e.string());
      }
    else throw Error(context().where(key) + ": " + key + ": expected a sink name or a list of them");
    return indexes(names, key);
  }

  std::vector<uint32_t> indexes(const std::vector<std::string>& names, const std::string& key) {
    std::vector<uint32_t> out;
    for (auto& n : names) {
      int32_t idx = context().sink_index(n);
      if (idx < 0) {
        std::string known;
        for (size_t i = 0; i < context().sink_count(); ++i) known += (i ? ", " : "") + std::string(context().sink_name(i));
        throw Error(context().where(key) + ": " + key + ": no sink named '" + n + "' in this flow; its sinks are: " +
                    (known.empty() ? "(none)" : known));
      }
      out.push_back(uint32_t(idx));
    }
    return out;
  }

  bool all_;
  bool drop_;
  expr::Tables tables_;
  expr::Env env_;
  std::vector<Clause> clauses_;
  std::vector<uint32_t> default_;
};

}  // namespace

EDGEFLOW_PLUGIN("route", "0.1.0", Route)
