// Acknowledges and discards: the sink for benchmarks and for flows kept only for their side
// effects (metrics, taps).
#include <edgeflow/sdk/plugin.hpp>

using namespace edgeflow::sdk;

namespace {

class Drop : public Sink {
 public:
  struct Config {};
  static constexpr const char* type = "drop";
  static constexpr const char* description = "Acknowledges every message as delivered and discards it.";
  static void describe(Spec<Config>&) {}
  Drop(Context c, Config) : Sink(c) {}
  void write(Batch b) override { ack_all(b, EF_ACK_DELIVERED); }
};

}  // namespace

EDGEFLOW_PLUGIN("drop", "0.1.0", Drop)
