// The expression language: operator-written text → compiled expression or template → evaluated
// on a fixed document. Compile errors must explain themselves (offset inside the text), and
// evaluation may only fail with an EvalError, which the flow turns into a dead letter.
#include <edgeflow/sdk/expr.hpp>
#include <edgeflow/sdk/plugin.hpp>
#include <edgeflow/testing/harness.hpp>

#include <cstdint>
#include <cstdlib>

using namespace edgeflow::sdk;

namespace {

const expr::Expr* g_expr = nullptr;
const expr::Template* g_template = nullptr;

// Evaluates the expression under test on each message; the result goes to a header.
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
      try {
        std::string out;
        if (g_template) out = g_template->render(m);
        else expr::append_json(out, g_expr->eval(m));
        m.set_header("result", out);
      } catch (const expr::EvalError& e) {
        b.reject(i, e.what());
      }
    }
  }
};

const char* kDoc = R"({"id":7,"total":12.34,"name":" Ada ","tags":["a","b"],"op":"u",
  "after":{"customer":{"id":42,"email":"ada@example.org"},"qty":3,"nothing":null},
  "when":"2026-11-24T12:00:00.5+01:00","big":9223372036854775807,"nested":"{\"x\":[1,2.5,true,null]}"})";

}  // namespace

// One evaluation before fuzzing: the host registers its thread-local caches' destructors on first
// use, a one-time allocation libFuzzer's leak check would otherwise blame on the first input.
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const uint8_t warm[] = "\0after.customer.id + 1";
  LLVMFuzzerTestOneInput(warm, sizeof warm - 1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1 || size > 4096) return 0;
  std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  expr::Expr e;
  expr::Template t;
  try {
    if (data[0] & 1) t = expr::Template::compile(text);
    else e = expr::Expr::compile(text);
  } catch (const expr::CompileError& err) {
    if (err.pos > text.size()) std::abort();
    expr::explain(err, text);
    return 0;
  }
  g_expr = &e;
  g_template = data[0] & 1 ? &t : nullptr;
  // One harness per input: a harness keeps every message it made, for the tests that inspect them.
  edgeflow::testing::Harness<Probe> h("{}");
  h.transform({{.payload = kDoc, .key = "k-1", .headers = {{"x-trace", "t-9"}}, .meta = {{"topic", "orders"}},
                .content_type = "application/json", .timestamp_ms = 1000}});
  return 0;
}
