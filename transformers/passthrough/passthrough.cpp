// Leaves every message as it is. It measures what a step costs the engine (bench/engine) and
// holds a place in a flow while its real steps are being written.
#include <edgeflow/sdk/plugin.hpp>

using namespace edgeflow::sdk;

namespace {

class Passthrough : public Transformer {
 public:
  struct Config {};
  static constexpr const char* type = "passthrough";
  static constexpr const char* description = "Passes every message on unchanged.";
  static void describe(Spec<Config>&) {}
  Passthrough(Context c, Config) : Transformer(c) {}
  void transform(Batch) override {}
};

}  // namespace

EDGEFLOW_PLUGIN("passthrough", "0.1.0", Passthrough)
