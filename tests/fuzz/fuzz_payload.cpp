// Message payloads as the host reads them for every step (host/message.hpp): bytes → document
// or a refusal. Checks: a refusal always says why, in UTF-8, starting "payload is not"; an
// accepted document never holds a member name twice in one object (I-JSON), checked here the
// slow way; and a document copied through expression values and written again reads back as
// the same values, every number as it arrived (the boxed-number path, host/message.hpp).
#include <edgeflow/sdk/expr/value.hpp>
#include <edgeflow/sdk/plugin.hpp>
#include <edgeflow/testing/harness.hpp>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

using namespace edgeflow::sdk;

namespace {

bool repeats(Value v) {
  if (v.type() == EF_TYPE_OBJECT) {
    for (size_t i = 0; i < v.size(); ++i) {
      for (size_t j = 0; j < i; ++j)
        if (v.member(i).first == v.member(j).first) return true;
      if (repeats(v.member(i).second)) return true;
    }
  } else if (v.type() == EF_TYPE_ARRAY) {
    for (size_t i = 0; i < v.size(); ++i)
      if (repeats(v.at(i))) return true;
  }
  return false;
}

class Probe : public Transformer {
 public:
  struct Config {};
  static constexpr const char* type = "probe";
  static constexpr const char* description = "fuzz probe";
  static void describe(Spec<Config>&) {}
  Probe(Context c, Config) : Transformer(c) {}
  void transform(Batch b) override {
    for (size_t i = 0; i < b.size(); ++i) {
      Message m = b[i];
      ef_value* root = host().message_doc(m.raw());
      if (root) {
        if (repeats(Value(root))) std::abort();
        std::string before;
        expr::append_json(before, expr::Val::from(Value(root)));
        expr::Val copy = expr::Val::from(Value(root)).materialize();
        expr::assign(m, m.reset_doc(), copy);
        m.set_payload(std::string(m.payload()));
        ef_value* again = host().message_doc(m.raw());
        if (!again) std::abort();
        std::string after;
        expr::append_json(after, expr::Val::from(Value(again)));
        if (before != after) std::abort();
        continue;
      }
      std::string why = message_doc_error(m.raw());
      if (why.rfind("payload is not", 0) != 0 || !expr::is_utf8(why)) std::abort();
    }
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 65536) return 0;
  // One harness per input: a harness keeps every message it made.
  edgeflow::testing::Harness<Probe> h("{}");
  h.transform({{.payload = std::string(reinterpret_cast<const char*>(data), size)}});
  return 0;
}
