// Throws while describing its options: the SDK trampoline must turn that into a refusal.
#include <edgeflow/sdk/plugin.hpp>

#include <stdexcept>

namespace {
struct Broken : edgeflow::sdk::Sink {
  struct Config {};
  static constexpr const char* type = "broken";
  static constexpr const char* description = "throws in describe()";
  static void describe(edgeflow::sdk::Spec<Config>&) { throw std::runtime_error("describe() exploded"); }
  Broken(edgeflow::sdk::Context c, Config) : Sink(c) {}
  void write(edgeflow::sdk::Batch) override {}
};
}  // namespace

EDGEFLOW_PLUGIN("init_throws", "1.0", Broken)
