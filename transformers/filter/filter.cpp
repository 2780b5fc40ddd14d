// filter: keeps or drops messages by a condition. Dropped messages are acknowledged as
// delivered: filtering them out was the flow's intent, not a failure.
#include <edgeflow/sdk/expr.hpp>
#include <edgeflow/sdk/plugin.hpp>

#include <string>

using namespace edgeflow::sdk;

namespace {

class Filter : public Transformer {
 public:
  struct Config {
    std::string keep;
    std::string drop;
    Json lookups;
  };
  static constexpr const char* type = "filter";
  static constexpr const char* description = "Keeps the messages a condition holds for (keep:) or drops them (drop:).";
  static void describe(Spec<Config>& s) {
    s.option("keep", &Config::keep).doc("Keep only messages for which this is true (null counts as false).").example("after.total > 0");
    s.option("drop", &Config::drop).doc("Drop messages for which this is true (null counts as false).").example("op == \"t\"");
    s.option("lookups", &Config::lookups).doc("Tables for lookup('name', key[, default]).").example("{ blocked: { c-9: true } }");
  }
  Filter(Context c, Config cfg) : Transformer(c), tables_(expr::tables_from(c, cfg.lookups)) {
    env_.tables = &tables_;
    if (cfg.keep.empty() == cfg.drop.empty())
      throw Error(c.where(cfg.keep.empty() ? "" : "drop") + ": filter takes exactly one of `keep:` or `drop:`");
    keep_ = !cfg.keep.empty();
    key_ = keep_ ? "keep" : "drop";
    cond_ = expr::compile_option(c, key_, keep_ ? cfg.keep : cfg.drop, env_);
  }
  void transform(Batch b) override {
    for (size_t i = 0; i < b.size(); ++i) {
      try {
        if (cond_.test(b[i]) != keep_) b.drop(i);
      } catch (const expr::EvalError& e) {
        b.reject(i, "filter: " + key_ + ": `" + cond_.text() + "`: " + e.what());
      }
    }
  }

 private:
  expr::Tables tables_;
  expr::Env env_;
  bool keep_ = true;
  std::string key_;
  expr::Expr cond_;
};

}  // namespace

EDGEFLOW_PLUGIN("filter", "0.1.0", Filter)
