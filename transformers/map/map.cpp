// map: turns a system's own record into the domain's canonical event. Every expression reads
// the incoming document; the outgoing one starts as a copy (unmapped: keep) or empty
// (unmapped: drop), then renames, removals and sets are applied in that order.
#include <edgeflow/sdk/expr.hpp>
#include <edgeflow/sdk/plugin.hpp>

#include <string>
#include <vector>

using namespace edgeflow::sdk;

namespace {

// One value to build: an expression, a literal from the YAML, or a nested object or list of them.
struct Shape {
  enum class Kind { expr, literal, object, array } kind = Kind::literal;
  std::string key;  // config key path, for error messages
  expr::Expr e;
  expr::Val lit;
  std::vector<std::pair<std::string, Shape>> members;
  std::vector<Shape> items;
};

class Map : public Transformer {
 public:
  struct Config {
    Json set;
    Json rename;
    std::vector<std::string> remove;
    std::string unmapped = "keep";
    std::string key;
    Json headers;
    Json lookups;
  };
  static constexpr const char* type = "map";
  static constexpr const char* description =
      "Builds the canonical event: sets fields from expressions (nested objects and lists as "
      "templates), renames and removes fields, keeps or drops the unmapped ones, sets key and headers.";
  static void describe(Spec<Config>& s) {
    s.option("set", &Config::set)
        .doc("Target path -> expression (strings), literal (numbers, booleans, null) or nested map/list of them.")
        .example("{ id: after.id, total_cents: int(after.total * 100), customer: { name: upper(after.name) } }");
    s.option("rename", &Config::rename).doc("Source path -> target path; the value moves.").example("{ after.cust_id: customer_id }");
    s.option("remove", &Config::remove).doc("Paths removed from the outgoing document.").example("[before, source.txid]");
    s.option("unmapped", &Config::unmapped)
        .one_of("keep|drop")
        .doc("keep: start from the incoming document; drop: start empty, so only set and renamed fields remain.")
        .example("drop");
    s.option("key", &Config::key).doc("Expression for the message key (its text form).").example("after.id");
    s.option("headers", &Config::headers).doc("Header name -> expression (its text form).").example("{ x-source: source.table }");
    s.option("lookups", &Config::lookups)
        .doc("Tables for lookup('name', key[, default]).")
        .example("{ countries: { DE: Germany, FR: France } }");
  }

  Map(Context c, Config cfg) : Transformer(c), drop_unmapped_(cfg.unmapped == "drop"), tables_(expr::tables_from(c, cfg.lookups)) {
    env_.tables = &tables_;
    if (auto* o = cfg.set.object()) {
      for (auto& [target, v] : *o) {
        sets_.push_back({target, shape(v, "set." + target)});
        // A top-level target needs no path walk (most canonical events are flat).
        top_level_.push_back(target.find_first_of(".[") == std::string::npos);
      }
    } else if (!cfg.set.is_null()) {
      throw Error(c.where("set") + ": set: expected a map of target: expression");
    }
    if (auto* o = cfg.rename.object()) {
      for (auto& [from, to] : *o) {
        std::string k = "rename." + from;
        if (!to.string() || to.string()->empty()) throw Error(c.where(k) + ": " + k + ": the target must be a path, like customer_id");
        renames_.push_back({path(from, k), *to.string()});
      }
    } else if (!cfg.rename.is_null()) {
      throw Error(c.where("rename") + ": rename: expected a map of from.path: to.path");
    }
    for (size_t i = 0; i < cfg.remove.size(); ++i) {
      std::string k = "remove[" + std::to_string(i) + "]";
      path(cfg.remove[i], k);
      removes_.push_back(cfg.remove[i]);
    }
    if (!cfg.key.empty()) key_ = expr::compile_option(c, "key", cfg.key, env_);
    if (auto* o = cfg.headers.object()) {
      for (auto& [name, v] : *o) {
        std::string k = "headers." + name;
        if (!v.string()) throw Error(c.where(k) + ": " + k + ": expected an expression");
        headers_.push_back({name, expr::compile_option(c, k, *v.string(), env_)});
      }
    } else if (!cfg.headers.is_null()) {
      throw Error(c.where("headers") + ": headers: expected a map of name: expression");
    }
    if (sets_.empty() && renames_.empty() && removes_.empty() && !key_ && headers_.empty())
      throw Error(c.where("") + ": map does nothing; give at least one of set, rename, remove, key or headers");
  }

