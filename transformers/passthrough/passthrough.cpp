// Leaves every message as it is. It measures what a step costs the engine (bench/engine) and
// holds a place in a flow while its real steps are being written. With `parse`, it makes the
// host parse each payload into its document, which is what any JSON-reading step costs.
#include <edgeflow/sdk/plugin.hpp>

using namespace edgeflow::sdk;

namespace {

class Passthrough : public Transformer {
 public:
  struct Config {
    bool parse = false;
  };
  static constexpr const char* type = "passthrough";
  static constexpr const char* description = "Passes every message on unchanged (optionally checking that it is JSON).";
  static void describe(Spec<Config>& s) {
    s.option("parse", &Config::parse)
        .doc("Parse each payload as JSON; a payload that is not JSON goes to the dead letter.")
        .example("true");
  }
  Passthrough(Context c, Config cfg) : Transformer(c), cfg_(cfg) {}
  void transform(Batch b) override {
    if (!cfg_.parse) return;
    for (size_t i = 0; i < b.size(); ++i)
      if (!host().message_doc(b[i].raw())) b.reject(i, message_doc_error(b[i].raw()));
  }

 private:
  Config cfg_;
};

}  // namespace

EDGEFLOW_PLUGIN("passthrough", "0.1.0", Passthrough)
