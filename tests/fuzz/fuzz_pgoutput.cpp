// pgoutput: the replication stream's bytes → decoded messages → JSON row values. The input is a
// run of messages, each behind a 2-byte length, decoded against one relation cache (so a
// Relation message can describe the rows after it). Every row converted must be valid UTF-8
// JSON: that is what the CDC source hands to the flow.
#include "pg_types.hpp"
#include "pgoutput.hpp"

#include <edgeflow/sdk/expr/value.hpp>

#include <rapidjson/document.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>

using namespace edgeflow;

namespace {

void check_json(const std::string& text) {
  rapidjson::Document d;
  d.Parse<rapidjson::kParseValidateEncodingFlag>(text.c_str(), text.size());
  if (d.HasParseError()) {
    std::fprintf(stderr, "not valid JSON: %s\n", text.c_str());
    std::abort();
  }
}

void row(const pg::Relation& rel, const pg::Tuple& t) {
  std::string out = "{";
  for (size_t i = 0; i < t.values.size() && i < rel.columns.size(); ++i) {
    const auto& v = t.values[i];
    if (i) out += ',';
    sdk::expr::append_json_string(out, rel.columns[i].name);
    out += ':';
    size_t at = out.size();
    try {
      if (v.kind == pg::Value::Kind::Text) pg::append_json(out, rel.columns[i].type_oid, v.data);
      else out += "null";
    } catch (const pg::ValueError&) {
      out.resize(at);  // the source keeps a refused value as its text
      sdk::expr::append_json_string(out, v.data);
    }
  }
  check_json(out + "}");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  pg::RelationCache cache;
  bool in_stream = false;
  while (size >= 2) {
    size_t n = std::min<size_t>(size - 2, size_t(data[0]) << 8 | data[1]);
    std::span<const uint8_t> msg(data + 2, n);
    data += 2 + n;
    size -= 2 + n;
    try {
      pg::Message m = pg::decode(msg, cache, in_stream);
      if (std::holds_alternative<pg::StreamStart>(m)) in_stream = true;
      if (std::holds_alternative<pg::StreamStop>(m)) in_stream = false;
      if (auto* i = std::get_if<pg::Insert>(&m)) row(*i->relation, i->new_tuple);
      if (auto* u = std::get_if<pg::Update>(&m)) {
        row(*u->relation, u->new_tuple);
        if (u->old_tuple) row(*u->relation, *u->old_tuple);
      }
      if (auto* d = std::get_if<pg::Delete>(&m)) row(*d->relation, d->old_tuple);
    } catch (const pg::DecodeError&) {
    }
  }
  return 0;
}