  void transform(Batch b) override {
    std::vector<expr::Val> values(sets_.size()), moved(renames_.size());
    std::vector<char> present(renames_.size());
    for (size_t i = 0; i < b.size(); ++i) {
      Message m = b[i];
      try {
        if (!host().message_doc(m.raw())) throw expr::EvalError(message_doc_error(m.raw()));
        // Everything is read from the incoming document before any of it changes.
        for (size_t k = 0; k < sets_.size(); ++k) {
          values[k] = build(sets_[k].second, m).materialize();
        }
        for (size_t k = 0; k < renames_.size(); ++k) {
          present[k] = bool(m.get(renames_[k].first.text()));  // a missing source renames nothing
          moved[k] = renames_[k].first.eval(m).materialize();
        }
        std::string key;
        if (key_) {
          key = expr::required_text(expr::eval_option(key_, "key", m), "key");
        }
        std::vector<std::string> header_values;
        for (auto& [name, e] : headers_) {
          header_values.push_back(expr::required_text(expr::eval_option(e, "headers." + name, m), "headers." + name));
        }

        Value root;
        if (drop_unmapped_) {
          root = m.reset_doc();
        } else {
          for (auto& r : renames_) m.remove(r.first.text());
          for (auto& p : removes_) m.remove(p);
        }
        for (size_t k = 0; k < renames_.size(); ++k)
          if (present[k]) expr::assign(m, m.put(renames_[k].second), moved[k]);
        if (!root) root = Value(host().message_doc(m.raw()));
        for (size_t k = 0; k < sets_.size(); ++k) {
          const std::string& t = sets_[k].first;
          expr::assign(m, top_level_[k] ? m.put(root, t) : m.put(t), values[k]);
        }
        if (key_) m.set_key(key);
        for (size_t k = 0; k < headers_.size(); ++k) m.set_header(headers_[k].first, header_values[k]);
      } catch (const expr::EvalError& e) {
        b.reject(i, std::string("map: ") + e.what());
      }
    }
  }

 private:
  expr::Expr path(const std::string& text, const std::string& key) {
    expr::Expr e = expr::compile_option(context(), key, text, env_);
    if (!e.is_path()) throw Error(context().where(key) + ": " + key + ": '" + text + "' is not a field path, like after.customer_id");
    return e;
  }

  Shape shape(const Json& v, const std::string& key) {
    Shape s;
    s.key = key;
    if (auto* str = v.string()) {
      s.kind = Shape::Kind::expr;
      s.e = expr::compile_option(context(), key, *str, env_);
    } else if (auto* o = v.object()) {
      s.kind = Shape::Kind::object;
      for (auto& [k, e] : *o) s.members.push_back({k, shape(e, key + "." + k)});
    } else if (auto* a = v.array()) {
      s.kind = Shape::Kind::array;
      for (size_t i = 0; i < a->size(); ++i) s.items.push_back(shape((*a)[i], key + "[" + std::to_string(i) + "]"));
    } else {
      s.lit = literal(v);
    }
    return s;
  }
  static expr::Val literal(const Json& j) {
    if (auto* b = std::get_if<bool>(&j.v)) return expr::Val(*b);
    if (auto* i = std::get_if<int64_t>(&j.v)) return expr::Val(*i);
    if (auto* d = std::get_if<double>(&j.v)) return expr::Val(*d);
    return {};
  }
  static expr::Val build(const Shape& s, Message m) {
    switch (s.kind) {
      case Shape::Kind::expr: return expr::eval_option(s.e, s.key, m);
      case Shape::Kind::literal: return s.lit;
      case Shape::Kind::object: {
        expr::Object o;
        for (auto& [k, e] : s.members) o.emplace_back(k, build(e, m));
        return expr::Val(std::move(o));
      }
      case Shape::Kind::array: {
        expr::Array a;
        for (auto& e : s.items) a.push_back(build(e, m));
        return expr::Val(std::move(a));
      }
    }
    return {};
  }
  bool drop_unmapped_;
  expr::Tables tables_;
  expr::Env env_;
  std::vector<std::pair<std::string, Shape>> sets_;
  std::vector<bool> top_level_;  // per set: the target is a plain member name
  std::vector<std::pair<expr::Expr, std::string>> renames_;
  std::vector<std::string> removes_;
  expr::Expr key_;
  std::vector<std::pair<std::string, expr::Expr>> headers_;
};

}  // namespace

EDGEFLOW_PLUGIN("map", "0.1.0", Map)
