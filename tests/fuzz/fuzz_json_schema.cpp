// JSON Schema and I-JSON, as the validate step reads them: the input is a schema and a message
// separated by a NUL byte (without one, the whole input is a message for a fixed schema). Both are
// read as I-JSON; a schema that compiles checks the message. Checks: a verdict always comes back,
// with reasons exactly when the message does not match, each at a JSON pointer, all valid UTF-8.
#include "json_doc.hpp"
#include "schema.hpp"

#include <edgeflow/sdk/expr/value.hpp>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string_view>

using namespace edgeflow_validate;

namespace {

const char* kFixed =
    R"({"type":"object","required":["id"],"properties":{"id":{"type":"integer","minimum":1,"multipleOf":0.5},)"
    R"("tags":{"type":"array","uniqueItems":true,"items":{"type":"string","pattern":"^[a-z]+(-[a-z]+)*$"}},)"
    R"("at":{"format":"date-time"},"n":{"enum":[1,"a",{"b":[null]}]},"m":{"$ref":"#/definitions/m"}},)"
    R"("definitions":{"m":{"oneOf":[{"type":"number","exclusiveMaximum":1e10},{"const":{"x":1.0}}]}},)"
    R"("propertyNames":{"maxLength":8},"additionalProperties":{"not":{"type":"null"}}})";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  size_t nul = in.find('\0');
  std::string_view schema_text = nul == std::string_view::npos ? std::string_view(kFixed) : in.substr(0, nul);
  std::string_view message = nul == std::string_view::npos ? in : in.substr(nul + 1);
  Doc schema_doc;
  if (!schema_doc.parse(schema_text, 64)) return 0;
  Schema::Options options;
  options.format_assertion = size % 2 == 1;
  std::unique_ptr<Schema> schema;
  try {
    schema = std::make_unique<Schema>(schema_doc, "", options);
  } catch (const SchemaError&) {
    return 0;
  }
  Doc doc;
  if (!doc.parse(message, 128)) {
    if (doc.error().empty()) std::abort();
    return 0;
  }
  std::vector<Failure> failures;
  bool ok = schema->validate(doc, failures, 5);
  if (ok != failures.empty() || failures.size() > 5) std::abort();
  for (auto& f : failures) {
    if (!f.pointer.empty() && f.pointer[0] != '/') std::abort();
    if (f.message.empty() || !edgeflow::sdk::expr::is_utf8(f.message) || !edgeflow::sdk::expr::is_utf8(f.pointer))
      std::abort();
  }
  return 0;
}
